package xapi

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// VBD.* messages (xapi's xapi_vbd.ml and xapi_vbd_helpers.ml) other than
// plug/unplug, which belong to the domain manager. A VBD joins a VDI (or
// nothing, for an empty CD drive) to a VM at a device number.
//
// Helpers for the rest of the server:
//   - allowedVBDDevices / (*Server).allowedVBDDevicesOf: the free device
//     numbers of a VM (VM.get_allowed_VBD_devices);
//   - vbdInUse: whether a VBD keeps its VDI busy;
//   - refreshVBDAndVDIOps, refreshVMStorageOps: recompute allowed_operations
//     after currently_attached or a VM's power state changes;
//   - vbdDeleteRecord: remove a VBD record consistently (VM.destroy);
//   - (*Server).vdiImage (storage.go): the file and format behind a VDI.

func (s *Server) registerVBDHandlers() {
	s.handle("VBD.create", s.vbdCreate, -1)
	s.handle("VBD.destroy", s.vbdDestroy, -1)
	s.handle("VBD.insert", s.vbdInsert, -1)
	s.handle("VBD.eject", s.vbdEject, -1)
	s.handle("VBD.set_mode", s.vbdSetMode, -1)
	s.handle("VBD.assert_attachable", s.vbdAssertAttachable, -1)
}

// vbdInUse reports whether a VBD keeps its VDI busy: it is plugged, or its
// VM is running, paused or suspended (a suspended VM needs its disks to
// resume). Empty drives use nothing.
func vbdInUse(tx *store.Tx, vbd *api.VBD) bool {
	if vbd.Empty {
		return false
	}
	if vbd.CurrentlyAttached {
		return true
	}
	r, err := tx.Get(api.ClassVM, vbd.VM)
	if err != nil {
		return false
	}
	switch r.(*api.VM).PowerState {
	case api.VMPowerStateRunning, api.VMPowerStatePaused, api.VMPowerStateSuspended:
		return true
	}
	return false
}

// vbdCreate checks the request as xapi does, resolves "autodetect" to the
// lowest free device and makes the record.
func (s *Server) vbdCreate(ctx context.Context, c *Call) (Result, error) {
	r, err := stoDecodeRecord(api.ClassVBD, c.Arg(0))
	if err != nil {
		return nil, err
	}
	want := r.(*api.VBD)
	var ref xenapi.Ref
	err = s.store.Update(ctx, func(tx *store.Tx) error {
		vr, err := tx.Get(api.ClassVM, want.VM)
		if err != nil {
			return err
		}
		vm := vr.(*api.VM)
		var vdi *api.VDI
		if !want.Empty {
			dr, err := tx.Get(api.ClassVDI, want.VDI)
			if err != nil {
				return err
			}
			vdi = dr.(*api.VDI)
			switch vdi.Type {
			case api.VDITypeSystem, api.VDITypeUser, api.VDITypeEphemeral, api.VDITypeSuspend,
				api.VDITypeCrashdump, api.VDITypeMetadata, api.VDITypeRRD, api.VDITypePVSCache:
			default:
				return xenapi.NewError(api.ErrVDIIncompatibleType, string(want.VDI), string(vdi.Type))
			}
		}
		if want.Type == api.VBDTypeCD && want.Mode != api.VBDModeRO {
			return xenapi.NewError(api.ErrVBDCdsMustBeReadonly)
		}
		if want.Type != api.VBDTypeCD && want.Empty {
			return xenapi.NewError(api.ErrVBDNotRemovableMedia, "in constructor")
		}
		if want.Mode == api.VBDModeRW {
			if vdi == nil {
				dr, err := tx.Get(api.ClassVDI, want.VDI)
				if err != nil {
					return err
				}
				vdi = dr.(*api.VDI)
			}
			if vdi.ReadOnly {
				return xenapi.NewError(api.ErrVDIReadonly, string(want.VDI))
			}
		}
		if key, op, ok := firstCurrentOp(vm.CurrentOperations, func(o api.VMOperations) bool {
			return o != api.VMOperationsMigrateSend && o != api.VMOperationsPoolMigrate
		}); ok {
			return xenapi.NewError(api.ErrOtherOperationInProgress, "VM", string(want.VM), string(op), key)
		}
		vbds := vbdsOfVM(tx, vm)
		free, supported := vbdAllowedDevices(vm, vbds, want.Type)
		if !supported {
			return xenapi.NewError(api.ErrNotImplemented, "VBD of type 'floppy' is not supported on PV domain")
		}
		userdevice := want.Userdevice
		if !vbdValidDevice(userdevice, want.Type) {
			return xenapi.NewError(api.ErrInvalidDevice, userdevice)
		}
		if userdevice == "autodetect" {
			if len(free) == 0 {
				return xenapi.NewError(api.ErrInvalidDevice, userdevice)
			}
			if want.Type == api.VBDTypeFloppy {
				userdevice = free[0].linux()
			} else {
				userdevice = strconv.Itoa(free[0].disk)
			}
		}
		used := vbdUsedDevices(vbds)
		for _, d := range vbdPossibleDevices(userdevice) {
			if slices.Contains(used, d) {
				return xenapi.NewError(api.ErrDeviceAlreadyExists, userdevice)
			}
		}
		suspended := vm.PowerState == api.VMPowerStateSuspended
		vbd := api.NewVBD()
		vbd.VM, vbd.VDI = want.VM, want.VDI
		vbd.Userdevice = userdevice
		if suspended {
			vbd.Device, vbd.CurrentlyAttached = want.Device, want.CurrentlyAttached
		}
		vbd.Bootable, vbd.Mode, vbd.Type = want.Bootable, want.Mode, want.Type
		vbd.Unpluggable, vbd.Empty = want.Unpluggable, want.Empty
		vbd.OtherConfig = want.OtherConfig
		// The SR may choose the backend of the VDI's VBDs.
		if vdi != nil && !want.Empty {
			if kind, ok := vdi.SMConfig.Lookup("backend-kind"); ok {
				vbd.OtherConfig = vbd.OtherConfig.With("backend-kind", kind)
			}
		}
		vbd.QosAlgorithmType = want.QosAlgorithmType
		vbd.QosAlgorithmParams = want.QosAlgorithmParams
		if ref, err = tx.Create(vbd); err != nil {
			return err
		}
		return refreshVBDOps(tx, ref)
	})
	if err == nil {
		// VDI.VBDs lists the new VBD once the creation has committed.
		err = s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error { return refreshVBDAndVDIOps(tx, ref) })
	}
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

// vbdDestroy deletes an unplugged VBD.
func (s *Server) vbdDestroy(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	return nil, s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVBD, ref)
		if err != nil {
			return err
		}
		vbd := r.(*api.VBD)
		if vbd.CurrentlyAttached {
			vmUUID := ""
			if vr, err := tx.Get(api.ClassVM, vbd.VM); err == nil {
				vmUUID = vr.RecordUUID()
			}
			return xenapi.NewError(api.ErrOperationNotAllowed, fmt.Sprintf("VBD '%s' still attached to '%s'", vbd.UUID, vmUUID))
		}
		return vbdDeleteRecord(tx, ref)
	})
}

// vbdDeleteRecord deletes a VBD record (and its metrics, if any) and
// refreshes its VDI's allowed operations.
func vbdDeleteRecord(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassVBD, ref)
	if err != nil {
		return err
	}
	vbd := r.(*api.VBD)
	if !vbd.Metrics.IsNull() && tx.Exists(api.ClassVBDMetrics, vbd.Metrics) {
		if err := tx.Delete(api.ClassVBDMetrics, vbd.Metrics); err != nil {
			return err
		}
	}
	if err := tx.Delete(api.ClassVBD, ref); err != nil {
		return err
	}
	if tx.Exists(api.ClassVDI, vbd.VDI) {
		return refreshVDIOps(tx, vbd.VDI)
	}
	return nil
}

// vbdInsert puts a VDI in an empty CD drive.
func (s *Server) vbdInsert(ctx context.Context, c *Call) (Result, error) {
	ref, vdiRef := c.Ref(0), c.Ref(1)
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVBD, ref)
		if err != nil {
			return err
		}
		vbd := r.(*api.VBD)
		dr, err := tx.Get(api.ClassVDI, vdiRef)
		if err != nil {
			return err
		}
		if err := vbdOpTable(tx, ref, vbd, true)[api.VBDOperationsInsert]; err != nil {
			return err
		}
		if err := vbdAssertMediaChange(tx, ref, vbd, "VBD.insert", s.domains != nil); err != nil {
			return err
		}
		if !dr.(*api.VDI).Managed {
			return xenapi.NewError(api.ErrVDINotManaged, string(vdiRef))
		}
		if err := tx.Modify(api.ClassVBD, ref, func(r xenapi.Record) error {
			rec := r.(*api.VBD)
			rec.VDI, rec.Empty = vdiRef, false
			return nil
		}); err != nil {
			return err
		}
		return refreshVBDOps(tx, ref)
	})
	if err != nil {
		return nil, err
	}
	if err := s.changeMediumLive(ctx, ref, xenapi.NullRef); err != nil {
		return nil, err
	}
	// VDI.VBDs lists the VBD once the change has committed.
	return nil, s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error { return refreshVBDAndVDIOps(tx, ref) })
}

// vbdEject empties a CD drive.
func (s *Server) vbdEject(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	var old xenapi.Ref
	if r, err := s.store.Get(api.ClassVBD, ref); err == nil {
		old = r.Rec.(*api.VBD).VDI
	}
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVBD, ref)
		if err != nil {
			return err
		}
		vbd := r.(*api.VBD)
		if err := vbdOpTable(tx, ref, vbd, true)[api.VBDOperationsEject]; err != nil {
			return err
		}
		if err := vbdAssertMediaChange(tx, ref, vbd, "VBD.eject", s.domains != nil); err != nil {
			return err
		}
		old = vbd.VDI
		if err := tx.Modify(api.ClassVBD, ref, func(r xenapi.Record) error {
			rec := r.(*api.VBD)
			rec.VDI, rec.Empty = xenapi.NullRef, true
			return nil
		}); err != nil {
			return err
		}
		if err := refreshVBDOps(tx, ref); err != nil {
			return err
		}
		if tx.Exists(api.ClassVDI, old) {
			return refreshVDIOps(tx, old)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nil, s.changeMediumLive(ctx, ref, old)
}

// changeMediumLive applies a committed medium change to the running
// domain; if the hypervisor refuses, the record goes back to prev (for an
// insert, back to empty).
func (s *Server) changeMediumLive(ctx context.Context, ref, prev xenapi.Ref) error {
	if s.domains == nil {
		return nil
	}
	err := s.domains.ChangeMedium(ctx, ref)
	if err == nil {
		return nil
	}
	_ = s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		return tx.Modify(api.ClassVBD, ref, func(r xenapi.Record) error {
			rec := r.(*api.VBD)
			rec.VDI, rec.Empty = prev, prev.IsNull()
			return nil
		})
	})
	return err
}

// vbdAssertMediaChange allows a medium change done on the records alone:
// the VM is halted, or the drive is not plugged into its domain. Changing
// the medium of a plugged drive needs the domain manager, which does not
// offer it yet.
// live says the domain manager will change the medium in the running
// domain after the record changes.
func vbdAssertMediaChange(tx *store.Tx, ref xenapi.Ref, vbd *api.VBD, msg string, live bool) error {
	vr, err := tx.Get(api.ClassVM, vbd.VM)
	if err != nil {
		return err
	}
	vm := vr.(*api.VM)
	if vm.PowerState == api.VMPowerStateSuspended {
		return xenapi.NewError(api.ErrVMBadPowerState, string(vbd.VM), "halted, running", "suspended")
	}
	if vm.PowerState != api.VMPowerStateHalted && vbd.CurrentlyAttached && !live {
		return xenapi.NewError(api.ErrNotImplemented, msg+" of a plugged drive (needs the domain manager)")
	}
	return nil
}

// vbdSetMode changes RO/RW of a halted VM's VBD.
func (s *Server) vbdSetMode(ctx context.Context, c *Call) (Result, error) {
	ref, mode := c.Ref(0), api.VBDMode(c.Str(1))
	return nil, s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVBD, ref)
		if err != nil {
			return err
		}
		vm := r.(*api.VBD).VM
		vr, err := tx.Get(api.ClassVM, vm)
		if err != nil {
			return err
		}
		if ps := vr.(*api.VM).PowerState; ps != api.VMPowerStateHalted {
			return xenapi.NewError(api.ErrVMBadPowerState, string(vm), "halted", domain.LowerState(ps))
		}
		if err := tx.Modify(api.ClassVBD, ref, func(r xenapi.Record) error {
			r.(*api.VBD).Mode = mode
			return nil
		}); err != nil {
			return err
		}
		return refreshVBDAndVDIOps(tx, ref)
	})
}

// vbdAssertAttachable checks that the VBD could be attached now (sharing
// of its VDI included).
func (s *Server) vbdAssertAttachable(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	var result error
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVBD, ref)
		if err != nil {
			return err
		}
		result = vbdOpTable(tx, ref, r.(*api.VBD), true)[api.VBDOperationsAttach]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nil, result
}

// --- allowed operations -----------------------------------------------------

// vbdAllOps are the operations of VBD.allowed_operations.
var vbdAllOps = []api.VBDOperations{
	api.VBDOperationsAttach, api.VBDOperationsEject, api.VBDOperationsUnplug, api.VBDOperationsUnplugForce,
	api.VBDOperationsInsert, api.VBDOperationsPlug, api.VBDOperationsPause, api.VBDOperationsUnpause,
}

// vbdVMIsHVM tells whether a VM has (or, halted, will have) an emulated
// device model: HVM domains.
func vbdVMIsHVM(tx *store.Tx, vm *api.VM) bool {
	dt := vm.DomainType
	if vm.PowerState != api.VMPowerStateHalted {
		if r, err := tx.Get(api.ClassVMMetrics, vm.Metrics); err == nil {
			if cur := r.(*api.VMMetrics).CurrentDomainType; cur != api.DomainTypeUnspecified && cur != "" {
				dt = cur
			}
		}
	}
	if dt == api.DomainTypeUnspecified || dt == "" {
		return vm.HVMBootPolicy != ""
	}
	return dt == api.DomainTypeHVM
}

// vbdOpTable evaluates every VBD operation (xapi's
// Xapi_vbd_helpers.valid_operations); expensive adds the checks on the
// sharing of the VDI, done when an operation is attempted.
func vbdOpTable(tx *store.Tx, ref xenapi.Ref, vbd *api.VBD, expensive bool) opsTable[api.VBDOperations] {
	t := opsTable[api.VBDOperations]{}
	self := string(ref)
	safe := func(o api.VBDOperations) bool {
		return o == api.VBDOperationsPause || o == api.VBDOperationsUnpause
	}
	if key, op, ok := firstCurrentOp(vbd.CurrentOperations, nil); ok {
		err := xenapi.NewError(api.ErrOtherOperationInProgress, "VBD", self, string(op), key)
		for _, o := range vbdAllOps {
			if !safe(o) {
				t.set(err, o)
			}
		}
	}
	if key, op, ok := firstCurrentOp(vbd.CurrentOperations, safe); ok {
		t.set(xenapi.NewError(api.ErrOtherOperationInProgress, "VBD", self, string(op), key), api.VBDOperationsPause)
	}
	if key, op, ok := firstCurrentOp(vbd.CurrentOperations, func(o api.VBDOperations) bool {
		return safe(o) || o == api.VBDOperationsAttach
	}); ok {
		t.set(xenapi.NewError(api.ErrOtherOperationInProgress, "VBD", self, string(op), key), api.VBDOperationsUnpause)
	}
	if !vbd.Unpluggable {
		t.set(xenapi.NewError(api.ErrVBDNotUnpluggable, self), api.VBDOperationsUnplug, api.VBDOperationsUnplugForce)
	}
	if vbd.Type != api.VBDTypeCD {
		t.set(xenapi.NewError(api.ErrVBDNotRemovableMedia, self), api.VBDOperationsInsert, api.VBDOperationsEject)
	}
	if vbd.Empty {
		t.set(xenapi.NewError(api.ErrVBDIsEmpty, self), api.VBDOperationsEject)
	} else {
		t.set(xenapi.NewError(api.ErrVBDNotEmpty, self), api.VBDOperationsInsert)
	}
	vr, err := tx.Get(api.ClassVM, vbd.VM)
	if err != nil {
		t.set(err, vbdAllOps...)
		return t
	}
	vm := vr.(*api.VM)
	power := vm.PowerState
	plugOps := []api.VBDOperations{api.VBDOperationsPlug, api.VBDOperationsUnplug, api.VBDOperationsUnplugForce}
	switch {
	case power == api.VMPowerStateRunning && vbd.CurrentlyAttached:
		t.set(xenapi.NewError(api.ErrDeviceAlreadyAttached, self), api.VBDOperationsPlug)
	case power == api.VMPowerStateRunning:
		t.set(xenapi.NewError(api.ErrDeviceAlreadyDetached, self), api.VBDOperationsUnplug, api.VBDOperationsUnplugForce)
	default:
		bad := plugOps
		if power != api.VMPowerStatePaused {
			bad = append([]api.VBDOperations{api.VBDOperationsPause, api.VBDOperationsUnpause}, bad...)
		}
		t.set(xenapi.NewError(api.ErrVMBadPowerState, string(vbd.VM), "running", domain.LowerState(power)), bad...)
	}
	for _, op := range vm.CurrentOperations.All() {
		switch op {
		case api.VMOperationsCleanShutdown, api.VMOperationsHardShutdown, api.VMOperationsSuspend, api.VMOperationsPause:
			t.set(xenapi.NewError(api.ErrOperationNotAllowed, "Current operation on VM:"+string(vbd.VM)+" is "+string(op)),
				api.VBDOperationsPlug, api.VBDOperationsUnplug)
		}
	}
	if power == api.VMPowerStateRunning && vbdVMIsHVM(tx, vm) {
		var gm *api.VMGuestMetrics
		if r, err := tx.Get(api.ClassVMGuestMetrics, vm.GuestMetrics); err == nil {
			gm = r.(*api.VMGuestMetrics)
		}
		switch {
		case gm != nil && gm.CanUseHotplugVBD == api.TristateTypeYes:
		case gm != nil && gm.CanUseHotplugVBD == api.TristateTypeNo:
			t.set(xenapi.NewError(api.ErrOperationNotAllowed, "VM states it does not support VBD hotplug."), plugOps...)
		case gm != nil && gm.PVDriversDetected:
		case gm != nil && len(gm.PVDriversVersion) > 0:
		default:
			t.set(xenapi.NewError(api.ErrVMMissingPVDrivers, string(vbd.VM)), plugOps...)
		}
		if vbd.Type == api.VBDTypeCD {
			t.set(xenapi.NewError(api.ErrOperationNotAllowed, "HVM CDROMs cannot be hotplugged/unplugged, only inserted or ejected"), plugOps...)
		}
	}
	if vbd.Type == api.VBDTypeCD && power == api.VMPowerStateSuspended {
		t.set(xenapi.NewError(api.ErrVMBadPowerState, string(vbd.VM), "halted, running", "suspended"),
			api.VBDOperationsInsert, api.VBDOperationsEject)
	}
	if vbd.Empty {
		return t
	}
	dr, err := tx.Get(api.ClassVDI, vbd.VDI)
	if err != nil {
		return t
	}
	vdi := dr.(*api.VDI)
	if !vdi.Managed {
		t.set(xenapi.NewError(api.ErrVDINotManaged, self), vbdAllOps...)
	}
	if key, op, ok := firstCurrentOp(vdi.CurrentOperations, func(o api.VDIOperations) bool {
		return o == api.VDIOperationsCopy || o == api.VDIOperationsMirror
	}); ok {
		t.set(xenapi.NewError(api.ErrOtherOperationInProgress, "VDI", string(vbd.VDI), string(op), key),
			api.VBDOperationsAttach, api.VBDOperationsPlug, api.VBDOperationsInsert)
	}
	if vbd.CurrentlyAttached || !expensive {
		return t
	}
	// Sharing: another VM holding the VDI (plugged or busy) excludes a
	// writer, and any writer excludes us, unless the VDI is sharable.
	someoneRW, others := false, 0
	for _, b := range vdi.VBDs {
		if b == ref {
			continue
		}
		br, err := tx.Get(api.ClassVBD, b)
		if err != nil {
			continue
		}
		other := br.(*api.VBD)
		ovr, err := tx.Get(api.ClassVM, other.VM)
		if err != nil {
			continue
		}
		ovm := ovr.(*api.VM)
		if ovm.PowerState == api.VMPowerStateSuspended || vbdSystemDomain(ovm) {
			continue
		}
		if other.CurrentlyAttached || len(other.CurrentOperations) > 0 {
			others++
			someoneRW = someoneRW || other.Mode == api.VBDModeRW
		}
	}
	needWrite := vbd.Mode == api.VBDModeRW
	if !vdi.Sharable && !vbdSystemDomain(vm) && (someoneRW || (needWrite && others > 0)) {
		t.set(xenapi.NewError(api.ErrVDIInUse, string(vbd.VDI)), api.VBDOperationsAttach, api.VBDOperationsInsert, api.VBDOperationsPlug)
	}
	if needWrite && vdi.ReadOnly {
		t.set(xenapi.NewError(api.ErrVDIReadonly, string(vbd.VDI)), api.VBDOperationsAttach, api.VBDOperationsInsert, api.VBDOperationsPlug)
	}
	return t
}

// vbdSystemDomain: the control domain and VMs marked as system domains
// may share disks.
func vbdSystemDomain(vm *api.VM) bool {
	return vm.IsControlDomain || vm.OtherConfig.Get("is_system_domain") == "true"
}

// refreshVBDOps recomputes VBD.allowed_operations.
func refreshVBDOps(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassVBD, ref)
	if err != nil {
		return err
	}
	vbd := r.(*api.VBD)
	allowed := vbdOpTable(tx, ref, vbd, false).allowed(vbdAllOps)
	if slices.Equal(allowed, vbd.AllowedOperations) {
		return nil
	}
	return tx.Modify(api.ClassVBD, ref, func(r xenapi.Record) error {
		r.(*api.VBD).AllowedOperations = allowed
		return nil
	})
}

// refreshVBDAndVDIOps recomputes the allowed operations of a VBD and of
// its VDI; call it after changing the VBD (currently_attached, say).
func refreshVBDAndVDIOps(tx *store.Tx, ref xenapi.Ref) error {
	if err := refreshVBDOps(tx, ref); err != nil {
		return err
	}
	r, err := tx.Get(api.ClassVBD, ref)
	if err != nil {
		return err
	}
	if vdi := r.(*api.VBD).VDI; tx.Exists(api.ClassVDI, vdi) {
		return refreshVDIOps(tx, vdi)
	}
	return nil
}

// refreshVMStorageOps recomputes the allowed operations of a VM's VBDs and
// their VDIs; call it after the VM's power state changes.
func refreshVMStorageOps(tx *store.Tx, vm xenapi.Ref) error {
	r, err := tx.Get(api.ClassVM, vm)
	if err != nil {
		return err
	}
	for _, b := range r.(*api.VM).VBDs {
		if tx.Exists(api.ClassVBD, b) {
			if err := refreshVBDAndVDIOps(tx, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// --- device numbers ---------------------------------------------------------

// vbdBus is the bus of a disk device (xapi's Device_number.bus_type).
type vbdBus int

const (
	busXen vbdBus = iota
	busSCSI
	busFloppy
	busIDE
)

// vbdDevice is a device position: bus, disk, partition.
type vbdDevice struct {
	bus        vbdBus
	disk, part int
}

// vbdMakeDevice checks a position against the limits of its bus.
func vbdMakeDevice(bus vbdBus, disk, part int) (vbdDevice, bool) {
	var maxDisk, maxPart int
	switch bus {
	case busXen:
		maxDisk, maxPart = 1<<20-1, 15
	case busSCSI:
		maxDisk, maxPart = 15, 15
	case busFloppy:
		maxDisk, maxPart = 2, 0
	case busIDE:
		maxDisk, maxPart = 19, 63 // with Linux's deprecated IDE encodings
	}
	if disk < 0 || disk > maxDisk || part < 0 || part > maxPart {
		return vbdDevice{}, false
	}
	return vbdDevice{bus, disk, part}, true
}

// vbdOfDiskNumber is how a userdevice number is read: the first four disks
// of an HVM guest are IDE, the rest Xen virtual disks.
func vbdOfDiskNumber(hvm bool, n int) (vbdDevice, bool) {
	bus := busXen
	if hvm && n < 4 {
		bus = busIDE
	}
	return vbdMakeDevice(bus, n, 0)
}

// vbdOfString reads a userdevice or device: a number, or a Linux name
// (xvda, sdb2, hdc, fda, d3p1).
func vbdOfString(hvm bool, s string) (vbdDevice, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if d, ok := vbdOfDiskNumber(hvm, n); ok {
			return d, true
		}
	}
	return vbdOfLinuxDevice(s)
}

func vbdOfLinuxDevice(s string) (vbdDevice, bool) {
	for _, p := range []struct {
		prefix string
		bus    vbdBus
	}{{"xvd", busXen}, {"sd", busSCSI}, {"fd", busFloppy}, {"hd", busIDE}} {
		if rest, ok := strings.CutPrefix(s, p.prefix); ok {
			disk, part, ok := parseBase26Int(rest)
			if !ok {
				return vbdDevice{}, false
			}
			return vbdDevice{p.bus, disk, part}, true
		}
	}
	if rest, ok := strings.CutPrefix(s, "d"); ok {
		disk, part, found := strings.Cut(rest, "p")
		d, err := strconv.Atoi(disk)
		if err != nil || d < 0 || !isDigits(disk) {
			return vbdDevice{}, false
		}
		p := 0
		if found {
			if p, err = strconv.Atoi(part); err != nil || !isDigits(part) {
				return vbdDevice{}, false
			}
		}
		return vbdDevice{busXen, d, p}, true
	}
	return vbdDevice{}, false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseBase26Int reads "abc12": letters as a disk number in Linux's base
// 26 (a=0, z=25, aa=26), then an optional partition number.
func parseBase26Int(s string) (disk, part int, ok bool) {
	i := 0
	n := 0
	for i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
		n = n*26 + int(s[i]-'a'+1)
		if n > 1<<30 {
			return 0, 0, false
		}
		i++
	}
	if i == 0 {
		return 0, 0, false
	}
	if i == len(s) {
		return n - 1, 0, true
	}
	if !isDigits(s[i:]) {
		return 0, 0, false
	}
	p, err := strconv.Atoi(s[i:])
	if err != nil {
		return 0, 0, false
	}
	return n - 1, p, true
}

// linux names a device the Linux way (xvda, hdc, fdb, xvdb2).
func (d vbdDevice) linux() string {
	prefix := map[vbdBus]string{busXen: "xvd", busSCSI: "sd", busFloppy: "fd", busIDE: "xvd"}[d.bus]
	out := prefix + base26(d.disk)
	if d.part != 0 {
		out += strconv.Itoa(d.part)
	}
	return out
}

func base26(x int) string {
	high, low := x/26-1, x%26+1
	s := string(rune('a' + low - 1))
	if high >= 0 {
		return base26(high) + s
	}
	return s
}

// vbdPossibleDevices are the readings of a device string as an HVM and as
// a PV device.
func vbdPossibleDevices(s string) []vbdDevice {
	var out []vbdDevice
	for _, hvm := range []bool{true, false} {
		if d, ok := vbdOfString(hvm, s); ok {
			out = append(out, d)
		}
	}
	return out
}

// vbdValidDevice: "autodetect", a device name, or (except for floppies)
// any number.
func vbdValidDevice(s string, typ api.VBDType) bool {
	if s == "autodetect" {
		return true
	}
	if _, ok := vbdOfString(false, s); ok {
		return true
	}
	if typ == api.VBDTypeFloppy {
		return false
	}
	_, err := strconv.Atoi(s)
	return err == nil
}

// vbdUsedDevices are the positions a VM's VBDs take (by device and by
// userdevice, in every reading).
func vbdUsedDevices(vbds []*api.VBD) []vbdDevice {
	var out []vbdDevice
	for _, v := range vbds {
		out = append(out, vbdPossibleDevices(v.Device)...)
		out = append(out, vbdPossibleDevices(v.Userdevice)...)
	}
	return out
}

func vbdsOfVM(tx *store.Tx, vm *api.VM) []*api.VBD {
	var out []*api.VBD
	for _, b := range vm.VBDs {
		if r, err := tx.Get(api.ClassVBD, b); err == nil {
			out = append(out, r.(*api.VBD))
		}
	}
	return out
}

func vbdDeviceRange(hvm bool, from, to int) []vbdDevice {
	var out []vbdDevice
	for n := from; n <= to; n++ {
		if d, ok := vbdOfDiskNumber(hvm, n); ok {
			out = append(out, d)
		}
	}
	return out
}

// vbdAllowedDevicesOf lists the free positions of a VM for a VBD type, in
// order; supported is false for floppies of a guest without emulation.
func vbdAllowedDevicesOf(vm *api.VM, hvm bool, vbds []*api.VBD, typ api.VBDType) (free []vbdDevice, supported bool) {
	var all []vbdDevice
	switch {
	case typ == api.VBDTypeFloppy && hvm:
		for n := 0; n <= 1; n++ {
			d, _ := vbdMakeDevice(busFloppy, n, 0)
			all = append(all, d)
		}
	case typ == api.VBDTypeFloppy:
		return nil, false
	case !hvm && vm.IsControlDomain:
		all = vbdDeviceRange(false, 0, 255)
	case !hvm:
		all = vbdDeviceRange(false, 0, 254)
	default:
		all = vbdDeviceRange(true, 0, 254)
	}
	used := vbdUsedDevices(vbds)
	for _, d := range all {
		if !slices.Contains(used, d) {
			free = append(free, d)
		}
	}
	return free, true
}

func vbdAllowedDevices(vm *api.VM, vbds []*api.VBD, typ api.VBDType) ([]vbdDevice, bool) {
	return vbdAllowedDevicesOf(vm, vmWillHaveQemu(vm), vbds, typ)
}

// vmWillHaveQemu: an HVM guest (by domain_type, or by HVM_boot_policy when
// the domain type is unspecified).
func vmWillHaveQemu(vm *api.VM) bool {
	if vm.DomainType == api.DomainTypeUnspecified || vm.DomainType == "" {
		return vm.HVMBootPolicy != ""
	}
	return vm.DomainType == api.DomainTypeHVM
}

// allowedVBDDevices lists the userdevice numbers a new disk of vm could
// take, given the VM's VBDs: what VM.get_allowed_VBD_devices answers.
func allowedVBDDevices(vm *api.VM, vbds []*api.VBD) []string {
	free, _ := vbdAllowedDevicesOf(vm, vmWillHaveQemu(vm), vbds, api.VBDTypeDisk)
	out := make([]string, len(free))
	for i, d := range free {
		out[i] = strconv.Itoa(d.disk)
	}
	return out
}

// allowedVBDDevicesOf reads a VM and its VBDs from the store and lists its
// free userdevice numbers (HANDLE_INVALID for an unknown VM).
func (s *Server) allowedVBDDevicesOf(vm xenapi.Ref) ([]string, error) {
	r, err := s.storeGet(api.ClassVM, vm)
	if err != nil {
		return nil, err
	}
	rec := r.(*api.VM)
	var vbds []*api.VBD
	for _, b := range rec.VBDs {
		if br, err := s.storeGet(api.ClassVBD, b); err == nil {
			vbds = append(vbds, br.(*api.VBD))
		}
	}
	return allowedVBDDevices(rec, vbds), nil
}
