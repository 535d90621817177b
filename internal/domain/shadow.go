package domain

import (
	"context"
	"math"
	"strconv"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Live changes of an HVM domain's shadow memory (XenAPI
// VM.set_shadow_multiplier_live, xenopsd VM.set_shadow_multiplier on a
// running VM).

// ShadowDriver is a driver that resizes a live HVM domain's shadow memory
// pool. It is optional (found by type assertion); without it live changes
// answer NOT_IMPLEMENTED.
type ShadowDriver interface {
	// SetShadowMultiplier sizes the domain's shadow memory to multiplier
	// times its default. Growing takes host memory: *NoMemoryError
	// (wrapped) when it does not fit.
	SetShadowMultiplier(ctx context.Context, uuid string, multiplier float64) error
}

// changing_shadow_memory_live starts from a running VM (xapi's table).
func init() {
	fromStates[api.VMOperationsChangingShadowMemoryLive] = []ps{running}
}

// SupportsShadowLive reports whether the driver resizes shadow memory live.
func (m *Manager) SupportsShadowLive() bool {
	_, ok := m.drv.(ShadowDriver)
	return ok
}

// SetShadowMultiplierLive changes a running HVM VM's shadow multiplier and
// records it in HVM_shadow_multiplier. The multiplier is at least 1, as in
// xapi.
func (m *Manager) SetShadowMultiplierLive(ctx context.Context, ref xenapi.Ref, multiplier float64) error {
	sd, ok := m.drv.(ShadowDriver)
	if !ok {
		return xenapi.NewError(api.ErrNotImplemented, "live shadow memory changes with the "+m.drv.Name()+" driver")
	}
	if math.IsNaN(multiplier) || math.IsInf(multiplier, 0) || multiplier < 1 {
		return xenapi.NewError(api.ErrInvalidValue, "multiplier", strconv.FormatFloat(multiplier, 'g', -1, 64))
	}
	return m.do(ctx, ref, api.VMOperationsChangingShadowMemoryLive, func(ctx context.Context, vm *api.VM) error {
		if vm.HVMBootPolicy == "" {
			return xenapi.NewError(api.ErrVMHVMRequired, string(ref))
		}
		if err := sd.SetShadowMultiplier(ctx, vm.UUID, multiplier); err != nil {
			return err
		}
		return m.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
				r.(*api.VM).HVMShadowMultiplier = multiplier
				return nil
			})
		})
	})
}
