package xen

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Guest actions on demand. xenithd's `host.call_plugin(host, "sim", fn,
// {"vm": uuid})` calls these methods on whichever driver offers them; for
// real Xen guests they are carried out by the guest's own kernel through
// the magic SysRq key (`xl sysrq`, which writes control/sysrq for the
// guest's xenbus driver), so what Xen and xenithd then see is a genuine
// guest-initiated power-off, reboot or crash, not a toolstack request.

const controlTimeout = time.Minute

func (d *Driver) sysrq(uuid string, key string) error {
	ctx, cancel := context.WithTimeout(d.ctx, controlTimeout)
	defer cancel()
	return d.simpleArgs(ctx, uuid, "sysrq", key)
}

// GuestShutdown makes the guest power itself off (SysRq o).
func (d *Driver) GuestShutdown(uuid string) error { return d.sysrq(uuid, "o") }

// GuestReboot makes the guest reboot itself (SysRq b).
func (d *Driver) GuestReboot(uuid string) error { return d.sysrq(uuid, "b") }

// Crash makes the guest kernel crash (SysRq c).
func (d *Driver) Crash(uuid string) error { return d.sysrq(uuid, "c") }

// ErrNotSupported is returned by the fault injections a real hypervisor
// cannot offer.
var ErrNotSupported = errors.New("xen: not supported by the xen driver")

// Hang is not possible on a real guest.
func (d *Driver) Hang(uuid string, on bool) error {
	return fmt.Errorf("%w: making a guest hang", ErrNotSupported)
}

// FailNext is the simulator's; the xen driver fails only for real.
func (d *Driver) FailNext(op, uuid string) error {
	return fmt.Errorf("%w: injected failures", ErrNotSupported)
}
