package xapi

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

type vmHarness struct {
	t   *testing.T
	e   *env
	s   *client.Session
	ctx context.Context
}

func newVMHarness(t *testing.T) *vmHarness {
	e := newEnv(t, Config{})
	return &vmHarness{t: t, e: e, s: e.login(t, client.JSONRPC, "root", "pw"), ctx: context.Background()}
}

func (h *vmHarness) do(method string, args ...wire.Value) (wire.Value, error) {
	return h.s.Do(h.ctx, method, args...)
}

func (h *vmHarness) must(method string, args ...wire.Value) wire.Value {
	h.t.Helper()
	v, err := h.do(method, args...)
	if err != nil {
		h.t.Fatalf("%s: %v", method, err)
	}
	return v
}

func (h *vmHarness) power(vm wire.Value) string {
	h.t.Helper()
	return h.must("VM.get_power_state", vm).Str
}

// vmIn makes a VM in the given power state.
func (h *vmHarness) vmIn(state string) wire.Value {
	h.t.Helper()
	vm := h.must("VM.create", vmRecord(fmt.Sprintf("lc-%s-%d", state, rand.Int())))
	switch state {
	case "Halted":
	case "Running":
		h.must("VM.start", vm, wire.Bool(false), wire.Bool(false))
	case "Paused":
		h.must("VM.start", vm, wire.Bool(true), wire.Bool(false))
	case "Suspended":
		h.must("VM.start", vm, wire.Bool(false), wire.Bool(false))
		h.must("VM.suspend", vm)
	}
	if got := h.power(vm); got != state {
		h.t.Fatalf("made a VM in %s, it is %s", state, got)
	}
	return vm
}

// The transitions of the XenAPI VM lifecycle figure.
func TestVMLifecycleTransitions(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	f, tr := wire.Bool(false), wire.Bool(true)
	for _, tc := range []struct {
		from, method string
		args         []wire.Value
		to           string
	}{
		{"Halted", "VM.start", []wire.Value{f, f}, "Running"},
		{"Halted", "VM.start", []wire.Value{tr, f}, "Paused"},
		{"Running", "VM.pause", nil, "Paused"},
		{"Paused", "VM.unpause", nil, "Running"},
		{"Running", "VM.suspend", nil, "Suspended"},
		{"Suspended", "VM.resume", []wire.Value{f, f}, "Running"},
		{"Suspended", "VM.resume", []wire.Value{tr, f}, "Paused"},
		{"Running", "VM.clean_shutdown", nil, "Halted"},
		{"Running", "VM.shutdown", nil, "Halted"},
		{"Paused", "VM.shutdown", nil, "Halted"},
		{"Running", "VM.hard_shutdown", nil, "Halted"},
		{"Paused", "VM.hard_shutdown", nil, "Halted"},
		{"Suspended", "VM.hard_shutdown", nil, "Halted"},
		{"Running", "VM.clean_reboot", nil, "Running"},
		{"Running", "VM.hard_reboot", nil, "Running"},
		{"Paused", "VM.hard_reboot", nil, "Running"},
	} {
		vm := h.vmIn(tc.from)
		args := append([]wire.Value{vm}, tc.args...)
		if _, err := h.do(tc.method, args...); err != nil {
			t.Errorf("%s from %s: %v", tc.method, tc.from, err)
			continue
		}
		if got := h.power(vm); got != tc.to {
			t.Errorf("%s from %s: now %s, want %s", tc.method, tc.from, got, tc.to)
		}
		rec := h.must("VM.get_record", vm)
		domid, _ := xenapi.DecInt(mustField(rec, "domid"))
		resident := field(rec, "resident_on")
		if tc.to == "Halted" || tc.to == "Suspended" {
			if domid != -1 || resident != string(xenapi.NullRef) {
				t.Errorf("%s from %s: domid %d resident_on %s for a %s VM", tc.method, tc.from, domid, resident, tc.to)
			}
		} else if domid <= 0 || resident != string(h.e.srv.hostRef) {
			t.Errorf("%s from %s: domid %d resident_on %s for a %s VM", tc.method, tc.from, domid, resident, tc.to)
		}
		if ops, _ := rec.Field("current_operations"); len(ops.Struct) != 0 {
			t.Errorf("%s from %s: current_operations left %+v", tc.method, tc.from, ops)
		}
	}
}

func mustField(v wire.Value, name string) wire.Value {
	f, _ := v.Field(name)
	return f
}

// Every operation from every state it does not start from is refused with
// VM_BAD_POWER_STATE, and allowed_operations always agrees.
func TestVMWrongStates(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	ops := []struct {
		method string
		op     api.VMOperations
		args   []wire.Value
		from   []string
	}{
		{"VM.start", api.VMOperationsStart, []wire.Value{wire.Bool(false), wire.Bool(false)}, []string{"Halted"}},
		{"VM.pause", api.VMOperationsPause, nil, []string{"Running"}},
		{"VM.unpause", api.VMOperationsUnpause, nil, []string{"Paused"}},
		{"VM.suspend", api.VMOperationsSuspend, nil, []string{"Running"}},
		{"VM.resume", api.VMOperationsResume, []wire.Value{wire.Bool(false), wire.Bool(false)}, []string{"Suspended"}},
		{"VM.clean_shutdown", api.VMOperationsCleanShutdown, nil, []string{"Running"}},
		{"VM.clean_reboot", api.VMOperationsCleanReboot, nil, []string{"Running"}},
		{"VM.hard_reboot", api.VMOperationsHardReboot, nil, []string{"Running", "Paused"}},
		{"VM.hard_shutdown", api.VMOperationsHardShutdown, nil, []string{"Running", "Paused", "Suspended"}},
	}
	vms := map[string]wire.Value{}
	for _, st := range []string{"Halted", "Running", "Paused", "Suspended"} {
		vms[st] = h.vmIn(st)
	}
	for st, vm := range vms {
		allowed := map[string]bool{}
		for _, a := range mustField(h.must("VM.get_record", vm), "allowed_operations").Array {
			allowed[a.Str] = true
		}
		for _, o := range ops {
			ok := false
			for _, f := range o.from {
				ok = ok || f == st
			}
			if allowed[string(o.op)] != ok {
				t.Errorf("%s VM: allowed_operations has %s = %v, want %v", st, o.op, allowed[string(o.op)], ok)
			}
			if ok {
				continue
			}
			_, err := h.do(o.method, append([]wire.Value{vm}, o.args...)...)
			code, params := errCode(err)
			if code != api.ErrVMBadPowerState || len(params) != 3 || params[0] != vm.Str || params[2] != lowerPower(st) {
				t.Errorf("%s on a %s VM: %s %v", o.method, st, code, params)
			}
			if got := h.power(vm); got != st {
				t.Fatalf("%s on a %s VM changed it to %s", o.method, st, got)
			}
		}
	}
}

func lowerPower(s string) string {
	return map[string]string{"Halted": "halted", "Running": "running", "Paused": "paused", "Suspended": "suspended"}[s]
}

func TestVMStartChecks(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	tmpls := h.must("VM.get_all_records_where", wire.String(`field "is_a_template"="true"`))
	_, err := h.do("VM.start", wire.String(tmpls.Struct[0].Name), wire.Bool(false), wire.Bool(false))
	wantErr(t, err, api.ErrVMIsTemplate)

	big := h.must("VM.create", vmRecord("big"))
	h.must("VM.set_memory_limits", big, wire.String("1073741824"), wire.String("1099511627776"), wire.String("1099511627776"), wire.String("1099511627776"))
	_, err = h.do("VM.start", big, wire.Bool(false), wire.Bool(false))
	wantErr(t, err, api.ErrHostNotEnoughFreeMemory)
	if h.power(big) != "Halted" {
		t.Fatal("a VM that did not fit is not halted")
	}
	_, err = h.do("VM.assert_can_boot_here", big, h.must("host.get_all").Array[0])
	wantErr(t, err, api.ErrHostNotEnoughFreeMemory)
}

func TestVMGuestAgentAndCrash(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Running")
	uuid := h.must("VM.get_uuid", vm).Str
	deadline := time.Now().Add(10 * time.Second)
	for {
		gm := h.must("VM.get_guest_metrics", vm)
		if gm.Str != string(xenapi.NullRef) {
			rec := h.must("VM_guest_metrics.get_record", gm)
			if os, _ := rec.Field("os_version"); len(os.Struct) == 0 {
				t.Fatalf("guest metrics without os_version: %+v", rec)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no guest agent data after boot")
		}
		time.Sleep(20 * time.Millisecond)
	}
	hosts := h.must("host.get_all")
	plugin := func(fn string) {
		t.Helper()
		h.must("host.call_plugin", hosts.Array[0], wire.String("sim"), wire.String(fn),
			wire.Struct(wire.Member{Name: "vm", Value: wire.String(uuid)}))
	}
	// actions_after_crash=restart: the VM comes back.
	start1 := field(h.must("VM_metrics.get_record", h.must("VM.get_metrics", vm)), "start_time")
	time.Sleep(1100 * time.Millisecond) // start_time has a one-second grain
	plugin("crash")
	waitFor(t, func() bool {
		return field(h.must("VM_metrics.get_record", h.must("VM.get_metrics", vm)), "start_time") != start1
	})
	if h.power(vm) != "Running" {
		t.Fatalf("after a crash with restart: %s", h.power(vm))
	}
	// A guest-initiated shutdown with actions_after_shutdown=destroy halts.
	plugin("shutdown")
	waitFor(t, func() bool { return h.power(vm) == "Halted" })
	_, err := h.do("host.call_plugin", hosts.Array[0], wire.String("sim"), wire.String("explode"), wire.Struct())
	wantErr(t, err, api.ErrXenapiPluginFailure)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Many clients hammer one VM with random lifecycle calls: every call either
// succeeds or fails with a lifecycle error, and the VM ends consistent with
// its domain.
func TestVMConcurrentHammer(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Halted")
	calls := []struct {
		method string
		args   []wire.Value
	}{
		{"VM.start", []wire.Value{wire.Bool(false), wire.Bool(false)}},
		{"VM.pause", nil}, {"VM.unpause", nil}, {"VM.suspend", nil},
		{"VM.resume", []wire.Value{wire.Bool(false), wire.Bool(false)}},
		{"VM.hard_shutdown", nil}, {"VM.clean_shutdown", nil}, {"VM.hard_reboot", nil},
	}
	expected := map[string]bool{api.ErrVMBadPowerState: true, api.ErrOtherOperationInProgress: true}
	var wg sync.WaitGroup
	var mu sync.Mutex
	okCount := 0
	for c := 0; c < 100; c++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			s := h.e.login(t, client.JSONRPC, "root", "pw")
			for i := 0; i < 5; i++ {
				call := calls[r.Intn(len(calls))]
				_, err := s.Do(h.ctx, call.method, append([]wire.Value{vm}, call.args...)...)
				if err == nil {
					mu.Lock()
					okCount++
					mu.Unlock()
					continue
				}
				if code, params := errCode(err); !expected[code] {
					t.Errorf("%s: unexpected error %s %v", call.method, code, params)
				}
			}
		}(int64(c))
	}
	wg.Wait()
	if okCount == 0 {
		t.Fatal("no call succeeded")
	}
	rec := h.must("VM.get_record", vm)
	if ops, _ := rec.Field("current_operations"); len(ops.Struct) != 0 {
		t.Fatalf("current_operations left: %+v", ops)
	}
	info, err := h.e.srv.domains.Driver().Info(h.ctx, field(rec, "uuid"))
	switch field(rec, "power_state") {
	case "Halted", "Suspended":
		if err == nil {
			t.Fatalf("VM is %s but its domain exists (%v)", field(rec, "power_state"), info.State)
		}
	case "Running", "Paused":
		if err != nil || lowerPower(field(rec, "power_state")) != info.State.String() {
			t.Fatalf("VM is %s, domain %v (%v)", field(rec, "power_state"), info.State, err)
		}
	}
	t.Logf("%d of 500 calls succeeded; final state %s", okCount, field(rec, "power_state"))
}

func TestVIFHotplug(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Running")
	nets := h.must("network.get_all")
	vif := h.must("VIF.create", wire.Struct(
		wire.Member{Name: "device", Value: wire.String("0")},
		wire.Member{Name: "network", Value: nets.Array[0]},
		wire.Member{Name: "VM", Value: vm},
		wire.Member{Name: "MAC", Value: wire.String("")},
		wire.Member{Name: "MTU", Value: wire.String("1500")},
		wire.Member{Name: "other_config", Value: wire.Struct()},
		wire.Member{Name: "qos_algorithm_type", Value: wire.String("")},
		wire.Member{Name: "qos_algorithm_params", Value: wire.Struct()},
	))
	h.must("VIF.plug", vif)
	if a := h.must("VIF.get_currently_attached", vif); !a.Bool {
		t.Fatal("VIF not attached after plug")
	}
	_, err := h.do("VIF.plug", vif)
	wantErr(t, err, api.ErrDeviceAlreadyAttached, vif.Str)
	h.must("VIF.unplug", vif)
	_, err = h.do("VIF.unplug", vif)
	wantErr(t, err, api.ErrDeviceAlreadyDetached, vif.Str)
	h.must("VM.hard_shutdown", vm)
	_, err = h.do("VIF.plug", vif)
	wantErr(t, err, api.ErrVMBadPowerState)
}

func TestVMLiveSettings(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Running")
	h.must("VM.set_VCPUs_number_live", vm, wire.String("2"))
	if n := h.must("VM_metrics.get_VCPUs_number", h.must("VM.get_metrics", vm)); scalarString(n) != "2" {
		t.Fatalf("VCPUs_number %s", scalarString(n))
	}
	_, err := h.do("VM.set_VCPUs_number_live", vm, wire.String("9"))
	wantErr(t, err, api.ErrInvalidValue)
	h.must("VM.set_memory_target_live", vm, wire.String("536870912"))
	_, err = h.do("VM.set_memory_target_live", vm, wire.String("1"))
	wantErr(t, err, api.ErrMemoryConstraintViolation)
	h.must("VM.set_actions_after_crash", vm, wire.String("destroy"))
	_, err = h.do("VM.set_HVM_boot_policy", vm, wire.String(""))
	wantErr(t, err, api.ErrVMBadPowerState)
}

func TestVMSuspendImageIsAVDI(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Suspended")
	vdi := h.must("VM.get_suspend_VDI", vm)
	if vdi.Str == string(xenapi.NullRef) {
		t.Fatal("a suspended VM has no suspend_VDI")
	}
	if typ := h.must("VDI.get_type", vdi); typ.Str != "suspend" {
		t.Fatalf("suspend_VDI type %q", typ.Str)
	}
	h.must("VM.resume", vm, wire.Bool(false), wire.Bool(false))
	if v := h.must("VM.get_suspend_VDI", vm); v.Str != string(xenapi.NullRef) {
		t.Fatalf("suspend_VDI kept after resume: %s", v.Str)
	}
	if _, err := h.do("VDI.get_record", vdi); err == nil {
		t.Fatal("the suspend image outlived the resume")
	}
	h.must("VM.suspend", vm)
	vdi = h.must("VM.get_suspend_VDI", vm)
	h.must("VM.hard_shutdown", vm)
	if _, err := h.do("VDI.get_record", vdi); err == nil {
		t.Fatal("the suspend image outlived a hard shutdown")
	}
}
