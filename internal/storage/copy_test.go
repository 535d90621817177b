package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

const mib = 1 << 20

// allocated returns the bytes a file takes on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// writeSparse makes a file of size bytes with data written at the given
// offsets and holes elsewhere.
func writeSparse(t *testing.T, path string, size int64, data map[int64][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range data {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCopySparse(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte("xenith"), 1000)
	for _, tc := range []struct {
		name     string
		size     int64            // of the source file
		data     map[int64][]byte // written into the source
		copySize int64            // bytes copied
		dstOld   []byte           // existing content of dst (not fresh) or nil
		maxAlloc int64            // most bytes dst may take on disk
	}{
		{"empty sparse file", 64 * mib, nil, 64 * mib, nil, 0},
		{"data in the middle", 64 * mib, map[int64][]byte{20 * mib: payload}, 64 * mib, nil, 2 * mib},
		{"data at both ends", 16 * mib, map[int64][]byte{0: payload, 16*mib - int64(len(payload)): payload}, 16 * mib, nil, 3 * mib},
		{"zeros written out are skipped", 8 * mib, map[int64][]byte{mib: make([]byte, 4*mib)}, 8 * mib, nil, 0},
		{"source shorter than the copy", 2 * mib, map[int64][]byte{0: payload}, 8 * mib, nil, 2 * mib},
		{"into an existing disk", 4 * mib, map[int64][]byte{3 * mib: payload}, 4 * mib, bytes.Repeat([]byte{0xff}, 6*mib), 7 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			writeSparse(t, src, tc.size, tc.data)
			fresh := tc.dstOld == nil
			if !fresh {
				if err := os.WriteFile(dst, tc.dstOld, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			in, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if err := CopySparse(context.Background(), out, in, tc.copySize, fresh); err != nil {
				t.Fatal(err)
			}
			out.Close()

			want := make([]byte, tc.copySize)
			copy(want, readAll(t, src))
			got := readAll(t, dst)
			if !fresh && int64(len(tc.dstOld)) > tc.copySize {
				// The tail beyond the copy is left alone.
				want = append(want, tc.dstOld[tc.copySize:]...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("content differs (len %d, want %d)", len(got), len(want))
			}
			if a := allocated(t, dst); a > tc.maxAlloc {
				t.Errorf("dst takes %d bytes on disk, want at most %d", a, tc.maxAlloc)
			}
		})
	}
}

func TestCopySparseCancelled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeSparse(t, src, 8*mib, map[int64][]byte{0: bytes.Repeat([]byte{1}, 8*mib)})
	in, _ := os.Open(src)
	defer in.Close()
	out, _ := os.Create(filepath.Join(dir, "dst"))
	defer out.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CopySparse(ctx, out, in, 8*mib, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestCopyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a.raw"), filepath.Join(dir, "b.raw")
	writeSparse(t, src, 1<<30, map[int64][]byte{512 * mib: []byte("middle")})
	if err := CopyFile(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Size() != 1<<30 {
		t.Fatalf("copy: %v, size %d", err, fi.Size())
	}
	if a := allocated(t, dst); a > mib {
		t.Errorf("a copy of a 1 GiB sparse file takes %d bytes", a)
	}
	f, _ := os.Open(dst)
	defer f.Close()
	b := make([]byte, 6)
	if _, err := f.ReadAt(b, 512*mib); err != nil || string(b) != "middle" {
		t.Errorf("data = %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("temporary file left behind: %d entries", len(entries))
	}
	if err := CopyFile(context.Background(), filepath.Join(dir, "c.raw"), filepath.Join(dir, "missing")); err == nil {
		t.Error("copying a missing file succeeded")
	}
}

// TestQemuImgMissing replaces the qemu-img lookup, so it does not run in
// parallel: parallel tests start only after it has put the lookup back.
func TestQemuImgMissing(t *testing.T) {
	saved := qemuImgPath
	t.Cleanup(func() { qemuImgPath = saved })
	qemuImgPath = func() (string, error) { return "", os.ErrNotExist }
	if err := QemuImg(context.Background(), "info", "x"); !errors.Is(err, ErrNoQemuImg) {
		t.Fatalf("err = %v, want ErrNoQemuImg", err)
	}
	if QemuImgAvailable() {
		t.Error("QemuImgAvailable with no qemu-img")
	}
}

func needQemuImg(t *testing.T) {
	t.Helper()
	if !QemuImgAvailable() {
		t.Skip("qemu-img is not installed (Debian package qemu-utils): qcow2 support is not tested")
	}
}

func TestQcow2(t *testing.T) {
	t.Parallel()
	needQemuImg(t)
	dir := t.TempDir()
	ctx := context.Background()
	img := filepath.Join(dir, "disk.qcow2")
	if err := QemuImg(ctx, "create", "-q", "-f", "qcow2", img, "100M"); err != nil {
		t.Fatal(err)
	}
	h, err := ReadQcow2Header(img)
	if err != nil {
		t.Fatal(err)
	}
	if h.VirtualSize != 100*mib || h.Version < 2 || h.BackingFile != "" {
		t.Errorf("header = %+v", h)
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	if err := QemuImg(ctx, "create", "-q", "-f", "qcow2", "-b", img, "-F", "qcow2", overlay); err != nil {
		t.Fatal(err)
	}
	if h, err := ReadQcow2Header(overlay); err != nil || h.BackingFile != img {
		t.Errorf("overlay header = %+v, %v", h, err)
	}
	if _, err := ReadQcow2Header(filepath.Join(dir, "nope")); err == nil {
		t.Error("header of a missing file")
	}
	raw := filepath.Join(dir, "raw")
	writeSparse(t, raw, mib, nil)
	if _, err := ReadQcow2Header(raw); err == nil {
		t.Error("a raw file read as qcow2")
	}
	if err := QemuImg(ctx, "info", raw+"-missing"); err == nil {
		t.Error("qemu-img on a missing file succeeded")
	}
}

func TestCopyImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	writeSparse(t, src, 8*mib, map[int64][]byte{4 * mib: []byte("payload")})
	srcImg := Image{Path: src, Format: FormatRaw, VirtualSize: 8 * mib}

	dst := filepath.Join(dir, "dst.raw")
	writeSparse(t, dst, 16*mib, nil)
	if err := CopyImage(ctx, Image{Path: dst, Format: FormatRaw, VirtualSize: 16 * mib}, srcImg, true); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, dst)
	if len(got) != 16*mib || string(got[4*mib:4*mib+7]) != "payload" {
		t.Fatalf("raw copy: len %d", len(got))
	}

	t.Run("qcow2", func(t *testing.T) {
		t.Parallel()
		needQemuImg(t)
		q := filepath.Join(dir, "dst.qcow2")
		if err := QemuImg(ctx, "create", "-q", "-f", "qcow2", q, "8M"); err != nil {
			t.Fatal(err)
		}
		if err := CopyImage(ctx, Image{Path: q, Format: FormatQcow2, VirtualSize: 8 * mib}, srcImg, true); err != nil {
			t.Fatal(err)
		}
		back := filepath.Join(dir, "back.raw")
		writeSparse(t, back, 8*mib, nil)
		if err := CopyImage(ctx, Image{Path: back, Format: FormatRaw, VirtualSize: 8 * mib},
			Image{Path: q, Format: FormatQcow2, VirtualSize: 8 * mib}, true); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readAll(t, back), readAll(t, src)) {
			t.Error("raw -> qcow2 -> raw changed the data")
		}
	})
}
