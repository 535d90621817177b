package sim

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/xenith/xenith/internal/domain"
)

// Operation names for FailNext: one per domain.Driver call.
const (
	opHost            = "host"
	opCreate          = "create"
	opUnpause         = "unpause"
	opPause           = "pause"
	opShutdown        = "shutdown"
	opDestroy         = "destroy"
	opReset           = "reset"
	opSuspend         = "suspend"
	opResume          = "resume"
	opSetMemoryTarget = "set_memory_target"
	opSetVCPUs        = "set_vcpus"
	opPlugDisk        = "plug_disk"
	opUnplugDisk      = "unplug_disk"
	opPlugNIC         = "plug_nic"
	opUnplugNIC       = "unplug_nic"
	opInfo            = "info"
	opList            = "list"
	opS3Suspend       = "s3suspend"
	opS3Resume        = "s3resume"
	opSetShadow       = "set_shadow_multiplier"
	opConsole         = "console"
	opStats           = "stats"
)

var ops = []string{
	opHost, opCreate, opUnpause, opPause, opShutdown, opDestroy, opReset,
	opSuspend, opResume, opSetMemoryTarget, opSetVCPUs, opPlugDisk,
	opUnplugDisk, opPlugNIC, opUnplugNIC, opInfo, opList,
	opS3Suspend, opS3Resume, opSetShadow, opConsole, opStats,
}

// Ops lists the operation names FailNext accepts, sorted.
func Ops() []string {
	o := slices.Clone(ops)
	sort.Strings(o)
	return o
}

type failKey struct{ op, uuid string }

// FailNext makes the next call of op on the domain uuid ("" = on any
// domain) fail, before it has any effect, with an error wrapping
// domain.ErrInjected. Calling it n times fails the next n calls. A failure
// armed for a specific uuid is used before one armed for any. "host" and
// "list" concern no domain: arm them with uuid "". "resume" matches the
// uuid of the spec given to Resume. Armed failures are not persisted.
func (d *Driver) FailNext(op, uuid string) error {
	if !slices.Contains(ops, op) {
		return fmt.Errorf("sim: fail-next: unknown operation %q (want one of %v): %w", op, Ops(), ErrInvalid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.fails[failKey{op, uuid}]++
	return nil
}

func (d *Driver) injectedLocked(op, uuid string) error {
	for _, k := range []failKey{{op, uuid}, {op, ""}} {
		if d.fails[k] > 0 {
			if d.fails[k]--; d.fails[k] == 0 {
				delete(d.fails, k)
			}
			if uuid == "" {
				return fmt.Errorf("sim: %s: %w", op, domain.ErrInjected)
			}
			return fmt.Errorf("sim: %s %s: %w", op, uuid, domain.ErrInjected)
		}
	}
	return nil
}

// guestAction runs a guest-initiated action on a running domain and
// persists its effect.
func (d *Driver) guestAction(op, uuid string, act func(*dom)) error {
	return d.change(context.Background(), op, uuid, func(x *dom) error {
		if err := wantState(x, op, domain.Running); err != nil {
			return err
		}
		if x.rec.S3 && op != "crash" {
			// A sleeping guest does nothing of its own; it can still crash.
			return &StateError{UUID: uuid, Op: op, State: x.state(), Why: "the guest is in ACPI S3"}
		}
		act(x)
		return nil
	})
}

// Crash makes a running guest crash now: the domain becomes Crashed
// (keeping its memory until destroyed) and Events gets a GuestCrash.
func (d *Driver) Crash(uuid string) error {
	return d.guestAction("crash", uuid, func(x *dom) {
		interrupt(x, "crashed")
		d.stopRunning(x, domain.Crashed)
		x.rec.Hung = false
		d.emit(domain.Event{UUID: uuid, Kind: domain.GuestCrash})
	})
}

// GuestShutdown makes a running guest power itself off: the domain
// becomes Halted (keeping its memory until destroyed) and Events gets a
// GuestShutdown. If a clean halt was pending, this is the guest obeying
// it: the domain is gone and the waiting Shutdown returns nil, with no
// event.
func (d *Driver) GuestShutdown(uuid string) error {
	return d.guestAction("shut down", uuid, func(x *dom) {
		if x.rec.Pending == pendingHalt {
			finishRequest(x, nil)
			d.remove(x)
			return
		}
		interrupt(x, "the guest halted")
		d.stopRunning(x, domain.Halted)
		x.rec.Hung = false
		d.emit(domain.Event{UUID: uuid, Kind: domain.GuestShutdown})
	})
}

// GuestReboot makes a running guest reboot itself: Events gets a
// GuestReboot and the guest restarts in place (same domid, guest clock
// from zero, a new agent report later); the manager may then destroy it
// if the VM's actions_after_reboot say so. If a clean reboot was pending,
// this is the guest obeying it: the waiting Shutdown returns nil, with no
// event.
func (d *Driver) GuestReboot(uuid string) error {
	return d.guestAction("reboot", uuid, func(x *dom) {
		if x.rec.Pending == pendingReboot {
			finishRequest(x, nil)
		} else {
			interrupt(x, "the guest rebooted")
			d.emit(domain.Event{UUID: uuid, Kind: domain.GuestReboot})
		}
		d.rebootInPlace(x)
		d.advance(x)
	})
}

// Hang makes a running or paused guest ignore clean shutdown and reboot
// requests (on) or obey them again (off). A request pending when the hang
// ends is obeyed ShutdownTime later. Any restart of the guest (Reset, a
// reboot, a crash) ends a hang; suspend and resume keep it.
func (d *Driver) Hang(uuid string, on bool) error {
	return d.change(context.Background(), "hang", uuid, func(x *dom) error {
		if err := wantState(x, "hang", domain.Running, domain.Paused); err != nil {
			return err
		}
		if x.rec.Hung == on {
			return nil
		}
		x.rec.Hung = on
		if !on && x.rec.Pending != "" {
			x.rec.PendingAt = x.uptime() // the guest sees the request now
		}
		d.advance(x)
		return nil
	})
}
