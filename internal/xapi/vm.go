package xapi

import (
	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// VM.* messages. The lifecycle arrives with the domain manager; for now a
// VM record is created with its metrics object, and destroying it takes
// the metrics along.

func (s *Server) registerVMHooks() {
	// A destroyed VM's statistics go with it.
	s.afterCommit[api.ClassVM] = func(_ xenapi.Ref, gone xenapi.Record) {
		if s.rrds != nil {
			s.rrds.Forget(gone.(*api.VM).UUID)
		}
	}
	s.hooks[api.ClassVM] = classHooks{
		beforeCreate: func(tx *store.Tx, rec xenapi.Record) error {
			vm := rec.(*api.VM)
			m := api.NewVMMetrics()
			m.MemoryActual = vm.MemoryStaticMax
			m.VCPUsNumber = vm.VCPUsAtStartup
			ref, err := tx.Create(m)
			if err != nil {
				return err
			}
			vm.Metrics = ref
			vm.PowerState = api.VMPowerStateHalted
			vm.Domid = -1
			vm.AllowedOperations = domain.AllowedOperations(vm)
			return nil
		},
		beforeDestroy: func(tx *store.Tx, ref xenapi.Ref, rec xenapi.Record) error {
			vm := rec.(*api.VM)
			if vm.PowerState != api.VMPowerStateHalted && !vm.IsControlDomain && !vm.IsASnapshot {
				return xenapi.NewError(api.ErrVMBadPowerState, string(ref), "halted", domain.LowerState(vm.PowerState))
			}
			if vm.IsControlDomain {
				return xenapi.NewError(api.ErrOperationNotAllowed, "the control domain cannot be destroyed")
			}
			// A VM's disks' VBDs and its VIFs go with it; its VDIs stay.
			for _, r := range vm.VBDs {
				if tx.Exists(api.ClassVBD, r) {
					if err := vbdDeleteRecord(tx, r); err != nil {
						return err
					}
				}
			}
			for _, r := range vm.VIFs {
				if tx.Exists(api.ClassVIF, r) {
					if err := deleteVIF(tx, r); err != nil {
						return err
					}
				}
			}
			for _, m := range []xenapi.Ref{vm.Metrics, vm.GuestMetrics} {
				if !m.IsNull() {
					if tx.Exists(api.ClassVMMetrics, m) {
						if err := tx.Delete(api.ClassVMMetrics, m); err != nil {
							return err
						}
					} else if tx.Exists(api.ClassVMGuestMetrics, m) {
						if err := tx.Delete(api.ClassVMGuestMetrics, m); err != nil {
							return err
						}
					}
				}
			}
			return nil
		},
	}
}
