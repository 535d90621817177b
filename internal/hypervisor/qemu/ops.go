package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hypervisor/qemu/qmp"
)

// UnplugTimeout bounds how long an unplug waits for the guest to release
// the device (ACPI hot-unplug needs its cooperation).
var UnplugTimeout = 30 * time.Second

func normalize(spec domain.Spec) (domain.Spec, error) {
	s := spec
	s.Platform = maps.Clone(spec.Platform)
	if s.Platform == nil {
		s.Platform = map[string]string{}
	}
	s.Disks = slices.Clone(spec.Disks)
	s.NICs = slices.Clone(spec.NICs)
	if s.UUID == "" {
		return s, errors.New("qemu: spec without uuid")
	}
	if s.MemoryStaticMax <= 0 {
		s.MemoryStaticMax = s.MemoryTarget
	}
	if s.MemoryTarget <= 0 || s.MemoryTarget > s.MemoryStaticMax {
		s.MemoryTarget = s.MemoryStaticMax
	}
	if s.MemoryStaticMax < 16<<20 {
		return s, fmt.Errorf("qemu: memory %d below 16 MiB: %w", s.MemoryStaticMax, ErrUnsupported)
	}
	s.VCPUs = max(s.VCPUs, 1)
	s.VCPUsMax = max(s.VCPUsMax, s.VCPUs)
	seen := map[string]bool{}
	for _, d := range s.Disks {
		if d.Device == "" || seen[d.Device] {
			return s, fmt.Errorf("qemu: disk device %q empty or repeated", d.Device)
		}
		seen[d.Device] = true
		if d.Path == "" && !d.CD {
			return s, fmt.Errorf("qemu: disk %q has no image", d.Device)
		}
	}
	clear(seen)
	for _, n := range s.NICs {
		if n.Device == "" || seen[n.Device] {
			return s, fmt.Errorf("qemu: NIC device %q empty or repeated", n.Device)
		}
		seen[n.Device] = true
	}
	return s, nil
}

// reserve claims uuid for a Create or Resume and hands out its domid.
func (d *Driver) reserve(ctx context.Context, s domain.Spec) (int, error) {
	hi, err := d.Host(ctx)
	if err != nil {
		return 0, err
	}
	need := s.MemoryStaticMax + Overhead(s.MemoryStaticMax)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, ErrClosed
	}
	if _, ok := d.doms[s.UUID]; ok {
		return 0, fmt.Errorf("qemu: %s: %w", s.UUID, ErrExists)
	}
	if need > hi.FreeMemory {
		return 0, fmt.Errorf("qemu: %s: %w", s.UUID, &domain.NoMemoryError{Needed: need, Available: hi.FreeMemory})
	}
	domid, err := d.nextDomid()
	if err != nil {
		return 0, err
	}
	d.doms[s.UUID] = &vm{d: d, uuid: s.UUID, dir: d.domDir(s.UUID), dead: true, status: "starting", stopping: true, rec: record{Spec: s}}
	return domid, nil
}

func (d *Driver) install(x *vm, uuid string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if x == nil {
		delete(d.doms, uuid)
		return
	}
	d.doms[uuid] = x
}

// Create starts QEMU for spec, paused (-S).
func (d *Driver) Create(ctx context.Context, spec domain.Spec) (int, error) {
	s, err := normalize(spec)
	if err != nil {
		return 0, err
	}
	domid, err := d.reserve(ctx, s)
	if err != nil {
		return 0, err
	}
	x, err := d.start(ctx, s, domid, nil)
	if err != nil {
		d.install(nil, s.UUID)
		return 0, err
	}
	if s.MemoryTarget < s.MemoryStaticMax {
		_ = x.exec(ctx, "balloon", map[string]any{"value": s.MemoryTarget}, nil)
	}
	d.install(x, s.UUID)
	d.log.Info("QEMU started", "uuid", s.UUID, "domid", domid, "pid", x.rec.Pid)
	return domid, nil
}

func (x *vm) currentStatus(ctx context.Context) string {
	var st struct {
		Status string `json:"status"`
	}
	if err := x.exec(ctx, "query-status", nil, &st); err == nil {
		x.mu.Lock()
		x.status = st.Status
		x.mu.Unlock()
		return st.Status
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.status
}

func stateOf(status string) domain.State {
	switch status {
	case "running":
		return domain.Running
	case "shutdown":
		return domain.Halted
	case "guest-panicked", "internal-error", "dead", "io-error":
		return domain.Crashed
	}
	return domain.Paused
}

func badState(x *vm, op, status string) error {
	return fmt.Errorf("qemu: cannot %s domain %s: it is %s: %w", op, x.uuid, status, ErrBadState)
}

// Unpause runs a paused domain.
func (d *Driver) Unpause(ctx context.Context, uuid string) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	st := x.currentStatus(ctx)
	if s := stateOf(st); s == domain.Running {
		return nil
	} else if s != domain.Paused {
		return badState(x, "unpause", st)
	}
	return x.exec(ctx, "cont", nil, nil)
}

// Pause stops a running domain's vCPUs.
func (d *Driver) Pause(ctx context.Context, uuid string) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	if st := x.currentStatus(ctx); stateOf(st) != domain.Running {
		return badState(x, "pause", st)
	}
	return x.exec(ctx, "stop", nil, nil)
}

func guestEvent(name string) func(qmp.Event) bool {
	return func(ev qmp.Event) bool { return ev.Name == name && eventData{}.of(ev).Guest }
}

// Shutdown presses the ACPI power button (halt) or sends Ctrl-Alt-Del
// (reboot) and waits for the guest to act. After a halt QEMU is gone.
func (d *Driver) Shutdown(ctx context.Context, uuid string, reboot bool) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	st := x.currentStatus(ctx)
	if !reboot && st == "shutdown" {
		return d.Destroy(ctx, uuid)
	}
	if s := stateOf(st); s != domain.Running && s != domain.Paused {
		return badState(x, "shut down", st)
	}
	if reboot {
		w := x.wait(true, guestEvent("RESET"))
		if err := x.exec(ctx, "send-key", map[string]any{"keys": []map[string]string{
			{"type": "qcode", "data": "ctrl"}, {"type": "qcode", "data": "alt"}, {"type": "qcode", "data": "delete"}}}, nil); err != nil {
			x.unwait(w)
			return err
		}
		_, err := x.await(ctx, w)
		return err
	}
	w := x.wait(true, guestEvent("SHUTDOWN"))
	if err := x.exec(ctx, "system_powerdown", nil, nil); err != nil {
		x.unwait(w)
		return err
	}
	if _, err := x.await(ctx, w); err != nil {
		return err
	}
	return d.Destroy(context.WithoutCancel(ctx), uuid)
}

// Destroy ends QEMU at once.
func (d *Driver) Destroy(ctx context.Context, uuid string) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	if err := x.terminate(ctx); err != nil {
		return err
	}
	d.remove(x)
	d.log.Info("QEMU stopped", "uuid", uuid)
	return nil
}

// Reset reboots the domain in place and leaves it running; a domain whose
// QEMU died gets a new one (same domid).
func (d *Driver) Reset(ctx context.Context, uuid string) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	x.mu.Lock()
	dead, rec := x.dead, x.rec
	x.mu.Unlock()
	if dead {
		_ = x.terminate(ctx)
		nx, err := d.start(ctx, rec.Spec, rec.Domid, nil)
		if err != nil {
			d.remove(x)
			return err
		}
		d.install(nx, uuid)
		return nx.exec(ctx, "cont", nil, nil)
	}
	if err := x.exec(ctx, "system_reset", nil, nil); err != nil {
		return err
	}
	if x.currentStatus(ctx) != "running" {
		return x.exec(ctx, "cont", nil, nil)
	}
	return nil
}

// qcow2Magic starts a qcow2 image; a suspend image must be a raw file.
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// Suspend saves the domain (QMP migrate to the file at path) and ends QEMU.
func (d *Driver) Suspend(ctx context.Context, uuid, path string) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	st := x.currentStatus(ctx)
	if s := stateOf(st); s != domain.Running && s != domain.Paused {
		return badState(x, "suspend", st)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 4)
	if n, _ := f.ReadAt(head, 0); n == 4 && bytes.Equal(head, qcow2Magic) {
		return fmt.Errorf("qemu: suspend image %s is qcow2; it must be raw: %w", path, ErrUnsupported)
	}
	mon, err := x.monitor()
	if err != nil {
		return err
	}
	if st == "running" {
		if err := mon.Execute(ctx, "stop", nil, nil); err != nil {
			return err
		}
	}
	fail := func(err error) error {
		if st == "running" {
			_ = mon.Execute(context.WithoutCancel(ctx), "cont", nil, nil)
		}
		return err
	}
	if err := mon.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}, nil); err != nil {
		return fail(err)
	}
	if err := mon.ExecuteFD(ctx, "getfd", map[string]any{"fdname": "suspend"}, int(f.Fd()), nil); err != nil {
		return fail(err)
	}
	if err := mon.Execute(ctx, "migrate", map[string]any{"uri": "fd:suspend"}, nil); err != nil {
		return fail(err)
	}
	for {
		var q struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := mon.Execute(ctx, "query-migrate", nil, &q); err != nil {
			if ctx.Err() != nil {
				_ = mon.Execute(context.WithoutCancel(ctx), "migrate_cancel", nil, nil)
			}
			return fail(err)
		}
		switch q.Status {
		case "completed":
			if err := f.Sync(); err != nil {
				return fail(err)
			}
			if err := x.terminate(ctx); err != nil {
				return err
			}
			d.remove(x)
			return nil
		case "failed", "cancelled":
			return fail(fmt.Errorf("qemu: saving domain %s: migration %s: %s", uuid, q.Status, q.ErrorDesc))
		}
		select {
		case <-ctx.Done():
			_ = mon.Execute(context.WithoutCancel(ctx), "migrate_cancel", nil, nil)
			return fail(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Resume starts QEMU for spec loading the image saved at path; the domain
// is left paused.
func (d *Driver) Resume(ctx context.Context, spec domain.Spec, path string) (int, error) {
	s, err := normalize(spec)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	domid, err := d.reserve(ctx, s)
	if err != nil {
		return 0, err
	}
	x, err := d.start(ctx, s, domid, f)
	if err != nil {
		d.install(nil, s.UUID)
		return 0, err
	}
	for {
		st := x.currentStatus(ctx)
		if x.isDead() {
			_ = x.terminate(context.WithoutCancel(ctx))
			d.install(nil, s.UUID)
			return 0, fmt.Errorf("qemu: QEMU exited loading the suspend image %s (not an image of this VM?)", path)
		}
		if st != "inmigrate" {
			break
		}
		select {
		case <-ctx.Done():
			_ = x.terminate(context.WithoutCancel(ctx))
			d.install(nil, s.UUID)
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	d.install(x, s.UUID)
	return domid, nil
}

func (x *vm) isDead() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.dead
}

// update changes the recorded spec and saves it.
func (x *vm) update(fn func(s *domain.Spec)) error {
	x.mu.Lock()
	fn(&x.rec.Spec)
	x.mu.Unlock()
	return x.save()
}

// SetMemoryTarget sets the balloon target.
func (d *Driver) SetMemoryTarget(ctx context.Context, uuid string, bytes int64) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	x.mu.Lock()
	maxMem := x.rec.Spec.MemoryStaticMax
	x.mu.Unlock()
	if bytes <= 0 || bytes > maxMem {
		return fmt.Errorf("qemu: memory target %d not within 1..%d: %w", bytes, maxMem, ErrUnsupported)
	}
	if err := x.exec(ctx, "balloon", map[string]any{"value": bytes}, nil); err != nil {
		return err
	}
	return x.update(func(s *domain.Spec) { s.MemoryTarget = bytes })
}

type hotCPU struct {
	Type    string         `json:"type"`
	Props   map[string]any `json:"props"`
	QOMPath string         `json:"qom-path"`
}

// SetVCPUs hot-plugs or unplugs vCPUs up to the -smp maxcpus.
func (d *Driver) SetVCPUs(ctx context.Context, uuid string, n int) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	x.mu.Lock()
	maxN := x.rec.Spec.VCPUsMax
	x.mu.Unlock()
	if n < 1 || n > maxN {
		return fmt.Errorf("qemu: VCPUs %d not within 1..%d: %w", n, maxN, ErrUnsupported)
	}
	var cpus []hotCPU
	if err := x.exec(ctx, "query-hotpluggable-cpus", nil, &cpus); err != nil {
		return err
	}
	key := func(c hotCPU) string {
		return fmt.Sprintf("%v-%v-%v-%v", c.Props["socket-id"], c.Props["die-id"], c.Props["core-id"], c.Props["thread-id"])
	}
	sort.Slice(cpus, func(i, j int) bool { return key(cpus[i]) < key(cpus[j]) })
	var plugged, free []hotCPU
	for _, c := range cpus {
		if c.QOMPath != "" {
			plugged = append(plugged, c)
		} else {
			free = append(free, c)
		}
	}
	for i := len(plugged); i < n && len(free) > 0; i++ {
		c := free[0]
		free = free[1:]
		args := map[string]any{"driver": c.Type, "id": "vcpu-" + strings.ReplaceAll(key(c), "<nil>", "x")}
		maps.Copy(args, c.Props)
		delete(args, "node-id")
		if err := x.exec(ctx, "device_add", args, nil); err != nil {
			return err
		}
	}
	for i := len(plugged); i > n; i-- {
		if err := x.exec(ctx, "device_del", map[string]any{"id": plugged[i-1].QOMPath}, nil); err != nil {
			return err
		}
	}
	return x.update(func(s *domain.Spec) { s.VCPUs = n })
}

func (x *vm) platform() map[string]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rec.Spec.Platform
}

// PlugDisk hot-plugs a virtio or SCSI disk (IDE cannot be hot-plugged).
func (d *Driver) PlugDisk(ctx context.Context, uuid string, disk domain.Disk) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	pf := x.platform()
	x.mu.Lock()
	exists := slices.ContainsFunc(x.rec.Spec.Disks, func(o domain.Disk) bool { return o.Device == disk.Device })
	hasSCSI := slices.ContainsFunc(x.rec.Spec.Disks, func(o domain.Disk) bool {
		p, err := placeDisk(o.Device, o.CD, pf)
		return err == nil && p.kind == busSCSI
	})
	x.mu.Unlock()
	if exists {
		return fmt.Errorf("qemu: disk %s of %s: %w", disk.Device, uuid, ErrDeviceExists)
	}
	if disk.Path == "" {
		return fmt.Errorf("qemu: disk %s has no image", disk.Device)
	}
	p, err := placeDisk(disk.Device, disk.CD, pf)
	if err != nil {
		return err
	}
	if p.kind == busIDE {
		return fmt.Errorf("qemu: IDE disk %s cannot be hot-plugged: %w", disk.Device, ErrUnsupported)
	}
	kv, err := diskDevice(disk, pf, -1)
	if err != nil {
		return err
	}
	if p.kind == busSCSI && !hasSCSI {
		if err := x.exec(ctx, "device_add", map[string]any{"driver": "virtio-scsi-pci", "id": "scsi0", "bus": pciBus(pf), "addr": fmt.Sprintf("0x%x", scsiSlot)}, nil); err != nil {
			return err
		}
	}
	if err := x.exec(ctx, "blockdev-add", blockdev(disk), nil); err != nil {
		return err
	}
	if err := x.exec(ctx, "device_add", kvMap(kv), nil); err != nil {
		_ = x.exec(context.WithoutCancel(ctx), "blockdev-del", map[string]any{"node-name": diskNode(disk.Device)}, nil)
		return err
	}
	return x.update(func(s *domain.Spec) { s.Disks = append(s.Disks, disk) })
}

// unplugDevice removes a device and waits for the guest to let it go.
func (x *vm) unplugDevice(ctx context.Context, id string) error {
	w := x.wait(false, func(ev qmp.Event) bool { return ev.Name == "DEVICE_DELETED" && eventData{}.of(ev).Device == id })
	if err := x.exec(ctx, "device_del", map[string]any{"id": id}, nil); err != nil {
		x.unwait(w)
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, UnplugTimeout)
	defer cancel()
	if _, err := x.await(wctx, w); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("qemu: the guest did not release %s within %v", id, UnplugTimeout)
		}
		return err
	}
	return nil
}

// UnplugDisk hot-unplugs a virtio or SCSI disk.
func (d *Driver) UnplugDisk(ctx context.Context, uuid, device string) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	x.mu.Lock()
	i := slices.IndexFunc(x.rec.Spec.Disks, func(o domain.Disk) bool { return o.Device == device })
	var disk domain.Disk
	if i >= 0 {
		disk = x.rec.Spec.Disks[i]
	}
	pf := x.rec.Spec.Platform
	x.mu.Unlock()
	if i < 0 {
		return fmt.Errorf("qemu: disk %s of %s: %w", device, uuid, ErrNoDevice)
	}
	if p, err := placeDisk(disk.Device, disk.CD, pf); err != nil || p.kind == busIDE {
		return fmt.Errorf("qemu: IDE disk %s cannot be hot-unplugged: %w", device, ErrUnsupported)
	}
	if err := x.unplugDevice(ctx, diskID(device)); err != nil {
		return err
	}
	_ = x.exec(ctx, "blockdev-del", map[string]any{"node-name": diskNode(device)}, nil)
	return x.update(func(s *domain.Spec) {
		s.Disks = slices.DeleteFunc(s.Disks, func(o domain.Disk) bool { return o.Device == device })
	})
}

// ChangeMedium puts d.Path into the CD drive d.Device, or ejects it when
// d.Path is "".
func (d *Driver) ChangeMedium(ctx context.Context, uuid string, disk domain.Disk) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	x.mu.Lock()
	i := slices.IndexFunc(x.rec.Spec.Disks, func(o domain.Disk) bool { return o.Device == disk.Device && o.CD })
	x.mu.Unlock()
	if i < 0 {
		return fmt.Errorf("qemu: CD drive %s of %s: %w", disk.Device, uuid, ErrNoDevice)
	}
	if disk.Path == "" {
		err = x.exec(ctx, "eject", map[string]any{"id": diskID(disk.Device), "force": true}, nil)
	} else {
		format := disk.Format
		if format == "" {
			format = "raw"
		}
		err = x.exec(ctx, "blockdev-change-medium", map[string]any{"id": diskID(disk.Device), "filename": disk.Path,
			"format": format, "read-only-mode": "read-only"}, nil)
	}
	if err != nil {
		return err
	}
	return x.update(func(s *domain.Spec) {
		for j := range s.Disks {
			if s.Disks[j].Device == disk.Device {
				s.Disks[j].Path, s.Disks[j].Format = disk.Path, disk.Format
			}
		}
	})
}

// PlugNIC hot-plugs a virtio NIC.
func (d *Driver) PlugNIC(ctx context.Context, uuid string, n domain.NIC) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	pf := x.platform()
	x.mu.Lock()
	exists := slices.ContainsFunc(x.rec.Spec.NICs, func(o domain.NIC) bool { return o.Device == n.Device })
	domid := x.rec.Domid
	x.mu.Unlock()
	if exists {
		return fmt.Errorf("qemu: NIC %s of %s: %w", n.Device, uuid, ErrDeviceExists)
	}
	kv, err := nicDevice(n, pf, -1)
	if err != nil {
		return err
	}
	tap := ""
	netdev := map[string]any{"type": "user", "id": netdevID(n.Device), "restrict": true}
	if bridgeUsable(n.Bridge) {
		name := tapName(domid, n.Device)
		f, err := openTap(name, n.Bridge, n.MTU)
		if err == nil {
			mon, merr := x.monitor()
			if merr == nil {
				merr = mon.ExecuteFD(ctx, "getfd", map[string]any{"fdname": "tap-" + n.Device}, int(f.Fd()), nil)
			}
			f.Close()
			if merr != nil {
				return merr
			}
			tap = name
			netdev = map[string]any{"type": "tap", "id": netdevID(n.Device), "fd": "tap-" + n.Device}
		} else {
			d.log.Warn("tap on bridge failed; user-mode networking instead", "uuid", uuid, "bridge", n.Bridge, "err", err)
		}
	}
	if err := x.exec(ctx, "netdev_add", netdev, nil); err != nil {
		return err
	}
	if err := x.exec(ctx, "device_add", kvMap(kv), nil); err != nil {
		_ = x.exec(context.WithoutCancel(ctx), "netdev_del", map[string]any{"id": netdevID(n.Device)}, nil)
		return err
	}
	return x.update(func(s *domain.Spec) {
		s.NICs = append(s.NICs, n)
		if tap != "" {
			if x.rec.Taps == nil {
				x.rec.Taps = map[string]string{}
			}
			x.rec.Taps[n.Device] = tap
		}
	})
}

// UnplugNIC hot-unplugs a NIC.
func (d *Driver) UnplugNIC(ctx context.Context, uuid, device string) error {
	x, err := d.get(uuid)
	if err != nil {
		return err
	}
	x.mu.Lock()
	exists := slices.ContainsFunc(x.rec.Spec.NICs, func(o domain.NIC) bool { return o.Device == device })
	x.mu.Unlock()
	if !exists {
		return fmt.Errorf("qemu: NIC %s of %s: %w", device, uuid, ErrNoDevice)
	}
	if err := x.unplugDevice(ctx, nicID(device)); err != nil {
		return err
	}
	_ = x.exec(ctx, "netdev_del", map[string]any{"id": netdevID(device)}, nil)
	return x.update(func(s *domain.Spec) {
		s.NICs = slices.DeleteFunc(s.NICs, func(o domain.NIC) bool { return o.Device == device })
		delete(x.rec.Taps, device)
	})
}

// Info describes a domain.
func (d *Driver) Info(ctx context.Context, uuid string) (domain.Info, error) {
	x, err := d.get(uuid)
	if err != nil {
		return domain.Info{}, err
	}
	return x.info(ctx), nil
}

func (x *vm) info(ctx context.Context) domain.Info {
	st := x.currentStatus(ctx)
	x.mu.Lock()
	rec := x.rec
	x.mu.Unlock()
	in := domain.Info{UUID: x.uuid, Domid: rec.Domid, State: stateOf(st), MemoryActual: rec.Spec.MemoryTarget,
		VCPUs: rec.Spec.VCPUs, StartTime: rec.StartTime}
	if in.State != domain.Crashed || st != "dead" {
		var b struct {
			Actual int64 `json:"actual"`
		}
		if err := x.exec(ctx, "query-balloon", nil, &b); err == nil && b.Actual > 0 {
			in.MemoryActual = b.Actual
		}
		in.CPUTime, _ = procCPU(rec.Pid, rec.Pid)
	}
	return in
}

// List describes every domain, running or not.
func (d *Driver) List(ctx context.Context) ([]domain.Info, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	var doms []*vm
	for _, x := range d.doms {
		x.mu.Lock()
		starting := x.status == "starting"
		x.mu.Unlock()
		if !starting {
			doms = append(doms, x)
		}
	}
	d.mu.Unlock()
	out := make([]domain.Info, 0, len(doms))
	for _, x := range doms {
		out = append(out, x.info(ctx))
	}
	return out, nil
}

// Consoles are the serial console (vt100) and, with a graphics card, VNC
// (rfb), both on unix sockets in the domain's directory.
func (d *Driver) Consoles(ctx context.Context, uuid string) ([]domain.Console, error) {
	x, err := d.get(uuid)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(x.dir)
	if err != nil {
		return nil, err
	}
	out := []domain.Console{{Protocol: "vt100", Location: "unix://" + filepath.Join(dir, serialSock),
		Other: map[string]string{"path": filepath.Join(dir, serialSock), "log": filepath.Join(dir, serialLog)}}}
	if hasVNC(x.platform()) {
		out = append(out, domain.Console{Protocol: "rfb", Location: "unix://" + filepath.Join(dir, vncSock),
			Other: map[string]string{"path": filepath.Join(dir, vncSock)}})
	}
	return out, nil
}

// Stats reads CPU time from /proc, memory from the balloon, disk counters
// from query-blockstats and NIC counters from the taps.
func (d *Driver) Stats(ctx context.Context, uuid string) (domain.Stats, error) {
	x, err := d.get(uuid)
	if err != nil {
		return domain.Stats{}, err
	}
	x.mu.Lock()
	rec := x.rec
	x.mu.Unlock()
	s := domain.Stats{Time: time.Now(), MemoryActual: rec.Spec.MemoryTarget, Disks: map[string]domain.IOCounters{}, NICs: map[string]domain.IOCounters{}}
	if s.CPUTime, err = procCPU(rec.Pid, rec.Pid); err != nil {
		return s, fmt.Errorf("qemu: %w", err)
	}
	var cpus []struct {
		Index    int `json:"cpu-index"`
		ThreadID int `json:"thread-id"`
	}
	if err := x.exec(ctx, "query-cpus-fast", nil, &cpus); err == nil {
		for _, c := range cpus {
			for len(s.VCPUTime) <= c.Index {
				s.VCPUTime = append(s.VCPUTime, 0)
			}
			s.VCPUTime[c.Index], _ = procCPU(rec.Pid, c.ThreadID)
		}
	}
	var b struct {
		Actual int64 `json:"actual"`
	}
	if err := x.exec(ctx, "query-balloon", nil, &b); err == nil && b.Actual > 0 {
		s.MemoryActual = b.Actual
	}
	var blk []struct {
		QDev  string `json:"qdev"`
		Stats struct {
			Rd int64 `json:"rd_bytes"`
			Wr int64 `json:"wr_bytes"`
		} `json:"stats"`
	}
	if err := x.exec(ctx, "query-blockstats", nil, &blk); err == nil {
		for _, bs := range blk {
			for _, dk := range rec.Spec.Disks {
				id := diskID(dk.Device)
				if bs.QDev == id || strings.Contains(bs.QDev, "/"+id+"/") || strings.HasSuffix(bs.QDev, "/"+id) {
					s.Disks[dk.Device] = domain.IOCounters{ReadBytes: bs.Stats.Rd, WriteBytes: bs.Stats.Wr}
				}
			}
		}
	}
	for dev, tap := range rec.Taps {
		if fromGuest, toGuest, ok := tapCounters(tap); ok {
			s.NICs[dev] = domain.IOCounters{ReadBytes: toGuest, WriteBytes: fromGuest}
		}
	}
	return s, nil
}

// procCPU is the CPU time of thread tid of process pid (tid == pid: the
// whole process).
func procCPU(pid, tid int) (time.Duration, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/stat"
	if tid != pid {
		p = "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/stat"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: malformed", p)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: malformed", p)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100), nil // USER_HZ is 100 on Linux
}
