package xenops

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/vdiloc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

func refArg(r xenapi.Ref) wire.Value { return wire.String(string(r)) }

// add registers a configuration as a XenAPI VM and returns its id.
func (s *Service) add(ctx context.Context, c *call, x *VM) (xenapi.Ref, string, *Error) {
	if xerr := x.check(); xerr != nil {
		return "", "", xerr
	}
	if x.ID != "" {
		if _, err := s.st.ByUUID(api.ClassVM, x.ID); err == nil {
			return "", "", alreadyExists()
		}
	}
	ref, err := s.front.CreateWithUUID(ctx, c.sess, "VM", x.ID, x.record())
	if err != nil {
		return "", "", fromXenAPI(err)
	}
	row, err := s.st.Get(api.ClassVM, ref)
	if err != nil {
		return "", "", fromXenAPI(err)
	}
	return ref, row.Rec.(*api.VM).UUID, nil
}

func (s *Service) vmAdd(ctx context.Context, c *call) (wire.Value, *Error) {
	t, ok := c.arg("t")
	if !ok {
		return wire.Value{}, internalError(c.method + ": missing argument t")
	}
	x, err := decodeVM(t, "t")
	if err != nil {
		return wire.Value{}, internalError(c.method + ": " + err.Error())
	}
	_, id, xerr := s.add(ctx, c, x)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	return wire.String(id), nil
}

func (s *Service) vmRemove(ctx context.Context, c *call) (wire.Value, *Error) {
	ref, vm, xerr := s.vmArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	if vm.PowerState != api.VMPowerStateHalted && vm.PowerState != api.VMPowerStateSuspended {
		return wire.Value{}, badPowerState(powerName(string(vm.PowerState)), "Halted")
	}
	if _, xerr := s.xcall(ctx, c, "VM.destroy", refArg(ref)); xerr != nil {
		return wire.Value{}, xerr
	}
	s.forget(vm.UUID)
	return unit, nil
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.phases, id)
	s.mu.Unlock()
}

// current re-reads a VM inside a task.
func (s *Service) current(ref xenapi.Ref, id string) (*api.VM, *Error) {
	row, err := s.st.Get(api.ClassVM, ref)
	if err != nil {
		return nil, doesNotExist("VM", id)
	}
	return row.Rec.(*api.VM), nil
}

// vmTask runs a VM operation as a task: the VM is looked up first, so an
// unknown id fails the call itself.
func (s *Service) vmTask(ctx context.Context, c *call, label string, cancellable bool, fn func(ctx context.Context, ref xenapi.Ref, id string) *Error) (wire.Value, *Error) {
	ref, vm, xerr := s.vmArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	id := vm.UUID
	return s.task(ctx, c, label+" "+id, cancellable, func(ctx context.Context) *Error { return fn(ctx, ref, id) })
}

func (s *Service) vmCreate(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmTask(ctx, c, "VM.create", true, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		if _, xerr := s.xcall(ctx, c, "VM.start", refArg(ref), wire.Bool(true), wire.Bool(false)); xerr != nil {
			return xerr
		}
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		s.mu.Lock()
		s.phases[id] = &phase{domid: vm.Domid}
		s.mu.Unlock()
		return nil
	})
}

// phaseOf returns the build phase of the VM's current domain, if it was
// made by VM.create and not yet unpaused.
func (s *Service) phaseOf(vm *api.VM) *phase {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.phases[vm.UUID]
	if p == nil || p.domid != vm.Domid {
		return nil
	}
	return p
}

func hasDomain(vm *api.VM) *Error {
	switch vm.PowerState {
	case api.VMPowerStatePaused, api.VMPowerStateRunning:
		return nil
	}
	return badPowerState(powerName(string(vm.PowerState)), "Paused")
}

func (s *Service) vmBuild(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmTask(ctx, c, "VM.build", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		if xerr := hasDomain(vm); xerr != nil {
			return xerr
		}
		// The domain manager builds a domain as it creates it; this step
		// records that the interface's build came.
		if p := s.phaseOf(vm); p != nil {
			s.mu.Lock()
			p.built = true
			s.mu.Unlock()
		}
		return nil
	})
}

func (s *Service) vmCreateDeviceModel(ctx context.Context, c *call) (wire.Value, *Error) {
	if v, ok := c.arg("is_resuming"); ok {
		d := &decoder{}
		d.bool(v, "is_resuming")
		if d.err != nil {
			return wire.Value{}, internalError(c.method + ": " + d.err.Error())
		}
	}
	return s.vmTask(ctx, c, "VM.create_device_model", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		if xerr := hasDomain(vm); xerr != nil {
			return xerr
		}
		if p := s.phaseOf(vm); p != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !p.built {
				return domainNotBuilt()
			}
			p.dm = true
		}
		return nil
	})
}

func (s *Service) vmDestroy(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmTask(ctx, c, "VM.destroy", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		defer s.forget(id)
		if vm.PowerState == api.VMPowerStateHalted {
			return nil // no domain left: nothing to destroy
		}
		_, xerr = s.xcall(ctx, c, "VM.hard_shutdown", refArg(ref))
		return xerr
	})
}

func (s *Service) vmPause(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmTask(ctx, c, "VM.pause", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		_, xerr := s.xcall(ctx, c, "VM.pause", refArg(ref))
		return xerr
	})
}

func (s *Service) vmUnpause(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmTask(ctx, c, "VM.unpause", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		if p := s.phaseOf(vm); p != nil && !p.built {
			return domainNotBuilt()
		}
		if _, xerr := s.xcall(ctx, c, "VM.unpause", refArg(ref)); xerr != nil {
			return xerr
		}
		s.forget(id)
		return nil
	})
}

func (s *Service) vmSetVCPUs(ctx context.Context, c *call) (wire.Value, *Error) {
	n, xerr := number(c, "num_vpcus", (*decoder).int)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	return s.vmTask(ctx, c, "VM.set_vcpus", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		if n > vm.VCPUsMax {
			return maximumVCPUs(vm.VCPUsMax)
		}
		if n < 1 {
			return internalError("the number of vCPUs must be at least 1")
		}
		switch vm.PowerState {
		case api.VMPowerStateRunning:
			_, xerr = s.xcall(ctx, c, "VM.set_VCPUs_number_live", refArg(ref), wire.Int(n))
		case api.VMPowerStateHalted:
			_, xerr = s.xcall(ctx, c, "VM.set_VCPUs_at_startup", refArg(ref), wire.Int(n))
		default:
			xerr = badPowerState(powerName(string(vm.PowerState)), "Running")
		}
		return xerr
	})
}

func (s *Service) vmSetShadowMultiplier(ctx context.Context, c *call) (wire.Value, *Error) {
	f, xerr := number(c, "shadow_multiplier", (*decoder).float)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	return s.vmTask(ctx, c, "VM.set_shadow_multiplier", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		if vm.HVMBootPolicy == "" {
			return notSupported() // PV guests have no shadow memory
		}
		switch vm.PowerState {
		case api.VMPowerStateHalted:
			_, xerr = s.xcall(ctx, c, "VM.set_HVM_shadow_multiplier", refArg(ref), wire.Float(f))
		case api.VMPowerStateRunning:
			// XenAPI's live change, through the domain manager: NOT_IMPLEMENTED
			// (Unimplemented) when the driver cannot resize shadow memory,
			// HOST_NOT_ENOUGH_FREE_MEMORY (Not_enough_memory) when it does
			// not fit.
			_, xerr = s.xcall(ctx, c, "VM.set_shadow_multiplier_live", refArg(ref), wire.Float(f))
		default:
			xerr = badPowerState(powerName(string(vm.PowerState)), "Running")
		}
		return xerr
	})
}

func (s *Service) pair(vm *api.VM) wire.Value {
	return wire.Array(vmOf(vm).Value(), stateOf(s.st, vm).Value())
}

func (s *Service) vmStat(ctx context.Context, c *call) (wire.Value, *Error) {
	_, vm, xerr := s.vmArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	return some(s.pair(vm)), nil
}

// managedVMs returns the VMs this interface shows, by name then id.
func (s *Service) managedVMs() []*api.VM {
	var vms []*api.VM
	for _, row := range s.st.All(api.ClassVM) {
		if vm := row.Rec.(*api.VM); managed(vm) {
			vms = append(vms, vm)
		}
	}
	sort.Slice(vms, func(i, j int) bool {
		if vms[i].NameLabel != vms[j].NameLabel {
			return vms[i].NameLabel < vms[j].NameLabel
		}
		return vms[i].UUID < vms[j].UUID
	})
	return vms
}

func (s *Service) vmList(ctx context.Context, c *call) (wire.Value, *Error) {
	vms := s.managedVMs()
	out := make([]wire.Value, 0, len(vms))
	for _, vm := range vms {
		out = append(out, s.pair(vm))
	}
	return list(out), nil
}

func (s *Service) vmStart(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmTask(ctx, c, "VM.start", true, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		_, xerr := s.xcall(ctx, c, "VM.start", refArg(ref), wire.Bool(false), wire.Bool(false))
		return xerr
	})
}

// timeoutArg reads clean_shutdown_timeout: a float option (seconds).
func timeoutArg(c *call) (*time.Duration, *Error) {
	v, ok := c.arg("clean_shutdown_timeout")
	if !ok {
		return nil, nil
	}
	d := &decoder{}
	x, some := d.option(v)
	if !some {
		return nil, nil
	}
	f := d.float(x, "clean_shutdown_timeout")
	if d.err != nil {
		return nil, internalError(c.method + ": " + d.err.Error())
	}
	if f < 0 || f > 86400 {
		return nil, internalError(c.method + ": clean_shutdown_timeout must be between 0 and 86400 seconds")
	}
	t := time.Duration(f * float64(time.Second))
	return &t, nil
}

// clean runs a clean XenAPI operation bounded by timeout, and reports
// whether it succeeded; on failure the caller forces the operation.
func (s *Service) clean(ctx context.Context, c *call, method string, ref xenapi.Ref, timeout time.Duration) bool {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := s.front.Call(cctx, c.sess, method, refArg(ref))
	if err != nil {
		s.log.Info("clean operation failed; forcing", "method", method, "vm", ref, "err", err)
	}
	return err == nil
}

func (s *Service) vmShutdown(ctx context.Context, c *call) (wire.Value, *Error) {
	timeout, xerr := timeoutArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	return s.vmTask(ctx, c, "VM.shutdown", true, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		defer s.forget(id)
		if vm.PowerState == api.VMPowerStateHalted {
			return badPowerState("Halted", "Running")
		}
		if timeout == nil || vm.PowerState != api.VMPowerStateRunning || !s.clean(ctx, c, "VM.clean_shutdown", ref, *timeout) {
			if ctx.Err() != nil {
				return internalError("cancelled")
			}
			if _, xerr = s.xcall(ctx, c, "VM.hard_shutdown", refArg(ref)); xerr != nil {
				return xerr
			}
		}
		if isTransient(vm) {
			// Forgotten as part of the shutdown (the watcher would do it
			// a moment later).
			s.removeTransient(context.WithoutCancel(ctx), ref, id)
		}
		return nil
	})
}

func (s *Service) vmReboot(ctx context.Context, c *call) (wire.Value, *Error) {
	timeout, xerr := timeoutArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	return s.vmTask(ctx, c, "VM.reboot", true, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		defer s.forget(id)
		if timeout != nil && vm.PowerState == api.VMPowerStateRunning && s.clean(ctx, c, "VM.clean_reboot", ref, *timeout) {
			return nil
		}
		if ctx.Err() != nil {
			return internalError("cancelled")
		}
		_, xerr = s.xcall(ctx, c, "VM.hard_reboot", refArg(ref))
		return xerr
	})
}

// diskVDI resolves the interface's disk variant to a VDI.
func (s *Service) diskVDI(d Disk) (xenapi.Ref, bool) {
	switch d.Kind {
	case "Local":
		return vdiloc.ByPath(s.st, d.Name)
	case "VDI":
		if ref, ok := vdiloc.BySRAndName(s.st, d.Name); ok {
			return ref, true
		}
		return vdiloc.ByUUID(s.st, d.Name)
	}
	return "", false
}

func (s *Service) vmResume(ctx context.Context, c *call) (wire.Value, *Error) {
	v, ok := c.arg("disk")
	if !ok {
		return wire.Value{}, internalError(c.method + ": missing argument disk")
	}
	d := &decoder{}
	disk := d.disk(v, "disk")
	if d.err != nil {
		return wire.Value{}, internalError(c.method + ": " + d.err.Error())
	}
	return s.vmTask(ctx, c, "VM.resume", false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		vm, xerr := s.current(ref, id)
		if xerr != nil {
			return xerr
		}
		if vm.PowerState != api.VMPowerStateSuspended {
			return badPowerState(powerName(string(vm.PowerState)), "Suspended")
		}
		// The memory image is the one the VM was suspended to.
		if !vm.SuspendVDI.IsNull() {
			if r, ok := s.diskVDI(disk); !ok || r != vm.SuspendVDI {
				return vdiNotFound()
			}
		}
		_, xerr = s.xcall(ctx, c, "VM.resume", refArg(ref), wire.Bool(false), wire.Bool(false))
		return xerr
	})
}

// vmS3Suspend and vmS3Resume put a running HVM guest into ACPI S3 and
// wake it, through the domain manager (the VM stays Running, as in
// xenopsd; XenAPI's VM_metrics state lists "s3" while it sleeps). A PV
// guest is Not_supported; a hypervisor driver without S3 Unimplemented.
func (s *Service) vmS3Suspend(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmS3(ctx, c, true)
}

func (s *Service) vmS3Resume(ctx context.Context, c *call) (wire.Value, *Error) {
	return s.vmS3(ctx, c, false)
}

func (s *Service) vmS3(ctx context.Context, c *call, sleep bool) (wire.Value, *Error) {
	_, vm, xerr := s.vmArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	if vm.PowerState != api.VMPowerStateRunning {
		return wire.Value{}, badPowerState(powerName(string(vm.PowerState)), "Running")
	}
	if vm.HVMBootPolicy == "" {
		return wire.Value{}, notSupported() // S3 is an HVM (ACPI) state
	}
	doms := s.front.Domains()
	if doms == nil || !doms.SupportsS3() {
		return wire.Value{}, unimplemented()
	}
	label := "VM.s3resume"
	if sleep {
		label = "VM.s3suspend"
	}
	return s.vmTask(ctx, c, label, false, func(ctx context.Context, ref xenapi.Ref, id string) *Error {
		var err error
		if sleep {
			err = doms.S3Suspend(ctx, ref)
		} else {
			err = doms.S3Resume(ctx, ref)
		}
		return fromXenAPI(err)
	})
}

func (s *Service) vmMigrate(ctx context.Context, c *call) (wire.Value, *Error) {
	_, vm, xerr := s.vmArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	if _, xerr := c.str("url"); xerr != nil {
		return wire.Value{}, xerr
	}
	if vm.PowerState != api.VMPowerStateRunning {
		return wire.Value{}, badPowerState(powerName(string(vm.PowerState)), "Running")
	}
	return wire.Value{}, internalError("VM.migrate: xenithd manages a single host; there is no other host to migrate to")
}

func (s *Service) vmExportMetadata(ctx context.Context, c *call) (wire.Value, *Error) {
	_, vm, xerr := s.vmArg(c)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	vbds, vifs := devicesOf(s.st, vm)
	m := &Metadata{VM: vmOf(vm), VBDs: vbds, VIFs: vifs}
	return wire.String(JSON(m.Value())), nil
}

func (s *Service) vmImportMetadata(ctx context.Context, c *call) (wire.Value, *Error) {
	text, xerr := c.str("config")
	if xerr != nil {
		return wire.Value{}, xerr
	}
	v, err := jsonrpc.ParseValue([]byte(text))
	if err != nil {
		return wire.Value{}, internalError(c.method + ": config is not JSON: " + err.Error())
	}
	m, err := decodeMetadata(v)
	if err != nil {
		return wire.Value{}, internalError(c.method + ": " + err.Error())
	}
	if len(m.PCIs) > 0 {
		return wire.Value{}, notSupported() // no PCI passthrough
	}
	// Check every device before anything is created.
	vdis := make([]xenapi.Ref, len(m.VBDs))
	for i, b := range m.VBDs {
		vdis[i] = xenapi.NullRef
		if b.Backend != nil {
			r, ok := s.diskVDI(*b.Backend)
			if !ok {
				return wire.Value{}, vdiNotFound()
			}
			vdis[i] = r
		}
	}
	nets := make([]xenapi.Ref, len(m.VIFs))
	for i, f := range m.VIFs {
		r, ok := s.networkByBridge(f.Network.Name)
		if !ok || f.Network.Kind != "Local" {
			return wire.Value{}, doesNotExist("network", f.Network.Name)
		}
		nets[i] = r
	}
	ref, id, xerr := s.add(ctx, c, m.VM)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	undo := func(x *Error) (wire.Value, *Error) {
		if _, err := s.front.Call(context.WithoutCancel(ctx), c.sess, "VM.destroy", refArg(ref)); err != nil {
			s.log.Warn("import_metadata: removing the half-imported VM", "vm", id, "err", err)
		}
		return wire.Value{}, x
	}
	for i, b := range m.VBDs {
		dev := b.Device
		if b.Position != nil {
			dev = strconv.FormatInt(*b.Position, 10)
		}
		if _, xerr := s.xcall(ctx, c, "VBD.create", VBDRecord(ref, vdis[i], dev, i == 0 && !b.CDROM, b.ReadOnly, b.CDROM, b.Unpluggable)); xerr != nil {
			return undo(xerr)
		}
	}
	for i, f := range m.VIFs {
		dev := f.Device
		if dev == "" {
			dev = strconv.FormatInt(f.Position, 10)
		}
		if _, xerr := s.xcall(ctx, c, "VIF.create", VIFRecord(ref, nets[i], dev, f.MAC, f.MTU, f.OtherConfig)); xerr != nil {
			return undo(xerr)
		}
	}
	return wire.String(id), nil
}

func (s *Service) networkByBridge(bridge string) (xenapi.Ref, bool) {
	for _, row := range s.st.All(api.ClassNetwork) {
		if n := row.Rec.(*api.Network); n.Bridge == bridge || n.UUID == bridge {
			return row.Ref, true
		}
	}
	return "", false
}

// VBDRecord is a XenAPI VBD.create record (vdi NullRef for an empty drive).
func VBDRecord(vm, vdi xenapi.Ref, userdevice string, bootable, readOnly, cd, unpluggable bool) wire.Value {
	mode, ty := "RW", "Disk"
	if readOnly {
		mode = "RO"
	}
	if cd {
		ty = "CD"
	}
	return wire.Struct(
		mem("VM", refArg(vm)),
		mem("VDI", refArg(vdi)),
		mem("userdevice", wire.String(userdevice)),
		mem("bootable", wire.Bool(bootable)),
		mem("mode", wire.String(mode)),
		mem("type", wire.String(ty)),
		mem("empty", wire.Bool(vdi.IsNull())),
		mem("unpluggable", wire.Bool(unpluggable)),
		mem("other_config", wire.Struct()),
		mem("qos_algorithm_type", wire.String("")),
		mem("qos_algorithm_params", wire.Struct()),
	)
}

// VIFRecord is a XenAPI VIF.create record (MTU 0: the network's).
func VIFRecord(vm, network xenapi.Ref, device, mac string, mtu int64, oc map[string]string) wire.Value {
	return wire.Struct(
		mem("device", wire.String(device)),
		mem("network", refArg(network)),
		mem("VM", refArg(vm)),
		mem("MAC", wire.String(mac)),
		mem("MTU", wire.Int(mtu)),
		mem("other_config", dict(oc)),
		mem("qos_algorithm_type", wire.String("")),
		mem("qos_algorithm_params", wire.Struct()),
	)
}
