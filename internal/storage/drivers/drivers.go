// Package drivers lists the SR types xenithd serves and opens their
// drivers. It is the one place that knows every driver package, so that
// both the XenAPI server and the domain manager (which needs the file
// behind a VDI) can reach a driver from an SR's type and a PBD's
// device_config.
package drivers

import (
	"context"
	"maps"
	"slices"

	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/storage/file"
	"github.com/xenith/xenith/internal/storage/iso"
)

// Kinds are the SR types, by SR.type.
var Kinds = map[string]*storage.Kind{
	file.Kind.Type: &file.Kind,
	iso.Kind.Type:  &iso.Kind,
}

// Types lists the SR types in order (SR.get_supported_types).
func Types() []string { return slices.Sorted(maps.Keys(Kinds)) }

// ErrUnknownType is returned by Open for an SR type without a driver.
var ErrUnknownType = storage.Errorf(storage.CodeNotImplemented, "no driver for this SR type")

// Open opens the driver of an SR of type srType.
func Open(srType string, sr storage.SR) (storage.Driver, error) {
	k := Kinds[srType]
	if k == nil {
		return nil, ErrUnknownType
	}
	return k.Open(sr)
}

// Image tells where the data of the VDI at location is, in an SR of type
// srType reached through a PBD's device_config: what the domain manager
// gives the hypervisor. For example, with the records at hand:
//
//	img, err := drivers.Image(ctx, sr.Type,
//		storage.SR{UUID: sr.UUID, DeviceConfig: pbd.DeviceConfig, SMConfig: sr.SMConfig},
//		vdi.Location)
//	disk := domain.Disk{Path: img.Path, Format: img.Format, ReadOnly: img.ReadOnly || vdi.ReadOnly}
func Image(ctx context.Context, srType string, sr storage.SR, location string) (storage.Image, error) {
	d, err := Open(srType, sr)
	if err != nil {
		return storage.Image{}, err
	}
	return d.Open(ctx, location)
}
