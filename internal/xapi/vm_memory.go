package xapi

import (
	"context"
	"strconv"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// VM memory and VCPU settings of a halted VM (live changes belong to the
// domain manager). Every change keeps the XenAPI memory invariant
// static_min <= dynamic_min <= dynamic_max <= static_max.

func (s *Server) registerVMSettingHandlers() {
	type limits struct{ smin, dmin, dmax, smax *int64 }
	memSetter := func(apply func(c *Call, l limits)) handlerFunc {
		return func(ctx context.Context, c *Call) (Result, error) {
			return nil, s.modifyHaltedVM(ctx, c.Ref(0), func(vm *api.VM) error {
				apply(c, limits{&vm.MemoryStaticMin, &vm.MemoryDynamicMin, &vm.MemoryDynamicMax, &vm.MemoryStaticMax})
				return checkMemory(vm)
			})
		}
	}
	s.handle("VM.set_memory_static_max", memSetter(func(c *Call, l limits) { *l.smax = c.Int(1) }), -1)
	s.handle("VM.set_memory_static_min", memSetter(func(c *Call, l limits) { *l.smin = c.Int(1) }), -1)
	s.handle("VM.set_memory_dynamic_max", memSetter(func(c *Call, l limits) { *l.dmax = c.Int(1) }), -1)
	s.handle("VM.set_memory_dynamic_min", memSetter(func(c *Call, l limits) { *l.dmin = c.Int(1) }), -1)
	s.handle("VM.set_memory_dynamic_range", memSetter(func(c *Call, l limits) { *l.dmin, *l.dmax = c.Int(1), c.Int(2) }), -1)
	s.handle("VM.set_memory_static_range", memSetter(func(c *Call, l limits) { *l.smin, *l.smax = c.Int(1), c.Int(2) }), -1)
	s.handle("VM.set_memory_limits", memSetter(func(c *Call, l limits) {
		*l.smin, *l.smax, *l.dmin, *l.dmax = c.Int(1), c.Int(2), c.Int(3), c.Int(4)
	}), -1)
	// set_memory sets the VM's memory to one value: the dynamic range and
	// the static maximum all become it.
	s.handle("VM.set_memory", memSetter(func(c *Call, l limits) {
		v := c.Int(1)
		*l.dmin, *l.dmax, *l.smax = v, v, v
		if *l.smin > v {
			*l.smin = v
		}
	}), -1)
	s.handle("VM.set_VCPUs_max", func(ctx context.Context, c *Call) (Result, error) {
		n := c.Int(1)
		return nil, s.modifyHaltedVM(ctx, c.Ref(0), func(vm *api.VM) error {
			if n < 1 || n < vm.VCPUsAtStartup {
				return xenapi.NewError(api.ErrInvalidValue, "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max", strconv.FormatInt(n, 10))
			}
			vm.VCPUsMax = n
			return nil
		})
	}, -1)
	s.handle("VM.set_VCPUs_at_startup", func(ctx context.Context, c *Call) (Result, error) {
		n := c.Int(1)
		return nil, s.modifyHaltedVM(ctx, c.Ref(0), func(vm *api.VM) error {
			if n < 1 || n > vm.VCPUsMax {
				return xenapi.NewError(api.ErrInvalidValue, "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max", strconv.FormatInt(n, 10))
			}
			vm.VCPUsAtStartup = n
			return nil
		})
	}, -1)
}

func checkMemory(vm *api.VM) error {
	if vm.MemoryStaticMin < 0 || vm.MemoryStaticMin > vm.MemoryDynamicMin || vm.MemoryDynamicMin > vm.MemoryDynamicMax || vm.MemoryDynamicMax > vm.MemoryStaticMax {
		return xenapi.NewError(api.ErrMemoryConstraintViolation, "Memory limits must satisfy: static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max")
	}
	return nil
}

// modifyHaltedVM applies fn to a halted VM (or a template or snapshot),
// refusing other power states with VM_BAD_POWER_STATE.
func (s *Server) modifyHaltedVM(ctx context.Context, ref xenapi.Ref, fn func(vm *api.VM) error) error {
	return s.store.Update(ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			vm := r.(*api.VM)
			if vm.PowerState != api.VMPowerStateHalted {
				return xenapi.NewError(api.ErrVMBadPowerState, string(ref), "halted", domain.LowerState(vm.PowerState))
			}
			return fn(vm)
		})
	})
}

// registerVMFieldSetters serves the VM setters the datamodel declares as
// explicit messages although they only set a field; some of them only
// while the VM is halted, as in xapi.
func (s *Server) registerVMFieldSetters() {
	c := api.ClassVM
	anyState := []string{"actions_after_crash", "order", "shutdown_delay", "start_delay",
		"ha_always_run", "ha_restart_priority", "suspend_VDI", "appliance", "snapshot_schedule"}
	haltedOnly := []string{"HVM_boot_policy", "domain_type", "HVM_shadow_multiplier", "bios_strings", "has_vendor_device", "NVRAM"}
	for _, name := range anyState {
		if f := c.Field(name); f != nil {
			s.handle("VM.set_"+name, s.fieldSet(c, f), -1)
		}
	}
	for _, name := range haltedOnly {
		f := c.Field(name)
		if f == nil {
			continue
		}
		set := s.fieldSet(c, f)
		s.handle("VM.set_"+name, func(ctx context.Context, call *Call) (Result, error) {
			if err := s.assertHalted(call.Ref(0)); err != nil {
				return nil, err
			}
			return set(ctx, call)
		}, -1)
	}
	if f := c.Field("NVRAM"); f != nil {
		s.handle("VM.add_to_NVRAM", s.mapAdd(c, f), -1)
		s.handle("VM.remove_from_NVRAM", s.mapRemove(c, f), -1)
	}
}

// assertHalted refuses a change that needs the VM halted.
func (s *Server) assertHalted(ref xenapi.Ref) error {
	row, err := s.store.Get(api.ClassVM, ref)
	if err != nil {
		return err
	}
	if vm := row.Rec.(*api.VM); vm.PowerState != api.VMPowerStateHalted {
		return xenapi.NewError(api.ErrVMBadPowerState, string(ref), "halted", domain.LowerState(vm.PowerState))
	}
	return nil
}
