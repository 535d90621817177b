// Package sim is xenithd's simulated hypervisor: a domain.Driver that keeps
// domains in memory (and optionally on disk), accounts for host memory like
// Xen does, boots guests that report through a simulated guest agent, and
// lets an operator inject faults (crashes, hangs, guest-initiated shutdowns
// and reboots, failing operations).
//
// It is the default hypervisor of xenithd and is meant for people who test
// their XenAPI tools: it is deterministic (no randomness; addresses and OS
// data derive from the VM's spec) and faithful where it matters to a
// toolstack (power states, domain ids, memory, guest metrics). See README.md
// in this directory for the model.
package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// Defaults for Options fields left zero.
const (
	DefaultTotalMemory int64 = 16 << 30 // 16 GiB
	DefaultCPUs              = 4
	DefaultDom0Memory  int64 = 1 << 30 // 1 GiB

	// EventBuffer is the capacity of the Events channel. When it is full
	// the oldest undelivered event is dropped (see EventsDropped).
	EventBuffer = 1024

	// StateFile is the name of the file, inside Options.StateDir, that
	// holds the simulated domains.
	StateFile = "sim-domains.json"
)

// Options configures a simulated host.
type Options struct {
	// StateDir is where domains persist (file StateFile, written
	// atomically); "" keeps them in memory only.
	StateDir string
	// TotalMemory is the host's RAM in bytes (default 16 GiB).
	TotalMemory int64
	// CPUs is the number of physical CPUs (default 4).
	CPUs int
	// Dom0Memory is reserved for the control domain (default 1 GiB).
	Dom0Memory int64
	// BootTime is how long a fresh guest runs before it has booted (its
	// PV drivers are up and it obeys shutdown requests); 0 = immediately.
	BootTime time.Duration
	// ShutdownTime is how long a booted guest takes to obey a clean
	// shutdown or reboot request.
	ShutdownTime time.Duration
	// AgentDelay is how long after boot the guest agent sends its first
	// report.
	AgentDelay time.Duration
	// TickInterval is how often, on its own clock, a booted guest prints
	// XENITH-TICK on its console (default 1s, as the test guest does).
	TickInterval time.Duration
	// Now is the clock for start times and CPU time accounting (default
	// time.Now). Guest progress (boot, shutdown) always runs on real time.
	Now func() time.Time
}

// Errors of the simulator, besides domain.ErrNoDomain, domain.ErrNoMemory
// (as *domain.NoMemoryError) and domain.ErrInjected.
var (
	// ErrClosed is returned by every call made after Close.
	ErrClosed = errors.New("sim: driver closed")
	// ErrExists: Create or Resume of a uuid that already has a domain.
	ErrExists = errors.New("sim: domain already exists")
	// ErrBadState is wrapped by *StateError: the domain's power state
	// does not allow the operation.
	ErrBadState = errors.New("sim: domain in wrong state")
	// ErrNoDevice: unplug of a disk or NIC the domain does not have.
	ErrNoDevice = errors.New("sim: no such device")
	// ErrDeviceExists: plug of a disk or NIC whose device is taken.
	ErrDeviceExists = errors.New("sim: device already exists")
	// ErrInvalid: a malformed spec or argument (memory, VCPUs, device
	// names, unknown fault-injection operation).
	ErrInvalid = errors.New("sim: invalid argument")
	// ErrBadImage: a suspend image that is missing its header, corrupt,
	// or belongs to another VM.
	ErrBadImage = errors.New("sim: bad suspend image")
	// ErrInterrupted: a pending clean shutdown or reboot was overtaken
	// by something else (crash, reset, destroy, suspend, the guest
	// halting or rebooting on its own).
	ErrInterrupted = errors.New("sim: shutdown request interrupted")
)

// StateError says an operation is not allowed in the domain's state. It
// wraps ErrBadState.
type StateError struct {
	UUID  string
	Op    string
	State domain.State
	// Why adds detail ("a reboot is in progress"); may be empty.
	Why string
}

func (e *StateError) Error() string {
	if e.Why != "" {
		return fmt.Sprintf("sim: cannot %s domain %s: %s", e.Op, e.UUID, e.Why)
	}
	return fmt.Sprintf("sim: cannot %s domain %s: it is %s", e.Op, e.UUID, e.State)
}

func (e *StateError) Unwrap() error { return ErrBadState }

// Overhead is the memory a domain costs the host beyond its balloon
// target: 1% of the target (rounded up) plus 1 MiB, standing for page
// tables, shadow memory and device-model buffers.
func Overhead(target int64) int64 { return (target+99)/100 + 1<<20 }

// Footprint is what a domain with that memory target takes from the
// host's free memory: target + Overhead(target).
func Footprint(target int64) int64 { return target + Overhead(target) }

// Driver is a simulated hypervisor. All methods are safe for concurrent
// use.
type Driver struct {
	opts Options
	now  func() time.Time

	mu        sync.Mutex
	doms      map[string]*dom
	nextDomid int
	fails     map[failKey]int
	closed    bool
	gen       uint64 // counts changes to the domains (markLocked)

	// saveMu serialises writes of the state file; it is taken before mu,
	// never while holding it. savedGen is the last generation on disk.
	saveMu   sync.Mutex
	savedGen uint64

	events   *domain.EventQueue
	closedCh chan struct{}
}

var _ domain.Driver = (*Driver)(nil)

// New makes a simulated host. With a StateDir it loads the domains saved
// there: running domains keep running (their guests went on while no
// driver watched: boot progress and CPU time include that gap) with the
// same domid and start time; a clean shutdown that was in progress is
// finished at once (or withdrawn if the guest is paused or hung).
func New(opts Options) (*Driver, error) {
	if opts.TotalMemory == 0 {
		opts.TotalMemory = DefaultTotalMemory
	}
	if opts.CPUs == 0 {
		opts.CPUs = DefaultCPUs
	}
	if opts.Dom0Memory == 0 {
		opts.Dom0Memory = DefaultDom0Memory
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TickInterval == 0 {
		opts.TickInterval = time.Second
	}
	switch {
	case opts.TotalMemory < 0, opts.CPUs < 0, opts.Dom0Memory < 0:
		return nil, fmt.Errorf("sim: negative host size in options: %w", ErrInvalid)
	case opts.Dom0Memory >= opts.TotalMemory:
		return nil, fmt.Errorf("sim: dom0 memory %d leaves nothing of %d: %w", opts.Dom0Memory, opts.TotalMemory, ErrInvalid)
	case opts.BootTime < 0, opts.ShutdownTime < 0, opts.AgentDelay < 0, opts.TickInterval < 0:
		return nil, fmt.Errorf("sim: negative duration in options: %w", ErrInvalid)
	}
	d := &Driver{
		opts:      opts,
		now:       opts.Now,
		doms:      map[string]*dom{},
		nextDomid: 1,
		fails:     map[failKey]int{},
		events:    domain.NewEventQueue(EventBuffer),
		closedCh:  make(chan struct{}),
	}
	if err := d.load(); err != nil {
		return nil, err
	}
	return d, nil
}

// Close stops the driver's timers and releases callers blocked in
// Shutdown (they get ErrClosed). It does not destroy domains: like real
// ones they outlive the toolstack, and a new Driver on the same StateDir
// finds them. Close is idempotent.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for _, x := range d.doms {
		x.stopTimer()
		if x.con != nil {
			x.con.close()
		}
	}
	close(d.closedCh)
	gen := d.gen
	d.mu.Unlock()
	return d.flush(gen)
}

// Name is "sim".
func (d *Driver) Name() string { return "sim" }

// Events delivers guest events: GuestShutdown, GuestReboot, GuestCrash
// (from the fault-injection calls) and GuestAgent reports. It is buffered
// (EventBuffer); when full, the oldest event is dropped so the simulated
// guests never wait for a reader. It is never closed.
func (d *Driver) Events() <-chan domain.Event { return d.events.Events() }

// EventsDropped counts the events dropped because nobody read them.
func (d *Driver) EventsDropped() uint64 { return d.events.Dropped() }

func (d *Driver) emit(ev domain.Event) { d.events.Emit(ev) }

// Host reports the host's memory and CPUs. FreeMemory is TotalMemory -
// Dom0Memory - the Footprint of every domain (halted and crashed domains
// hold their memory until destroyed).
func (d *Driver) Host(ctx context.Context) (domain.HostInfo, error) {
	if err := ctx.Err(); err != nil {
		return domain.HostInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkLocked(opHost, ""); err != nil {
		return domain.HostInfo{}, err
	}
	return domain.HostInfo{
		TotalMemory: d.opts.TotalMemory,
		FreeMemory:  max(d.freeLocked(), 0),
		CPUs:        d.opts.CPUs,
	}, nil
}

func (d *Driver) freeLocked() int64 {
	free := d.opts.TotalMemory - d.opts.Dom0Memory
	for _, x := range d.doms {
		free -= Footprint(x.rec.Spec.MemoryTarget) + shadowExtra(&x.rec)
	}
	return free
}

// checkLocked fails calls after Close and calls with an injected failure.
func (d *Driver) checkLocked(op, uuid string) error {
	if d.closed {
		return ErrClosed
	}
	return d.injectedLocked(op, uuid)
}

// getLocked is checkLocked plus the lookup of an existing domain.
func (d *Driver) getLocked(op, uuid string) (*dom, error) {
	if err := d.checkLocked(op, uuid); err != nil {
		return nil, err
	}
	x, ok := d.doms[uuid]
	if !ok {
		return nil, noDomain(uuid)
	}
	return x, nil
}

func noDomain(uuid string) error {
	return fmt.Errorf("sim: domain %s: %w", uuid, domain.ErrNoDomain)
}

// markLocked records that the domains changed and returns the change's
// generation, for flush.
func (d *Driver) markLocked() uint64 {
	d.gen++
	return d.gen
}

// change runs fn on an existing domain under the lock and, if it
// succeeds, persists the result.
func (d *Driver) change(ctx context.Context, op, uuid string, fn func(*dom) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	x, err := d.getLocked(op, uuid)
	if err == nil {
		err = fn(x)
	}
	if err != nil {
		d.mu.Unlock()
		return err
	}
	gen := d.markLocked()
	d.mu.Unlock()
	return d.flush(gen)
}
