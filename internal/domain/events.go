package domain

import (
	"context"
	"errors"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Run adopts the domains the hypervisor already runs (after a restart of
// xenithd), then follows what guests do until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	m.reconcile(ctx)
	go m.hostMetricsLoop(ctx)
	m.hostChanged() // what changed while xenithd was down
	if _, ok := m.drv.(StatsDriver); ok || m.samples != nil {
		go m.metricsLoop(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-m.drv.Events():
			// Each event is handled under its VM's lock, after any
			// operation in progress; different VMs proceed in parallel.
			go m.handle(ctx, ev)
		}
	}
}

func (m *Manager) vmByUUID(id string) (xenapi.Ref, *api.VM, bool) {
	row, err := m.st.ByUUID(api.ClassVM, id)
	if err != nil {
		return "", nil, false
	}
	return row.Ref, row.Rec.(*api.VM), true
}

func (m *Manager) handle(ctx context.Context, ev Event) {
	ref, _, ok := m.vmByUUID(ev.UUID)
	if !ok {
		m.log.Warn("event for a domain with no VM", "uuid", ev.UUID, "kind", ev.Kind)
		return
	}
	if ev.Kind == GuestAgent {
		m.recordAgent(ref, ev.Agent)
		return
	}
	unlock, err := m.lock(ctx, ref)
	if err != nil {
		return
	}
	defer unlock()
	// Re-read under the lock: an operation may have dealt with it already.
	row, err := m.st.Get(api.ClassVM, ref)
	if err != nil {
		return
	}
	vm := row.Rec.(*api.VM)
	if vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused {
		return
	}
	var action string
	switch ev.Kind {
	case GuestShutdown:
		action = string(vm.ActionsAfterShutdown)
	case GuestReboot:
		action = string(vm.ActionsAfterReboot)
	case GuestCrash:
		action = string(vm.ActionsAfterCrash)
	}
	m.log.Info("guest event", "vm", ref, "kind", ev.Kind, "action", action)
	if ev.Kind == GuestReboot && action == "restart" {
		// The guest has already rebooted in place: record it.
		if err := m.rebooted(ref, vm); err != nil {
			m.log.Error("recording a guest reboot", "vm", ref, "err", err)
		}
		return
	}
	if err := m.act(ctx, ref, vm, action); err != nil {
		m.log.Error("acting on guest event", "vm", ref, "kind", ev.Kind, "err", err)
	}
}

// act carries out an actions_after_* policy.
func (m *Manager) act(ctx context.Context, ref xenapi.Ref, vm *api.VM, action string) error {
	switch action {
	case "restart", "coredump_and_restart", "rename_restart":
		if _, err := m.drv.Info(ctx, vm.UUID); err == nil {
			if err := m.drv.Reset(ctx, vm.UUID); err != nil {
				return err
			}
			if info, err := m.drv.Info(ctx, vm.UUID); err == nil && info.State == Paused {
				if err := m.drv.Unpause(ctx, vm.UUID); err != nil {
					return err
				}
			}
			return m.rebooted(ref, vm)
		}
		// The domain is gone: build it again.
		if err := m.markHalted(ref); err != nil {
			return err
		}
		row, err := m.st.Get(api.ClassVM, ref)
		if err != nil {
			return err
		}
		return m.start(ctx, ref, row.Rec.(*api.VM), false)
	case "preserve":
		// Leave the crashed domain for inspection, paused.
		_ = m.drv.Pause(ctx, vm.UUID)
		return m.setPowerState(ref, api.VMPowerStatePaused)
	default: // destroy, coredump_and_destroy
		if err := m.drv.Destroy(ctx, vm.UUID); err != nil && !errors.Is(err, ErrNoDomain) {
			return err
		}
		return m.markHalted(ref)
	}
}

// recordAgent stores a guest agent report in the VM's guest metrics.
func (m *Manager) recordAgent(ref xenapi.Ref, rep *AgentReport) {
	if rep == nil {
		return
	}
	err := m.st.Update(context.Background(), func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVM, ref)
		if err != nil {
			return err
		}
		vm := r.(*api.VM)
		if vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused {
			return nil // a late report from a guest that is gone
		}
		fill := func(g *api.VMGuestMetrics) {
			g.OSVersion, g.Networks, g.PVDriversVersion = xenapi.MapOf(rep.OSVersion), xenapi.MapOf(rep.Networks), xenapi.MapOf(rep.PVDrivers)
			g.Disks, g.Other, g.Live = xenapi.MapOf(rep.Disks), xenapi.MapOf(rep.Other), rep.Live
			g.PVDriversUpToDate = len(rep.PVDrivers) > 0
			g.PVDriversDetected = len(rep.PVDrivers) > 0
			if rep.CanUseHotplug {
				g.CanUseHotplugVBD, g.CanUseHotplugVIF = api.TristateTypeYes, api.TristateTypeYes
			}
			g.LastUpdated = time.Now().UTC().Truncate(time.Second)
		}
		if tx.Exists(api.ClassVMGuestMetrics, vm.GuestMetrics) {
			return tx.Modify(api.ClassVMGuestMetrics, vm.GuestMetrics, func(r xenapi.Record) error {
				fill(r.(*api.VMGuestMetrics))
				return nil
			})
		}
		g := api.NewVMGuestMetrics()
		fill(g)
		gref, err := tx.Create(g)
		if err != nil {
			return err
		}
		return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			r.(*api.VM).GuestMetrics = gref
			return nil
		})
	})
	if err != nil {
		m.log.Error("recording guest agent data", "vm", ref, "err", err)
	}
}

// adoptS3 brings an adopted VM's S3 state in VM_metrics in line with its
// guest, which may have slept or woken while xenithd was down.
func (m *Manager) adoptS3(ctx context.Context, ref xenapi.Ref) {
	if _, ok := m.drv.(S3Driver); !ok {
		return
	}
	row, err := m.st.Get(api.ClassVM, ref)
	if err != nil {
		return
	}
	vm := row.Rec.(*api.VM)
	asleep, err := m.S3Asleep(ctx, ref)
	if err == nil {
		err = m.recordS3(ctx, vm, asleep)
	}
	if err != nil {
		m.log.Warn("reading the ACPI S3 state of an adopted domain", "vm", ref, "err", err)
	}
}

// reconcile brings the store in line with the hypervisor after a restart:
// running domains are adopted (same domid), VMs whose domain vanished
// meanwhile are treated as crashed, and domains that halted or crashed
// while nobody watched get their actions_after_* policy.
func (m *Manager) reconcile(ctx context.Context) {
	infos, err := m.drv.List(ctx)
	if err != nil {
		m.log.Error("listing domains", "err", err)
		return
	}
	byUUID := make(map[string]Info, len(infos))
	for _, i := range infos {
		byUUID[i.UUID] = i
	}
	for _, row := range m.st.All(api.ClassVM) {
		vm := row.Rec.(*api.VM)
		if vm.IsControlDomain || (vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused) {
			continue
		}
		// Operations a dead xenithd left half-done are forgotten.
		if len(vm.CurrentOperations) > 0 {
			_ = m.st.Update(ctx, func(tx *store.Tx) error {
				return tx.Modify(api.ClassVM, row.Ref, func(r xenapi.Record) error {
					v := r.(*api.VM)
					v.CurrentOperations = nil
					v.AllowedOperations = AllowedOperations(v)
					return nil
				})
			})
		}
		info, ok := byUUID[vm.UUID]
		switch {
		case !ok:
			m.log.Warn("domain vanished while xenithd was down", "vm", row.Ref)
			go m.handle(ctx, Event{UUID: vm.UUID, Kind: GuestCrash})
		case info.State == Halted:
			go m.handle(ctx, Event{UUID: vm.UUID, Kind: GuestShutdown})
		case info.State == Crashed:
			go m.handle(ctx, Event{UUID: vm.UUID, Kind: GuestCrash})
		default:
			state := api.VMPowerStateRunning
			if info.State == Paused {
				state = api.VMPowerStatePaused
			}
			if int64(info.Domid) != vm.Domid || state != vm.PowerState {
				_ = m.markRunning(row.Ref, info.Domid, state, false, false)
			} else {
				m.syncConsoles(row.Ref, vm.UUID)
			}
			m.adoptS3(ctx, row.Ref)
			m.log.Info("adopted running domain", "vm", row.Ref, "domid", info.Domid)
		}
	}
	// Clear current_operations left on halted/suspended VMs as well.
	for _, row := range m.st.All(api.ClassVM) {
		vm := row.Rec.(*api.VM)
		if len(vm.CurrentOperations) == 0 {
			continue
		}
		_ = m.st.Update(ctx, func(tx *store.Tx) error {
			return tx.Modify(api.ClassVM, row.Ref, func(r xenapi.Record) error {
				v := r.(*api.VM)
				v.CurrentOperations = nil
				v.AllowedOperations = AllowedOperations(v)
				return nil
			})
		})
	}
}
