package xenops

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

var update = flag.Bool("update", false, "rewrite golden files")

const vmID = "0b1c2d3e-0000-4000-8000-00000000000a"

func named(members ...wire.Member) []wire.Value {
	return []wire.Value{wire.Struct(append([]wire.Member{mem("dbg", wire.String("test"))}, members...)...)}
}

func (e *env) call(t *testing.T, method string, members ...wire.Member) (wire.Value, *Error) {
	t.Helper()
	return e.svc.Call(context.Background(), e.sess, method, named(members...))
}

func (e *env) must(t *testing.T, method string, members ...wire.Member) wire.Value {
	t.Helper()
	v, err := e.call(t, method, members...)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return v
}

// wait polls Task.stat until the task is no longer pending.
func (e *env) wait(t *testing.T, task wire.Value) wire.Value {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := e.must(t, "Task.stat", mem("id", task))
		res, _ := v.Field("result")
		if res.Kind == wire.KindArray && res.Array[0].Str != "Pending" {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still pending", task.Str)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts an operation and expects its task to complete.
func (e *env) run(t *testing.T, method string, members ...wire.Member) {
	t.Helper()
	res := e.wait(t, e.must(t, method, members...))
	if res.Array[0].Str != "Completed" {
		t.Fatalf("%s: task ended %v", method, JSON(res))
	}
}

// fails starts an operation and expects its task to fail with variant name.
func (e *env) fails(t *testing.T, name, method string, members ...wire.Member) {
	t.Helper()
	res := e.wait(t, e.must(t, method, members...))
	if res.Array[0].Str != "Failed" || !strings.Contains(res.Array[1].Str, `"`+name+`"`) {
		t.Fatalf("%s: task ended %v, want Failed %s", method, JSON(res), name)
	}
}

func (e *env) power(t *testing.T) api.VMPowerState {
	t.Helper()
	row, err := e.st.ByUUID(api.ClassVM, vmID)
	if err != nil {
		t.Fatal(err)
	}
	return row.Rec.(*api.VM).PowerState
}

func testVM() wire.Value {
	x := &VM{ID: vmID, Name: "xenops test", MemoryStaticMax: 256 << 20, MemoryDynamicMax: 256 << 20, MemoryDynamicMin: 128 << 20,
		VCPUMax: 2, VCPUs: 1, HVM: defaultHVM(), OnCrash: []string{"Coredump", "Start"}, OnShutdown: []string{"Shutdown"},
		OnReboot: []string{"Start"}, XSData: map[string]string{"vm-data/k": "v"}, PlatformData: map[string]string{"viridian": "true"},
		BIOSStrings: map[string]string{}, Priority: &WeightCap{Weight: 512, Cap: 50}}
	return x.Value()
}

func TestScenario(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := wire.String(vmID)
	if got := e.must(t, "Vm.add", mem("t", testVM())); got.Str != vmID {
		t.Fatalf("add = %v", got)
	}
	if _, err := e.call(t, "VM.add", mem("t", testVM())); err == nil || err.Name != "Already_exists" {
		t.Fatalf("second add: %v", err)
	}
	// XenAPI sees the VM under the same uuid, with the mapped fields.
	row, err := e.st.ByUUID(api.ClassVM, vmID)
	if err != nil {
		t.Fatal(err)
	}
	vm := row.Rec.(*api.VM)
	if vm.NameLabel != "xenops test" || vm.ActionsAfterCrash != "coredump_and_restart" || vm.VCPUsParams.Get("weight") != "512" {
		t.Fatalf("XenAPI record: %+v", vm)
	}
	barrier := e.must(t, "Updates.get")
	token := barrier.Array[1]

	e.fails(t, "Bad_power_state", "VM.build", mem("id", id))
	e.run(t, "VM.create", mem("id", id))
	if e.power(t) != api.VMPowerStatePaused {
		t.Fatalf("after create: %s", e.power(t))
	}
	e.fails(t, "Domain_not_built", "VM.unpause", mem("id", id))
	e.fails(t, "Domain_not_built", "VM.create_device_model", mem("id", id), mem("is_resuming", wire.Bool(false)))
	e.run(t, "VM.build", mem("id", id))
	e.run(t, "VM.create_device_model", mem("id", id), mem("is_resuming", wire.Bool(false)))
	e.run(t, "VM.unpause", mem("id", id))
	if e.power(t) != api.VMPowerStateRunning {
		t.Fatalf("after unpause: %s", e.power(t))
	}
	e.fails(t, "Maximum_vcpus", "VM.set_vcpus", mem("id", id), mem("num_vpcus", wire.Int(3)))
	e.run(t, "VM.set_vcpus", mem("id", id), mem("num_vpcus", wire.Int(2)))
	e.run(t, "VM.pause", mem("id", id))
	e.fails(t, "Bad_power_state", "VM.pause", mem("id", id))
	e.run(t, "VM.unpause", mem("id", id))
	if _, err := e.call(t, "VM.migrate", mem("id", id), mem("url", wire.String("http://elsewhere/"))); err == nil || err.Name != "Internal_error" {
		t.Fatalf("migrate: %v", err)
	}
	e.run(t, "VM.s3suspend", mem("id", id))
	e.run(t, "VM.s3resume", mem("id", id))
	st := e.must(t, "VM.stat", mem("id", id))
	state, _ := st.Array[0].Array[1].Field("power_state")
	if state.Str != "Running" {
		t.Fatalf("stat power_state = %v", JSON(state))
	}
	e.run(t, "VM.shutdown", mem("id", id), mem("clean_shutdown_timeout", some(wire.Float(5))))
	if e.power(t) != api.VMPowerStateHalted {
		t.Fatalf("after shutdown: %s", e.power(t))
	}
	e.run(t, "VM.start", mem("id", id))
	e.run(t, "VM.reboot", mem("id", id), mem("clean_shutdown_timeout", none()))
	e.run(t, "VM.destroy", mem("id", id))
	if e.power(t) != api.VMPowerStateHalted {
		t.Fatalf("after destroy: %s", e.power(t))
	}
	// The updates since the first barrier show the VM's states and tasks.
	ups := e.must(t, "Updates.get", mem("from", some(token)), mem("timeout", some(wire.Float(1))))
	seen := map[string]bool{}
	for _, ev := range ups.Array[0].Array {
		seen[ev.Array[0].Str] = true
	}
	if !seen["Vm_t"] || !seen["Task_t"] {
		t.Fatalf("updates: %v", JSON(ups)[:200])
	}
	meta := e.must(t, "VM.export_metadata", mem("id", id))
	e.must(t, "VM.remove", mem("id", id))
	if _, err := e.st.ByUUID(api.ClassVM, vmID); err == nil {
		t.Fatal("VM still in XenAPI after remove")
	}
	if _, err := e.call(t, "VM.stat", mem("id", id)); err == nil || err.Name != "Does_not_exist" {
		t.Fatalf("stat after remove: %v", err)
	}
	if got := e.must(t, "VM.import_metadata", mem("config", meta)); got.Str != vmID {
		t.Fatalf("import = %v", got)
	}
	if got := e.must(t, "VM.export_metadata", mem("id", id)); got.Str != meta.Str {
		t.Fatalf("export after import differs:\n%s\n%s", got.Str, meta.Str)
	}
}

func TestXenAPIVMVisible(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref, err := e.front.Call(context.Background(), e.sess, "VM.create", wire.Struct(
		mem("name_label", wire.String("made in XenAPI")), mem("memory_static_max", wire.Int(64<<20)),
		mem("memory_dynamic_max", wire.Int(64<<20)), mem("memory_dynamic_min", wire.Int(64<<20)),
		mem("VCPUs_max", wire.Int(1)), mem("VCPUs_at_startup", wire.Int(1)), mem("HVM_boot_policy", wire.String("BIOS order"))))
	if err != nil {
		t.Fatal(err)
	}
	row, _ := e.st.Get(api.ClassVM, xenapiRef(ref))
	list := e.must(t, "VM.list")
	found := false
	for _, p := range list.Array {
		id, _ := p.Array[0].Field("id")
		found = found || id.Str == row.Rec.(*api.VM).UUID
	}
	if !found {
		t.Fatalf("XenAPI VM not in VM.list: %v", JSON(list))
	}
}

func TestTemplatesHidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, row := range e.st.All(api.ClassVM) {
		vm := row.Rec.(*api.VM)
		if vm.IsATemplate {
			if _, err := e.call(t, "VM.stat", mem("id", wire.String(vm.UUID))); err == nil || err.Name != "Does_not_exist" {
				t.Fatalf("template %s visible: %v", vm.NameLabel, err)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		method string
		params []wire.Value
		want   string
	}{
		{"VM.add", named(mem("t", wire.String("x"))), "Internal_error"},
		{"VM.add", named(), "Internal_error"},
		{"VM.add", named(mem("t", wire.Struct(mem("memory_static_max", wire.Int(0))))), "Internal_error"},
		{"VM.add", named(mem("t", wire.Struct(mem("memory_static_max", wire.Int(1<<20)), mem("ty", wire.String("Xen"))))), "Internal_error"},
		{"VM.add", named(mem("t", wire.Struct(mem("memory_static_max", wire.Int(1<<20)), mem("vcpus", wire.Int(0)), mem("transient", wire.Bool(true))))), "Internal_error"},
		{"VM.start", named(mem("id", wire.Int(3))), "Internal_error"},
		{"VM.start", named(mem("id", wire.String("missing"))), "Does_not_exist"},
		{"VM.set_vcpus", named(mem("id", wire.String(vmID)), mem("num_vpcus", wire.String("many"))), "Internal_error"},
		{"Task.stat", named(mem("id", wire.String("nope"))), "Does_not_exist"},
		{"Updates.get", named(mem("from", some(wire.Int(-1)))), "Internal_error"},
		{"VM.suspend", named(), "Unimplemented"},
		{"Frob.nicate", named(), "Internal_error"},
		{"VM.import_metadata", named(mem("config", wire.String("{not json"))), "Internal_error"},
	} {
		_, err := e.svc.Call(context.Background(), e.sess, tc.method, tc.params)
		if err == nil || err.Name != tc.want {
			t.Errorf("%s %v: got %v, want %s", tc.method, JSON(wire.Array(tc.params...)), err, tc.want)
		}
	}
}

func xenapiRef(v wire.Value) xenapi.Ref { return xenapi.Ref(v.Str) }

var instanceRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestGolden pins the wire form of answers: XML-RPC and JSON-RPC, success
// and every kind of failure.
func TestGolden(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type req struct {
		name, method string
		params       []wire.Value
	}
	reqs := []req{
		{"query", "Query.query", named()},
		{"add", "VM.add", named(mem("t", testVM()))},
		{"stat", "VM.stat", named(mem("id", wire.String(vmID)))},
		{"already_exists", "VM.add", named(mem("t", testVM()))},
		{"does_not_exist", "VM.start", named(mem("id", wire.String("no-such-vm")))},
		{"unimplemented", "Vm.suspend", named(mem("id", wire.String(vmID)))},
		{"positional", "VM.remove", []wire.Value{wire.String("dbg"), wire.String("no-such-vm")}},
	}
	var xmlOut, jsonOut []byte
	for _, r := range reqs {
		body := xmlrpc.AppendCall(nil, r.method, r.params)
		xmlOut = append(xmlOut, "== "+r.name+"\n"...)
		xmlOut = append(append(xmlOut, e.svc.Serve(context.Background(), e.sess, body, false)...), '\n')
	}
	for _, r := range reqs[2:] {
		body := jsonrpc.AppendCall(nil, 1, 7, r.method, r.params)
		jsonOut = append(jsonOut, "== "+r.name+"\n"...)
		jsonOut = append(append(jsonOut, e.svc.Serve(context.Background(), e.sess, body, true)...), '\n')
	}
	jsonOut = append(jsonOut, "== bad_json\n"...)
	jsonOut = append(append(jsonOut, e.svc.Serve(context.Background(), e.sess, []byte(`{"method":`), true)...), '\n')
	xmlOut = append(xmlOut, "== bad_xml\n"...)
	xmlOut = append(append(xmlOut, e.svc.Serve(context.Background(), e.sess, []byte(`<methodCall>`), false)...), '\n')
	for file, got := range map[string][]byte{"responses.xml.golden": xmlOut, "responses.json.golden": jsonOut} {
		got = instanceRE.ReplaceAllFunc(got, func(b []byte) []byte {
			if string(b) == vmID {
				return b
			}
			return []byte("UUID")
		})
		path := filepath.Join("testdata", file)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs (run with -update to accept):\n%s", path, got)
		}
	}
}

func TestVMValueRoundTrip(t *testing.T) {
	t.Parallel()
	v := testVM()
	x, err := decodeVM(v, "t")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x.Value(), v) {
		t.Fatalf("round trip:\n%s\n%s", JSON(x.Value()), JSON(v))
	}
	// Through XenAPI's record and back.
	back := vmOfRecord(t, x)
	if JSON(back.Value()) != JSON(v) {
		t.Fatalf("via XenAPI:\n%s\n%s", JSON(back.Value()), JSON(v))
	}
}

func vmOfRecord(t *testing.T, x *VM) *VM {
	t.Helper()
	rec := api.NewVM()
	if err := rec.Decode(x.record()); err != nil {
		t.Fatal(err)
	}
	rec.UUID = x.ID
	return vmOf(rec)
}

// FuzzServe throws request bodies at the service: every answer must be a
// well-formed response, never a panic.
func FuzzServe(f *testing.F) {
	f.Add([]byte(xmlrpc.AppendCall(nil, "VM.add", named(mem("t", testVM())))), false)
	f.Add([]byte(xmlrpc.AppendCall(nil, "VM.stat", named(mem("id", wire.String(vmID))))), false)
	f.Add([]byte(jsonrpc.AppendCall(nil, 2, 1, "VM.import_metadata", named(mem("config", wire.String(`{"vm":{"id":"x","memory_static_max":1048576},"vbds":[{"backend":[["VDI","a/b"]]}]}`))))), true)
	f.Add([]byte(`{"method":"Updates.get","params":[{"dbg":"","from":[1],"timeout":[0]}],"id":1}`), true)
	f.Add([]byte("<methodCall><methodName>VM.list</methodName><params/></methodCall>"), false)
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out := e.svc.Serve(ctx, e.sess, body, isJSON)
		if isJSON {
			if _, err := jsonrpc.ParseValue(out); err != nil {
				t.Fatalf("answer is not JSON: %v\n%s", err, out)
			}
			return
		}
		// A failure answer is not a XenAPI one (its ErrorDescription is a
		// variant), so check the framing, not the XenAPI reading of it.
		if !strings.HasPrefix(string(out), xmlHead) || !strings.HasSuffix(string(out), xmlTail) {
			t.Fatalf("answer is not an XML-RPC response:\n%s", out)
		}
		if _, err := xmlrpc.ParseCall([]byte("<methodCall><methodName>x</methodName><params><param>" +
			string(out[len(xmlHead):len(out)-len(xmlTail)]) + "</param></params></methodCall>")); err != nil {
			t.Fatalf("answer is not well-formed XML-RPC: %v\n%s", err, out)
		}
	})
}
