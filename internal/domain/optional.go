package domain

import (
	"context"
	"io"
	"time"
)

// Optional driver capabilities. A driver implements those it can; the
// manager finds them with a type assertion, so drivers without them (sim)
// are unaffected.

// ConsoleDriver is a driver whose domains have consoles (XenAPI console
// objects, recorded while the domain runs).
type ConsoleDriver interface {
	Consoles(ctx context.Context, uuid string) ([]Console, error)
}

// Console is one console of a running domain.
type Console struct {
	Protocol string // "vt100" (serial), "rfb" (VNC), "rdp"
	// Location is where a console proxy connects, e.g.
	// "unix:///var/lib/xenith/qemu/UUID/serial.sock". Empty: the console
	// is reached through xenithd's console proxy only (the driver is a
	// ConsoleAttacher), and the manager records the proxy's URL.
	Location string
	Other    map[string]string // other_config
}

// ConsoleAttacher is a driver whose consoles live in xenithd itself (no
// socket of their own): xenithd's console proxy connects a client with
// AttachConsole. Reads give what the console prints and end with io.EOF
// when the domain is gone; writes are typed into it.
type ConsoleAttacher interface {
	AttachConsole(ctx context.Context, uuid, protocol string) (io.ReadWriteCloser, error)
}

// MediumChanger is a driver that swaps the medium of a CD drive in place
// (d.Path "" ejects). Without it the manager unplugs and re-plugs the drive.
type MediumChanger interface {
	ChangeMedium(ctx context.Context, uuid string, d Disk) error
}

// StatsDriver is a driver that reports live counters of a running domain;
// the manager turns them into VM_metrics, VBD_metrics and VIF_metrics.
type StatsDriver interface {
	Stats(ctx context.Context, uuid string) (Stats, error)
}

// Stats are cumulative counters of one domain at one moment.
type Stats struct {
	Time         time.Time
	CPUTime      time.Duration   // whole domain
	VCPUTime     []time.Duration // per vCPU, by number
	MemoryActual int64
	Disks        map[string]IOCounters // by device (VBD userdevice)
	NICs         map[string]IOCounters // by device (VIF device)
}

// IOCounters count bytes a device moved: Read into the guest (disk reads,
// packets received), Write out of it.
type IOCounters struct {
	ReadBytes, WriteBytes int64
}
