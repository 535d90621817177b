// Package storage holds xenithd's SR drivers (the role of xapi's SM
// plugins): each SR type ("file", "iso") is a Kind whose Open gives a Driver
// bound to one SR's device_config. Drivers do the on-disk work only; the
// records (SR, VDI, PBD) are kept by the XenAPI server (internal/xapi),
// which calls a driver outside its store transactions.
//
// A driver reports failures as *Error carrying the SM error code xapi's
// plugins use (SR_BACKEND_FAILURE_<code> on the wire), so clients see the
// same failures as with xapi.
package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
)

// SR is what a driver is opened on: the SR's uuid and the device_config of
// this host's PBD (and the SR's sm_config).
type SR struct {
	UUID         string
	DeviceConfig map[string]string
	SMConfig     map[string]string
}

// Kind describes one SR type.
type Kind struct {
	// Type is the SR type as SR.create names it ("file", "iso").
	Type string
	// ContentType is the content_type an SR of this kind gets when the
	// caller gives none ("user", "iso").
	ContentType string
	// Capabilities are the SM capabilities (SM.capabilities), which gate
	// the SR and VDI operations the way xapi's SM features do.
	Capabilities []string
	// Open binds a driver to one SR. It checks device_config only; it does
	// not touch the disk.
	Open func(sr SR) (Driver, error)
}

// Has reports whether the kind has an SM capability ("VDI_CREATE", ...).
func (k *Kind) Has(capability string) bool {
	for _, c := range k.Capabilities {
		if c == capability {
			return true
		}
	}
	return false
}

// Image formats of VDIs.
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
)

// VDIInfo is what a driver knows about one VDI.
type VDIInfo struct {
	// Location names the VDI inside its SR (VDI.location).
	Location string
	// UUID is the uuid a record made for this VDI by SR.scan should get
	// ("" lets the server choose).
	UUID string
	// NameLabel is a name for records made by SR.scan.
	NameLabel string
	// VirtualSize is the size the guest sees, in bytes.
	VirtualSize int64
	// PhysicalUtilisation is the space the VDI takes on disk, in bytes
	// (allocated blocks, so a sparse raw file takes little).
	PhysicalUtilisation int64
	// Format is FormatRaw or FormatQcow2.
	Format   string
	ReadOnly bool
}

// Image says where a VDI's data is, for the domain manager (domain.Disk)
// and for copies between SRs.
type Image struct {
	Path        string
	Format      string // FormatRaw or FormatQcow2 (an ISO image is raw)
	VirtualSize int64
	ReadOnly    bool
}

// SRStat is the size of an SR's backing store.
type SRStat struct {
	Total int64 // physical_size
	Free  int64 // physical_size - physical_utilisation
}

// Driver does one SR's on-disk work. Every method may block and honours
// ctx where the work is long (copies).
type Driver interface {
	// Create makes a new SR on disk (SR.create).
	Create(ctx context.Context) error
	// Attach checks that the SR is usable (PBD.plug).
	Attach(ctx context.Context) error
	// Destroy removes the SR from disk (SR.destroy); an *Error with
	// CodeSRNotEmpty while VDIs remain.
	Destroy(ctx context.Context) error
	// Stat reports the size of the SR's backing store (SR.update).
	Stat(ctx context.Context) (SRStat, error)
	// Scan lists the VDIs on disk (SR.scan).
	Scan(ctx context.Context) ([]VDIInfo, error)

	// CreateVDI makes a VDI of size bytes in format (FormatRaw when "");
	// uuid names it.
	CreateVDI(ctx context.Context, uuid string, size int64, format string) (VDIInfo, error)
	// DestroyVDI removes a VDI; a VDI already gone is not an error.
	DestroyVDI(ctx context.Context, location string) error
	// CloneVDI makes an independent copy named by uuid (VDI.clone).
	CloneVDI(ctx context.Context, location, uuid string) (VDIInfo, error)
	// SnapshotVDI makes a point-in-time copy named by uuid (VDI.snapshot).
	SnapshotVDI(ctx context.Context, location, uuid string) (VDIInfo, error)
	// ResizeVDI grows a VDI to size bytes; shrinking is refused with
	// CodeVDISize, as xapi's file SRs do.
	ResizeVDI(ctx context.Context, location string, size int64) (VDIInfo, error)
	// StatVDI measures one VDI (VDI.update); CodeVDIMissing if it is gone.
	StatVDI(ctx context.Context, location string) (VDIInfo, error)
	// Open tells where a VDI's data is.
	Open(ctx context.Context, location string) (Image, error)
}

// SM error codes (XE_SR_ERRORCODES of xapi's storage manager). xapi turns
// codes 16, 24, 39 and 144 into SR_DEVICE_IN_USE, VDI_IN_USE, SR_NOT_EMPTY
// and VDI_MISSING, code 38 into an "unimplemented" failure, and every other
// code into SR_BACKEND_FAILURE_<code> ["", reason, ""].
const (
	CodeSRInUse            = 16  // the SR is in use
	CodeVDIInUse           = 24  // the VDI is in use
	CodeNotImplemented     = 38  // the driver does not implement the call
	CodeSRNotEmpty         = 39  // the SR contains VDIs
	CodeSRScan             = 40  // the SR scan failed
	CodeSRExists           = 42  // the SR already exists
	CodeVDIExists          = 43  // a VDI of that name already exists
	CodeSRNoSpace          = 44  // not enough space
	CodeSRUnavailable      = 47  // the SR is not available
	CodeFileSRCreate       = 61  // creating the file SR failed
	CodeFileSRRmdir        = 62  // removing the SR's directory failed
	CodeFileSRDelete       = 63  // deleting the file SR failed
	CodeVDIDelete          = 64  // removing the VDI failed
	CodeVDILoad            = 65  // loading the VDI failed
	CodeVDIType            = 66  // the VDI type (image format) is invalid
	CodeVDICreate          = 78  // creating the VDI failed
	CodeVDISize            = 79  // the VDI size is invalid
	CodeVDIMissing         = 144 // the VDI is missing
	CodeLocationMissing    = 220 // device_config lacks the location
	CodeLocationUnusable   = 222 // the configured directory cannot be used
	CodeSnapshotCloneError = 416 // snapshot or clone failed
)

// Error is a driver failure with its SM error code.
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("SM error %d: %s", e.Code, e.Reason) }

// Errorf builds an *Error.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// ErrNotSupported is returned (wrapped in an *Error with CodeNotImplemented)
// by drivers for operations their kind does not offer.
var ErrNotSupported = &Error{Code: CodeNotImplemented, Reason: "the SR type does not support this operation"}

// IsCode reports whether err is an *Error with code.
func IsCode(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// StatFS measures the filesystem holding path.
func StatFS(path string) (SRStat, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return SRStat{}, Errorf(CodeSRUnavailable, "The SR is not available [opterr=%v]", err)
	}
	return SRStat{Total: int64(st.Blocks) * st.Bsize, Free: int64(st.Bavail) * st.Bsize}, nil
}

// Allocated returns the bytes a file takes on disk (its allocated blocks).
func Allocated(sys any, fallback int64) int64 {
	if st, ok := sys.(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fallback
}

// ConfigDir returns the absolute directory a directory-backed SR names in
// its device_config under the first of keys that is set; missing is the
// SM error text for when none is.
func ConfigDir(conf map[string]string, keys []string, missing string) (string, error) {
	var dir string
	for _, k := range keys {
		if dir = conf[k]; dir != "" {
			break
		}
	}
	if dir == "" {
		return "", Errorf(CodeLocationMissing, "%s", missing)
	}
	if !filepath.IsAbs(dir) {
		return "", Errorf(CodeLocationUnusable,
			"Unable to use the directory specified in device configuration [opterr=%q is not an absolute path]", dir)
	}
	return filepath.Clean(dir), nil
}
