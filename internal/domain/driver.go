// Package domain is xenithd's domain manager (the xenopsd role): it owns
// running domains, runs VM operations as sequences of small steps over a
// hypervisor Driver, one operation at a time per VM and in parallel across
// VMs, and keeps the object store in step with what the hypervisor does.
package domain

import (
	"context"
	"errors"
	"time"
)

// Driver is what a hypervisor must do for the domain manager. Domains are
// named by the VM's uuid. Every call may block and honours ctx. Drivers
// live in their own packages (hypervisor/sim, hypervisor/qemu, ...).
type Driver interface {
	// Name identifies the driver ("sim", "qemu", "xen").
	Name() string
	// Host reports the host's capacity as the hypervisor sees it.
	Host(ctx context.Context) (HostInfo, error)

	// Create builds a domain from spec and leaves it paused; it returns
	// the domain id. ErrNoMemory (wrapped) when the host cannot fit it.
	Create(ctx context.Context, spec Spec) (domid int, err error)
	Unpause(ctx context.Context, uuid string) error
	Pause(ctx context.Context, uuid string) error
	// Shutdown asks the guest to halt (or reboot) and waits until it has
	// done so or ctx ends (the request is then withdrawn). The domain is
	// gone afterwards for a halt.
	Shutdown(ctx context.Context, uuid string, reboot bool) error
	// Destroy kills the domain at once and frees its resources.
	Destroy(ctx context.Context, uuid string) error
	// Reset restarts a domain in place (hard reboot) without freeing it.
	Reset(ctx context.Context, uuid string) error
	// Suspend saves the domain's state to path and destroys it.
	Suspend(ctx context.Context, uuid, path string) error
	// Resume rebuilds a domain from spec and the state saved at path; it
	// is left paused.
	Resume(ctx context.Context, spec Spec, path string) (domid int, err error)

	SetMemoryTarget(ctx context.Context, uuid string, bytes int64) error
	SetVCPUs(ctx context.Context, uuid string, n int) error
	PlugDisk(ctx context.Context, uuid string, d Disk) error
	UnplugDisk(ctx context.Context, uuid, device string) error
	PlugNIC(ctx context.Context, uuid string, n NIC) error
	UnplugNIC(ctx context.Context, uuid, device string) error

	// Info describes one domain; ErrNoDomain (wrapped) if it does not exist.
	Info(ctx context.Context, uuid string) (Info, error)
	// List describes every domain the hypervisor runs, so that a restarted
	// manager can adopt them.
	List(ctx context.Context) ([]Info, error)
	// Events delivers what guests do on their own: shutdowns (the domain
	// is then halted), reboots (the domain has already rebooted in place),
	// crashes (the domain is crashed, still held), and guest agent
	// reports. The channel is never closed while the driver lives.
	Events() <-chan Event
}

// Spec is everything a driver needs to build a domain.
type Spec struct {
	UUID, Name string

	MemoryStaticMax int64
	MemoryTarget    int64 // initial balloon target
	VCPUsMax        int
	VCPUs           int // online at start

	HVM bool
	PVH bool // a PV kernel in an HVM container (VM.domain_type pvh)
	// ShadowMultiplier sizes an HVM domain's shadow memory
	// (HVM_shadow_multiplier); 0 or 1 is the default size.
	ShadowMultiplier float64
	BootOrder        string // HVM: "cd", "dc", "n"...
	Kernel           string // PV / direct kernel boot
	Ramdisk          string
	Args             string
	Platform         map[string]string

	Disks []Disk
	NICs  []NIC
}

// Disk is one block device of a domain.
type Disk struct {
	Device   string // userdevice or device name: "0", "xvda", "hdc"
	Path     string // image file; "" for an empty CD drive
	Format   string // "raw" or "qcow2"
	ReadOnly bool
	CD       bool
	Bootable bool
}

// NIC is one network interface of a domain.
type NIC struct {
	Device string // VIF device number
	MAC    string
	Bridge string
	MTU    int
}

// State is a domain's state as the hypervisor sees it.
type State int

const (
	Running State = iota
	Paused
	Halted  // shut down, resources still held (awaiting the manager)
	Crashed // died, resources still held
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Paused:
		return "paused"
	case Halted:
		return "halted"
	case Crashed:
		return "crashed"
	}
	return "unknown"
}

// Info is a snapshot of one domain.
type Info struct {
	UUID         string
	Domid        int
	State        State
	MemoryActual int64
	VCPUs        int
	StartTime    time.Time
	CPUTime      time.Duration
}

// HostInfo is the host's capacity.
type HostInfo struct {
	TotalMemory int64
	FreeMemory  int64
	CPUs        int
}

// EventKind says what a guest did.
type EventKind int

const (
	GuestShutdown EventKind = iota // the guest powered itself off
	GuestReboot                    // the guest asked to be rebooted
	GuestCrash                     // the guest crashed
	GuestAgent                     // the guest agent reported data
)

// Event is something a guest did on its own.
type Event struct {
	UUID  string
	Kind  EventKind
	Agent *AgentReport // for GuestAgent
}

// AgentReport is what a guest agent tells (VM_guest_metrics).
type AgentReport struct {
	OSVersion     map[string]string
	Networks      map[string]string // "0/ip" -> "10.0.0.2"
	PVDrivers     map[string]string // "major", "minor", "micro"
	Disks         map[string]string
	Other         map[string]string
	MemoryFree    int64
	Live          bool
	CanUseHotplug bool
}

// Errors drivers wrap so the manager can map them to XenAPI errors.
var (
	ErrNoDomain = errors.New("no such domain")
	ErrNoMemory = errors.New("not enough free memory")
	// ErrInjected is a failure the operator asked a driver to simulate.
	ErrInjected = errors.New("injected failure")
)

// NoMemoryError carries the amounts for HOST_NOT_ENOUGH_FREE_MEMORY.
type NoMemoryError struct{ Needed, Available int64 }

func (e *NoMemoryError) Error() string { return ErrNoMemory.Error() }
func (e *NoMemoryError) Unwrap() error { return ErrNoMemory }
