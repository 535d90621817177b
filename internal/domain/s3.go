package domain

import (
	"context"
	"errors"
	"slices"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// ACPI S3 ("suspend to RAM"): an HVM guest asked to sleep stops its vCPUs
// but keeps its memory and its domain. As in xapi and xenopsd, the VM's
// power_state stays Running; xenithd additionally lists S3State in the
// VM_metrics state set while the guest sleeps, so XenAPI clients (and
// their events) can tell.

// S3Driver is a driver that can put HVM guests into ACPI S3 and wake them.
// It is optional (found by type assertion); without it the S3 operations
// answer NOT_IMPLEMENTED.
type S3Driver interface {
	// S3Suspend asks the guest to enter S3: its vCPUs stop, memory and
	// devices are kept, the domain stays.
	S3Suspend(ctx context.Context, uuid string) error
	// S3Resume wakes a guest from S3.
	S3Resume(ctx context.Context, uuid string) error
	// S3Asleep reports whether the guest is in S3 now.
	S3Asleep(ctx context.Context, uuid string) (bool, error)
}

// S3State is the VM_metrics state entry of a guest in ACPI S3.
const S3State = "s3"

// SupportsS3 reports whether the driver offers ACPI S3.
func (m *Manager) SupportsS3() bool {
	_, ok := m.drv.(S3Driver)
	return ok
}

// S3Suspend puts a running HVM VM into ACPI S3. A guest already asleep
// is left so.
func (m *Manager) S3Suspend(ctx context.Context, ref xenapi.Ref) error {
	return m.s3(ctx, ref, true)
}

// S3Resume wakes a running HVM VM from ACPI S3. A guest that is awake is
// left so.
func (m *Manager) S3Resume(ctx context.Context, ref xenapi.Ref) error {
	return m.s3(ctx, ref, false)
}

// S3Asleep reports whether the VM's guest is in ACPI S3 (false for a VM
// without a domain).
func (m *Manager) S3Asleep(ctx context.Context, ref xenapi.Ref) (bool, error) {
	sd, ok := m.drv.(S3Driver)
	if !ok {
		return false, xenapi.NewError(api.ErrNotImplemented, "ACPI S3 with the "+m.drv.Name()+" driver")
	}
	row, err := m.st.Get(api.ClassVM, ref)
	if err != nil {
		return false, err
	}
	vm := row.Rec.(*api.VM)
	if vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused {
		return false, nil
	}
	asleep, err := sd.S3Asleep(ctx, vm.UUID)
	if errors.Is(err, ErrNoDomain) {
		return false, nil
	}
	if err != nil {
		return false, m.mapError(err)
	}
	return asleep, nil
}

// s3 moves a VM into (sleep) or out of S3. It runs under the VM's lock,
// like every operation on it, and refuses while another operation is in
// progress. There is no XenAPI vm_operations value for S3, so nothing is
// recorded in current_operations.
func (m *Manager) s3(ctx context.Context, ref xenapi.Ref, sleep bool) error {
	sd, ok := m.drv.(S3Driver)
	if !ok {
		return xenapi.NewError(api.ErrNotImplemented, "ACPI S3 with the "+m.drv.Name()+" driver")
	}
	unlock, err := m.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer unlock()
	row, err := m.st.Get(api.ClassVM, ref)
	if err != nil {
		return err
	}
	vm := row.Rec.(*api.VM)
	for id, cur := range vm.CurrentOperations.All() {
		return xenapi.NewError(api.ErrOtherOperationInProgress, "VM", string(ref), string(cur), id)
	}
	if vm.IsControlDomain {
		return xenapi.NewError(api.ErrOperationNotAllowed, "the control domain has no ACPI S3 here")
	}
	if vm.PowerState != api.VMPowerStateRunning {
		return xenapi.NewError(api.ErrVMBadPowerState, string(ref), LowerState(api.VMPowerStateRunning), LowerState(vm.PowerState))
	}
	if vm.HVMBootPolicy == "" {
		return xenapi.NewError(api.ErrVMHVMRequired, string(ref))
	}
	asleep, err := sd.S3Asleep(ctx, vm.UUID)
	if err != nil {
		return m.mapError(err)
	}
	what := "s3resume"
	if sleep {
		what = "s3suspend"
	}
	if asleep != sleep {
		m.log.Info("VM operation", "vm", ref, "op", what)
		if sleep {
			err = sd.S3Suspend(ctx, vm.UUID)
		} else {
			err = sd.S3Resume(ctx, vm.UUID)
		}
		if err != nil {
			m.log.Info("VM operation failed", "vm", ref, "op", what, "err", err)
			return m.mapError(err)
		}
	}
	return m.recordS3(context.WithoutCancel(ctx), vm, sleep)
}

// recordS3 lists (or drops) S3State in the VM_metrics state set.
func (m *Manager) recordS3(ctx context.Context, vm *api.VM, asleep bool) error {
	return m.st.Update(ctx, func(tx *store.Tx) error {
		if !tx.Exists(api.ClassVMMetrics, vm.Metrics) {
			return nil
		}
		return tx.Modify(api.ClassVMMetrics, vm.Metrics, func(r xenapi.Record) error {
			mt := r.(*api.VMMetrics)
			state := slices.DeleteFunc(slices.Clone(mt.State), func(s string) bool { return s == S3State })
			if len(state) == 0 {
				state = []string{LowerState(vm.PowerState)}
			}
			if asleep {
				state = append(state, S3State)
			}
			if slices.Equal(state, mt.State) {
				return nil
			}
			mt.State, mt.LastUpdated = state, now()
			return nil
		})
	})
}
