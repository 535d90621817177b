package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// fuzzNames are looked up in every input: the golden image's files (block
// map, extents, holes and unwritten, a directory) and one absent name.
var fuzzNames = []string{"MARKER", "old", "new", "sparse", "sub", "nope"}

// FuzzReadRootFile: disk images come from users; reading one must fail
// with ErrNotExt4 or ErrNotFound, never panic, hang or allocate without
// bound, and never return more than the limit.
func FuzzReadRootFile(f *testing.F) {
	img := goldenImage(f)
	f.Add(img, uint16(0), true)
	f.Add(img, uint16(3), false)
	f.Add(img, uint16(1500), true)
	for _, m := range seedMutations(f, img) {
		f.Add(m, uint16(4096), true)
	}
	for _, m := range mkfsSeeds(f) {
		f.Add(m, uint16(0), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, sized bool) {
		capBytes := int64(limit)
		if capBytes == 0 {
			capBytes = defaultLimit
		}
		// A reader with a size (bounds checked up front) or without (a
		// block device: reads past the end must fail cleanly).
		var r io.ReaderAt = bytes.NewReader(data)
		if !sized {
			r = opaque{r}
		}
		for _, name := range fuzzNames {
			got, err := ReadRootFile(r, name, int64(limit))
			if err != nil {
				if !errors.Is(err, ErrNotExt4) && !errors.Is(err, ErrNotFound) {
					t.Fatalf("ReadRootFile(%q): error %v is neither ErrNotExt4 nor ErrNotFound", name, err)
				}
				continue
			}
			if int64(len(got)) > capBytes {
				t.Fatalf("ReadRootFile(%q, %d): %d bytes, over the limit", name, limit, len(got))
			}
			// A smaller limit reads a prefix of the same data.
			if len(got) > 1 {
				short, err := ReadRootFile(r, name, int64(len(got)/2))
				if err != nil || !bytes.Equal(short, got[:len(got)/2]) {
					t.Fatalf("ReadRootFile(%q, %d) = %.40q, %v; not a prefix of the longer read", name, len(got)/2, short, err)
				}
			}
		}
		if _, err := Label(r); err != nil && !errors.Is(err, ErrNotExt4) {
			t.Fatalf("Label: error %v is not ErrNotExt4", err)
		}
	})
}

// seedMutations damages the golden image where it matters, so the fuzzer
// starts next to the checks instead of having to find them.
func seedMutations(f *testing.F, img []byte) [][]byte {
	f.Helper()
	le := binary.LittleEndian
	v, err := open(bytes.NewReader(img), true)
	if err != nil {
		f.Fatal(err)
	}
	root, err := v.inode(rootIno)
	if err != nil {
		f.Fatal(err)
	}
	inodeOff := func(name string) uint64 {
		ino := uint64(rootIno)
		if name != "" {
			if ino, err = v.lookup(root, name); err != nil {
				f.Fatal(err)
			}
		}
		off, err := v.inodeOffset(ino)
		if err != nil {
			f.Fatal(err)
		}
		return off
	}
	var out [][]byte
	mutate := func(fn func(b []byte)) {
		b := bytes.Clone(img)
		fn(b)
		out = append(out, b)
	}
	sb := uint64(superOffset)
	mutate(func(b []byte) { le.PutUint32(b[sb+0x60:], le.Uint32(b[sb+0x60:])&^incompat64Bit) }) // 32-byte descriptors
	mutate(func(b []byte) { le.PutUint32(b[sb+0x60:], le.Uint32(b[sb+0x60:])|incompatMetaBG) })
	mutate(func(b []byte) { le.PutUint32(b[sb+0x60:], le.Uint32(b[sb+0x60:])&^incompatFiletype) })
	mutate(func(b []byte) { le.PutUint32(b[sb+0x4C:], 0) }) // revision 0
	for _, name := range []string{"", "MARKER", "old", "new", "sparse"} {
		off := inodeOff(name)
		flags := le.Uint32(img[off+0x20:])
		mutate(func(b []byte) { le.PutUint32(b[off+0x20:], flags^flagExtents) })
		mutate(func(b []byte) { le.PutUint32(b[off+0x20:], flags|flagInlineData) })
		mutate(func(b []byte) { le.PutUint32(b[off+0x6C:], 1) }) // 4 GiB larger
	}
	// "new" as a depth-1 tree whose index points at its own data block.
	mutate(func(b []byte) {
		ib := inodeOff("new") + iBlockOffset
		blk := le.Uint32(b[ib+extentEntry+8:])
		copy(b[uint64(blk)*v.bs:], b[ib:ib+iBlockSize])
		le.PutUint16(b[ib+6:], 1)
		le.PutUint32(b[ib+extentEntry+4:], blk)
		le.PutUint16(b[ib+extentEntry+8:], 0)
	})
	return out
}

// mkfsSeeds adds small images for what the golden one lacks (inline
// data, a default ext4, an ext2) when mkfs.ext4 is installed.
func mkfsSeeds(f *testing.F) [][]byte {
	bin := findMkfs()
	if bin == "" {
		return nil
	}
	dir := f.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		f.Fatal(err)
	}
	for name, n := range map[string]int{"MARKER": 6, "old": 100, "new": 3000} {
		if err := os.WriteFile(filepath.Join(root, name), bytes.Repeat([]byte{'a' + byte(n%26)}, n), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	var out [][]byte
	for i, opts := range [][]string{
		{"-O", "^has_journal,inline_data"},
		{"-O", "^has_journal"},
		{"-t", "ext2"},
	} {
		img := filepath.Join(dir, "img"+string(rune('0'+i)))
		args := append([]string{"-q", "-F", "-b", "1024", "-N", "16", "-d", root}, opts...)
		if err := exec.Command(bin, append(args, img, "80K")...).Run(); err != nil {
			continue // an older mkfs without a feature: the seed is optional
		}
		if b, err := os.ReadFile(img); err == nil {
			out = append(out, b)
		}
	}
	return out
}
