package iso

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/storage"
)

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	if !storage.IsCode(err, code) {
		t.Fatalf("err = %v, want SM code %d", err, code)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dc   map[string]string
		code int
	}{
		{"location", map[string]string{"location": "/srv/iso"}, 0},
		{"path", map[string]string{"path": "/srv/iso"}, 0},
		{"missing", map[string]string{}, storage.CodeLocationMissing},
		{"relative", map[string]string{"location": "iso"}, storage.CodeLocationUnusable},
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

func TestLibrary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	srUUID := uuid.NewString()
	d, err := Open(storage.SR{UUID: srUUID, DeviceConfig: map[string]string{"location": dir}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	write := func(name string, size int) {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("debian.iso", 4096)
	write("ALPINE.ISO", 2048)
	write("readme.txt", 10)
	write(".hidden.iso", 10)
	os.Mkdir(filepath.Join(dir, "dir.iso"), 0o755)

	infos, err := d.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]storage.VDIInfo{}
	for _, i := range infos {
		got[i.Location] = i
	}
	if len(got) != 2 {
		t.Fatalf("scan = %+v", infos)
	}
	deb := got["debian.iso"]
	if deb.VirtualSize != 4096 || deb.PhysicalUtilisation != 4096 || !deb.ReadOnly || deb.NameLabel != "debian.iso" || deb.Format != storage.FormatRaw {
		t.Errorf("debian.iso = %+v", deb)
	}
	// The uuid is stable across scans and differs between SRs.
	again, _ := d.Scan(ctx)
	for _, i := range again {
		if i.UUID != got[i.Location].UUID {
			t.Errorf("uuid of %s changed", i.Location)
		}
	}
	other, _ := Open(storage.SR{UUID: uuid.NewString(), DeviceConfig: map[string]string{"location": dir}})
	if o, _ := other.Scan(ctx); len(o) != 2 || o[0].UUID == got[o[0].Location].UUID {
		t.Error("two SRs on one directory give an image the same uuid")
	}

	os.Remove(filepath.Join(dir, "ALPINE.ISO"))
	write("new.iso", 1)
	infos, _ = d.Scan(ctx)
	names := map[string]bool{}
	for _, i := range infos {
		names[i.Location] = true
	}
	if len(names) != 2 || !names["new.iso"] || !names["debian.iso"] {
		t.Errorf("rescan = %+v", infos)
	}

	img, err := d.Open(ctx, "debian.iso")
	if err != nil || img.Path != filepath.Join(dir, "debian.iso") || !img.ReadOnly || img.VirtualSize != 4096 {
		t.Errorf("Open = %+v, %v", img, err)
	}
	_, err = d.Open(ctx, "../escape.iso")
	wantCode(t, err, storage.CodeVDIMissing)
	_, err = d.StatVDI(ctx, "gone.iso")
	wantCode(t, err, storage.CodeVDIMissing)

	// Images are never made or removed through the driver.
	_, err = d.CreateVDI(ctx, uuid.NewString(), 1, "")
	wantCode(t, err, storage.CodeNotImplemented)
	wantCode(t, d.DestroyVDI(ctx, "debian.iso"), storage.CodeNotImplemented)
	_, err = d.CloneVDI(ctx, "debian.iso", uuid.NewString())
	wantCode(t, err, storage.CodeNotImplemented)
	_, err = d.SnapshotVDI(ctx, "debian.iso", uuid.NewString())
	wantCode(t, err, storage.CodeNotImplemented)
	_, err = d.ResizeVDI(ctx, "debian.iso", 1<<20)
	wantCode(t, err, storage.CodeNotImplemented)
	if err := d.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "debian.iso")); err != nil {
		t.Fatal("SR destroy removed an image")
	}
	if st, err := d.Stat(ctx); err != nil || st.Total <= 0 {
		t.Errorf("Stat = %+v, %v", st, err)
	}
}

func TestMissingDirectory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := Open(storage.SR{UUID: uuid.NewString(), DeviceConfig: map[string]string{"location": filepath.Join(t.TempDir(), "none")}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, d.Create(ctx), storage.CodeLocationUnusable)
	wantCode(t, d.Attach(ctx), storage.CodeLocationUnusable)
	_, err = d.Scan(ctx)
	wantCode(t, err, storage.CodeLocationUnusable)
}
