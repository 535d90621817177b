// Package vdiloc finds the VDI behind the disk names older interfaces use:
// a file path (xend's "file:/srv/disk.img", xenopsd's Local disks), "SR/VDI"
// (an SR uuid and a VDI location or uuid, xenopsd's VDI disks), or a VDI
// uuid. A path names a VDI when it is the file of a VDI of a directory SR
// (device_config path or location, as the file and iso SR drivers keep
// them).
package vdiloc

import (
	"path/filepath"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// ByPath returns the VDI whose file is path.
func ByPath(st *store.Store, path string) (xenapi.Ref, bool) {
	if !filepath.IsAbs(path) {
		return "", false
	}
	path = filepath.Clean(path)
	dir, base := filepath.Dir(path), filepath.Base(path)
	for _, row := range st.All(api.ClassSR) {
		sr := row.Rec.(*api.SR)
		if !srHasDir(st, sr, dir) {
			continue
		}
		for _, v := range sr.VDIs {
			r, err := st.Get(api.ClassVDI, v)
			if err == nil && r.Rec.(*api.VDI).Location == base {
				return v, true
			}
		}
	}
	return "", false
}

func srHasDir(st *store.Store, sr *api.SR, dir string) bool {
	for _, p := range sr.PBDs {
		r, err := st.Get(api.ClassPBD, p)
		if err != nil {
			continue
		}
		conf := r.Rec.(*api.PBD).DeviceConfig
		for _, k := range []string{"path", "location"} {
			if d, ok := conf.Lookup(k); ok && d != "" && filepath.Clean(d) == dir {
				return true
			}
		}
	}
	return false
}

// BySRAndName returns the VDI "SR/VDI": the SR by uuid, the VDI by
// location or uuid.
func BySRAndName(st *store.Store, spec string) (xenapi.Ref, bool) {
	srID, name, ok := strings.Cut(spec, "/")
	if !ok {
		return "", false
	}
	row, err := st.ByUUID(api.ClassSR, srID)
	if err != nil {
		return "", false
	}
	for _, v := range row.Rec.(*api.SR).VDIs {
		r, err := st.Get(api.ClassVDI, v)
		if err != nil {
			continue
		}
		vdi := r.Rec.(*api.VDI)
		if vdi.Location == name || vdi.UUID == name {
			return v, true
		}
	}
	return "", false
}

// ByUUID returns the VDI with that uuid.
func ByUUID(st *store.Store, id string) (xenapi.Ref, bool) {
	row, err := st.ByUUID(api.ClassVDI, id)
	if err != nil {
		return "", false
	}
	return row.Ref, true
}
