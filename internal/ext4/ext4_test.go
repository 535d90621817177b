package ext4

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goldenImage is testdata/golden.ext4.gz unpacked (see make-golden.sh for
// what it holds).
func goldenImage(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "golden.ext4.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The patterned contents make-golden.sh writes.
func goldenOld() []byte {
	b := make([]byte, 14000)
	for i := range b {
		b[i] = byte((i*7 + i/251) % 256)
	}
	return b
}

func goldenNew() []byte {
	b := make([]byte, 5000)
	for i := range b {
		b[i] = byte((i*13 + 5) % 256)
	}
	return b
}

func goldenSparse() []byte {
	b := make([]byte, 10240)
	copy(b, bytes.Repeat([]byte("A"), 1024))
	copy(b[5*1024:], bytes.Repeat([]byte("B"), 1024))
	return b
}

// opaque hides Size and Stat, as a reader of a block device would.
type opaque struct{ r io.ReaderAt }

func (o opaque) ReadAt(p []byte, off int64) (int, error) { return o.r.ReadAt(p, off) }

type read struct {
	name  string
	limit int64
	want  []byte // when err is nil
	err   error
}

func checkReads(t *testing.T, r io.ReaderAt, reads []read) {
	t.Helper()
	for _, rd := range reads {
		got, err := ReadRootFile(r, rd.name, rd.limit)
		switch {
		case rd.err != nil:
			if !errors.Is(err, rd.err) {
				t.Errorf("ReadRootFile(%q, %d): err %v, want %v", rd.name, rd.limit, err, rd.err)
			}
		case err != nil:
			t.Errorf("ReadRootFile(%q, %d): %v", rd.name, rd.limit, err)
		case !bytes.Equal(got, rd.want):
			t.Errorf("ReadRootFile(%q, %d): %d bytes %.40q, want %d bytes %.40q", rd.name, rd.limit, len(got), got, len(rd.want), rd.want)
		}
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	img := goldenImage(t)
	path := filepath.Join(t.TempDir(), "golden.ext4")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	reads := []read{
		{name: "MARKER", want: []byte("disk1\n")},
		{name: "MARKER", limit: 3, want: []byte("dis")},
		{name: "old", want: goldenOld()}, // block map with an indirect block
		{name: "old", limit: 12345, want: goldenOld()[:12345]},
		{name: "new", want: goldenNew()},       // extents
		{name: "sparse", want: goldenSparse()}, // holes and an unwritten extent
		{name: "sparse", limit: 5*1024 + 1, want: goldenSparse()[:5*1024+1]},
		{name: "sub", err: ErrNotFound}, // a directory
		{name: "lost+found", err: ErrNotFound},
		{name: "missing", err: ErrNotFound},
		{name: "marker", err: ErrNotFound}, // names are exact
		{name: "sub/x", err: ErrNotFound},  // root entries only
		{name: "", err: ErrNotFound},
		{name: ".", err: ErrNotFound},
		{name: "..", err: ErrNotFound},
		{name: strings.Repeat("x", 256), err: ErrNotFound},
	}
	for _, tc := range []struct {
		name string
		r    io.ReaderAt
	}{
		{"bytes.Reader", bytes.NewReader(img)}, // Size
		{"os.File", file},                      // Stat
		{"opaque", opaque{bytes.NewReader(img)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkReads(t, tc.r, reads)
			if l, err := Label(tc.r); err != nil || l != "xdisk1" {
				t.Errorf("Label = %q, %v; want xdisk1", l, err)
			}
		})
	}
}

// failing fails every read at or past offset from.
type failing struct {
	r    io.ReaderAt
	from int64
}

var errDisk = errors.New("disk on fire")

func (f failing) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.from {
		return 0, errDisk
	}
	return f.r.ReadAt(p, off)
}

// TestReadError: a failing disk is the disk's error, not a verdict on the
// filesystem.
func TestReadError(t *testing.T) {
	t.Parallel()
	img := goldenImage(t)
	l := layout(t, img)
	for _, from := range []int64{0, superOffset + 10, int64(l.rootInode), int64(l.rootBlock), int64(l.markerInode)} {
		_, err := ReadRootFile(failing{bytes.NewReader(img), from}, "MARKER", 0)
		if !errors.Is(err, errDisk) || errors.Is(err, ErrNotExt4) || errors.Is(err, ErrNotFound) {
			t.Errorf("reads failing from %d: err %v, want only the disk's error", from, err)
		}
	}
}

func TestNotExt4(t *testing.T) {
	t.Parallel()
	random := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{1}).Read(random) //nolint:errcheck // never fails
	for _, tc := range []struct {
		name string
		img  []byte
	}{
		{"empty", nil},
		{"short", []byte("not a filesystem")},
		{"half superblock", make([]byte, 1500)},
		{"zeros", make([]byte, 1<<20)},
		{"random", random},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range []io.ReaderAt{bytes.NewReader(tc.img), opaque{bytes.NewReader(tc.img)}} {
				if _, err := ReadRootFile(r, "MARKER", 0); !errors.Is(err, ErrNotExt4) {
					t.Errorf("ReadRootFile: err %v, want ErrNotExt4", err)
				}
				if _, err := Label(r); !errors.Is(err, ErrNotExt4) {
					t.Errorf("Label: err %v, want ErrNotExt4", err)
				}
			}
		})
	}
}

// goldenLayout locates structures in the golden image for the corruption
// cases.
type goldenLayout struct {
	v                               *volume
	rootInode, rootBlock            uint64 // byte offsets
	markerInode, oldInode, newInode uint64
	markerEntry                     uint64 // byte offset of MARKER's directory entry
}

func layout(t *testing.T, img []byte) goldenLayout {
	t.Helper()
	v, err := open(bytes.NewReader(img), true)
	if err != nil {
		t.Fatal(err)
	}
	off := func(ino uint64) uint64 {
		o, err := v.inodeOffset(ino)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	root, err := v.inode(rootIno)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) uint64 {
		ino, err := v.lookup(root, name)
		if err != nil {
			t.Fatal(err)
		}
		return off(ino)
	}
	l := goldenLayout{v: v, rootInode: off(rootIno), markerInode: lookup("MARKER"), oldInode: lookup("old"), newInode: lookup("new")}
	if root.flags&flagExtents != 0 {
		t.Fatal("golden root directory has extents; the corruption cases expect a block map")
	}
	l.rootBlock = uint64(binary.LittleEndian.Uint32(root.raw[iBlockOffset:])) * v.bs
	i := bytes.Index(img[l.rootBlock:l.rootBlock+v.bs], []byte("MARKER"))
	if i < 8 {
		t.Fatal("MARKER entry not found in the root directory's first block")
	}
	l.markerEntry = l.rootBlock + uint64(i) - 8
	return l
}

func TestCorrupt(t *testing.T) {
	t.Parallel()
	img := goldenImage(t)
	l := layout(t, img)
	le := binary.LittleEndian
	put16 := func(b []byte, off uint64, x uint16) { le.PutUint16(b[off:], x) }
	put32 := func(b []byte, off uint64, x uint32) { le.PutUint32(b[off:], x) }
	incompat := func(bit uint32) func([]byte) {
		return func(b []byte) { put32(b, superOffset+0x60, le.Uint32(b[superOffset+0x60:])|bit) }
	}
	iblock := func(ino uint64) uint64 { return ino + iBlockOffset }
	newData := func(b []byte) uint64 { // first data block of "new"
		return uint64(le.Uint32(b[iblock(l.newInode)+extentEntry+8:])) * l.v.bs
	}
	for _, tc := range []struct {
		name    string
		mutate  func([]byte)
		file    string
		limit   int64
		err     error
		msg     string // in the error text
		wantLen int    // when err is nil
	}{
		{name: "bad magic", mutate: func(b []byte) { put16(b, superOffset+0x38, 0xEF54) }, err: ErrNotExt4, msg: "magic"},
		{name: "encrypt", mutate: incompat(incompatEncrypt), err: ErrNotExt4, msg: "encrypt"},
		{name: "compression", mutate: incompat(incompatCompression), err: ErrNotExt4, msg: "compression"},
		{name: "journal_dev", mutate: incompat(incompatJournalDev), err: ErrNotExt4, msg: "journal_dev"},
		{name: "dirdata", mutate: incompat(incompatDirData), err: ErrNotExt4, msg: "dirdata"},
		{name: "unknown feature", mutate: incompat(1 << 30), err: ErrNotExt4, msg: "unknown incompatible"},
		{name: "block size", mutate: func(b []byte) { put32(b, superOffset+0x18, 7) }, err: ErrNotExt4, msg: "block size"},
		{name: "inode size", mutate: func(b []byte) { put16(b, superOffset+0x58, 100) }, err: ErrNotExt4, msg: "inode size"},
		{name: "descriptor size", mutate: func(b []byte) { put16(b, superOffset+0xFE, 96) }, err: ErrNotExt4, msg: "descriptor size"},
		{name: "larger than image", mutate: func(b []byte) { put32(b, superOffset+0x04, 1<<20) }, err: ErrNotExt4, msg: "larger than the image"},
		{name: "zero inodes per group", mutate: func(b []byte) { put32(b, superOffset+0x28, 0) }, err: ErrNotExt4},
		{name: "root not a directory", mutate: func(b []byte) { put16(b, l.rootInode, 0x81A4) }, err: ErrNotExt4, msg: "root inode"},
		{name: "root directory huge", mutate: func(b []byte) { put32(b, l.rootInode+0x6C, 1) }, err: ErrNotExt4, msg: "too large"},
		{name: "rec_len zero", mutate: func(b []byte) { put16(b, l.rootBlock+4, 0) }, err: ErrNotExt4, msg: "rec_len"},
		{name: "rec_len unaligned", mutate: func(b []byte) { put16(b, l.rootBlock+4, 13) }, err: ErrNotExt4, msg: "rec_len"},
		{name: "rec_len past block", mutate: func(b []byte) { put16(b, l.rootBlock+4, 2048) }, err: ErrNotExt4, msg: "rec_len"},
		{name: "name_len past rec_len", mutate: func(b []byte) { b[l.rootBlock+6] = 200 }, err: ErrNotExt4, msg: "name_len"},
		{name: "entry inode out of range", mutate: func(b []byte) { put32(b, l.markerEntry, 1<<20) }, err: ErrNotExt4, msg: "out of range"},
		{name: "deleted entry", mutate: func(b []byte) { put32(b, l.markerEntry, 0) }, err: ErrNotFound},
		{name: "data block out of range", mutate: func(b []byte) { put32(b, iblock(l.markerInode), 1<<20) }, err: ErrNotExt4, msg: "out of range"},
		{name: "indirect block out of range", file: "old", mutate: func(b []byte) { put32(b, iblock(l.oldInode)+12*4, 1<<20) }, err: ErrNotExt4, msg: "indirect"},
		{name: "extent magic", file: "new", mutate: func(b []byte) { put16(b, iblock(l.newInode), 0xF30B) }, err: ErrNotExt4, msg: "extent header"},
		{name: "extent depth", file: "new", mutate: func(b []byte) { put16(b, iblock(l.newInode)+6, 6) }, err: ErrNotExt4, msg: "depth"},
		{name: "extent entries overflow", file: "new", mutate: func(b []byte) { put16(b, iblock(l.newInode)+2, 5) }, err: ErrNotExt4, msg: "overflows"},
		{name: "extent past end", file: "new", mutate: func(b []byte) { put32(b, iblock(l.newInode)+extentEntry+8, 1<<20) }, err: ErrNotExt4, msg: "extent 0"},
		{name: "extent zero length", file: "new", mutate: func(b []byte) { put16(b, iblock(l.newInode)+extentEntry+4, 0) }, err: ErrNotExt4, msg: "extent 0"},
		{name: "extents overlap", file: "new", mutate: func(b []byte) {
			e := iblock(l.newInode) + extentEntry
			copy(b[e+extentEntry:], b[e:e+extentEntry]) // the same extent twice
			put16(b, iblock(l.newInode)+2, 2)
		}, err: ErrNotExt4, msg: "extent 1"},
		{name: "extent index loop", file: "new", mutate: func(b []byte) {
			// The root becomes an index whose child is an index block
			// pointing at itself: depths must decrease, so this stops.
			blk := newData(b)
			node := make([]byte, 24)
			put16(node, 0, extentMagic)
			put16(node, 2, 1)
			put16(node, 4, 4)
			put16(node, 6, 1)
			put32(node, extentEntry+4, uint32(blk/l.v.bs))
			copy(b[blk:], node)
			put16(node, 6, 2)
			copy(b[iblock(l.newInode):], node)
		}, err: ErrNotExt4, msg: "depth 1"},
		{name: "inline without attribute", mutate: func(b []byte) {
			put32(b, l.markerInode+0x20, flagInlineData)
			put32(b, l.markerInode+0x04, 100)
		}, err: ErrNotExt4, msg: "inline data"},
		{name: "huge size capped by default limit", mutate: func(b []byte) { put32(b, l.markerInode+0x6C, 1) }, wantLen: defaultLimit},
		{name: "huge size capped by limit", limit: 4096, mutate: func(b []byte) { put32(b, l.markerInode+0x6C, 1) }, wantLen: 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bytes.Clone(img)
			tc.mutate(b)
			name := tc.file
			if name == "" {
				name = "MARKER"
			}
			got, err := ReadRootFile(bytes.NewReader(b), name, tc.limit)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("ReadRootFile: %v", err)
			case tc.err == nil:
				if len(got) != tc.wantLen || !bytes.HasPrefix(got, []byte("disk1\n")) {
					t.Fatalf("ReadRootFile: %d bytes %.20q, want %d starting disk1", len(got), got, tc.wantLen)
				}
			case !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg):
				t.Fatalf("ReadRootFile: err %v, want %v mentioning %q", err, tc.err, tc.msg)
			}
		})
	}
}

// TestInline covers inline data the mkfs cases cannot produce: a root
// directory whose entries sit in i_block and in the system.data attribute.
func TestInline(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	v := &volume{bs: 1024, inodeSize: 256, incompat: incompatFiletype | incompatInlineData}
	entry := func(b []byte, ino uint32, rec int, name string) {
		le.PutUint32(b, ino)
		le.PutUint16(b[4:], uint16(rec))
		b[6], b[7] = byte(len(name)), 1
		copy(b[8:], name)
	}
	// inlineInode has the given i_block and system.data value.
	inlineInode := func(mode uint16, iblock, value []byte) *inode {
		raw := make([]byte, 256)
		copy(raw[iBlockOffset:], iblock)
		le.PutUint16(raw[128:], 32) // i_extra_isize: attributes from 160
		le.PutUint32(raw[160:], xattrMagic)
		a := raw[164:] // first entry; value offsets count from here
		// user.x = "y" first, so the lookup has to step over it.
		a[0], a[1] = 1, 1
		le.PutUint16(a[2:], 44)
		le.PutUint32(a[8:], 1)
		a[16] = 'x'
		a[44] = 'y'
		e := a[20:]
		e[0], e[1] = 4, xattrIndexSys
		le.PutUint16(e[2:], 48)
		le.PutUint32(e[8:], uint32(len(value)))
		copy(e[16:], "data")
		// a[40:44] stays zero: the end of the entry list
		copy(a[48:], value)
		return &inode{raw: raw, mode: mode, flags: flagInlineData, size: uint64(iBlockSize + len(value))}
	}

	iblock := make([]byte, iBlockSize)
	le.PutUint32(iblock, rootIno) // parent
	entry(iblock[4:], 12, 56, "a")
	value := make([]byte, 16)
	entry(value, 13, 16, "MARKER")
	dir := inlineInode(modeDir, iblock, value)
	for name, want := range map[string]uint64{"a": 12, "MARKER": 13} {
		if ino, err := v.lookup(dir, name); err != nil || ino != want {
			t.Errorf("lookup(%q) = %d, %v; want %d", name, ino, err, want)
		}
	}
	if _, err := v.lookup(dir, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup(b): err %v, want ErrNotFound", err)
	}

	data := bytes.Repeat([]byte("x"), iBlockSize)
	f := inlineInode(modeRegular, data, []byte("0123456789"))
	want := append(bytes.Clone(data), "0123456789"...)
	for _, limit := range []uint64{defaultLimit, 65, 60, 7} {
		if got, err := v.readFile(f, limit); err != nil || !bytes.Equal(got, want[:min(limit, 70)]) {
			t.Errorf("readFile(limit %d) = %q, %v; want %q", limit, got, err, want[:min(limit, 70)])
		}
	}
	f.size = 71 // one byte more than stored
	if _, err := v.readFile(f, defaultLimit); !errors.Is(err, ErrNotExt4) {
		t.Errorf("readFile of short inline data: err %v, want ErrNotExt4", err)
	}
}

func TestHasSuper(t *testing.T) {
	t.Parallel()
	sparse := &volume{roCompat: roCompatSparseSuper}
	for g, want := range map[uint64]bool{0: true, 1: true, 2: false, 3: true, 4: false, 5: true, 7: true, 9: true, 15: false, 25: true, 27: true, 49: true, 81: true, 125: true, 343: true, 21: false} {
		if got := sparse.hasSuper(g); got != want {
			t.Errorf("sparse_super hasSuper(%d) = %v", g, got)
		}
	}
	if !(&volume{}).hasSuper(6) {
		t.Error("without sparse_super every group has a backup")
	}
	ss2 := &volume{roCompat: roCompatSparseSuper, compat: compatSparseSuper2, backupBGs: [2]uint64{1, 40}}
	for g, want := range map[uint64]bool{0: true, 1: true, 3: false, 40: true} {
		if got := ss2.hasSuper(g); got != want {
			t.Errorf("sparse_super2 hasSuper(%d) = %v", g, got)
		}
	}
}

// findMkfs returns mkfs.ext4's path, also where Debian keeps it off a
// user's PATH, or "" when e2fsprogs is not installed.
func findMkfs() string {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func mkfsPath(t testing.TB) string {
	p := findMkfs()
	if p == "" {
		t.Skip("mkfs.ext4 not found (install e2fsprogs): skipping the cases that build images")
	}
	return p
}

type mkfsSpec struct {
	args  []string          // extra mkfs.ext4 options
	size  string            // default 16M, as scripts/guest/build.sh
	files map[string][]byte // root directory contents
	dirs  []string
	many  int  // plus files f0 .. f<many-1>, each holding its name
	fsck  bool // e2fsck -fyD afterwards: indexes (htree) large directories
}

// mkfs builds an image with mkfs.ext4 -d and returns its path.
func mkfs(t *testing.T, s mkfsSpec) string {
	t.Helper()
	bin := mkfsPath(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range s.files {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range s.dirs {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range s.many {
		name := manyName(i)
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img")
	size := s.size
	if size == "" {
		size = "16M"
	}
	args := append([]string{"-q", "-F", "-d", root}, s.args...)
	if out, err := exec.Command(bin, append(args, img, size)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %v: %v\n%s", s.args, err, out)
	}
	if s.fsck {
		// Exit status 1 means "fixed something": the directories it
		// rebuilt with -D.
		out, err := exec.Command(filepath.Join(filepath.Dir(bin), "e2fsck"), "-fyD", img).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
			t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
		}
	}
	return img
}

// manyName names the i-th of many files: long names fill directory blocks.
func manyName(i int) string {
	return "file-with-a-rather-long-name-" + strings.Repeat("x", i%7) + "-" + strconv.Itoa(i)
}

func TestMkfs(t *testing.T) {
	t.Parallel()
	mkfsPath(t)
	rng := rand.NewChaCha8([32]byte{2})
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b) //nolint:errcheck // never fails
		return b
	}
	marker := map[string][]byte{"MARKER": []byte("disk1\n")}
	basic := []read{
		{name: "MARKER", want: []byte("disk1\n")},
		{name: "MARKER", limit: 3, want: []byte("dis")},
		{name: "lost+found", err: ErrNotFound},
		{name: "missing", err: ErrNotFound},
	}
	big := random(100 << 10)
	bigReads := []read{
		{name: "MARKER", want: big},
		{name: "MARKER", limit: 5000, want: big[:5000]},
		{name: "MARKER", limit: 100<<10 + 1, want: big},
	}
	huge := random(400 << 10) // past 12+256 1 KiB blocks: double indirect on ext2
	// Zero blocks become holes (mkfs -d skips them).
	holes := append(append(random(3000), make([]byte, 200<<10)...), random(5000)...)
	inline100 := random(100) // past i_block: continued in system.data
	// 20 data blocks between holes: more extents than i_block holds (4),
	// so the tree gets an index level.
	var fragmented []byte
	for range 20 {
		fragmented = append(append(fragmented, random(4096)...), make([]byte, 8192)...)
	}
	manyReads := func(n int) []read {
		r := append([]read(nil), basic...)
		for _, i := range []int{0, 1, n / 2, n - 1} {
			r = append(r, read{name: manyName(i), want: []byte(manyName(i))})
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		spec   mkfsSpec
		reads  []read
		label  string
		verify func(t *testing.T, v *volume, root *inode)
	}{
		{name: "default", spec: mkfsSpec{args: []string{"-L", "xdisk1"}, files: marker}, reads: basic, label: "xdisk1",
			verify: func(t *testing.T, v *volume, root *inode) {
				if root.flags&flagExtents == 0 {
					t.Error("root directory without extents on a default ext4")
				}
			}},
		{name: "no 64bit no metadata_csum", spec: mkfsSpec{args: []string{"-O", "^64bit,^metadata_csum"}, files: marker}, reads: basic,
			verify: func(t *testing.T, v *volume, _ *inode) {
				if v.desc64 || v.descSize != 32 {
					t.Errorf("descriptor size %d, want 32", v.descSize)
				}
			}},
		{name: "ext2", spec: mkfsSpec{args: []string{"-t", "ext2"}, files: marker}, reads: basic,
			verify: func(t *testing.T, v *volume, root *inode) {
				if root.flags&flagExtents != 0 {
					t.Error("ext2 root directory has extents")
				}
			}},
		{name: "ext2 rev 0", spec: mkfsSpec{args: []string{"-t", "ext2", "-r", "0"}, files: marker}, reads: basic,
			verify: func(t *testing.T, v *volume, _ *inode) {
				if v.inodeSize != 128 || v.incompat&incompatFiletype != 0 {
					t.Errorf("inode size %d, incompat %#x: not a revision 0 filesystem", v.inodeSize, v.incompat)
				}
			}},
		{name: "ext2 double indirect", spec: mkfsSpec{args: []string{"-t", "ext2", "-b", "1024"}, files: map[string][]byte{"MARKER": huge}},
			reads: []read{{name: "MARKER", limit: 1 << 20, want: huge}, {name: "MARKER", limit: 300 << 10, want: huge[:300<<10]}}},
		{name: "ext3", spec: mkfsSpec{args: []string{"-t", "ext3"}, files: marker}, reads: basic},
		{name: "1k blocks", spec: mkfsSpec{args: []string{"-b", "1024"}, files: marker}, reads: basic},
		{name: "4k blocks", spec: mkfsSpec{args: []string{"-b", "4096"}, files: marker}, reads: basic},
		{name: "64k blocks", spec: mkfsSpec{args: []string{"-b", "65536", "-O", "^has_journal"}, files: marker}, reads: basic,
			verify: func(t *testing.T, v *volume, _ *inode) {
				if v.bs != 65536 {
					t.Errorf("block size %d", v.bs)
				}
			}},
		{name: "128-byte inodes", spec: mkfsSpec{args: []string{"-I", "128"}, files: marker}, reads: basic},
		{name: "htree 1k", spec: mkfsSpec{args: []string{"-b", "1024"}, files: marker, many: 300, fsck: true}, reads: manyReads(300),
			verify: wantIndexed},
		{name: "htree 4k", spec: mkfsSpec{args: []string{"-b", "4096"}, files: marker, many: 300, fsck: true}, reads: manyReads(300),
			verify: wantIndexed},
		{name: "multi-block linear", spec: mkfsSpec{args: []string{"-O", "^dir_index"}, files: marker, many: 300}, reads: manyReads(300),
			verify: func(t *testing.T, v *volume, root *inode) {
				if root.size <= v.bs {
					t.Errorf("root directory of %d bytes fits one block", root.size)
				}
			}},
		{name: "large file", spec: mkfsSpec{files: map[string][]byte{"MARKER": big}}, reads: bigReads},
		{name: "large file 4k", spec: mkfsSpec{args: []string{"-b", "4096"}, files: map[string][]byte{"MARKER": big}}, reads: bigReads},
		{name: "holes", spec: mkfsSpec{files: map[string][]byte{"MARKER": holes}}, reads: []read{{name: "MARKER", want: holes}}},
		{name: "extent tree depth 1", spec: mkfsSpec{args: []string{"-b", "4096"}, files: map[string][]byte{"MARKER": fragmented}},
			reads: []read{{name: "MARKER", want: fragmented}, {name: "MARKER", limit: 50000, want: fragmented[:50000]}},
			verify: func(t *testing.T, v *volume, root *inode) {
				ino, err := v.lookup(root, "MARKER")
				if err != nil {
					t.Fatal(err)
				}
				f, err := v.inode(ino)
				if err != nil {
					t.Fatal(err)
				}
				if d := binary.LittleEndian.Uint16(f.raw[iBlockOffset+6:]); f.flags&flagExtents == 0 || d < 1 {
					t.Errorf("MARKER's extent tree has depth %d (flags %#x), want an index level", d, f.flags)
				}
			}},
		{name: "directory named MARKER", spec: mkfsSpec{dirs: []string{"MARKER"}}, reads: []read{{name: "MARKER", err: ErrNotFound}}},
		{name: "inline data", spec: mkfsSpec{args: []string{"-O", "inline_data"}, files: map[string][]byte{"MARKER": []byte("disk1\n"), "hundred": inline100}},
			reads: append(basic, read{name: "hundred", want: inline100}),
			verify: func(t *testing.T, v *volume, root *inode) {
				ino, err := v.lookup(root, "hundred")
				if err != nil {
					t.Fatal(err)
				}
				if f, err := v.inode(ino); err != nil || f.flags&flagInlineData == 0 {
					t.Errorf("hundred is not inline (%v)", err)
				}
			}},
		{name: "meta_bg", spec: mkfsSpec{args: []string{"-b", "1024", "-g", "256", "-N", "512", "-O", "meta_bg,^resize_inode"}, files: marker, many: 300},
			reads: manyReads(300),
			verify: func(t *testing.T, v *volume, root *inode) {
				// The last file's inode must be in a later meta group for
				// the case to test meta_bg descriptor placement.
				ino, err := v.lookup(root, manyName(299))
				if err != nil {
					t.Fatal(err)
				}
				if g := (ino - 1) / v.inodesPerGroup; g < v.bs/v.descSize {
					t.Errorf("inode %d is in group %d, in the first meta group", ino, g)
				}
			}},
		{name: "bigalloc", spec: mkfsSpec{args: []string{"-O", "bigalloc", "-C", "16384"}, files: map[string][]byte{"MARKER": big}}, reads: bigReads},
		{name: "sparse_super2", spec: mkfsSpec{args: []string{"-O", "sparse_super2"}, files: marker}, reads: basic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := mkfs(t, tc.spec)
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkReads(t, bytes.NewReader(img), tc.reads)
			checkReads(t, opaque{bytes.NewReader(img)}, tc.reads[:1])
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			checkReads(t, f, tc.reads[:1])
			if l, err := Label(f); err != nil || l != tc.label {
				t.Errorf("Label = %q, %v; want %q", l, err, tc.label)
			}
			if tc.verify != nil {
				v, err := open(bytes.NewReader(img), true)
				if err != nil {
					t.Fatal(err)
				}
				root, err := v.inode(rootIno)
				if err != nil {
					t.Fatal(err)
				}
				tc.verify(t, v, root)
			}
		})
	}
}

func wantIndexed(t *testing.T, v *volume, root *inode) {
	const flagIndex = 0x1000 // EXT4_INDEX_FL: hashed (htree) directory
	if root.flags&flagIndex == 0 || root.size <= v.bs {
		t.Errorf("root directory (flags %#x, %d bytes) is not a multi-block htree", root.flags, root.size)
	}
}

// TestRecLen64K: with 64 KiB blocks an entry spanning a whole block needs
// 17 bits of rec_len, stored as 0 or 65535 (an empty block, an htree node).
func TestRecLen64K(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	v := &volume{bs: 65536, incompat: incompatFiletype}
	for _, rec := range []uint16{0, 65535} {
		b := make([]byte, 65536)
		le.PutUint16(b[4:], rec)
		if ino, err := v.findEntry(b, "MARKER"); ino != 0 || err != nil {
			t.Errorf("rec_len %d: findEntry = %d, %v; want an empty block", rec, ino, err)
		}
	}
	// 65532 | 1<<16 stored as 65532|1: an entry of 131068 bytes overflows.
	b := make([]byte, 65536)
	le.PutUint16(b[4:], 65532|1)
	if _, err := v.findEntry(b, "MARKER"); !errors.Is(err, ErrNotExt4) {
		t.Errorf("rec_len past the block: err %v, want ErrNotExt4", err)
	}
}
