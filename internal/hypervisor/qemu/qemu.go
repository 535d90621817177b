// Package qemu is xenithd's QEMU hypervisor driver: one QEMU process per
// running VM, controlled over QMP.
//
// Each domain lives in Options.StateDir/<uuid>/: the QMP, serial and VNC
// sockets, the serial console log, QEMU's pidfile and domain.json (the
// spec, domid, pid and start time). QEMU runs daemonized, so it outlives
// xenithd (even a SIGKILL); a new Driver on the same StateDir re-adopts
// every QEMU still running there, and reports the ones that died
// meanwhile as crashed.
//
// Supervision: the QMP connection ends the moment QEMU exits, so a QEMU
// that dies (killed from outside, or a fatal error) is noticed at once
// and reported as a GuestCrash. QMP events become domain events: a guest
// powering off (SHUTDOWN; QEMU runs with -no-shutdown and holds the
// stopped domain until Destroy), rebooting (RESET) or panicking
// (GUEST_PANICKED, through the pvpanic device).
package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xenith/xenith/internal/domain"
)

// Options configures the driver.
type Options struct {
	// StateDir holds one directory per domain (required).
	StateDir string
	// Binary is the QEMU system emulator (default qemu-system-x86_64 from PATH).
	Binary string
	// Accel is "kvm", "tcg" or "auto"/"" (KVM when /dev/kvm is usable).
	Accel string
	// HostReserve is memory kept for the host itself (default 512 MiB).
	HostReserve int64
	Log         *slog.Logger
}

// Errors of the driver, besides domain.ErrNoDomain and *domain.NoMemoryError.
var (
	ErrClosed       = errors.New("qemu: driver closed")
	ErrExists       = errors.New("qemu: domain already exists")
	ErrBadState     = errors.New("qemu: domain in wrong state")
	ErrUnsupported  = errors.New("not supported by the qemu driver")
	ErrNoDevice     = errors.New("qemu: no such device")
	ErrDeviceExists = errors.New("qemu: device already exists")
	ErrDead         = errors.New("qemu: the QEMU process is gone")
)

// EventBuffer is the capacity of the Events channel; when full the oldest
// event is dropped.
const EventBuffer = 1024

// Driver runs domains as QEMU processes. Safe for concurrent use.
type Driver struct {
	opts  Options
	accel string
	log   *slog.Logger

	mu     sync.Mutex
	doms   map[string]*vm
	closed bool

	events *domain.EventQueue
}

var (
	_ domain.Driver        = (*Driver)(nil)
	_ domain.ConsoleDriver = (*Driver)(nil)
	_ domain.MediumChanger = (*Driver)(nil)
	_ domain.StatsDriver   = (*Driver)(nil)
)

// New starts the driver and re-adopts the QEMU processes found in
// StateDir.
func New(ctx context.Context, opts Options) (*Driver, error) {
	if opts.StateDir == "" {
		return nil, errors.New("qemu: no state directory")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.HostReserve == 0 {
		opts.HostReserve = 512 << 20
	}
	if opts.Binary == "" {
		opts.Binary = "qemu-system-x86_64"
	}
	bin, err := exec.LookPath(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w (install Debian's qemu-system-x86)", err)
	}
	opts.Binary = bin
	d := &Driver{opts: opts, log: opts.Log.With("driver", "qemu"), doms: map[string]*vm{}, events: domain.NewEventQueue(EventBuffer)}
	switch opts.Accel {
	case "", "auto":
		d.accel = "tcg"
		if KVMUsable() {
			d.accel = "kvm"
		}
	case "kvm", "tcg":
		d.accel = opts.Accel
	default:
		return nil, fmt.Errorf("qemu: accel %q: want auto, kvm or tcg", opts.Accel)
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, err
	}
	if err := d.adoptAll(ctx); err != nil {
		return nil, err
	}
	d.log.Info("qemu driver ready", "binary", bin, "accel", d.accel, "domains", len(d.doms))
	return d, nil
}

// Accel is the accelerator in use ("kvm" or "tcg").
func (d *Driver) Accel() string { return d.accel }

// Close lets go of the QEMU processes without stopping them: they keep
// running and a new Driver adopts them. Idempotent.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	doms := make([]*vm, 0, len(d.doms))
	for _, x := range d.doms {
		doms = append(doms, x)
	}
	d.mu.Unlock()
	for _, x := range doms {
		x.release()
	}
	return nil
}

// Name is "qemu".
func (d *Driver) Name() string { return "qemu" }

// Events delivers guest shutdowns, reboots and crashes.
func (d *Driver) Events() <-chan domain.Event { return d.events.Events() }

func (d *Driver) emit(ev domain.Event) { d.events.Emit(ev) }

func (d *Driver) get(uuid string) (*vm, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	x, ok := d.doms[uuid]
	if !ok {
		return nil, fmt.Errorf("qemu: domain %s: %w", uuid, domain.ErrNoDomain)
	}
	return x, nil
}

func (d *Driver) remove(x *vm) {
	d.mu.Lock()
	if d.doms[x.uuid] == x {
		delete(d.doms, x.uuid)
	}
	d.mu.Unlock()
}

// KVMUsable tells whether /dev/kvm can be opened and makes VMs.
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	const kvmGetAPIVersion, kvmCreateVM = 0xAE00, 0xAE01
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil || v != 12 {
		return false
	}
	vmfd, err := unix.IoctlRetInt(int(f.Fd()), kvmCreateVM)
	if err != nil {
		return false
	}
	unix.Close(vmfd)
	return true
}

// Host reports this machine's memory and CPUs. FreeMemory is the lesser
// of what the kernel calls available and the total less the host reserve
// and every domain's full memory (QEMU touches guest memory lazily).
func (d *Driver) Host(ctx context.Context) (domain.HostInfo, error) {
	if err := ctx.Err(); err != nil {
		return domain.HostInfo{}, err
	}
	mi, err := meminfo()
	if err != nil {
		return domain.HostInfo{}, err
	}
	free := mi["MemTotal"] - d.opts.HostReserve - d.committed()
	free = max(min(free, mi["MemAvailable"]), 0)
	return domain.HostInfo{TotalMemory: mi["MemTotal"], FreeMemory: free, CPUs: runtime.NumCPU()}, nil
}

// Overhead is what a QEMU process costs beyond guest memory (estimate).
func Overhead(mem int64) int64 { return 48<<20 + mem/100 }

func (d *Driver) committed() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var sum int64
	for _, x := range d.doms {
		x.mu.Lock()
		sum += x.rec.Spec.MemoryStaticMax + Overhead(x.rec.Spec.MemoryStaticMax)
		x.mu.Unlock()
	}
	return sum
}

// meminfo reads /proc/meminfo in bytes.
func meminfo() (map[string]int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		if len(fields) > 1 && fields[1] == "kB" {
			n <<= 10
		}
		out[k] = n
	}
	return out, sc.Err()
}

func (d *Driver) domDir(uuid string) string { return filepath.Join(d.opts.StateDir, uuid) }
