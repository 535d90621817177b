// Package xen is xenithd's driver for real Xen domains: it drives Xen
// through the `xl` command (a generated config file and `xl create`,
// `xl list -v`, pause, shutdown, save, restore, hotplug...), and follows
// domains through xenstore (@releaseDomain for shutdowns, reboots and
// crashes; the guest agent's data/ and attr/ keys for guest metrics). See
// README.md for why xl and not libxl.
package xen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// Defaults for Options fields left zero.
const (
	DefaultXL           = "xl"
	DefaultPollInterval = 2 * time.Second
	// SafetyScanInterval is how often domains are rescanned even when
	// xenstore watches work, in case a watch event was lost.
	SafetyScanInterval = 30 * time.Second
	// EventBuffer is the capacity of Events; when full, the oldest event
	// is dropped.
	EventBuffer = 1024
	// commandTimeout bounds the xl calls the driver makes on its own
	// (scans, rebuilds after a guest reboot).
	commandTimeout = 5 * time.Minute
)

// Options configures the driver.
type Options struct {
	// StateDir holds the generated xl configs and the specs of running
	// domains (needed to rebuild a domain when its guest reboots, also
	// after a restart of xenithd). Required.
	StateDir string
	// Runner runs xl (default ExecRunner).
	Runner Runner
	// XL is the xl command (default "xl" from PATH).
	XL string
	// XenStore, when nil, is dialled with DialXenStore unless NoXenStore;
	// without one the driver polls `xl list` every PollInterval.
	XenStore   XenStore
	NoXenStore bool
	// PollInterval is the polling period without xenstore (default 2 s).
	PollInterval time.Duration
	Log          *slog.Logger
	Now          func() time.Time
}

// Errors of the driver besides domain.ErrNoDomain and domain.ErrNoMemory.
var (
	ErrExists      = errors.New("xen: the VM already has a domain")
	ErrPending     = errors.New("xen: another shutdown request is pending")
	ErrInterrupted = errors.New("xen: shutdown request interrupted")
	ErrClosed      = errors.New("xen: driver closed")
)

// rec is what the driver keeps about a domain it built.
type rec struct {
	Spec    domain.Spec `json:"spec"`
	Domid   int         `json:"domid"`
	Started time.Time   `json:"started"`

	busy     int     // driver operations in flight: the scanner keeps off
	settled  uint64  // d.settles when the last operation ended
	notified string  // the last guest event reported, "domid/what"
	waiter   *waiter // a pending clean shutdown or reboot
	watched  int     // domid whose agent keys are watched; 0 = none
	agent    string  // fingerprint of the last agent report
}

type waiter struct {
	reboot bool
	err    error
	done   chan struct{}
}

func (w *waiter) complete(err error) {
	select {
	case <-w.done:
	default:
		w.err = err
		close(w.done)
	}
}

// Driver manages Xen domains. All methods are safe for concurrent use.
type Driver struct {
	opts Options
	xl   xl
	log  *slog.Logger
	now  func() time.Time

	mu   sync.Mutex
	recs map[string]*rec
	// settles counts the driver operations that ended; a scan ignores
	// records settled after its `xl list` was taken, which may not show
	// what the operation did yet.
	settles uint64
	opLocks map[string]*sync.Mutex
	xs      XenStore
	// consoles are the console sockets served, by VM uuid (console.go).
	consoles map[string]*consoleRelay

	events *domain.EventQueue
	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ domain.Driver = (*Driver)(nil)

// New starts the driver: it loads what it knew of running domains from
// StateDir (forgetting those that are gone), connects to xenstore and
// starts following domains.
func New(opts Options) (*Driver, error) {
	if opts.StateDir == "" {
		return nil, errors.New("xen: Options.StateDir is required")
	}
	if opts.Runner == nil {
		opts.Runner = ExecRunner{}
	}
	if opts.XL == "" {
		opts.XL = DefaultXL
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Driver{
		opts: opts, xl: xl{run: opts.Runner, path: opts.XL}, log: opts.Log.With("driver", "xen"), now: opts.Now,
		recs: map[string]*rec{}, opLocks: map[string]*sync.Mutex{},
		events: domain.NewEventQueue(EventBuffer), kick: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel,
	}
	if err := d.load(ctx); err != nil {
		cancel()
		return nil, err
	}
	d.xs = opts.XenStore
	if d.xs == nil && !opts.NoXenStore {
		xs, err := DialXenStore()
		if err != nil {
			d.log.Warn("no xenstore; polling xl list instead", "err", err, "every", opts.PollInterval)
		} else {
			d.xs = xs
		}
	}
	if d.xs != nil {
		if err := d.xs.Watch(ctx, "@releaseDomain", "release"); err != nil {
			d.log.Warn("cannot watch @releaseDomain; polling xl list instead", "err", err)
			d.xs.Close()
			d.xs = nil
		}
	}
	d.wg.Add(1)
	go d.loop()
	d.poke()
	return d, nil
}

// Close stops following domains. Domains keep running: a new driver on the
// same StateDir adopts them.
func (d *Driver) Close() error {
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.recs {
		if r.waiter != nil {
			r.waiter.complete(ErrClosed)
		}
	}
	if d.xs != nil {
		return d.xs.Close()
	}
	return nil
}

// Name is "xen".
func (d *Driver) Name() string { return "xen" }

// Events delivers guest events; see domain.Driver.
func (d *Driver) Events() <-chan domain.Event { return d.events.Events() }

func (d *Driver) emit(ev domain.Event) { d.events.Emit(ev) }

// poke asks the loop for a scan soon.
func (d *Driver) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// ------------------------------------------------------------------ state

func (d *Driver) recDir() string { return filepath.Join(d.opts.StateDir, "domains") }

func (d *Driver) cfgPath(uuid string) string { return filepath.Join(d.recDir(), uuid+".cfg") }

func (d *Driver) load(ctx context.Context) error {
	if err := os.MkdirAll(d.recDir(), 0o700); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(d.recDir(), "*.json"))
	if err != nil || len(files) == 0 {
		return err
	}
	doms, err := d.xl.list(ctx)
	if err != nil {
		return fmt.Errorf("xen: listing domains: %w", err)
	}
	alive := map[string]bool{}
	for _, x := range doms {
		alive[x.UUID] = true
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r rec
		if err := json.Unmarshal(b, &r); err != nil {
			d.log.Warn("unreadable domain record; ignoring it", "file", f, "err", err)
			continue
		}
		if !alive[r.Spec.UUID] {
			// Gone while nobody watched: the manager learns that from
			// List when it reconciles.
			d.forgetFiles(r.Spec.UUID)
			continue
		}
		d.recs[r.Spec.UUID] = &r
		d.log.Info("found domain", "uuid", r.Spec.UUID, "domid", r.Domid)
	}
	return nil
}

func (d *Driver) save(r *rec) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(d.recDir(), r.Spec.UUID+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (d *Driver) forgetFiles(uuid string) {
	os.Remove(filepath.Join(d.recDir(), uuid+".json"))
	os.Remove(d.cfgPath(uuid))
}

func (d *Driver) writeConfig(spec domain.Spec) (string, error) {
	cfg, err := buildConfig(spec)
	if err != nil {
		return "", err
	}
	path := d.cfgPath(spec.UUID)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// opLock serialises the driver's own work on one domain (operations and
// the rebuild after a guest reboot).
func (d *Driver) opLock(uuid string) func() {
	d.mu.Lock()
	l := d.opLocks[uuid]
	if l == nil {
		l = &sync.Mutex{}
		d.opLocks[uuid] = l
	}
	d.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// begin marks uuid's record busy (nil if there is none); end undoes it.
func (d *Driver) begin(uuid string) *rec {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.recs[uuid]
	if r != nil {
		r.busy++
	}
	return r
}

func (d *Driver) end(r *rec) {
	if r == nil {
		return
	}
	d.mu.Lock()
	d.settle(r)
	d.mu.Unlock()
}

// settle ends one operation on r; d.mu is held.
func (d *Driver) settle(r *rec) {
	r.busy--
	d.settles++
	r.settled = d.settles
}

// drop forgets a domain that is gone, releasing a pending shutdown with err.
func (d *Driver) drop(uuid string, err error) {
	d.mu.Lock()
	r := d.recs[uuid]
	delete(d.recs, uuid)
	d.mu.Unlock()
	if r != nil && r.waiter != nil {
		r.waiter.complete(err)
	}
	if r != nil && r.watched != 0 {
		d.unwatchAgent(uuid, r.watched)
	}
	d.stopConsole(uuid)
	d.forgetFiles(uuid)
}

func noDomain(uuid string) error { return fmt.Errorf("xen: domain %s: %w", uuid, domain.ErrNoDomain) }

func (d *Driver) checkOpen() error {
	if d.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

// ------------------------------------------------------------------ host

// Host reports the host's memory and CPUs from `xl info`.
func (d *Driver) Host(ctx context.Context) (domain.HostInfo, error) {
	in, err := d.xl.info(ctx)
	if err != nil {
		return domain.HostInfo{}, err
	}
	return domain.HostInfo{TotalMemory: in.TotalMiB * mib, FreeMemory: in.FreeMiB * mib, CPUs: in.CPUs}, nil
}

// XenInfo returns every field of `xl info` (xen_version, xen_caps...), for
// callers that fill host records from Xen.
func (d *Driver) XenInfo(ctx context.Context) (map[string]string, error) {
	in, err := d.xl.info(ctx)
	return in.Fields, err
}

// ControlDomain returns dom0's memory (bytes) and vCPU count, from its
// line of `xl list -v` (dom0 is not one of the driver's domains).
func (d *Driver) ControlDomain(ctx context.Context) (memory int64, vcpus int, err error) {
	doms, err := d.xl.list(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, x := range doms {
		if x.Domid == 0 {
			return x.MemMiB * mib, x.VCPUs, nil
		}
	}
	return 0, 0, errors.New("xl list -v: no domain 0")
}

// overheadMiB is what Xen needs beyond a domain's memory: page tables and
// the like, about 1% plus 1 MiB (as the sim driver models it).
func overheadMiB(targetMiB int64) int64 { return (targetMiB+99)/100 + 1 }

// ------------------------------------------------------------------ lifecycle

// Create builds the domain paused (`xl create -p -e`: xenithd, not a
// background xl, follows the domain's death).
func (d *Driver) Create(ctx context.Context, spec domain.Spec) (int, error) {
	return d.build(ctx, spec, "")
}

// Resume restores a domain saved by Suspend (`xl restore -p -e`), with a
// config from spec (the VM's devices as they are now).
func (d *Driver) Resume(ctx context.Context, spec domain.Spec, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	return d.build(ctx, spec, path)
}

func (d *Driver) build(ctx context.Context, spec domain.Spec, image string) (int, error) {
	if err := d.checkOpen(); err != nil {
		return 0, err
	}
	unlock := d.opLock(spec.UUID)
	defer unlock()
	d.mu.Lock()
	if d.recs[spec.UUID] != nil {
		d.mu.Unlock()
		return 0, fmt.Errorf("%w: %s", ErrExists, spec.UUID)
	}
	d.mu.Unlock()
	// A domain of that name the driver does not know (its record lost)
	// must not be clobbered, nor destroyed by the clean-up of a failure.
	if _, err := d.xl.domid(ctx, domainName(spec.UUID)); err == nil {
		return 0, fmt.Errorf("%w: %s (a domain of that name runs)", ErrExists, spec.UUID)
	} else if !errors.Is(err, domain.ErrNoDomain) {
		return 0, err
	}
	cfg, err := d.writeConfig(spec)
	if err != nil {
		return 0, err
	}
	in, err := d.xl.info(ctx)
	if err != nil {
		return 0, err
	}
	target := spec.MemoryTarget
	if target <= 0 || target > spec.MemoryStaticMax {
		target = spec.MemoryStaticMax
	}
	if need := toMiB(target) + overheadMiB(toMiB(target)); need > in.FreeMiB {
		return 0, &domain.NoMemoryError{Needed: need * mib, Available: in.FreeMiB * mib}
	}
	r := &rec{Spec: spec, busy: 1}
	d.mu.Lock()
	d.recs[spec.UUID] = r
	d.mu.Unlock()
	fail := func(err error) (int, error) {
		d.drop(spec.UUID, err)
		// A half-built domain must not stay behind.
		if _, derr := d.xl.do(context.WithoutCancel(ctx), "destroy", domainName(spec.UUID)); derr == nil {
			d.log.Info("destroyed a half-built domain", "uuid", spec.UUID)
		}
		return 0, err
	}
	if image == "" {
		_, err = d.xl.do(ctx, "create", "-p", "-e", cfg)
	} else {
		_, err = d.xl.do(ctx, "restore", "-p", "-e", cfg, image)
	}
	if err != nil {
		return fail(err)
	}
	domid, err := d.xl.domid(context.WithoutCancel(ctx), domainName(spec.UUID))
	if err != nil {
		return fail(err)
	}
	d.mu.Lock()
	r.Domid, r.Started = domid, d.now().UTC()
	d.settle(r)
	err = d.save(r)
	d.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	d.poke()
	return domid, nil
}

// simple runs one xl command on an existing domain.
func (d *Driver) simple(ctx context.Context, uuid string, args ...string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	unlock := d.opLock(uuid)
	defer unlock()
	r := d.begin(uuid)
	defer d.end(r)
	full := append(args[:len(args):len(args)], domainName(uuid))
	_, err := d.xl.do(ctx, full...)
	return err
}

// Unpause runs the domain's vCPUs.
func (d *Driver) Unpause(ctx context.Context, uuid string) error {
	return d.simple(ctx, uuid, "unpause")
}

// Pause stops the domain's vCPUs.
func (d *Driver) Pause(ctx context.Context, uuid string) error {
	return d.simple(ctx, uuid, "pause")
}

// Shutdown asks the guest to power off or reboot (`xl shutdown` / `xl
// reboot`, which write control/shutdown for the guest's PV drivers; -F adds
// the ACPI fallback for HVM guests) and waits until the guest has done so.
// A halted domain is destroyed before Shutdown returns; a rebooted one has
// been rebuilt. When ctx ends first the request is withdrawn.
func (d *Driver) Shutdown(ctx context.Context, uuid string, reboot bool) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	d.mu.Lock()
	r := d.recs[uuid]
	if r == nil {
		d.mu.Unlock()
		return noDomain(uuid)
	}
	w := r.waiter
	switch {
	case w == nil:
		w = &waiter{reboot: reboot, done: make(chan struct{})}
		r.waiter = w
	case w.reboot != reboot:
		d.mu.Unlock()
		return ErrPending
	}
	hvm := r.Spec.HVM
	d.mu.Unlock()
	args := []string{"shutdown"}
	if reboot {
		args[0] = "reboot"
	}
	if hvm {
		args = append(args, "-F")
	}
	if err := d.simple(ctx, uuid, args...); err != nil {
		d.clearWaiter(uuid, w)
		return err
	}
	d.poke()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		if d.clearWaiter(uuid, w) {
			d.withdraw(uuid)
		}
		return ctx.Err()
	}
}

// clearWaiter removes w from uuid's record; it reports whether w was there.
func (d *Driver) clearWaiter(uuid string, w *waiter) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := d.recs[uuid]; r != nil && r.waiter == w {
		r.waiter = nil
		return true
	}
	return false
}

// withdraw takes back a shutdown request the guest has not acted on yet.
func (d *Driver) withdraw(uuid string) {
	d.mu.Lock()
	r, xs := d.recs[uuid], d.xs
	d.mu.Unlock()
	if r == nil || xs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if err := xs.Write(ctx, fmt.Sprintf("/local/domain/%d/control/shutdown", r.Domid), ""); err != nil {
		d.log.Warn("withdrawing a shutdown request", "uuid", uuid, "err", err)
	}
}

// Destroy kills the domain (`xl destroy`).
func (d *Driver) Destroy(ctx context.Context, uuid string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	unlock := d.opLock(uuid)
	defer unlock()
	r := d.begin(uuid)
	defer d.end(r)
	_, err := d.xl.do(ctx, "destroy", domainName(uuid))
	if err == nil || errors.Is(err, domain.ErrNoDomain) {
		d.drop(uuid, ErrInterrupted)
	}
	return err
}

// Reset rebuilds the domain in place, running (a hard reboot).
func (d *Driver) Reset(ctx context.Context, uuid string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	unlock := d.opLock(uuid)
	defer unlock()
	return d.rebuild(ctx, uuid, ErrInterrupted)
}

// rebuild destroys and re-creates a domain from its spec and unpauses it;
// called with uuid's opLock held. A pending shutdown request is released
// with waitErr (nil: the rebuild is what it waited for).
func (d *Driver) rebuild(ctx context.Context, uuid string, waitErr error) error {
	r := d.begin(uuid)
	if r == nil {
		return noDomain(uuid)
	}
	defer d.end(r)
	d.mu.Lock()
	spec := r.Spec
	w := r.waiter
	if w != nil && (waitErr != nil || w.reboot) {
		r.waiter = nil
	} else {
		w = nil
	}
	d.mu.Unlock()
	if w != nil {
		defer w.complete(waitErr)
	}
	if _, err := d.xl.do(ctx, "destroy", domainName(uuid)); err != nil && !errors.Is(err, domain.ErrNoDomain) {
		return err
	}
	cfg, err := d.writeConfig(spec)
	if err != nil {
		return err
	}
	if _, err := d.xl.do(ctx, "create", "-p", "-e", cfg); err != nil {
		d.drop(uuid, err)
		return err
	}
	domid, err := d.xl.domid(ctx, domainName(uuid))
	if err != nil {
		return err
	}
	d.mu.Lock()
	old := r.watched
	r.Domid, r.notified, r.agent, r.watched = domid, "", "", 0
	err = d.save(r)
	d.mu.Unlock()
	if old != 0 {
		d.unwatchAgent(uuid, old)
	}
	if err != nil {
		return err
	}
	if _, err := d.xl.do(ctx, "unpause", domainName(uuid)); err != nil {
		return err
	}
	d.poke()
	return nil
}

// Suspend saves the domain to path (`xl save`, which destroys it).
func (d *Driver) Suspend(ctx context.Context, uuid, path string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	unlock := d.opLock(uuid)
	defer unlock()
	r := d.begin(uuid)
	defer d.end(r)
	if _, err := d.xl.do(ctx, "save", domainName(uuid), path); err != nil {
		return err
	}
	d.drop(uuid, ErrInterrupted)
	return nil
}

// SetMemoryTarget sets the balloon target (`xl mem-set`).
func (d *Driver) SetMemoryTarget(ctx context.Context, uuid string, bytes int64) error {
	if bytes <= 0 {
		return fmt.Errorf("xen: memory target %d", bytes)
	}
	if err := d.simpleArgs(ctx, uuid, "mem-set", strconv.FormatInt((bytes+1023)/1024, 10)+"k"); err != nil {
		return err
	}
	return d.updateSpec(uuid, func(s *domain.Spec) { s.MemoryTarget = bytes })
}

// SetVCPUs sets the number of online vCPUs (`xl vcpu-set`).
func (d *Driver) SetVCPUs(ctx context.Context, uuid string, n int) error {
	if n < 1 {
		return fmt.Errorf("xen: %d vCPUs", n)
	}
	if err := d.simpleArgs(ctx, uuid, "vcpu-set", strconv.Itoa(n)); err != nil {
		return err
	}
	return d.updateSpec(uuid, func(s *domain.Spec) { s.VCPUs = n })
}

// updateSpec records a change of a running domain in its spec, so that a
// rebuild (guest reboot) keeps it.
func (d *Driver) updateSpec(uuid string, fn func(*domain.Spec)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.recs[uuid]
	if r == nil {
		return nil
	}
	fn(&r.Spec)
	return d.save(r)
}

func (d *Driver) specOf(uuid string) (domain.Spec, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.recs[uuid]
	if r == nil {
		return domain.Spec{}, noDomain(uuid)
	}
	return r.Spec, nil
}

// PlugDisk hot-plugs a disk (`xl block-attach`).
func (d *Driver) PlugDisk(ctx context.Context, uuid string, disk domain.Disk) error {
	spec, err := d.specOf(uuid)
	if err != nil {
		return err
	}
	ds, err := diskSpec(spec, disk)
	if err != nil {
		return err
	}
	if err := d.simpleArgs(ctx, uuid, "block-attach", ds); err != nil {
		return err
	}
	return d.updateSpec(uuid, func(s *domain.Spec) {
		s.Disks = append(slices.DeleteFunc(slices.Clone(s.Disks), func(x domain.Disk) bool { return x.Device == disk.Device }), disk)
	})
}

// UnplugDisk hot-unplugs a disk (`xl block-detach`).
func (d *Driver) UnplugDisk(ctx context.Context, uuid, device string) error {
	spec, err := d.specOf(uuid)
	if err != nil {
		return err
	}
	v, err := vdev(spec, device)
	if err != nil {
		return err
	}
	if err := d.simpleArgs(ctx, uuid, "block-detach", v); err != nil {
		return err
	}
	return d.updateSpec(uuid, func(s *domain.Spec) {
		s.Disks = slices.DeleteFunc(slices.Clone(s.Disks), func(x domain.Disk) bool { return x.Device == device })
	})
}

// PlugNIC hot-plugs a VIF (`xl network-attach`).
func (d *Driver) PlugNIC(ctx context.Context, uuid string, n domain.NIC) error {
	ns, err := nicSpec(n)
	if err != nil {
		return err
	}
	if err := d.simpleArgs(ctx, uuid, "network-attach", strings.Split(ns, ",")...); err != nil {
		return err
	}
	return d.updateSpec(uuid, func(s *domain.Spec) {
		s.NICs = append(slices.DeleteFunc(slices.Clone(s.NICs), func(x domain.NIC) bool { return x.Device == n.Device }), n)
	})
}

// UnplugNIC hot-unplugs a VIF (`xl network-detach`).
func (d *Driver) UnplugNIC(ctx context.Context, uuid, device string) error {
	if _, err := strconv.Atoi(device); err != nil {
		return fmt.Errorf("xen: bad VIF device %q", device)
	}
	if err := d.simpleArgs(ctx, uuid, "network-detach", device); err != nil {
		return err
	}
	return d.updateSpec(uuid, func(s *domain.Spec) {
		s.NICs = slices.DeleteFunc(slices.Clone(s.NICs), func(x domain.NIC) bool { return x.Device == device })
	})
}

// simpleArgs runs `xl <cmd> <domain> <args...>`.
func (d *Driver) simpleArgs(ctx context.Context, uuid, cmd string, args ...string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	unlock := d.opLock(uuid)
	defer unlock()
	r := d.begin(uuid)
	defer d.end(r)
	_, err := d.xl.do(ctx, append([]string{cmd, domainName(uuid)}, args...)...)
	return err
}

// ------------------------------------------------------------------ info

func (d *Driver) info(x xlDomain) (domain.Info, bool) {
	st, ok := x.state()
	if !ok {
		if x.reason() == reasonSuspend {
			st, ok = domain.Paused, true
		} else {
			return domain.Info{}, false
		}
	}
	in := domain.Info{UUID: x.UUID, Domid: x.Domid, State: st, MemoryActual: x.MemMiB * mib, VCPUs: x.VCPUs, CPUTime: x.CPUTime}
	d.mu.Lock()
	if r := d.recs[x.UUID]; r != nil {
		in.StartTime = r.Started
	}
	d.mu.Unlock()
	return in, true
}

// Info describes the domain of uuid, from `xl list -v`.
func (d *Driver) Info(ctx context.Context, uuid string) (domain.Info, error) {
	doms, err := d.xl.list(ctx)
	if err != nil {
		return domain.Info{}, err
	}
	for _, x := range doms {
		if x.UUID == uuid && x.Domid != 0 {
			if in, ok := d.info(x); ok {
				return in, nil
			}
		}
	}
	return domain.Info{}, noDomain(uuid)
}

// List describes every guest domain Xen runs (all but domain 0).
func (d *Driver) List(ctx context.Context) ([]domain.Info, error) {
	doms, err := d.xl.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []domain.Info
	for _, x := range doms {
		if x.Domid == 0 {
			continue
		}
		if in, ok := d.info(x); ok {
			out = append(out, in)
		}
	}
	return out, nil
}
