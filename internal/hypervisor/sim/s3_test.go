package sim

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

func hvmSpec(uuid string, mem int64) domain.Spec {
	s := spec(uuid, mem)
	s.HVM, s.BootOrder = true, "cd"
	return s
}

func TestS3StopsTheGuest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	d := newDriver(t, Options{Now: clk.Now, BootTime: 50 * time.Millisecond})
	mustCreate(t, d, hvmSpec("v", 64*MiB)) // 2 VCPUs
	// Every vCPU busy, as the arithmetic below assumes.
	must(t, d.SetLoad("v", Load{CPU: 1}))
	if err := d.S3Suspend(ctx, "v"); !errors.Is(err, ErrBadState) {
		t.Fatalf("S3Suspend of a paused domain: %v", err)
	}
	must(t, d.Unpause(ctx, "v"))
	clk.Add(time.Second)
	must(t, d.S3Suspend(ctx, "v"))
	if asleep, err := d.S3Asleep(ctx, "v"); err != nil || !asleep {
		t.Fatalf("S3Asleep = %v, %v", asleep, err)
	}
	if err := d.S3Suspend(ctx, "v"); !errors.Is(err, ErrBadState) {
		t.Fatalf("second S3Suspend: %v", err)
	}
	// Asleep: the domain is still running, with its memory, but no CPU
	// time passes and the guest neither boots nor reports.
	free, _ := d.Host(ctx)
	in := info(t, d, "v")
	if in.State != domain.Running || in.CPUTime != 2*time.Second {
		t.Fatalf("asleep: %+v", in)
	}
	clk.Add(time.Hour)
	if got := info(t, d, "v").CPUTime; got != 2*time.Second {
		t.Fatalf("CPU time while asleep %v, want 2s", got)
	}
	noEvent(t, d, "v", domain.GuestAgent, 150*time.Millisecond)
	if err := d.GuestShutdown("v"); !errors.Is(err, ErrBadState) {
		t.Fatalf("a sleeping guest powered off: %v", err)
	}
	// A clean shutdown request waits for the guest to wake.
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if err := d.Shutdown(sctx, "v", false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("clean shutdown of a sleeping guest: %v", err)
	}
	cancel()
	if h, _ := d.Host(ctx); h.FreeMemory != free.FreeMemory {
		t.Fatalf("free memory changed while asleep: %d -> %d", free.FreeMemory, h.FreeMemory)
	}
	// Pausing keeps S3; so does unpausing.
	must(t, d.Pause(ctx, "v"))
	must(t, d.Unpause(ctx, "v"))
	if asleep, _ := d.S3Asleep(ctx, "v"); !asleep {
		t.Fatal("unpause woke the guest")
	}
	clk.Add(time.Minute)
	if got := info(t, d, "v").CPUTime; got != 2*time.Second {
		t.Fatalf("CPU time after unpause while asleep %v, want 2s", got)
	}
	// Waking: the clocks run again and the guest finishes booting.
	must(t, d.S3Resume(ctx, "v"))
	if err := d.S3Resume(ctx, "v"); !errors.Is(err, ErrBadState) {
		t.Fatalf("second S3Resume: %v", err)
	}
	clk.Add(time.Second)
	if got := info(t, d, "v").CPUTime; got != 4*time.Second {
		t.Fatalf("CPU time after waking %v, want 4s", got)
	}
	waitEvent(t, d, "v", domain.GuestAgent, generous)
}

func TestS3NeedsHVM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("pv", 64*MiB))
	must(t, d.Unpause(ctx, "pv"))
	if err := d.S3Suspend(ctx, "pv"); !errors.Is(err, ErrBadState) {
		t.Fatalf("S3Suspend of a PV guest: %v", err)
	}
	if _, err := d.S3Asleep(ctx, "nope"); !errors.Is(err, domain.ErrNoDomain) {
		t.Fatalf("S3Asleep of no domain: %v", err)
	}
	must(t, d.FailNext(opS3Suspend, ""))
	mustCreate(t, d, hvmSpec("h", 64*MiB))
	must(t, d.Unpause(ctx, "h"))
	if err := d.S3Suspend(ctx, "h"); !errors.Is(err, domain.ErrInjected) {
		t.Fatalf("injected failure: %v", err)
	}
}

func TestS3EndsWithResetAndCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{})
	for _, u := range []string{"r", "c"} {
		mustCreate(t, d, hvmSpec(u, 64*MiB))
		must(t, d.Unpause(ctx, u))
		must(t, d.S3Suspend(ctx, u))
	}
	must(t, d.Reset(ctx, "r"))
	if asleep, _ := d.S3Asleep(ctx, "r"); asleep {
		t.Fatal("still asleep after a reset")
	}
	waitEvent(t, d, "r", domain.GuestAgent, generous)
	must(t, d.Crash("c"))
	if asleep, _ := d.S3Asleep(ctx, "c"); asleep {
		t.Fatal("a crashed guest is asleep")
	}
}

func TestS3Persists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	o := Options{StateDir: dir, BootTime: 20 * time.Millisecond}
	d1, err := New(o)
	must(t, err)
	mustCreate(t, d1, hvmSpec("v", 64*MiB))
	must(t, d1.Unpause(ctx, "v"))
	must(t, d1.S3Suspend(ctx, "v"))
	cpu := info(t, d1, "v").CPUTime
	must(t, d1.Close())
	time.Sleep(30 * time.Millisecond)

	d2 := newDriver(t, o)
	if asleep, err := d2.S3Asleep(ctx, "v"); err != nil || !asleep {
		t.Fatalf("after restart: asleep %v, %v", asleep, err)
	}
	if in := info(t, d2, "v"); in.State != domain.Running || in.CPUTime != cpu {
		t.Fatalf("after restart: %+v (cpu before %v)", in, cpu)
	}
	noEvent(t, d2, "v", domain.GuestAgent, 100*time.Millisecond)
	// A suspend image keeps S3 too.
	img := filepath.Join(dir, "img")
	must(t, d2.Suspend(ctx, "v", img))
	if _, err := d2.Resume(ctx, hvmSpec("v", 64*MiB), img); err != nil {
		t.Fatal(err)
	}
	must(t, d2.Unpause(ctx, "v"))
	if asleep, _ := d2.S3Asleep(ctx, "v"); !asleep {
		t.Fatal("resumed guest woke up")
	}
	must(t, d2.S3Resume(ctx, "v"))
	waitEvent(t, d2, "v", domain.GuestAgent, generous)
}

func TestShadowMultiplier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	total := 2 * GiB
	d := newDriver(t, Options{TotalMemory: total, Dom0Memory: 512 * MiB})
	s := hvmSpec("v", 256*MiB) // static max 512 MiB, 4 VCPUs max
	mustCreate(t, d, s)
	base, _ := d.Host(ctx)
	if base.FreeMemory != total-512*MiB-Footprint(256*MiB) {
		t.Fatalf("free %d: shadow at multiplier 1 is not in Overhead", base.FreeMemory)
	}
	one := ShadowMemory(s, 1)
	if one != 4*MiB+2*MiB {
		t.Fatalf("ShadowMemory(1) = %d", one)
	}
	must(t, d.Unpause(ctx, "v"))
	must(t, d.SetShadowMultiplier(ctx, "v", 4))
	h, _ := d.Host(ctx)
	if want := base.FreeMemory - 3*one; h.FreeMemory != want {
		t.Fatalf("free after x4: %d, want %d", h.FreeMemory, want)
	}
	if m, _ := d.ShadowMultiplier("v"); m != 4 {
		t.Fatalf("multiplier %v", m)
	}
	// Too big for the host: refused with the amount, nothing changes.
	err := d.SetShadowMultiplier(ctx, "v", 1000)
	var nm *domain.NoMemoryError
	if !errors.As(err, &nm) || nm.Needed != ShadowMemory(s, 1000)-ShadowMemory(s, 4) || nm.Available != h.FreeMemory {
		t.Fatalf("x1000: %v", err)
	}
	if h2, _ := d.Host(ctx); h2.FreeMemory != h.FreeMemory {
		t.Fatal("a refused change took memory")
	}
	for _, bad := range []float64{0.5, 1001} {
		if err := d.SetShadowMultiplier(ctx, "v", bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("multiplier %v: %v", bad, err)
		}
	}
	// Shrinking gives the memory back; destroying frees all of it.
	must(t, d.SetShadowMultiplier(ctx, "v", 1))
	if h3, _ := d.Host(ctx); h3.FreeMemory != base.FreeMemory {
		t.Fatalf("free after x1: %d, want %d", h3.FreeMemory, base.FreeMemory)
	}
	must(t, d.SetShadowMultiplier(ctx, "v", 2))
	must(t, d.Destroy(ctx, "v"))
	if h4, _ := d.Host(ctx); h4.FreeMemory != total-512*MiB {
		t.Fatalf("free after destroy: %d", h4.FreeMemory)
	}
	// PV domains have no shadow pool to resize.
	mustCreate(t, d, spec("pv", 64*MiB))
	if err := d.SetShadowMultiplier(ctx, "pv", 2); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PV: %v", err)
	}
}

func TestShadowMultiplierPersists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := Options{StateDir: t.TempDir(), TotalMemory: 4 * GiB}
	d1, err := New(o)
	must(t, err)
	mustCreate(t, d1, hvmSpec("v", 256*MiB))
	must(t, d1.SetShadowMultiplier(ctx, "v", 8))
	h1, _ := d1.Host(ctx)
	must(t, d1.Close())
	d2 := newDriver(t, o)
	if m, _ := d2.ShadowMultiplier("v"); m != 8 {
		t.Fatalf("multiplier after restart %v", m)
	}
	if h2, _ := d2.Host(ctx); h2.FreeMemory != h1.FreeMemory {
		t.Fatalf("free memory after restart %d, want %d", h2.FreeMemory, h1.FreeMemory)
	}
}

// A start with a shadow multiplier above 1 takes the larger shadow pool
// from the host at once; bad multipliers are refused.
func TestShadowMultiplierAtCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{TotalMemory: 4 * GiB})
	idle, _ := d.Host(ctx)
	s := hvmSpec("big", 256*MiB)
	s.ShadowMultiplier = 4
	mustCreate(t, d, s)
	h, _ := d.Host(ctx)
	want := idle.FreeMemory - Footprint(256*MiB) - (ShadowMemory(s, 4) - ShadowMemory(s, 1))
	if h.FreeMemory != want {
		t.Fatalf("free %d after an HVM start at multiplier 4, want %d", h.FreeMemory, want)
	}
	if m, _ := d.ShadowMultiplier("big"); m != 4 {
		t.Fatalf("multiplier %v, want 4", m)
	}
	for _, m := range []float64{-1, MaxShadowMultiplier + 1, math.NaN()} {
		bad := hvmSpec("bad", 64*MiB)
		bad.ShadowMultiplier = m
		if _, err := d.Create(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("multiplier %v: %v, want ErrInvalid", m, err)
		}
	}
}
