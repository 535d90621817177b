package domain

import (
	"context"
	"strconv"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Hotplug of disks and NICs into running VMs, under the VM's lock so it
// never interleaves with a power operation.

// PlugVBD attaches a VBD to its running VM.
func (m *Manager) PlugVBD(ctx context.Context, ref xenapi.Ref) error {
	return m.hotplug(ctx, api.ClassVBD, ref, true)
}

// UnplugVBD detaches a VBD from its running VM.
func (m *Manager) UnplugVBD(ctx context.Context, ref xenapi.Ref) error {
	return m.hotplug(ctx, api.ClassVBD, ref, false)
}

// PlugVIF attaches a VIF to its running VM.
func (m *Manager) PlugVIF(ctx context.Context, ref xenapi.Ref) error {
	return m.hotplug(ctx, api.ClassVIF, ref, true)
}

// UnplugVIF detaches a VIF from its running VM.
func (m *Manager) UnplugVIF(ctx context.Context, ref xenapi.Ref) error {
	return m.hotplug(ctx, api.ClassVIF, ref, false)
}

func (m *Manager) hotplug(ctx context.Context, c *xenapi.Class, ref xenapi.Ref, plug bool) error {
	row, err := m.st.Get(c, ref)
	if err != nil {
		return err
	}
	var vmRef xenapi.Ref
	var attached bool
	switch d := row.Rec.(type) {
	case *api.VBD:
		vmRef, attached = d.VM, d.CurrentlyAttached
	case *api.VIF:
		vmRef, attached = d.VM, d.CurrentlyAttached
	}
	unlock, err := m.lock(ctx, vmRef)
	if err != nil {
		return err
	}
	defer unlock()
	vmRow, err := m.st.Get(api.ClassVM, vmRef)
	if err != nil {
		return err
	}
	vm := vmRow.Rec.(*api.VM)
	if vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused {
		return xenapi.NewError(api.ErrVMBadPowerState, string(vmRef), "running", LowerState(vm.PowerState))
	}
	if plug && attached {
		return xenapi.NewError(api.ErrDeviceAlreadyAttached, string(ref))
	}
	if !plug && !attached {
		return xenapi.NewError(api.ErrDeviceAlreadyDetached, string(ref))
	}
	// Re-read the device: the lock may have waited behind a change.
	row, err = m.st.Get(c, ref)
	if err != nil {
		return err
	}
	switch d := row.Rec.(type) {
	case *api.VBD:
		if plug {
			disk := Disk{Device: d.Userdevice, ReadOnly: d.Mode == api.VBDModeRO, CD: d.Type == api.VBDTypeCD, Bootable: d.Bootable}
			if !d.Empty && !d.VDI.IsNull() {
				disk.Path, disk.Format = m.vdiPath(d.VDI)
			}
			err = m.drv.PlugDisk(ctx, vm.UUID, disk)
		} else {
			err = m.drv.UnplugDisk(ctx, vm.UUID, d.Userdevice)
		}
	case *api.VIF:
		if plug {
			n := NIC{Device: d.Device, MAC: d.MAC, MTU: int(d.MTU)}
			if nr, err := m.st.Get(api.ClassNetwork, d.Network); err == nil {
				n.Bridge = nr.Rec.(*api.Network).Bridge
			}
			err = m.drv.PlugNIC(ctx, vm.UUID, n)
		} else {
			err = m.drv.UnplugNIC(ctx, vm.UUID, d.Device)
		}
	}
	if err != nil {
		return m.mapError(err)
	}
	return m.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		return tx.Modify(c, ref, func(r xenapi.Record) error {
			switch d := r.(type) {
			case *api.VBD:
				d.CurrentlyAttached = plug
			case *api.VIF:
				d.CurrentlyAttached = plug
			}
			return nil
		})
	})
}

// SetVCPUsLive changes the number of online VCPUs of a running VM.
func (m *Manager) SetVCPUsLive(ctx context.Context, ref xenapi.Ref, n int64) error {
	return m.do(ctx, ref, api.VMOperationsChangingVCPUsLive, func(ctx context.Context, vm *api.VM) error {
		if n < 1 || n > vm.VCPUsMax {
			return xenapi.NewError(api.ErrInvalidValue, "nvcpu", strconv.FormatInt(n, 10))
		}
		if err := m.drv.SetVCPUs(ctx, vm.UUID, int(n)); err != nil {
			return err
		}
		return m.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if !tx.Exists(api.ClassVMMetrics, vm.Metrics) {
				return nil
			}
			return tx.Modify(api.ClassVMMetrics, vm.Metrics, func(r xenapi.Record) error {
				r.(*api.VMMetrics).VCPUsNumber = n
				return nil
			})
		})
	})
}

// SetMemoryTargetLive balloons a running VM to target bytes, within its
// dynamic range.
func (m *Manager) SetMemoryTargetLive(ctx context.Context, ref xenapi.Ref, target int64) error {
	return m.do(ctx, ref, api.VMOperationsChangingMemoryLive, func(ctx context.Context, vm *api.VM) error {
		if target < vm.MemoryDynamicMin || target > vm.MemoryDynamicMax {
			return xenapi.NewError(api.ErrMemoryConstraintViolation, "target must lie within dynamic_min..dynamic_max")
		}
		if err := m.drv.SetMemoryTarget(ctx, vm.UUID, target); err != nil {
			return err
		}
		m.hostChanged()
		return m.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
				r.(*api.VM).MemoryTarget = target
				return nil
			}); err != nil {
				return err
			}
			if !tx.Exists(api.ClassVMMetrics, vm.Metrics) {
				return nil
			}
			return tx.Modify(api.ClassVMMetrics, vm.Metrics, func(r xenapi.Record) error {
				r.(*api.VMMetrics).MemoryActual = target
				return nil
			})
		})
	})
}

// ChangeMedium puts the VBD's current VDI (or nothing, for an empty drive)
// into the running domain's CD drive: the drive is swapped out and in again.
func (m *Manager) ChangeMedium(ctx context.Context, vbdRef xenapi.Ref) error {
	row, err := m.st.Get(api.ClassVBD, vbdRef)
	if err != nil {
		return err
	}
	vbd := row.Rec.(*api.VBD)
	unlock, err := m.lock(ctx, vbd.VM)
	if err != nil {
		return err
	}
	defer unlock()
	vmRow, err := m.st.Get(api.ClassVM, vbd.VM)
	if err != nil {
		return err
	}
	vm := vmRow.Rec.(*api.VM)
	if (vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused) || !vbd.CurrentlyAttached {
		return nil // the drive is not in a domain: the record is all there is
	}
	disk := Disk{Device: vbd.Userdevice, ReadOnly: true, CD: true, Bootable: vbd.Bootable}
	if !vbd.Empty && !vbd.VDI.IsNull() {
		disk.Path, disk.Format = m.vdiPath(vbd.VDI)
	}
	if mc, ok := m.drv.(MediumChanger); ok {
		if err := mc.ChangeMedium(ctx, vm.UUID, disk); err != nil {
			return m.mapError(err)
		}
		return nil
	}
	if err := m.drv.UnplugDisk(ctx, vm.UUID, vbd.Userdevice); err != nil {
		return m.mapError(err)
	}
	if err := m.drv.PlugDisk(ctx, vm.UUID, disk); err != nil {
		return m.mapError(err)
	}
	return nil
}
