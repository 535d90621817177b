package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/storage"
)

const gib = 1 << 30

func openSR(t *testing.T) (*SR, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sr", "new")
	d, err := Open(storage.SR{UUID: uuid.NewString(), DeviceConfig: map[string]string{"path": dir}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d.(*SR), dir
}

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	if !storage.IsCode(err, code) {
		t.Fatalf("err = %v, want SM code %d", err, code)
	}
}

func blocks(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dc   map[string]string
		code int // 0: success
	}{
		{"path", map[string]string{"path": "/srv/sr"}, 0},
		{"location", map[string]string{"location": "/srv/sr"}, 0},
		{"missing", map[string]string{}, storage.CodeLocationMissing},
		{"relative", map[string]string{"path": "sr"}, storage.CodeLocationUnusable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Open(storage.SR{UUID: uuid.NewString(), DeviceConfig: tc.dc})
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tc.code)
		})
	}
}

func TestCreateAttachDestroy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dir := openSR(t)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("Create made no directory: %v", err)
	}
	if err := d.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := d.Stat(ctx)
	if err != nil || st.Total <= 0 || st.Free < 0 || st.Free > st.Total {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	info, err := d.CreateVDI(ctx, uuid.NewString(), gib, "")
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, d.Destroy(ctx), storage.CodeSRNotEmpty)
	if err := d.DestroyVDI(ctx, info.Location); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".leftover.part"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory still there: %v", err)
	}
	if err := d.Destroy(ctx); err != nil {
		t.Fatalf("destroying a gone SR: %v", err)
	}
	wantCode(t, d.Attach(ctx), storage.CodeSRUnavailable)
	_, err = d.Scan(ctx)
	wantCode(t, err, storage.CodeSRUnavailable)
}

func TestCreateOnAFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Open(storage.SR{UUID: uuid.NewString(), DeviceConfig: map[string]string{"path": p}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, d.Create(context.Background()), storage.CodeFileSRCreate)
}

// TestRawVDIsAreSparse: a raw VDI is a file of the virtual size that takes
// (almost) no space until written.
func TestRawVDIsAreSparse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dir := openSR(t)
	for _, size := range []int64{0, 1, 4096, 10 * gib} {
		id := uuid.NewString()
		info, err := d.CreateVDI(ctx, id, size, storage.FormatRaw)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, id+".raw")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != size || info.VirtualSize != size || info.Location != id+".raw" || info.Format != storage.FormatRaw {
			t.Errorf("size %d: file %d, info %+v", size, fi.Size(), info)
		}
		if b := blocks(t, p); b > 64<<10 || info.PhysicalUtilisation != b {
			t.Errorf("size %d: %d bytes allocated, utilisation %d", size, b, info.PhysicalUtilisation)
		}
	}
	// Writing allocates: physical utilisation follows the blocks.
	id := uuid.NewString()
	if _, err := d.CreateVDI(ctx, id, gib, ""); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, id+".raw"), os.O_RDWR, 0)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 0xaa
	}
	f.WriteAt(buf, 100<<20)
	f.Close()
	info, err := d.StatVDI(ctx, id+".raw")
	if err != nil {
		t.Fatal(err)
	}
	if info.VirtualSize != gib || info.PhysicalUtilisation < 1<<20 || info.PhysicalUtilisation > 2<<20 {
		t.Errorf("after a 1 MiB write: %+v", info)
	}
}

func TestCreateVDIErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := openSR(t)
	taken := uuid.NewString()
	if _, err := d.CreateVDI(ctx, taken, 1, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		id     string
		size   int64
		format string
		code   int
	}{
		{"negative size", uuid.NewString(), -1, "", storage.CodeVDISize},
		{"unknown format", uuid.NewString(), 1, "vhd", storage.CodeVDIType},
		{"bad uuid", "../escape", 1, "", storage.CodeVDICreate},
		{"existing", taken, 1, "", storage.CodeVDIExists},
	} {
		_, err := d.CreateVDI(ctx, tc.id, tc.size, tc.format)
		if !storage.IsCode(err, tc.code) {
			t.Errorf("%s: err = %v, want code %d", tc.name, err, tc.code)
		}
	}
}

func TestScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dir := openSR(t)
	a, b := uuid.NewString(), uuid.NewString()
	for _, id := range []string{a, b} {
		if _, err := d.CreateVDI(ctx, id, 1<<20, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Files that are not VDIs are ignored.
	for _, name := range []string{"notes.txt", "disk.raw", "." + a + ".raw.part"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, uuid.NewString()+".raw"), 0o755)
	// A VDI file copied in by hand is found.
	c := uuid.NewString()
	if err := os.WriteFile(filepath.Join(dir, c+".raw"), make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	infos, err := d.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]storage.VDIInfo{}
	for _, i := range infos {
		got[i.Location] = i
	}
	if len(got) != 3 || got[c+".raw"].VirtualSize != 8192 || got[a+".raw"].UUID != a || got[b+".raw"].NameLabel != b+".raw" {
		t.Fatalf("scan = %+v", infos)
	}
	os.Remove(filepath.Join(dir, a+".raw"))
	infos, _ = d.Scan(ctx)
	if len(infos) != 2 {
		t.Fatalf("after removing a file: %+v", infos)
	}
}

func TestCloneAndSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dir := openSR(t)
	src := uuid.NewString()
	if _, err := d.CreateVDI(ctx, src, 4*gib, ""); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, src+".raw"), os.O_RDWR, 0)
	f.WriteAt([]byte("boot sector"), 0)
	f.Close()
	for _, snapshot := range []bool{false, true} {
		id := uuid.NewString()
		var info storage.VDIInfo
		var err error
		if snapshot {
			info, err = d.SnapshotVDI(ctx, src+".raw", id)
		} else {
			info, err = d.CloneVDI(ctx, src+".raw", id)
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, id+".raw")
		if info.VirtualSize != 4*gib || info.Location != id+".raw" {
			t.Errorf("copy info %+v", info)
		}
		if b := blocks(t, p); b > 1<<20 {
			t.Errorf("a copy of a 4 GiB sparse VDI takes %d bytes", b)
		}
		b := make([]byte, 11)
		g, _ := os.Open(p)
		g.ReadAt(b, 0)
		g.Close()
		if string(b) != "boot sector" {
			t.Errorf("copy data = %q", b)
		}
	}
	_, err := d.CloneVDI(ctx, uuid.NewString()+".raw", uuid.NewString())
	wantCode(t, err, storage.CodeVDIMissing)
	_, err = d.CloneVDI(ctx, src+".raw", src)
	wantCode(t, err, storage.CodeVDIExists)
}

func TestResize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dir := openSR(t)
	id := uuid.NewString()
	if _, err := d.CreateVDI(ctx, id, gib, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		size int64
		want int64 // size afterwards
		code int
	}{
		{"grow", 2 * gib, 2 * gib, 0},
		{"same", 2 * gib, 2 * gib, 0},
		{"shrink", gib, 2 * gib, storage.CodeVDISize},
	} {
		info, err := d.ResizeVDI(ctx, id+".raw", tc.size)
		if tc.code != 0 {
			if !storage.IsCode(err, tc.code) {
				t.Errorf("%s: err = %v, want code %d", tc.name, err, tc.code)
			}
		} else if err != nil || info.VirtualSize != tc.want {
			t.Errorf("%s: %+v, %v", tc.name, info, err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, id+".raw")); fi.Size() != tc.want {
			t.Errorf("%s: file size %d, want %d", tc.name, fi.Size(), tc.want)
		}
	}
	_, err := d.ResizeVDI(ctx, uuid.NewString()+".raw", gib)
	wantCode(t, err, storage.CodeVDIMissing)
}

func TestDestroyStatOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dir := openSR(t)
	id := uuid.NewString()
	if _, err := d.CreateVDI(ctx, id, 1<<20, ""); err != nil {
		t.Fatal(err)
	}
	img, err := d.Open(ctx, id+".raw")
	if err != nil || img.Path != filepath.Join(dir, id+".raw") || img.Format != storage.FormatRaw || img.VirtualSize != 1<<20 || img.ReadOnly {
		t.Fatalf("Open = %+v, %v", img, err)
	}
	if err := d.DestroyVDI(ctx, id+".raw"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img.Path); !os.IsNotExist(err) {
		t.Fatal("file still there")
	}
	if err := d.DestroyVDI(ctx, id+".raw"); err != nil {
		t.Fatalf("destroying a gone VDI: %v", err)
	}
	_, err = d.StatVDI(ctx, id+".raw")
	wantCode(t, err, storage.CodeVDIMissing)
	_, err = d.Open(ctx, "../../etc/passwd")
	wantCode(t, err, storage.CodeVDIMissing)
}

func TestQcow2VDIs(t *testing.T) {
	t.Parallel()
	if !storage.QemuImgAvailable() {
		t.Skip("qemu-img is not installed (Debian package qemu-utils): qcow2 VDIs are not tested")
	}
	ctx := context.Background()
	d, dir := openSR(t)
	id := uuid.NewString()
	info, err := d.CreateVDI(ctx, id, 10*gib, storage.FormatQcow2)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, id+".qcow2")
	if info.Format != storage.FormatQcow2 || info.VirtualSize != 10*gib || info.PhysicalUtilisation > 1<<20 {
		t.Fatalf("qcow2 info %+v", info)
	}
	if blocks(t, p) > 1<<20 {
		t.Errorf("an empty qcow2 takes %d bytes", blocks(t, p))
	}
	info, err = d.ResizeVDI(ctx, id+".qcow2", 20*gib)
	if err != nil || info.VirtualSize != 20*gib {
		t.Fatalf("resize: %+v, %v", info, err)
	}
	_, err = d.ResizeVDI(ctx, id+".qcow2", gib)
	wantCode(t, err, storage.CodeVDISize)
	c := uuid.NewString()
	if info, err := d.CloneVDI(ctx, id+".qcow2", c); err != nil || info.Format != storage.FormatQcow2 || info.VirtualSize != 20*gib {
		t.Fatalf("clone: %+v, %v", info, err)
	}
	infos, err := d.Scan(ctx)
	if err != nil || len(infos) != 2 {
		t.Fatalf("scan: %+v, %v", infos, err)
	}
	img, err := d.Open(ctx, c+".qcow2")
	if err != nil || img.Format != storage.FormatQcow2 || img.Path != filepath.Join(dir, c+".qcow2") {
		t.Fatalf("Open = %+v, %v", img, err)
	}
}

// TestQcow2WithoutQemuImg hides qemu-img (so it cannot run in parallel):
// qcow2 is refused with a clear error, raw still works.
func TestQcow2WithoutQemuImg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ctx := context.Background()
	d, _ := openSR(t)
	_, err := d.CreateVDI(ctx, uuid.NewString(), gib, storage.FormatQcow2)
	wantCode(t, err, storage.CodeVDICreate)
	if e := err.(*storage.Error); !contains(e.Reason, "qemu-img") || !contains(e.Reason, "qemu-utils") {
		t.Errorf("reason %q does not say what is missing", e.Reason)
	}
	if _, err := d.CreateVDI(ctx, uuid.NewString(), gib, storage.FormatRaw); err != nil {
		t.Fatalf("raw without qemu-img: %v", err)
	}
	if infos, _ := d.Scan(ctx); len(infos) != 1 {
		t.Errorf("a failed qcow2 create left a file: %+v", infos)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
