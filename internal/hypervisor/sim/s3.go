package sim

import (
	"context"
	"fmt"
	"math"

	"github.com/xenith/xenith/internal/domain"
)

// ACPI S3 and shadow memory: the simulator's domain.S3Driver and
// domain.ShadowDriver.
//
// A guest in S3 keeps its domain, domid, memory and devices; the domain
// stays Running (or Paused) as Xen reports it, but the guest's clocks
// stand still: CPU time does not grow, a booting guest does not progress,
// its agent does not report and it does not obey clean shutdown requests
// (they wait until it wakes). S3 is persisted in the state file and in
// suspend images. Pausing keeps S3; a reset (hard reboot) ends it.
//
// Shadow memory: an HVM domain's shadow pool at multiplier 1 is part of
// Overhead; a larger multiplier takes ShadowMemory(spec, m) -
// ShadowMemory(spec, 1) more bytes from the host.

var (
	_ domain.S3Driver     = (*Driver)(nil)
	_ domain.ShadowDriver = (*Driver)(nil)
)

// MaxShadowMultiplier bounds the shadow multiplier (as xenopsd's checks do).
const MaxShadowMultiplier = 1000

// ShadowMemory is the shadow pool of an HVM domain with that spec at that
// multiplier: multiplier × (1 MiB per vCPU + 1/256 of MemoryStaticMax),
// rounded up to 4 KiB pages. PV domains have none.
func ShadowMemory(spec domain.Spec, multiplier float64) int64 {
	if !spec.HVM {
		return 0
	}
	base := float64(int64(max(spec.VCPUsMax, 1))<<20 + spec.MemoryStaticMax/256)
	const page = 4096
	return int64(math.Ceil(multiplier*base/page)) * page
}

func multiplierOf(rec *record) float64 {
	if rec.Shadow <= 0 {
		return 1
	}
	return rec.Shadow
}

// shadowExtra is what a domain's shadow pool takes beyond Overhead.
func shadowExtra(rec *record) int64 {
	m := multiplierOf(rec)
	if m <= 1 {
		return 0
	}
	return ShadowMemory(rec.Spec, m) - ShadowMemory(rec.Spec, 1)
}

// S3Suspend puts a running HVM guest into ACPI S3. A guest already in S3,
// a paused domain or a PV guest is a *StateError.
func (d *Driver) S3Suspend(ctx context.Context, uuid string) error {
	return d.change(ctx, opS3Suspend, uuid, func(x *dom) error {
		if err := wantState(x, opS3Suspend, domain.Running); err != nil {
			return err
		}
		if !x.rec.Spec.HVM {
			return &StateError{UUID: uuid, Op: opS3Suspend, State: x.state(), Why: "a PV guest has no ACPI S3"}
		}
		if x.rec.S3 {
			return &StateError{UUID: uuid, Op: opS3Suspend, State: x.state(), Why: "the guest is already in ACPI S3"}
		}
		d.foldClocks(x)
		x.rec.UpSince, x.rec.CPUSince = timeZero, timeZero
		x.rec.S3 = true
		x.stopTimer()
		return nil
	})
}

// S3Resume wakes a guest from ACPI S3: a running one carries on where it
// stopped (a pending clean shutdown request is obeyed ShutdownTime after
// boot or the request, on its own clock); a paused one wakes when
// unpaused. A guest not in S3 is a *StateError.
func (d *Driver) S3Resume(ctx context.Context, uuid string) error {
	return d.change(ctx, opS3Resume, uuid, func(x *dom) error {
		if err := wantState(x, opS3Resume, domain.Running, domain.Paused); err != nil {
			return err
		}
		if !x.rec.S3 {
			return &StateError{UUID: uuid, Op: opS3Resume, State: x.state(), Why: "the guest is not in ACPI S3"}
		}
		x.rec.S3 = false
		if x.state() == domain.Running {
			d.startRunning(x)
			d.advance(x)
		}
		return nil
	})
}

// S3Asleep reports whether the guest is in ACPI S3.
func (d *Driver) S3Asleep(ctx context.Context, uuid string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	x, err := d.getLocked(opInfo, uuid)
	if err != nil {
		return false, err
	}
	return x.rec.S3, nil
}

// ShadowMultiplier returns a domain's shadow multiplier (1 unless
// changed; a simulator extra).
func (d *Driver) ShadowMultiplier(uuid string) (float64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, ErrClosed
	}
	x, ok := d.doms[uuid]
	if !ok {
		return 0, noDomain(uuid)
	}
	return multiplierOf(&x.rec), nil
}

// SetShadowMultiplier resizes a running or paused HVM domain's shadow
// pool to multiplier (1..MaxShadowMultiplier). Growing needs the
// difference free on the host (*domain.NoMemoryError carries it as
// Needed); shrinking frees it.
func (d *Driver) SetShadowMultiplier(ctx context.Context, uuid string, multiplier float64) error {
	return d.change(ctx, opSetShadow, uuid, func(x *dom) error {
		if err := wantState(x, opSetShadow, domain.Running, domain.Paused); err != nil {
			return err
		}
		if !x.rec.Spec.HVM {
			return fmt.Errorf("sim: shadow multiplier of %s: a PV domain has no shadow memory: %w", uuid, ErrInvalid)
		}
		if math.IsNaN(multiplier) || multiplier < 1 || multiplier > MaxShadowMultiplier {
			return fmt.Errorf("sim: shadow multiplier %g of %s not within 1..%d: %w", multiplier, uuid, MaxShadowMultiplier, ErrInvalid)
		}
		want := record{Spec: x.rec.Spec, Shadow: multiplier}
		if extra := shadowExtra(&want) - shadowExtra(&x.rec); extra > 0 {
			if err := d.needMemoryLocked(opSetShadow, uuid, extra); err != nil {
				return err
			}
		}
		x.rec.Shadow = multiplier
		if multiplier == 1 {
			x.rec.Shadow = 0
		}
		return nil
	})
}
