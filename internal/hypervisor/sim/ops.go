package sim

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/xenith/xenith/internal/domain"
)

// normalizeSpec copies spec (so the caller's maps and slices are not
// shared), fills defaults and validates it:
//   - UUID is required;
//   - MemoryTarget 0 means MemoryStaticMax, MemoryStaticMax 0 means
//     MemoryTarget; 0 < MemoryTarget <= MemoryStaticMax;
//   - VCPUsMax 0 means VCPUs (or 1), VCPUs 0 means VCPUsMax;
//     1 <= VCPUs <= VCPUsMax;
//   - disk and NIC device names are non-empty and unique per kind.
func normalizeSpec(spec domain.Spec) (domain.Spec, error) {
	s := spec
	s.Platform = maps.Clone(spec.Platform)
	s.Disks = slices.Clone(spec.Disks)
	s.NICs = slices.Clone(spec.NICs)
	bad := func(format string, a ...any) (domain.Spec, error) {
		return domain.Spec{}, fmt.Errorf("sim: spec of %q: %s: %w", spec.UUID, fmt.Sprintf(format, a...), ErrInvalid)
	}
	if s.UUID == "" {
		return bad("no uuid")
	}
	if s.MemoryTarget == 0 {
		s.MemoryTarget = s.MemoryStaticMax
	}
	if s.MemoryStaticMax == 0 {
		s.MemoryStaticMax = s.MemoryTarget
	}
	if s.MemoryTarget <= 0 || s.MemoryTarget > s.MemoryStaticMax {
		return bad("memory target %d not within 1..%d", s.MemoryTarget, s.MemoryStaticMax)
	}
	if s.VCPUsMax == 0 {
		s.VCPUsMax = max(s.VCPUs, 1)
	}
	if s.VCPUs == 0 {
		s.VCPUs = s.VCPUsMax
	}
	if s.VCPUs < 1 || s.VCPUs > s.VCPUsMax {
		return bad("VCPUs %d not within 1..%d", s.VCPUs, s.VCPUsMax)
	}
	if m := s.ShadowMultiplier; math.IsNaN(m) || m < 0 || m > MaxShadowMultiplier {
		return bad("shadow multiplier %v not within 1..%d", m, MaxShadowMultiplier)
	}
	seen := map[string]bool{}
	for _, dk := range s.Disks {
		if dk.Device == "" || seen[dk.Device] {
			return bad("disk device %q empty or repeated", dk.Device)
		}
		seen[dk.Device] = true
	}
	clear(seen)
	for _, n := range s.NICs {
		if n.Device == "" || seen[n.Device] {
			return bad("NIC device %q empty or repeated", n.Device)
		}
		seen[n.Device] = true
	}
	return s, nil
}

// needMemoryLocked fails with *domain.NoMemoryError unless extra bytes
// are free.
func (d *Driver) needMemoryLocked(op, uuid string, extra int64) error {
	if free := d.freeLocked(); extra > free {
		return fmt.Errorf("sim: %s %s: %w", op, uuid, &domain.NoMemoryError{Needed: extra, Available: max(free, 0)})
	}
	return nil
}

// wantState fails with *StateError unless x is in one of the states.
func wantState(x *dom, op string, states ...domain.State) error {
	if slices.Contains(states, x.state()) {
		return nil
	}
	return &StateError{UUID: x.rec.Spec.UUID, Op: op, State: x.state()}
}

// Create builds a paused domain from spec and gives it the next domid.
// It needs Footprint(spec.MemoryTarget) bytes free.
func (d *Driver) Create(ctx context.Context, spec domain.Spec) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d.mu.Lock()
	if err := d.checkLocked(opCreate, spec.UUID); err != nil {
		d.mu.Unlock()
		return 0, err
	}
	s, err := normalizeSpec(spec)
	if err != nil {
		d.mu.Unlock()
		return 0, err
	}
	rec := record{Spec: s}
	if s.HVM && s.ShadowMultiplier > 1 {
		rec.Shadow = s.ShadowMultiplier // accounted from the start
	}
	return d.addUnlock(opCreate, rec)
}

// addUnlock adds a paused domain made of rec (its Spec normalized) after
// the memory check, releases d.mu and persists the domain; if that fails
// the domain is taken away again (its domid is not reused).
func (d *Driver) addUnlock(op string, rec record) (int, error) {
	uuid := rec.Spec.UUID
	if _, ok := d.doms[uuid]; ok {
		d.mu.Unlock()
		return 0, fmt.Errorf("sim: %s %s: %w", op, uuid, ErrExists)
	}
	if err := d.needMemoryLocked(op, uuid, Footprint(rec.Spec.MemoryTarget)+shadowExtra(&rec)); err != nil {
		d.mu.Unlock()
		return 0, err
	}
	rec.Domid = d.nextDomid
	d.nextDomid++
	rec.State = jsonState(domain.Paused)
	rec.StartTime = d.now()
	rec.CPUTime, rec.CPUSince, rec.UpSince = 0, timeZero, timeZero
	rec.VCPUTime, rec.DiskIO, rec.NICIO = nil, nil, nil // a new domain's counters
	x := &dom{rec: rec}
	d.guestResumed(x)
	d.doms[uuid] = x
	gen := d.markLocked()
	d.mu.Unlock()
	if err := d.flush(gen); err != nil {
		d.mu.Lock()
		if d.doms[uuid] == x && x.state() == domain.Paused {
			d.remove(x)
			d.markLocked()
		}
		d.mu.Unlock()
		return 0, err
	}
	return rec.Domid, nil
}

// Unpause runs a paused domain. The guest clock runs from here: a fresh
// guest boots, and its agent reports BootTime+AgentDelay of running time
// later.
func (d *Driver) Unpause(ctx context.Context, uuid string) error {
	return d.change(ctx, opUnpause, uuid, func(x *dom) error {
		if err := wantState(x, opUnpause, domain.Paused); err != nil {
			return err
		}
		d.startRunning(x)
		d.advance(x)
		return nil
	})
}

// Pause stops a running domain; its guest clock and CPU time stop too.
func (d *Driver) Pause(ctx context.Context, uuid string) error {
	return d.change(ctx, opPause, uuid, func(x *dom) error {
		if err := wantState(x, opPause, domain.Running); err != nil {
			return err
		}
		d.stopRunning(x, domain.Paused)
		return nil
	})
}

// Shutdown asks the guest to halt (reboot=false) or reboot, and waits. The
// guest obeys ShutdownTime of running time after it has both booted and
// seen the request; a paused guest does not progress and a hung guest
// never obeys. On a halt the domain is gone (its memory freed); on a
// reboot it restarts in place (same domid, guest clock from zero, a new
// agent report). If ctx ends first the request is withdrawn and ctx.Err()
// returned. Calls for the same request share it; asking for the other
// kind while one is pending is a *StateError.
func (d *Driver) Shutdown(ctx context.Context, uuid string, reboot bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	x, err := d.getLocked(opShutdown, uuid)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	kind := pendingHalt
	if reboot {
		kind = pendingReboot
	}
	if err := wantState(x, opShutdown, domain.Running, domain.Paused); err != nil {
		d.mu.Unlock()
		return err
	}
	switch x.rec.Pending {
	case "":
		x.rec.Pending, x.rec.PendingAt = kind, x.uptime()
		x.req = &request{reboot: reboot, done: make(chan struct{})}
	case kind:
		if x.req == nil { // defensive: pending requests always have waiters
			x.req = &request{reboot: reboot, done: make(chan struct{})}
		}
	default:
		d.mu.Unlock()
		return &StateError{UUID: uuid, Op: opShutdown, State: x.state(), Why: "a clean " + x.rec.Pending + " is in progress"}
	}
	req := x.req
	req.waiters++
	d.advance(x)
	gen := d.markLocked()
	d.mu.Unlock()
	_ = d.flush(gen) // the guest has the request anyway; a disk failure shows again in flushDone

	select {
	case <-req.done:
		return d.flushDone(req)
	case <-ctx.Done():
	case <-d.closedCh:
		return ErrClosed
	}
	d.mu.Lock()
	select {
	case <-req.done: // finished while we were giving up
		d.mu.Unlock()
		return d.flushDone(req)
	default:
	}
	req.waiters--
	if req.waiters > 0 || d.doms[uuid] != x || x.req != req || d.closed {
		d.mu.Unlock()
		return ctx.Err()
	}
	finishRequest(x, ctx.Err())
	d.reschedule(x)
	gen = d.markLocked()
	d.mu.Unlock()
	_ = d.flush(gen)
	return ctx.Err()
}

// flushDone returns the outcome of a finished request once the state it
// left is on disk.
func (d *Driver) flushDone(req *request) error {
	if req.err != nil {
		return req.err
	}
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	return d.flush(gen)
}

// Destroy kills the domain at once, whatever its state, and frees its
// memory. A pending clean shutdown fails with ErrInterrupted.
func (d *Driver) Destroy(ctx context.Context, uuid string) error {
	return d.change(ctx, opDestroy, uuid, func(x *dom) error {
		interrupt(x, "destroyed")
		d.remove(x)
		return nil
	})
}

// Reset hard-reboots the domain in place from any state: same domid and
// memory, the guest restarts (clock from zero, new agent report, a hang
// ends) and the domain is running afterwards.
func (d *Driver) Reset(ctx context.Context, uuid string) error {
	return d.change(ctx, opReset, uuid, func(x *dom) error {
		interrupt(x, "reset")
		d.rebootInPlace(x)
		d.advance(x)
		return nil
	})
}

// Suspend saves a running or paused domain to a suspend image at path
// (parent directories are created) and removes the domain. See
// suspend.go for the image format.
func (d *Driver) Suspend(ctx context.Context, uuid, path string) error {
	return d.change(ctx, opSuspend, uuid, func(x *dom) error {
		if err := wantState(x, opSuspend, domain.Running, domain.Paused); err != nil {
			return err
		}
		img := x.rec
		img.Spec = cloneSpec(x.rec.Spec)
		img.Uptime, img.UpSince = x.uptime(), timeZero
		img.CPUTime, img.CPUSince = d.cpuTime(x), timeZero
		img.Pending, img.PendingAt = "", 0
		if err := writeImage(path, &img); err != nil {
			return fmt.Errorf("sim: suspend %s: %w", uuid, err)
		}
		interrupt(x, "suspended")
		d.remove(x)
		return nil
	})
}

// Resume rebuilds a paused domain, with a new domid, from spec and the
// image at path: devices and limits come from spec, the memory target,
// online VCPUs and the guest's progress from the image. A guest that had
// booted does not boot again; its agent reports AgentDelay after Unpause.
func (d *Driver) Resume(ctx context.Context, spec domain.Spec, path string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d.mu.Lock()
	if err := d.checkLocked(opResume, spec.UUID); err != nil {
		d.mu.Unlock()
		return 0, err
	}
	d.mu.Unlock()

	img, err := readImage(path)
	if err != nil {
		return 0, fmt.Errorf("sim: resume %s: %w", spec.UUID, err)
	}
	if img.Spec.UUID != spec.UUID {
		return 0, fmt.Errorf("sim: resume %s: image %s belongs to VM %s: %w", spec.UUID, path, img.Spec.UUID, ErrBadImage)
	}
	if img.Load != nil {
		if err := img.Load.check(); err != nil {
			return 0, fmt.Errorf("sim: resume %s: image %s: load: %v: %w", spec.UUID, path, err, ErrBadImage)
		}
	}
	s, err := normalizeSpec(spec)
	if err != nil {
		return 0, err
	}
	if img.Spec.MemoryTarget > 0 {
		s.MemoryTarget = min(img.Spec.MemoryTarget, s.MemoryStaticMax)
	}
	if img.Spec.VCPUs > 0 {
		s.VCPUs = min(img.Spec.VCPUs, s.VCPUsMax)
	}
	rec := record{
		Spec:    s,
		Uptime:  img.Uptime,
		AgentAt: max(img.Uptime, d.opts.BootTime) + d.opts.AgentDelay,
		Hung:    img.Hung,
		S3:      img.S3 && s.HVM,
		Shadow:  img.Shadow,
		Addrs:   img.Addrs,
		Load:    img.Load,
	}

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return 0, ErrClosed
	}
	return d.addUnlock(opResume, rec)
}

// SetMemoryTarget sets the balloon target of a running or paused domain,
// within 1..MemoryStaticMax. MemoryActual follows at once. Growing needs
// Footprint(new)-Footprint(old) free bytes (*domain.NoMemoryError carries
// that difference as Needed).
func (d *Driver) SetMemoryTarget(ctx context.Context, uuid string, bytes int64) error {
	return d.change(ctx, opSetMemoryTarget, uuid, func(x *dom) error {
		if err := wantState(x, opSetMemoryTarget, domain.Running, domain.Paused); err != nil {
			return err
		}
		if bytes <= 0 || bytes > x.rec.Spec.MemoryStaticMax {
			return fmt.Errorf("sim: memory target %d of %s not within 1..%d: %w", bytes, uuid, x.rec.Spec.MemoryStaticMax, ErrInvalid)
		}
		if extra := Footprint(bytes) - Footprint(x.rec.Spec.MemoryTarget); extra > 0 {
			if err := d.needMemoryLocked(opSetMemoryTarget, uuid, extra); err != nil {
				return err
			}
		}
		x.rec.Spec.MemoryTarget = bytes
		return nil
	})
}

// SetVCPUs sets the online VCPUs of a running or paused domain, within
// 1..VCPUsMax.
func (d *Driver) SetVCPUs(ctx context.Context, uuid string, n int) error {
	return d.change(ctx, opSetVCPUs, uuid, func(x *dom) error {
		if err := wantState(x, opSetVCPUs, domain.Running, domain.Paused); err != nil {
			return err
		}
		if n < 1 || n > x.rec.Spec.VCPUsMax {
			return fmt.Errorf("sim: VCPUs %d of %s not within 1..%d: %w", n, uuid, x.rec.Spec.VCPUsMax, ErrInvalid)
		}
		d.foldClocks(x)
		x.rec.Spec.VCPUs = n
		d.devicesChanged(x)
		return nil
	})
}

// PlugDisk hotplugs a disk into a running or paused domain; its Device
// must be new (ErrDeviceExists).
func (d *Driver) PlugDisk(ctx context.Context, uuid string, dk domain.Disk) error {
	return d.device(ctx, opPlugDisk, uuid, func(x *dom) error {
		if dk.Device == "" {
			return fmt.Errorf("sim: plug disk into %s: empty device: %w", uuid, ErrInvalid)
		}
		if slices.ContainsFunc(x.rec.Spec.Disks, func(o domain.Disk) bool { return o.Device == dk.Device }) {
			return fmt.Errorf("sim: plug disk %s into %s: %w", dk.Device, uuid, ErrDeviceExists)
		}
		x.rec.Spec.Disks = append(x.rec.Spec.Disks, dk)
		return nil
	})
}

// UnplugDisk removes a disk; ErrNoDevice if the domain has none by that
// device name.
func (d *Driver) UnplugDisk(ctx context.Context, uuid, device string) error {
	return d.device(ctx, opUnplugDisk, uuid, func(x *dom) error {
		i := slices.IndexFunc(x.rec.Spec.Disks, func(o domain.Disk) bool { return o.Device == device })
		if i < 0 {
			return fmt.Errorf("sim: unplug disk %s from %s: %w", device, uuid, ErrNoDevice)
		}
		x.rec.Spec.Disks = slices.Delete(x.rec.Spec.Disks, i, i+1)
		return nil
	})
}

// PlugNIC hotplugs a NIC into a running or paused domain; its Device must
// be new (ErrDeviceExists). A guest whose agent has reported reports
// again with the new network.
func (d *Driver) PlugNIC(ctx context.Context, uuid string, n domain.NIC) error {
	return d.device(ctx, opPlugNIC, uuid, func(x *dom) error {
		if n.Device == "" {
			return fmt.Errorf("sim: plug NIC into %s: empty device: %w", uuid, ErrInvalid)
		}
		if slices.ContainsFunc(x.rec.Spec.NICs, func(o domain.NIC) bool { return o.Device == n.Device }) {
			return fmt.Errorf("sim: plug NIC %s into %s: %w", n.Device, uuid, ErrDeviceExists)
		}
		x.rec.Spec.NICs = append(x.rec.Spec.NICs, n)
		x.rec.AgentDone = false
		return nil
	})
}

// UnplugNIC removes a NIC; ErrNoDevice if the domain has none by that
// device name. A guest whose agent has reported reports again.
func (d *Driver) UnplugNIC(ctx context.Context, uuid, device string) error {
	return d.device(ctx, opUnplugNIC, uuid, func(x *dom) error {
		i := slices.IndexFunc(x.rec.Spec.NICs, func(o domain.NIC) bool { return o.Device == device })
		if i < 0 {
			return fmt.Errorf("sim: unplug NIC %s from %s: %w", device, uuid, ErrNoDevice)
		}
		x.rec.Spec.NICs = slices.Delete(x.rec.Spec.NICs, i, i+1)
		x.rec.AgentDone = false
		return nil
	})
}

func (d *Driver) device(ctx context.Context, op, uuid string, plug func(*dom) error) error {
	return d.change(ctx, op, uuid, func(x *dom) error {
		if err := wantState(x, op, domain.Running, domain.Paused); err != nil {
			return err
		}
		// What the old devices moved so far is theirs; a new device
		// starts from zero.
		d.foldClocks(x)
		if err := plug(x); err != nil {
			return err
		}
		dropGoneDevices(x)
		d.devicesChanged(x)
		d.advance(x)
		return nil
	})
}

// Info describes one domain (MemoryActual is its balloon target, CPUTime
// the same as Stats').
func (d *Driver) Info(ctx context.Context, uuid string) (domain.Info, error) {
	if err := ctx.Err(); err != nil {
		return domain.Info{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	x, err := d.getLocked(opInfo, uuid)
	if err != nil {
		return domain.Info{}, err
	}
	return d.info(x), nil
}

// List describes every domain, in domid order.
func (d *Driver) List(ctx context.Context) ([]domain.Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkLocked(opList, ""); err != nil {
		return nil, err
	}
	out := make([]domain.Info, 0, len(d.doms))
	for _, x := range d.doms {
		out = append(out, d.info(x))
	}
	slices.SortFunc(out, func(a, b domain.Info) int { return a.Domid - b.Domid })
	return out, nil
}

func (d *Driver) info(x *dom) domain.Info {
	return domain.Info{
		UUID:         x.rec.Spec.UUID,
		Domid:        x.rec.Domid,
		State:        x.state(),
		MemoryActual: x.rec.Spec.MemoryTarget,
		VCPUs:        x.rec.Spec.VCPUs,
		StartTime:    x.rec.StartTime,
		CPUTime:      d.cpuTime(x),
	}
}

// Devices returns the disks and NICs a domain has now (a simulator
// extra, not part of domain.Driver).
func (d *Driver) Devices(uuid string) ([]domain.Disk, []domain.NIC, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, ErrClosed
	}
	x, ok := d.doms[uuid]
	if !ok {
		return nil, nil, noDomain(uuid)
	}
	return slices.Clone(x.rec.Spec.Disks), slices.Clone(x.rec.Spec.NICs), nil
}

func cloneSpec(s domain.Spec) domain.Spec {
	s.Platform = maps.Clone(s.Platform)
	s.Disks = slices.Clone(s.Disks)
	s.NICs = slices.Clone(s.NICs)
	return s
}
