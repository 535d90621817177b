package xenops

import (
	"context"
	"sort"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Updates.get({dbg, from, timeout}) is the event call: it answers
// (events, Barrier n) where the events are the interface's
// dynamically-typed events (Vm_t, Vbd_t, Vif_t, Task_t: the object's id,
// configuration and state) for every object that changed after the
// barrier token from, and Barrier n is the token to pass next. Without
// from it answers the current state of every object at once; with one it
// waits (up to timeout seconds, default 60) for a change. An object that
// is gone is reported with its last configuration and no state (Task_t
// with no task). The tokens are XenAPI event generations, so the stream
// misses nothing between two calls.

const (
	defaultUpdatesTimeout = 60 * time.Second
	maxUpdatesTimeout     = 10 * time.Minute
)

func barrier(gen uint64) wire.Value { return variant("Barrier", wire.Int(int64(gen))) }

func (s *Service) updatesGet(ctx context.Context, c *call) (wire.Value, *Error) {
	d := &decoder{}
	var from *uint64
	if v, ok := c.arg("from"); ok {
		if x, some := d.option(v); some {
			// Accept the barrier as an int or as the Barrier variant.
			if x.Kind == wire.KindArray || (x.Kind == wire.KindString && x.Str == "Barrier") {
				_, arg := d.variant(x, "from", "Barrier")
				x = arg
			}
			n := d.int(x, "from")
			if n < 0 {
				d.fail("from", "must not be negative")
			}
			g := uint64(n)
			from = &g
		}
	}
	timeout := defaultUpdatesTimeout
	if v, ok := c.arg("timeout"); ok {
		if x, some := d.option(v); some {
			f := d.float(x, "timeout")
			if f < 0 {
				d.fail("timeout", "must not be negative")
			}
			timeout = min(time.Duration(f*float64(time.Second)), maxUpdatesTimeout)
		}
	}
	if d.err != nil {
		return wire.Value{}, internalError(c.method + ": " + d.err.Error())
	}
	if from == nil {
		return s.snapshot(), nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		wake := s.st.Wait()
		changes, gen, ok := s.st.Changes(*from)
		if !ok {
			return s.snapshot(), nil // the log no longer reaches back: resynchronise
		}
		if evs := s.events(changes); len(evs) > 0 {
			return wire.Array(list(evs), barrier(gen)), nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			return wire.Array(list(nil), barrier(gen)), nil
		case <-ctx.Done():
			return wire.Value{}, internalError("cancelled")
		}
	}
}

// snapshot reports every object as it is now.
func (s *Service) snapshot() wire.Value {
	gen := s.st.Generation()
	var evs []wire.Value
	for _, vm := range s.managedVMs() {
		evs = append(evs, s.vmEvent(vm, true))
		vbds, vifs := devicesOf(s.st, vm)
		for _, b := range vbds {
			evs = append(evs, variant("Vbd_t", idPair(b.VM, b.Device), b.Value(), some(b.StateValue())))
		}
		for _, f := range vifs {
			evs = append(evs, variant("Vif_t", idPair(f.VM, f.Device), f.Value(), some(f.StateValue())))
		}
	}
	tasks := s.st.All(api.ClassTask)
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Created < tasks[j].Created })
	for _, row := range tasks {
		t := row.Rec.(*api.Task)
		evs = append(evs, variant("Task_t", wire.String(t.UUID), some(taskValue(t).Value())))
	}
	return wire.Array(list(evs), barrier(gen))
}

func (s *Service) vmEvent(vm *api.VM, live bool) wire.Value {
	state := none()
	if live {
		state = some(stateOf(s.st, vm).Value())
	}
	return variant("Vm_t", wire.String(vm.UUID), vmOf(vm).Value(), state)
}

// events turns store changes into the interface's events: one per object,
// its latest state, in the order the objects first changed. A VM's metrics
// changing is a change of the VM.
func (s *Service) events(changes []store.Change) []wire.Value {
	type key struct {
		c   *xenapi.Class
		ref xenapi.Ref
	}
	last := map[key]store.Change{}
	var order []key
	note := func(k key, ch store.Change) {
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		last[k] = ch
	}
	for _, ch := range changes {
		switch ch.Class {
		case api.ClassVM, api.ClassVBD, api.ClassVIF, api.ClassTask:
			note(key{ch.Class, ch.Ref}, ch)
		case api.ClassVMMetrics, api.ClassVMGuestMetrics:
			if ch.Op == store.OpDel {
				continue
			}
			for _, row := range s.st.Find(api.ClassVM, func(r *store.Row) bool {
				vm := r.Rec.(*api.VM)
				return vm.Metrics == ch.Ref || vm.GuestMetrics == ch.Ref
			}) {
				if _, seen := last[key{api.ClassVM, row.Ref}]; !seen {
					note(key{api.ClassVM, row.Ref}, store.Change{Class: api.ClassVM, Ref: row.Ref, Op: store.OpMod, Rec: row.Rec})
				}
			}
		}
	}
	var out []wire.Value
	for _, k := range order {
		ch := last[k]
		gone := ch.Op == store.OpDel
		switch k.c {
		case api.ClassVM:
			vm := ch.Rec.(*api.VM)
			if !gone {
				if row, err := s.st.Get(api.ClassVM, k.ref); err == nil {
					vm = row.Rec.(*api.VM)
				}
			}
			if managed(vm) {
				out = append(out, s.vmEvent(vm, !gone))
			}
		case api.ClassVBD:
			b := ch.Rec.(*api.VBD)
			vm, ok := s.ownerVM(b.VM)
			if !ok {
				continue
			}
			x := vbdOf(s.st, vm, b)
			state := none()
			if !gone {
				state = some(x.StateValue())
			}
			out = append(out, variant("Vbd_t", idPair(x.VM, x.Device), x.Value(), state))
		case api.ClassVIF:
			f := ch.Rec.(*api.VIF)
			vm, ok := s.ownerVM(f.VM)
			if !ok {
				continue
			}
			x := vifOf(s.st, vm, f)
			state := none()
			if !gone {
				state = some(x.StateValue())
			}
			out = append(out, variant("Vif_t", idPair(x.VM, x.Device), x.Value(), state))
		case api.ClassTask:
			t := ch.Rec.(*api.Task)
			if gone {
				out = append(out, variant("Task_t", wire.String(t.UUID), none()))
			} else {
				out = append(out, variant("Task_t", wire.String(t.UUID), some(taskValue(t).Value())))
			}
		}
	}
	return out
}

// ownerVM returns the id of a device's VM, if the interface shows it.
func (s *Service) ownerVM(ref xenapi.Ref) (string, bool) {
	row, err := s.st.Get(api.ClassVM, ref)
	if err != nil {
		return "", false
	}
	vm := row.Rec.(*api.VM)
	return vm.UUID, managed(vm)
}
