package xenops

import (
	"context"
	"errors"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Transient VMs: a VM added with transient=true is forgotten when it
// shuts down (not when it reboots), as in xenopsd. "Forgotten" is the
// interface's VM.remove: the XenAPI VM record goes (with its VBDs and
// VIFs, as XenAPI's VM.destroy does); its disks stay.
//
// The front removes such a VM itself at the end of its own VM.shutdown;
// a watcher on the store's VM changes catches every other way to halt
// (XenAPI hard_shutdown or clean_shutdown, the guest powering off, xend),
// wherever the shutdown came from.

// transientSettle is how long the watcher lets a VM that went Halted
// settle before removing it: a reboot records Halted and then Running in
// two steps, and a restart policy may build the domain again.
var transientSettle = 250 * time.Millisecond

// transientQueue bounds the VM changes the watcher may fall behind by.
const transientQueue = 4096

func isTransient(vm *api.VM) bool {
	v, _ := vm.OtherConfig.Lookup(ocPrefix + "transient")
	return truthy(v)
}

func isVMChange(c *xenapi.Class, _ xenapi.Ref) bool { return c == api.ClassVM }

// watchTransient follows VM changes until ctx ends, and removes a
// transient VM that went from having a domain to Halted. At its start it
// also removes the transient VMs that halted after running while nobody
// watched (xenithd was down, or a removal never finished).
func (s *Service) watchTransient(ctx context.Context, sub *store.Subscription) {
	defer sub.Close()
	last := map[xenapi.Ref]api.VMPowerState{} // transient VMs' last power state
	resync := func() {
		clear(last)
		for _, row := range s.st.All(api.ClassVM) {
			if vm := row.Rec.(*api.VM); isTransient(vm) {
				last[row.Ref] = vm.PowerState
			}
		}
	}
	resync()
	for _, row := range s.st.All(api.ClassVM) {
		if vm := row.Rec.(*api.VM); isTransient(vm) && vm.PowerState == api.VMPowerStateHalted && s.hasRun(vm) {
			go s.settleTransient(ctx, row.Ref, vm.UUID)
		}
	}
	for {
		wake := s.st.Wait()
		changes, lost := sub.Take()
		if lost {
			s.log.Warn("transient VM watcher fell behind; resynchronising")
			resync()
		}
		for _, ch := range changes {
			vm, ok := ch.Rec.(*api.VM)
			if !ok || ch.Op == store.OpDel || !isTransient(vm) {
				delete(last, ch.Ref)
				continue
			}
			prev, known := last[ch.Ref]
			last[ch.Ref] = vm.PowerState
			if known && prev != api.VMPowerStateHalted && vm.PowerState == api.VMPowerStateHalted {
				go s.settleTransient(ctx, ch.Ref, vm.UUID)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// hasRun tells whether vm ever had a domain: its metrics keep the time of
// its last start, which a VM only added never gets.
func (s *Service) hasRun(vm *api.VM) bool {
	row, err := s.st.Get(api.ClassVMMetrics, vm.Metrics)
	if err != nil {
		return false
	}
	return row.Rec.(*api.VMMetrics).StartTime.After(xenapi.Epoch)
}

// settleTransient removes a transient VM that is still halted after
// transientSettle.
func (s *Service) settleTransient(ctx context.Context, ref xenapi.Ref, id string) {
	t := time.NewTimer(transientSettle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	// Operations in progress (a start, a restart policy) get a while to
	// finish before the VM is judged.
	for range 40 {
		removed, busy := s.removeTransient(ctx, ref, id)
		if removed || !busy {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(transientSettle):
		}
	}
	s.log.Warn("transient VM stayed busy; not removed", "vm", id)
}

// removeTransient removes a transient VM if it is halted with no domain
// and no operation in progress. busy reports an operation in progress
// (or a domain still there), worth a later retry.
func (s *Service) removeTransient(ctx context.Context, ref xenapi.Ref, id string) (removed, busy bool) {
	row, err := s.st.Get(api.ClassVM, ref)
	if err != nil {
		return false, false // gone already
	}
	vm := row.Rec.(*api.VM)
	if !isTransient(vm) || vm.PowerState != api.VMPowerStateHalted {
		return false, false
	}
	if len(vm.CurrentOperations) > 0 {
		return false, true
	}
	if doms := s.front.Domains(); doms != nil {
		if _, err := doms.Driver().Info(ctx, vm.UUID); !errors.Is(err, domain.ErrNoDomain) {
			return false, true // a domain is still (or again) there
		}
	}
	sess, err := s.front.Authenticate(ctx, nil, true)
	if err != nil {
		s.log.Error("transient VM: no local session", "vm", id, "err", err)
		return false, false
	}
	if _, err := s.front.Call(ctx, sess, "VM.destroy", wire.String(string(ref))); err != nil {
		var xe *xenapi.Error
		if errors.As(err, &xe) && (xe.Code == api.ErrOtherOperationInProgress || xe.Code == api.ErrVMBadPowerState) {
			return false, true
		}
		if errors.As(err, &xe) && xe.Code == api.ErrHandleInvalid {
			return false, false
		}
		s.log.Warn("transient VM: removing", "vm", id, "err", err)
		return false, false
	}
	s.forget(id)
	s.log.Info("transient VM halted: removed", "vm", id)
	return true, false
}
