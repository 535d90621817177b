package xenops

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/wire"
)

func (e *env) vm(t *testing.T, id string) *api.VM {
	t.Helper()
	row, err := e.st.ByUUID(api.ClassVM, id)
	if err != nil {
		t.Fatalf("VM %s: %v", id, err)
	}
	return row.Rec.(*api.VM)
}

func (e *env) metricsState(t *testing.T, id string) []string {
	t.Helper()
	row, err := e.st.Get(api.ClassVMMetrics, e.vm(t, id).Metrics)
	if err != nil {
		t.Fatal(err)
	}
	return row.Rec.(*api.VMMetrics).State
}

// addVM registers a configuration made by edit from testVM's, under id.
func (e *env) addVM(t *testing.T, id string, edit func(x *VM)) wire.Value {
	t.Helper()
	x, err := decodeVM(testVM(), "t")
	if err != nil {
		t.Fatal(err)
	}
	x.ID = id
	if edit != nil {
		edit(x)
	}
	e.must(t, "VM.add", mem("t", x.Value()))
	return wire.String(id)
}

func TestS3(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.addVM(t, vmID, nil)
	if _, err := e.call(t, "VM.s3suspend", mem("id", id)); err == nil || err.Name != "Bad_power_state" {
		t.Fatalf("s3suspend of a halted VM: %v", err)
	}
	e.run(t, "VM.start", mem("id", id))
	drv := e.front.Domains().Driver().(domain.S3Driver)
	e.run(t, "VM.s3suspend", mem("id", id))
	if asleep, err := drv.S3Asleep(context.Background(), vmID); err != nil || !asleep {
		t.Fatalf("domain asleep = %v, %v", asleep, err)
	}
	// As in xapi, the VM stays Running; VM_metrics says it sleeps.
	if p := e.power(t); p != api.VMPowerStateRunning {
		t.Fatalf("power state in S3: %s", p)
	}
	if st := e.metricsState(t, vmID); !slices.Equal(st, []string{"running", domain.S3State}) {
		t.Fatalf("VM_metrics state in S3: %v", st)
	}
	st := e.must(t, "VM.stat", mem("id", id))
	if ps, _ := st.Array[0].Array[1].Field("power_state"); ps.Str != "Running" {
		t.Fatalf("stat power_state = %v", JSON(ps))
	}
	e.run(t, "VM.s3suspend", mem("id", id)) // already asleep: nothing to do
	e.run(t, "VM.s3resume", mem("id", id))
	if asleep, _ := drv.S3Asleep(context.Background(), vmID); asleep {
		t.Fatal("still asleep after s3resume")
	}
	if st := e.metricsState(t, vmID); !slices.Equal(st, []string{"running"}) {
		t.Fatalf("VM_metrics state after s3resume: %v", st)
	}
	e.run(t, "VM.pause", mem("id", id))
	if _, err := e.call(t, "VM.s3resume", mem("id", id)); err == nil || err.Name != "Bad_power_state" {
		t.Fatalf("s3resume of a paused VM: %v", err)
	}

	// PV guests have no ACPI S3.
	const pvID = "0b1c2d3e-0000-4000-8000-00000000000b"
	pv := e.addVM(t, pvID, func(x *VM) { x.HVM, x.PV = nil, &PVInfo{VNCTerm: true} })
	e.run(t, "VM.start", mem("id", pv))
	if _, err := e.call(t, "VM.s3suspend", mem("id", pv)); err == nil || err.Name != "Not_supported" {
		t.Fatalf("s3suspend of a PV VM: %v", err)
	}
}

func TestShadowMultiplierLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A large static maximum makes shadow memory large: 1/256 of it.
	id := e.addVM(t, vmID, func(x *VM) { x.MemoryStaticMax = 8 << 30 })
	e.run(t, "VM.set_shadow_multiplier", mem("id", id), mem("shadow_multiplier", wire.Float(2)))
	if m := e.vm(t, vmID).HVMShadowMultiplier; m != 2 {
		t.Fatalf("halted: HVM_shadow_multiplier %v", m)
	}
	e.run(t, "VM.start", mem("id", id))
	drv := e.front.Domains().Driver()
	before, _ := drv.Host(context.Background())
	e.run(t, "VM.set_shadow_multiplier", mem("id", id), mem("shadow_multiplier", wire.Float(4)))
	if m := e.vm(t, vmID).HVMShadowMultiplier; m != 4 {
		t.Fatalf("live: HVM_shadow_multiplier %v", m)
	}
	st := e.must(t, "VM.stat", mem("id", id))
	if v, _ := st.Array[0].Array[1].Field("shadow_multiplier_target"); v.Float != 4 {
		t.Fatalf("shadow_multiplier_target %v", JSON(v))
	}
	after, _ := drv.Host(context.Background())
	if after.FreeMemory >= before.FreeMemory {
		t.Fatalf("free memory %d -> %d: the larger shadow pool took nothing", before.FreeMemory, after.FreeMemory)
	}
	// x1000 of 34 MiB does not fit in the 16 GiB host.
	e.fails(t, "Not_enough_memory", "VM.set_shadow_multiplier", mem("id", id), mem("shadow_multiplier", wire.Float(1000)))
	if m := e.vm(t, vmID).HVMShadowMultiplier; m != 4 {
		t.Fatalf("after a failed change: HVM_shadow_multiplier %v", m)
	}
	// Through XenAPI too.
	row, _ := e.st.ByUUID(api.ClassVM, vmID)
	if _, err := e.front.Call(context.Background(), e.sess, "VM.set_shadow_multiplier_live", wire.String(string(row.Ref)), wire.Float(1.5)); err != nil {
		t.Fatal(err)
	}
	if m := e.vm(t, vmID).HVMShadowMultiplier; m != 1.5 {
		t.Fatalf("XenAPI live: HVM_shadow_multiplier %v", m)
	}
	if _, err := e.front.Call(context.Background(), e.sess, "VM.set_shadow_multiplier_live", wire.String(string(row.Ref)), wire.Float(0.5)); err == nil {
		t.Fatal("multiplier 0.5 accepted")
	}
	e.run(t, "VM.pause", mem("id", id))
	e.fails(t, "Bad_power_state", "VM.set_shadow_multiplier", mem("id", id), mem("shadow_multiplier", wire.Float(2)))
}

// plainDriver hides the simulator's optional capabilities (S3, shadow).
type plainDriver struct{ domain.Driver }

func TestWithoutCapabilities(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(d *sim.Driver) domain.Driver { return plainDriver{d} })
	id := e.addVM(t, vmID, nil)
	e.run(t, "VM.start", mem("id", id))
	if _, err := e.call(t, "VM.s3suspend", mem("id", id)); err == nil || err.Name != "Unimplemented" {
		t.Fatalf("s3suspend: %v", err)
	}
	if _, err := e.call(t, "VM.s3resume", mem("id", id)); err == nil || err.Name != "Unimplemented" {
		t.Fatalf("s3resume: %v", err)
	}
	e.fails(t, "Unimplemented", "VM.set_shadow_multiplier", mem("id", id), mem("shadow_multiplier", wire.Float(2)))
}

// gone waits until the VM is no longer in XenAPI.
func (e *env) gone(t *testing.T, id string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := e.st.ByUUID(api.ClassVM, id); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM %s still there after %v", id, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.addVM(t, vmID, func(x *VM) { x.Transient = true })
	// Added and never run: it stays.
	time.Sleep(2 * transientSettle)
	e.vm(t, vmID)
	st := e.must(t, "VM.stat", mem("id", id))
	if v, _ := st.Array[0].Array[0].Field("transient"); !v.Bool {
		t.Fatalf("stat transient = %v", JSON(v))
	}
	e.run(t, "VM.start", mem("id", id))
	// A reboot is not a shutdown.
	e.run(t, "VM.reboot", mem("id", id), mem("clean_shutdown_timeout", none()))
	time.Sleep(2 * transientSettle)
	if p := e.power(t); p != api.VMPowerStateRunning {
		t.Fatalf("after reboot: %s", p)
	}
	// A shutdown through this interface forgets it at once.
	e.run(t, "VM.shutdown", mem("id", id), mem("clean_shutdown_timeout", some(wire.Float(5))))
	if _, err := e.st.ByUUID(api.ClassVM, vmID); err == nil {
		t.Fatal("transient VM still there after VM.shutdown")
	}
	if _, err := e.call(t, "VM.stat", mem("id", id)); err == nil || err.Name != "Does_not_exist" {
		t.Fatalf("stat: %v", err)
	}

	// A shutdown through XenAPI: the watcher forgets it.
	const otherID = "0b1c2d3e-0000-4000-8000-00000000000c"
	other := e.addVM(t, otherID, func(x *VM) { x.Transient = true })
	e.run(t, "VM.start", mem("id", other))
	row, _ := e.st.ByUUID(api.ClassVM, otherID)
	if _, err := e.front.Call(ctx, e.sess, "VM.hard_shutdown", wire.String(string(row.Ref))); err != nil {
		t.Fatal(err)
	}
	e.gone(t, otherID, 5*time.Second)

	// A VM that is not transient stays.
	const keptID = "0b1c2d3e-0000-4000-8000-00000000000d"
	kept := e.addVM(t, keptID, nil)
	e.run(t, "VM.start", mem("id", kept))
	e.run(t, "VM.shutdown", mem("id", kept), mem("clean_shutdown_timeout", none()))
	time.Sleep(2 * transientSettle)
	if vm := e.vm(t, keptID); vm.PowerState != api.VMPowerStateHalted {
		t.Fatalf("kept VM: %s", vm.PowerState)
	}
}

func TestTransientHaltedWhileNobodyWatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const ranID, idleID = "0b1c2d3e-0000-4000-8000-00000000001a", "0b1c2d3e-0000-4000-8000-00000000001b"
	ran := e.addVM(t, ranID, func(x *VM) { x.Transient = true })
	e.addVM(t, idleID, func(x *VM) { x.Transient = true })
	e.run(t, "VM.start", mem("id", ran))
	// The service stops; the VM halts meanwhile.
	e.svc.Close()
	row, _ := e.st.ByUUID(api.ClassVM, ranID)
	if _, err := e.front.Call(context.Background(), e.sess, "VM.hard_shutdown", wire.String(string(row.Ref))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * transientSettle)
	if vm := e.vm(t, ranID); vm.PowerState != api.VMPowerStateHalted {
		t.Fatalf("with no service: %s", vm.PowerState)
	}
	// The next service forgets the VM that ran, not the one never started.
	svc := New(Config{Front: e.front, Log: slog.New(slog.DiscardHandler), Version: "test"})
	t.Cleanup(func() { svc.Close() })
	e.gone(t, ranID, 5*time.Second)
	e.vm(t, idleID)
}
