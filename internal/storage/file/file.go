// Package file is the "file" SR driver: an SR is a directory of the local
// filesystem and each VDI one file in it, <uuid>.raw (a sparse file of the
// VDI's virtual size) or <uuid>.qcow2 (made and resized with qemu-img).
// device_config:path (or location) names the directory; a VDI's location is
// its file name, so the VDI's file is <directory>/<location>.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/xenapi"
)

// Kind describes the file SR type.
var Kind = storage.Kind{
	Type:        "file",
	ContentType: "user",
	Capabilities: []string{
		"SR_CREATE", "SR_DELETE", "SR_ATTACH", "SR_DETACH", "SR_SCAN", "SR_UPDATE",
		"VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT",
		"VDI_RESIZE", "VDI_UPDATE",
	},
	Open: Open,
}

// SR is one file SR.
type SR struct {
	uuid string
	dir  string
}

// Open binds the driver to the directory in sr.DeviceConfig["path"] (or
// "location"), which must be absolute.
func Open(sr storage.SR) (storage.Driver, error) {
	dir, err := storage.ConfigDir(sr.DeviceConfig, []string{"path", "location"},
		"Location parameter missing from device configuration [opterr=a file SR needs device_config:path, the directory to keep its VDIs in]")
	if err != nil {
		return nil, err
	}
	return &SR{uuid: sr.UUID, dir: dir}, nil
}

// Dir is the SR's directory.
func (s *SR) Dir() string { return s.dir }

// Create makes the directory if it does not exist.
func (s *SR) Create(ctx context.Context) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return storage.Errorf(storage.CodeFileSRCreate, "File SR creation error [opterr=%v]", err)
	}
	return s.Attach(ctx)
}

// Attach checks that the directory exists.
func (s *SR) Attach(ctx context.Context) error {
	fi, err := os.Stat(s.dir)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", s.dir)
	}
	if err != nil {
		return storage.Errorf(storage.CodeSRUnavailable, "The SR is not available [opterr=%v]", err)
	}
	return nil
}

// Destroy removes the SR's directory. It refuses while VDI files remain;
// other files at the top of the directory (left-overs of interrupted
// copies, say) are removed with it, as xapi's file SR does.
func (s *SR) Destroy(ctx context.Context) error {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return storage.Errorf(storage.CodeFileSRDelete, "File SR deletion error [opterr=%v]", err)
	}
	for _, e := range entries {
		if _, _, ok := vdiFileName(e.Name()); ok && e.Type().IsRegular() {
			return storage.Errorf(storage.CodeSRNotEmpty, "SR is not empty [opterr=VDI %s still exists]", e.Name())
		}
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return storage.Errorf(storage.CodeFileSRDelete, "File SR deletion error [opterr=%v]", err)
			}
		}
	}
	if err := os.Remove(s.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storage.Errorf(storage.CodeFileSRRmdir, "Failed to remove SR directory [opterr=%v]", err)
	}
	return nil
}

// Stat measures the filesystem holding the directory.
func (s *SR) Stat(ctx context.Context) (storage.SRStat, error) {
	if err := s.Attach(ctx); err != nil {
		return storage.SRStat{}, err
	}
	return storage.StatFS(s.dir)
}

// Scan lists the VDI files of the directory.
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
		id, format, ok := vdiFileName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := s.info(id, format)
		if err != nil {
			continue // vanished or unreadable since ReadDir
		}
		out = append(out, info)
	}
	return out, nil
}

// vdiFileName parses "<uuid>.raw" or "<uuid>.qcow2".
func vdiFileName(name string) (id, format string, ok bool) {
	for _, f := range []string{storage.FormatRaw, storage.FormatQcow2} {
		if stem, found := strings.CutSuffix(name, "."+f); found {
			if xenapi.IsUUID(stem) {
				return stem, f, true
			}
		}
	}
	return "", "", false
}

func (s *SR) path(id, format string) string { return filepath.Join(s.dir, id+"."+format) }

// find returns the file, uuid and format of the VDI at location.
func (s *SR) find(location string) (path, id, format string, err error) {
	id, format, ok := vdiFileName(location)
	if !ok {
		return "", "", "", storage.Errorf(storage.CodeVDIMissing, "VDI %q is not a VDI of this SR", location)
	}
	path = filepath.Join(s.dir, location)
	if _, err := os.Stat(path); err != nil {
		return "", "", "", storage.Errorf(storage.CodeVDIMissing, "VDI %s is missing from %s", location, s.dir)
	}
	return path, id, format, nil
}

// exists reports whether a VDI named by uuid exists, in either format.
func (s *SR) exists(id string) bool {
	for _, f := range []string{storage.FormatRaw, storage.FormatQcow2} {
		if _, err := os.Stat(s.path(id, f)); err == nil {
			return true
		}
	}
	return false
}

// info measures one VDI file.
func (s *SR) info(id, format string) (storage.VDIInfo, error) {
	p := s.path(id, format)
	fi, err := os.Stat(p)
	if err != nil {
		return storage.VDIInfo{}, err
	}
	size := fi.Size()
	if format == storage.FormatQcow2 {
		h, err := storage.ReadQcow2Header(p)
		if err != nil {
			return storage.VDIInfo{}, err
		}
		size = h.VirtualSize
	}
	return storage.VDIInfo{
		Location:            filepath.Base(p),
		UUID:                id,
		NameLabel:           filepath.Base(p),
		VirtualSize:         size,
		PhysicalUtilisation: storage.Allocated(fi.Sys(), fi.Size()),
		Format:              format,
	}, nil
}

// CreateVDI makes <uuid>.raw, a sparse file of size bytes, or
// <uuid>.qcow2 with qemu-img.
func (s *SR) CreateVDI(ctx context.Context, id string, size int64, format string) (storage.VDIInfo, error) {
	if format == "" {
		format = storage.FormatRaw
	}
	if format != storage.FormatRaw && format != storage.FormatQcow2 {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDIType,
			"VDI type is invalid [opterr=image format %q: a file SR stores raw or qcow2]", format)
	}
	if size < 0 {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDISize, "VDI Invalid size [opterr=%d bytes]", size)
	}
	if !xenapi.IsUUID(id) {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDICreate, "VDI Creation failed [opterr=bad uuid %q]", id)
	}
	if err := s.Attach(ctx); err != nil {
		return storage.VDIInfo{}, err
	}
	if s.exists(id) {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDIExists, "VDI already exists [opterr=%s]", id)
	}
	p := s.path(id, format)
	switch format {
	case storage.FormatRaw:
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return storage.VDIInfo{}, storage.Errorf(storage.CodeVDICreate, "VDI Creation failed [opterr=%v]", err)
		}
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(p)
			return storage.VDIInfo{}, storage.Errorf(storage.CodeVDICreate, "VDI Creation failed [opterr=%v]", err)
		}
	case storage.FormatQcow2:
		if err := storage.QemuImg(ctx, "create", "-q", "-f", "qcow2", p, strconv.FormatInt(size, 10)); err != nil {
			os.Remove(p)
			return storage.VDIInfo{}, storage.Errorf(storage.CodeVDICreate, "VDI Creation failed [opterr=%v]", err)
		}
	}
	info, err := s.info(id, format)
	if err != nil {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDICreate, "VDI Creation failed [opterr=%v]", err)
	}
	return info, nil
}

// DestroyVDI removes the VDI's file.
func (s *SR) DestroyVDI(ctx context.Context, location string) error {
	p, _, _, err := s.find(location)
	if storage.IsCode(err, storage.CodeVDIMissing) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storage.Errorf(storage.CodeVDIDelete, "Failed to mark VDI hidden / delete [opterr=%v]", err)
	}
	return nil
}

// CloneVDI copies the VDI's file sparsely to <uuid>.<format>.
func (s *SR) CloneVDI(ctx context.Context, location, id string) (storage.VDIInfo, error) {
	p, _, format, err := s.find(location)
	if err != nil {
		return storage.VDIInfo{}, err
	}
	if !xenapi.IsUUID(id) {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeSnapshotCloneError, "Snapshot/Clone failed [opterr=bad uuid %q]", id)
	}
	if s.exists(id) {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDIExists, "VDI already exists [opterr=%s]", id)
	}
	if err := storage.CopyFile(ctx, s.path(id, format), p); err != nil {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeSnapshotCloneError, "Snapshot/Clone failed [opterr=%v]", err)
	}
	info, err := s.info(id, format)
	if err != nil {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeSnapshotCloneError, "Snapshot/Clone failed [opterr=%v]", err)
	}
	return info, nil
}

// SnapshotVDI is a clone: a file SR keeps no chains, each snapshot is a
// full (sparse) copy.
func (s *SR) SnapshotVDI(ctx context.Context, location, id string) (storage.VDIInfo, error) {
	return s.CloneVDI(ctx, location, id)
}

// ResizeVDI grows the VDI; shrinking is refused.
func (s *SR) ResizeVDI(ctx context.Context, location string, size int64) (storage.VDIInfo, error) {
	p, id, format, err := s.find(location)
	if err != nil {
		return storage.VDIInfo{}, err
	}
	cur, err := s.info(id, format)
	if err != nil {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDILoad, "Unable to load VDI [opterr=%v]", err)
	}
	if size < cur.VirtualSize {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDISize, "VDI Invalid size [opterr=shrinking not allowed]")
	}
	if size == cur.VirtualSize {
		return cur, nil
	}
	switch format {
	case storage.FormatRaw:
		err = os.Truncate(p, size)
	case storage.FormatQcow2:
		err = storage.QemuImg(ctx, "resize", "-q", "-f", "qcow2", p, strconv.FormatInt(size, 10))
	}
	if err != nil {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDISize, "VDI Invalid size [opterr=%v]", err)
	}
	return s.StatVDI(ctx, location)
}

// StatVDI measures the VDI's file.
func (s *SR) StatVDI(ctx context.Context, location string) (storage.VDIInfo, error) {
	_, id, format, err := s.find(location)
	if err != nil {
		return storage.VDIInfo{}, err
	}
	info, err := s.info(id, format)
	if err != nil {
		return storage.VDIInfo{}, storage.Errorf(storage.CodeVDILoad, "Unable to load VDI [opterr=%v]", err)
	}
	return info, nil
}

// Open gives the VDI's file.
func (s *SR) Open(ctx context.Context, location string) (storage.Image, error) {
	info, err := s.StatVDI(ctx, location)
	if err != nil {
		return storage.Image{}, err
	}
	return storage.Image{Path: filepath.Join(s.dir, info.Location), Format: info.Format, VirtualSize: info.VirtualSize}, nil
}
