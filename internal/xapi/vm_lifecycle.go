package xapi

import (
	"context"
	"strconv"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// VM power operations: thin XenAPI front-ends over the domain manager,
// which checks states, serialises work per VM and updates the store.

func (s *Server) registerVMLifecycleHandlers() {
	if s.domains == nil {
		return // no hypervisor: these stay NOT_IMPLEMENTED
	}
	d := s.domains
	d.Progress = s.SetProgress
	d.NewSuspendImage = s.newSuspendImage
	d.DropSuspendImage = func(ctx context.Context, vdi xenapi.Ref) {
		if _, err := s.vdiDestroy(ctx, &Call{Args: []wire.Value{wire.String(string(vdi))}}); err != nil {
			s.log.Warn("removing a suspend image", "vdi", vdi, "err", err)
		}
	}
	type op struct {
		name        string
		run         func(ctx context.Context, c *Call) error
		cancellable bool
	}
	for _, o := range []op{
		{"VM.start", func(ctx context.Context, c *Call) error {
			if err := s.assertNetworks(ctx, c.Ref(0)); err != nil {
				return err
			}
			return d.Start(ctx, c.Ref(0), c.Bool(1))
		}, true},
		{"VM.start_on", func(ctx context.Context, c *Call) error {
			if err := s.assertThisHost(c.Ref(1)); err != nil {
				return err
			}
			if err := s.assertNetworks(ctx, c.Ref(0)); err != nil {
				return err
			}
			return d.Start(ctx, c.Ref(0), c.Bool(2))
		}, true},
		{"VM.pause", func(ctx context.Context, c *Call) error { return d.Pause(ctx, c.Ref(0)) }, false},
		{"VM.unpause", func(ctx context.Context, c *Call) error { return d.Unpause(ctx, c.Ref(0)) }, false},
		{"VM.clean_shutdown", func(ctx context.Context, c *Call) error { return d.CleanShutdown(ctx, c.Ref(0)) }, true},
		{"VM.hard_shutdown", func(ctx context.Context, c *Call) error { return d.HardShutdown(ctx, c.Ref(0)) }, false},
		{"VM.shutdown", func(ctx context.Context, c *Call) error { return d.Shutdown(ctx, c.Ref(0)) }, true},
		{"VM.clean_reboot", func(ctx context.Context, c *Call) error { return d.CleanReboot(ctx, c.Ref(0)) }, true},
		{"VM.set_VCPUs_number_live", func(ctx context.Context, c *Call) error { return d.SetVCPUsLive(ctx, c.Ref(0), c.Int(1)) }, false},
		{"VM.set_memory_target_live", func(ctx context.Context, c *Call) error {
			return d.SetMemoryTargetLive(ctx, c.Ref(0), c.Int(1))
		}, false},
		{"VM.hard_reboot", func(ctx context.Context, c *Call) error { return d.HardReboot(ctx, c.Ref(0)) }, false},
		{"VM.set_shadow_multiplier_live", func(ctx context.Context, c *Call) error {
			return d.SetShadowMultiplierLive(ctx, c.Ref(0), c.Float(1))
		}, false},
		{"VM.suspend", func(ctx context.Context, c *Call) error { return d.Suspend(ctx, c.Ref(0)) }, false},
		{"VM.resume", func(ctx context.Context, c *Call) error { return d.Resume(ctx, c.Ref(0), c.Bool(1)) }, false},
		{"VM.resume_on", func(ctx context.Context, c *Call) error {
			if err := s.assertThisHost(c.Ref(1)); err != nil {
				return err
			}
			return d.Resume(ctx, c.Ref(0), c.Bool(2))
		}, false},
	} {
		o := o
		s.handle(o.name, func(ctx context.Context, c *Call) (Result, error) {
			if _, err := s.store.Get(api.ClassVM, c.Ref(0)); err != nil {
				return nil, err
			}
			err := o.run(ctx, c)
			s.refreshDeviceOperations(c.Ref(0))
			return nil, err
		}, -1)
		s.methods[o.name].cancellable = o.cancellable
	}
	s.handle("VM.get_allowed_VIF_devices", func(ctx context.Context, c *Call) (Result, error) {
		devs, err := s.allowedVIFDevices(c.Ref(0))
		if err != nil {
			return nil, err
		}
		return func(e wire.Encoder) { xenapi.EncSet(e, devs, xenapi.EncStr[string]) }, nil
	}, -1)
	s.handle("VM.assert_can_boot_here", func(ctx context.Context, c *Call) (Result, error) {
		return nil, s.assertCanBoot(ctx, c.Ref(0))
	}, -1)
	s.handle("VM.get_possible_hosts", func(ctx context.Context, c *Call) (Result, error) {
		if err := s.assertCanBoot(ctx, c.Ref(0)); err != nil {
			return refListResult(nil), nil
		}
		return refListResult([]xenapi.Ref{s.hostRef}), nil
	}, -1)
}

// newSuspendImage makes the VDI a VM's memory image goes to: in the pool's
// suspend_image_SR (else its default SR), sized for the VM's memory.
func (s *Server) newSuspendImage(ctx context.Context, ref xenapi.Ref) (xenapi.Ref, error) {
	row, err := s.store.Get(api.ClassVM, ref)
	if err != nil {
		return "", err
	}
	vm := row.Rec.(*api.VM)
	sr := xenapi.NullRef
	for _, p := range s.store.All(api.ClassPool) {
		pool := p.Rec.(*api.Pool)
		sr = pool.SuspendImageSR
		if sr.IsNull() {
			sr = pool.DefaultSR
		}
	}
	if sr.IsNull() {
		return "", xenapi.NewError(api.ErrVMRequiresSR, string(ref), string(sr))
	}
	want := api.NewVDI()
	want.NameLabel = "Suspend image for " + vm.NameLabel
	want.NameDescription = "Memory image of a suspended VM"
	want.SR, want.Type = sr, api.VDITypeSuspend
	want.VirtualSize = vm.MemoryStaticMax + 1<<20
	return s.createVDI(ctx, want)
}

// assertThisHost checks a host argument: xenithd runs one-host pools, so
// any valid host reference is this host.
func (s *Server) assertThisHost(host xenapi.Ref) error {
	_, err := s.store.Get(api.ClassHost, host)
	return err
}

// assertNetworks checks that this host can reach the VM's networks.
func (s *Server) assertNetworks(ctx context.Context, ref xenapi.Ref) error {
	return s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVM, ref)
		if err != nil {
			return err
		}
		var nets []xenapi.Ref
		for _, v := range r.(*api.VM).VIFs {
			if vr, err := tx.Get(api.ClassVIF, v); err == nil {
				nets = append(nets, vr.(*api.VIF).Network)
			}
		}
		return assertCanSeeNetworks(tx, ref, s.hostRef, nets)
	})
}

// refreshDeviceOperations recomputes the allowed operations of a VM's
// devices after its power state may have changed.
func (s *Server) refreshDeviceOperations(ref xenapi.Ref) {
	err := s.store.Update(context.Background(), func(tx *store.Tx) error {
		if !tx.Exists(api.ClassVM, ref) {
			return nil
		}
		if err := refreshVIFAllowedOperations(tx, ref); err != nil {
			return err
		}
		return refreshVMStorageOps(tx, ref)
	})
	if err != nil {
		s.log.Error("refreshing device operations", "vm", ref, "err", err)
	}
}

// assertCanBoot checks that the VM could start on this host now: not a
// template, halted, and its memory fits.
func (s *Server) assertCanBoot(ctx context.Context, ref xenapi.Ref) error {
	row, err := s.store.Get(api.ClassVM, ref)
	if err != nil {
		return err
	}
	vm := row.Rec.(*api.VM)
	if vm.IsATemplate {
		return xenapi.NewError(api.ErrVMIsTemplate, string(ref))
	}
	if err := s.assertNetworks(ctx, ref); err != nil {
		return err
	}
	hi, err := s.domains.Driver().Host(ctx)
	if err != nil {
		return err
	}
	if need := vm.MemoryStaticMax; need > hi.FreeMemory {
		return xenapi.NewError(api.ErrHostNotEnoughFreeMemory, strconv.FormatInt(need, 10), strconv.FormatInt(hi.FreeMemory, 10))
	}
	return nil
}

func refListResult(refs []xenapi.Ref) Result {
	return func(e wire.Encoder) { xenapi.EncSet(e, refs, xenapi.EncRef) }
}
