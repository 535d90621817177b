package drivers

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/storage"
)

func TestDrivers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if got := Types(); !slices.Equal(got, []string{"file", "iso"}) {
		t.Fatalf("Types = %v", got)
	}
	if _, err := Open("nfs", storage.SR{}); err != ErrUnknownType {
		t.Fatalf("Open(nfs) = %v", err)
	}
	dir := t.TempDir()
	sr := storage.SR{UUID: uuid.NewString(), DeviceConfig: map[string]string{"path": dir}}
	d, err := Open("file", sr)
	if err != nil {
		t.Fatal(err)
	}
	info, err := d.CreateVDI(ctx, uuid.NewString(), 1<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Image(ctx, "file", sr, info.Location)
	if err != nil || img.Path != filepath.Join(dir, info.Location) || img.Format != storage.FormatRaw {
		t.Fatalf("Image = %+v, %v", img, err)
	}
	os.WriteFile(filepath.Join(dir, "cd.iso"), []byte("x"), 0o644)
	img, err = Image(ctx, "iso", storage.SR{UUID: uuid.NewString(), DeviceConfig: map[string]string{"location": dir}}, "cd.iso")
	if err != nil || !img.ReadOnly || img.Path != filepath.Join(dir, "cd.iso") {
		t.Fatalf("ISO Image = %+v, %v", img, err)
	}
	if _, err := Image(ctx, "nfs", sr, "x"); err == nil {
		t.Error("Image of an unknown type")
	}
}
