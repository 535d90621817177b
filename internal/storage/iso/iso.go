// Package iso is the "iso" SR driver: an ISO library. The SR is a
// directory of the local filesystem (device_config:location, or path) and
// every *.iso file in it is a read-only VDI named by its file name; SR.scan
// picks up files added or removed. VDIs cannot be created, cloned or
// destroyed through the API, and the driver never deletes an image.
package iso

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/storage"
)

// Kind describes the iso SR type.
var Kind = storage.Kind{
	Type:         "iso",
	ContentType:  "iso",
	Capabilities: []string{"SR_ATTACH", "SR_DETACH", "SR_SCAN", "VDI_ATTACH", "VDI_DETACH"},
	Open:         Open,
}

// SR is one ISO library.
type SR struct {
	uuid string
	dir  string
}

// Open binds the driver to the directory in device_config:location (or
// path), which must be absolute.
func Open(sr storage.SR) (storage.Driver, error) {
	dir, err := storage.ConfigDir(sr.DeviceConfig, []string{"location", "path"},
		"ISO Config Location missing [opterr=an iso SR needs device_config:location, the directory of the ISO images]")
	if err != nil {
		return nil, err
	}
	return &SR{uuid: sr.UUID, dir: dir}, nil
}

// Dir is the library's directory.
func (s *SR) Dir() string { return s.dir }

// Create checks that the directory exists: an ISO library is made of
// images that are already there.
func (s *SR) Create(ctx context.Context) error { return s.Attach(ctx) }

// Attach checks that the directory exists.
func (s *SR) Attach(ctx context.Context) error {
	fi, err := os.Stat(s.dir)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", s.dir)
	}
	if err != nil {
		return storage.Errorf(storage.CodeLocationUnusable,
			"Unable to use the directory specified in device configuration [opterr=%v]", err)
	}
	return nil
}

// Destroy leaves the directory and its images alone: forgetting an ISO
// library must not delete the user's images.
func (s *SR) Destroy(ctx context.Context) error { return nil }

// Stat measures the filesystem holding the directory.
func (s *SR) Stat(ctx context.Context) (storage.SRStat, error) {
	if err := s.Attach(ctx); err != nil {
		return storage.SRStat{}, err
	}
	return storage.StatFS(s.dir)
}

// isoName reports whether a file name is an ISO image.
func isoName(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.EqualFold(filepath.Ext(name), ".iso")
}

// Scan lists the *.iso files.
func (s *SR) Scan(ctx context.Context) ([]storage.VDIInfo, error) {
	if err := s.Attach(ctx); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, storage.Errorf(storage.CodeSRScan, "The SR scan failed [opterr=%v]", err)
	}
	var out []storage.VDIInfo
	for _, e := range entries {
		if !isoName(e.Name()) {
			continue
		}
		info, err := s.info(e.Name())
		if err != nil {
			continue // not a regular file, or gone since ReadDir
		}
		out = append(out, info)
	}
	return out, nil
}

// namespace makes the uuid of an image from the SR and the file name, so a
// rescan after a forget gives the image its uuid again.
var namespace = uuid.MustParse("3f0c4a8e-6a55-4d0b-9b7c-0e3c1a6f2d44")

func (s *SR) info(name string) (storage.VDIInfo, error) {
	if name != filepath.Base(name) || !isoName(name) {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDIMissing, "%q is not an image of this SR", name)
	}
	fi, err := os.Stat(filepath.Join(s.dir, name))
	if err != nil {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDIMissing, "Image %s is missing from %s", name, s.dir)
	}
	if !fi.Mode().IsRegular() {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDIMissing, "%s is not a regular file", name)
	}
	return storage.VDIInfo{
		Location:            name,
		UUID:                uuid.NewSHA1(namespace, []byte(s.uuid+"/"+name)).String(),
		NameLabel:           name,
		VirtualSize:         fi.Size(),
		PhysicalUtilisation: fi.Size(),
		Format:              storage.FormatRaw,
		ReadOnly:            true,
	}, nil
}

// CreateVDI is refused: images are added by copying files in.
func (s *SR) CreateVDI(ctx context.Context, id string, size int64, format string) (storage.VDIInfo, error) {
	return storage.VDIInfo{}, storage.ErrNotSupported
}

// DestroyVDI is refused: images are removed by deleting files.
func (s *SR) DestroyVDI(ctx context.Context, location string) error {
	return storage.ErrNotSupported
}

// CloneVDI is refused (VDI.copy to a file SR copies an image).
func (s *SR) CloneVDI(ctx context.Context, location, id string) (storage.VDIInfo, error) {
	return storage.VDIInfo{}, storage.ErrNotSupported
}

// SnapshotVDI is refused.
func (s *SR) SnapshotVDI(ctx context.Context, location, id string) (storage.VDIInfo, error) {
	return storage.VDIInfo{}, storage.ErrNotSupported
}

// ResizeVDI is refused.
func (s *SR) ResizeVDI(ctx context.Context, location string, size int64) (storage.VDIInfo, error) {
	return storage.VDIInfo{}, storage.ErrNotSupported
}

// StatVDI measures one image.
func (s *SR) StatVDI(ctx context.Context, location string) (storage.VDIInfo, error) {
	return s.info(location)
}

// Open gives the image's file (read-only, raw).
func (s *SR) Open(ctx context.Context, location string) (storage.Image, error) {
	info, err := s.info(location)
	if err != nil {
		return storage.Image{}, err
	}
	return storage.Image{Path: filepath.Join(s.dir, location), Format: storage.FormatRaw, VirtualSize: info.VirtualSize, ReadOnly: true}, nil
}
