package xapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/inventory"
	"github.com/xenith/xenith/internal/rrdd"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

type env struct {
	stop  func()
	srv   *Server
	http  *httptest.Server
	store *store.Store
	users *auth.Users
	dir   string
}

var testInfo = hostinfo.Info{
	Hostname: "testhost", Address: "192.0.2.10", CPUCount: 2, CPUModel: "Test CPU", CPUVendor: "GenuineTest",
	CPUs:        []hostinfo.CPU{{Number: 0, Vendor: "GenuineTest"}, {Number: 1, Vendor: "GenuineTest"}},
	MemoryTotal: 8 << 30, MemoryFree: 6 << 30, UUIDSeed: "test-seed",
	Interfaces: []hostinfo.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", IPv4: "192.0.2.10", Netmask: "255.255.255.0", MTU: 1500, Up: true}},
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := openEnv(t, t.TempDir(), cfg, store.Options{})
	t.Cleanup(e.close)
	return e
}

// openEnv starts a server on the database in dir, as xenithd does at each
// start; tests of restarts call it twice on one dir, closing in between.
func openEnv(t *testing.T, dir string, cfg Config, opts store.Options) *env {
	t.Helper()
	opts.Path = filepath.Join(dir, "db")
	st, err := store.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.OpenUsers(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !users.Has("root") {
		if err := users.SetPassword("root", "pw"); err != nil {
			t.Fatal(err)
		}
	}
	host, err := inventory.Ensure(context.Background(), st, inventory.Options{DataDir: dir, Version: "test", Info: testInfo})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Users, cfg.Host = st, users, host
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	// The VMs of these tests run on the simulator, with short timings.
	drv, err := sim.New(sim.Options{StateDir: filepath.Join(dir, "sim"), TotalMemory: 16 << 30, CPUs: 4,
		BootTime: 20 * time.Millisecond, ShutdownTime: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hostRow, err := st.Get(api.ClassHost, host)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RRDs, err = rrdd.Open(filepath.Join(dir, "rrd"), hostRow.Rec.(*api.Host).UUID, cfg.Log); err != nil {
		t.Fatal(err)
	}
	cfg.Domains = domain.New(domain.Config{Store: st, Driver: drv, Host: host, Log: cfg.Log, StateDir: dir, Samples: cfg.RRDs})
	srv := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go cfg.Domains.Run(ctx)
	hs := httptest.NewServer(srv.Handler())
	return &env{srv: srv, http: hs, store: st, users: users, dir: dir, stop: func() { cancel(); drv.Close() }}
}

func (e *env) close() {
	e.http.Close()
	e.stop()
	e.store.Close()
}

// resume returns a session object for ref on this server (a client that
// kept its session across a server restart).
func (e *env) resume(p client.Protocol, ref string) *client.Session {
	return &client.Session{Client: client.New(e.http.URL, p, nil), Ref: ref}
}

func (e *env) login(t *testing.T, p client.Protocol, user, pw string) *client.Session {
	t.Helper()
	s, err := client.New(e.http.URL, p, nil).Login(context.Background(), user, pw)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return s
}

func errCode(err error) (string, []string) {
	var xe *xenapi.Error
	if errors.As(err, &xe) {
		return xe.Code, xe.Params
	}
	if err != nil {
		return "non-XenAPI error: " + err.Error(), nil
	}
	return "", nil
}

func wantErr(t *testing.T, err error, code string, params ...string) {
	t.Helper()
	got, gotParams := errCode(err)
	if got != code || (params != nil && !slices.Equal(gotParams, params)) {
		t.Fatalf("error = %s %v, want %s %v", got, gotParams, code, params)
	}
}

var protocols = []struct {
	name string
	p    client.Protocol
}{{"xmlrpc", client.XMLRPC}, {"jsonrpc", client.JSONRPC}}

func vmRecord(name string) wire.Value {
	return wire.Struct(
		wire.Member{Name: "name_label", Value: wire.String(name)},
		wire.Member{Name: "name_description", Value: wire.String("test VM")},
		wire.Member{Name: "memory_static_max", Value: wire.String("1073741824")},
		wire.Member{Name: "memory_dynamic_max", Value: wire.String("1073741824")},
		wire.Member{Name: "memory_dynamic_min", Value: wire.String("536870912")},
		wire.Member{Name: "memory_static_min", Value: wire.String("268435456")},
		wire.Member{Name: "VCPUs_max", Value: wire.String("2")},
		wire.Member{Name: "VCPUs_at_startup", Value: wire.String("1")},
		wire.Member{Name: "actions_after_shutdown", Value: wire.String("destroy")},
		wire.Member{Name: "actions_after_reboot", Value: wire.String("restart")},
		wire.Member{Name: "actions_after_crash", Value: wire.String("restart")},
		wire.Member{Name: "power_state", Value: wire.String("Running")}, // runtime: ignored
		wire.Member{Name: "other_config", Value: wire.Struct(wire.Member{Name: "a", Value: wire.String("1")})},
	)
}

func TestImplicitMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	for _, pc := range protocols {
		t.Run(pc.name, func(t *testing.T) {
			ctx := context.Background()
			s := e.login(t, pc.p, "root", "pw")
			do := func(method string, args ...wire.Value) wire.Value {
				t.Helper()
				v, err := s.Do(ctx, method, args...)
				if err != nil {
					t.Fatalf("%s: %v", method, err)
				}
				return v
			}
			pools := do("pool.get_all")
			if len(pools.Array) != 1 {
				t.Fatalf("pool.get_all = %+v", pools)
			}
			master := do("pool.get_master", pools.Array[0])
			if name := do("host.get_name_label", master); name.Str != "testhost" {
				t.Fatalf("host name = %q", name.Str)
			}
			vmRef := do("VM.create", vmRecord("vm-"+pc.name))
			rec := do("VM.get_record", vmRef)
			if ps, _ := rec.Field("power_state"); ps.Str != "Halted" {
				t.Errorf("power_state = %q: a runtime field was taken from create's record", ps.Str)
			}
			if m, _ := rec.Field("memory_static_max"); scalarString(m) != "1073741824" {
				t.Errorf("memory_static_max = %+v", m)
			}
			if m, _ := rec.Field("metrics"); !strings.HasPrefix(m.Str, "OpaqueRef:") || m.Str == string(xenapi.NullRef) {
				t.Errorf("VM.create made no metrics object: %q", m.Str)
			}
			do("VM.set_name_label", vmRef, wire.String("renamed"))
			if v := do("VM.get_name_label", vmRef); v.Str != "renamed" {
				t.Errorf("name_label = %q", v.Str)
			}
			do("VM.set_PV_args", vmRef, wire.String("console=hvc0"))
			if v := do("VM.get_PV_args", vmRef); v.Str != "console=hvc0" {
				t.Errorf("PV_args = %q", v.Str)
			}
			do("VM.add_to_other_config", vmRef, wire.String("b"), wire.String("2"))
			_, err := s.Do(ctx, "VM.add_to_other_config", vmRef, wire.String("b"), wire.String("3"))
			wantErr(t, err, api.ErrMapDuplicateKey)
			do("VM.remove_from_other_config", vmRef, wire.String("a"))
			do("VM.remove_from_other_config", vmRef, wire.String("absent"))
			oc := do("VM.get_other_config", vmRef)
			if len(oc.Struct) != 1 || oc.Struct[0].Name != "b" || oc.Struct[0].Value.Str != "2" {
				t.Errorf("other_config = %+v", oc)
			}
			do("VM.add_tags", vmRef, wire.String("t1"))
			do("VM.add_tags", vmRef, wire.String("t1"))
			do("VM.add_tags", vmRef, wire.String("t2"))
			do("VM.remove_tags", vmRef, wire.String("t1"))
			if tags := do("VM.get_tags", vmRef); len(tags.Array) != 1 || tags.Array[0].Str != "t2" {
				t.Errorf("tags = %+v", tags)
			}
			uuid := do("VM.get_uuid", vmRef)
			if r := do("VM.get_by_uuid", uuid); r.Str != vmRef.Str {
				t.Errorf("get_by_uuid = %q", r.Str)
			}
			if r := do("VM.get_by_name_label", wire.String("renamed")); len(r.Array) != 1 || r.Array[0].Str != vmRef.Str {
				t.Errorf("get_by_name_label = %+v", r)
			}
			where := do("VM.get_all_records_where", wire.String(`field "name__label"="renamed" and not field "is_control_domain"="true"`))
			if len(where.Struct) != 1 || where.Struct[0].Name != vmRef.Str {
				t.Errorf("get_all_records_where = %d records", len(where.Struct))
			}
			_, err = s.Do(ctx, "VM.get_all_records_where", wire.String(`field "no_such"="x"`))
			wantErr(t, err, api.ErrInvalidValue)

			// Bound fields through the API: a VBD shows up in VM.VBDs.
			vbd := do("VBD.create", wire.Struct(
				wire.Member{Name: "VM", Value: vmRef},
				wire.Member{Name: "VDI", Value: wire.String(string(xenapi.NullRef))},
				wire.Member{Name: "userdevice", Value: wire.String("3")},
				wire.Member{Name: "mode", Value: wire.String("RO")},
				wire.Member{Name: "type", Value: wire.String("CD")},
				wire.Member{Name: "empty", Value: wire.Bool(true)},
			))
			if vbds := do("VM.get_VBDs", vmRef); len(vbds.Array) != 1 || vbds.Array[0].Str != vbd.Str {
				t.Errorf("VM.VBDs = %+v", vbds)
			}
			do("VBD.destroy", vbd)
			if vbds := do("VM.get_VBDs", vmRef); len(vbds.Array) != 0 {
				t.Errorf("VM.VBDs after VBD.destroy = %+v", vbds)
			}

			do("VM.destroy", vmRef)
			_, err = s.Do(ctx, "VM.get_record", vmRef)
			wantErr(t, err, api.ErrHandleInvalid, "VM", vmRef.Str)
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, pc := range protocols {
		s := e.login(t, pc.p, "root", "pw")
		c := s.Client
		vms, _ := s.Do(ctx, "VM.get_all_records_where", wire.String(`field "is_control_domain"="true"`))
		dom0 := wire.String(vms.Struct[0].Name)
		for _, tc := range []struct {
			name   string
			call   func() error
			code   string
			params []string
		}{
			{"unknown method", func() error { _, err := s.Do(ctx, "VM.frobnicate"); return err }, api.ErrMessageMethodUnknown, []string{"VM.frobnicate"}},
			{"too few params", func() error { _, err := s.Do(ctx, "VM.set_name_label", dom0); return err },
				api.ErrMessageParameterCountMismatch, []string{"VM.set_name_label", "3", "2"}},
			{"too many params", func() error { _, err := s.Do(ctx, "VM.get_record", dom0, dom0); return err },
				api.ErrMessageParameterCountMismatch, []string{"VM.get_record", "2", "3"}},
			{"wrong type", func() error { _, err := s.Do(ctx, "VM.set_VCPUs_max", dom0, wire.String("many")); return err },
				api.ErrFieldTypeError, []string{"value"}},
			{"bad enum", func() error {
				_, err := s.Do(ctx, "VM.set_actions_after_crash", dom0, wire.String("explode"))
				return err
			}, api.ErrFieldTypeError, []string{"value"}},
			{"ref not a string", func() error { _, err := s.Do(ctx, "VM.get_record", wire.Bool(true)); return err },
				api.ErrFieldTypeError, []string{"self"}},
			{"bad ref", func() error { _, err := s.Do(ctx, "VM.get_record", wire.String("OpaqueRef:x")); return err },
				api.ErrHandleInvalid, []string{"VM", "OpaqueRef:x"}},
			{"bad uuid", func() error { _, err := s.Do(ctx, "host.get_by_uuid", wire.String("x")); return err },
				api.ErrUUIDInvalid, []string{"host", "x"}},
			{"removed message", func() error { _, err := s.Do(ctx, "host.license_apply", dom0, wire.String("")); return err },
				api.ErrMessageRemoved, nil},
			{"setter of RO field", func() error { _, err := s.Do(ctx, "VM.set_power_state", dom0, wire.String("Halted")); return err },
				api.ErrMessageMethodUnknown, nil},
			{"not implemented", func() error { _, err := s.Do(ctx, "host.dmesg", wire.String(string(e.srv.hostRef))); return err },
				api.ErrNotImplemented, []string{"host.dmesg"}},
			{"bad session", func() error {
				_, err := c.Call(ctx, "VM.get_all", wire.String("OpaqueRef:dead"))
				return err
			}, api.ErrSessionInvalid, []string{"OpaqueRef:dead"}},
			{"bad password", func() error { _, err := c.Login(ctx, "root", "wrong"); return err }, api.ErrSessionAuthenticationFailed, nil},
			{"unknown user", func() error { _, err := c.Login(ctx, "mallory", "pw"); return err }, api.ErrSessionAuthenticationFailed, nil},
			{"destroy control domain", func() error { _, err := s.Do(ctx, "VM.destroy", dom0); return err }, api.ErrOperationNotAllowed, nil},
		} {
			wantErr2(t, pc.name+"/"+tc.name, tc.call(), tc.code, tc.params)
		}
	}
}

func wantErr2(t *testing.T, name string, err error, code string, params []string) {
	t.Helper()
	got, gotParams := errCode(err)
	if got != code || (params != nil && !slices.Equal(gotParams, params)) {
		t.Errorf("%s: error = %s %v, want %s %v", name, got, gotParams, code, params)
	}
}

func TestRBAC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	root := e.login(t, client.JSONRPC, "root", "pw")
	if err := e.users.SetPassword("alice", "apw"); err != nil {
		t.Fatal(err)
	}
	// A local user without a subject is authenticated but not authorised.
	_, err := client.New(e.http.URL, client.JSONRPC, nil).Login(ctx, "alice", "apw")
	wantErr(t, err, api.ErrSessionAuthorizationFailed)

	subj, err := root.Do(ctx, "subject.create", wire.Struct(
		wire.Member{Name: "subject_identifier", Value: wire.String("local:alice")},
		wire.Member{Name: "other_config", Value: wire.Struct(wire.Member{Name: "subject-name", Value: wire.String("alice")})},
	))
	if err != nil {
		t.Fatal(err)
	}
	roles, _ := root.Do(ctx, "subject.get_roles", subj)
	if len(roles.Array) != 1 || roles.Array[0].Str != string(inventory.ReadOnlyRole) {
		t.Fatalf("new subject roles = %+v, want the read-only role", roles)
	}
	alice := e.login(t, client.XMLRPC, "alice", "apw")
	vms, err := alice.Do(ctx, "VM.get_all")
	if err != nil || len(vms.Array) == 0 {
		t.Fatalf("read-only user cannot list VMs: %v", err)
	}
	_, err = alice.Do(ctx, "VM.create", vmRecord("nope"))
	wantErr(t, err, api.ErrRBACPermissionDenied)
	if _, p := errCode(err); len(p) != 2 || p[0] != "vm.create" {
		t.Fatalf("RBAC_PERMISSION_DENIED params = %v", p)
	}
	_, err = alice.Do(ctx, "subject.create", wire.Struct())
	wantErr(t, err, api.ErrRBACPermissionDenied)

	vmAdmin, _ := root.Do(ctx, "role.get_by_name_label", wire.String("vm-admin"))
	if _, err := root.Do(ctx, "subject.add_to_roles", subj, vmAdmin.Array[0]); err != nil {
		t.Fatal(err)
	}
	_, err = root.Do(ctx, "subject.add_to_roles", subj, vmAdmin.Array[0])
	wantErr(t, err, api.ErrRoleAlreadyExists)
	if _, err := alice.Do(ctx, "VM.create", vmRecord("yes")); err != nil {
		t.Fatalf("vm-admin cannot create a VM: %v", err)
	}
	if _, err := root.Do(ctx, "subject.remove_from_roles", subj, vmAdmin.Array[0]); err != nil {
		t.Fatal(err)
	}
	_, err = alice.Do(ctx, "VM.create", vmRecord("again"))
	wantErr(t, err, api.ErrRBACPermissionDenied)

	// Destroying the subject ends its sessions.
	if _, err := root.Do(ctx, "subject.destroy", subj); err != nil {
		t.Fatal(err)
	}
	_, err = alice.Do(ctx, "VM.get_all")
	wantErr(t, err, api.ErrSessionInvalid)
}

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{SessionLimit: 2})
	ctx := context.Background()
	s := e.login(t, client.XMLRPC, "root", "pw")
	rec, err := s.Do(ctx, "session.get_record", wire.String(s.Ref))
	if err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"is_local_superuser": "true", "auth_user_name": "root", "originator": "xenith"} {
		if v, _ := rec.Field(field); scalarString(v) != want {
			t.Errorf("session.%s = %q, want %q", field, scalarString(v), want)
		}
	}
	if v, _ := rec.Field("this_host"); v.Str != string(e.srv.hostRef) {
		t.Errorf("this_host = %q", v.Str)
	}
	if _, err := s.Do(ctx, "session.logout"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Do(ctx, "pool.get_all")
	wantErr(t, err, api.ErrSessionInvalid, s.Ref)

	// The per-originator cap drops the least recently active session.
	a := e.login(t, client.XMLRPC, "root", "pw")
	time.Sleep(2 * time.Millisecond)
	b := e.login(t, client.XMLRPC, "root", "pw")
	time.Sleep(2 * time.Millisecond)
	_, _ = a.Do(ctx, "pool.get_all") // a is now more recent than b
	c := e.login(t, client.XMLRPC, "root", "pw")
	_, err = b.Do(ctx, "pool.get_all")
	wantErr(t, err, api.ErrSessionInvalid)
	for _, live := range []*client.Session{a, c} {
		if _, err := live.Do(ctx, "pool.get_all"); err != nil {
			t.Fatalf("a recent session was dropped: %v", err)
		}
	}

	// Idle sessions expire.
	e.srv.sessionIdle = time.Nanosecond
	e.srv.collectSessions(ctx)
	_, err = a.Do(ctx, "pool.get_all")
	wantErr(t, err, api.ErrSessionInvalid)
	if n := e.store.Count(api.ClassSession); n != 0 {
		t.Fatalf("%d session records left after expiry", n)
	}
}

func TestSessionsSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := openEnv(t, dir, Config{}, store.Options{})
	s := e.login(t, client.JSONRPC, "root", "pw")
	vm, err := s.Do(context.Background(), "VM.create", vmRecord("keep"))
	if err != nil {
		t.Fatal(err)
	}
	e.close()

	e2 := openEnv(t, dir, Config{}, store.Options{})
	defer e2.close()
	if n := e2.store.Count(api.ClassHost); n != 1 {
		t.Fatalf("%d hosts after restart", n)
	}
	name, err := e2.resume(client.XMLRPC, s.Ref).Do(context.Background(), "VM.get_name_label", vm)
	if err != nil || name.Str != "keep" {
		t.Fatalf("after restart: %q, %v", name.Str, err)
	}
}

func TestListMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	v, err := client.New(e.http.URL, client.JSONRPC, nil).Call(context.Background(), "system.listMethods")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, x := range v.Array {
		names[x.Str] = true
	}
	for _, want := range []string{"session.login_with_password", "VM.get_all_records", "pool.get_all_records", "VM.get_all_records_where", "event.from", "system.listMethods"} {
		if !names[want] {
			t.Errorf("system.listMethods lacks %s", want)
		}
	}
	if names["host.license_apply"] {
		t.Error("a removed message is listed")
	}
}

func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	post := func(path, ctype, body string) (int, string) {
		resp, err := http.Post(e.http.URL+path, ctype, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		contains                string
	}{
		{"garbage xml", "/", "text/xml", "<<<>>>", 200, "XMLRPC_UNMARSHAL_FAILURE"},
		{"entity expansion", "/", "text/xml", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><methodCall><methodName>&a;</methodName></methodCall>`, 200, "XMLRPC_UNMARSHAL_FAILURE"},
		{"empty xml", "/RPC2", "text/xml", "", 200, "XMLRPC_UNMARSHAL_FAILURE"},
		{"deep nesting", "/", "text/xml", "<methodCall><methodName>x</methodName><params><param>" + strings.Repeat("<value><array><data>", 5000) + "</param></params></methodCall>", 200, "XMLRPC_UNMARSHAL_FAILURE"},
		{"garbage json", "/jsonrpc", "application/json", "{nope", 200, "-32700"},
		{"json on root", "/", "application/json", `{"jsonrpc":"2.0","method":"VM.get_all","params":["OpaqueRef:x"],"id":1}`, 200, "SESSION_INVALID"},
		{"huge body", "/", "text/xml", strings.Repeat("x", MaxBodyBytes+10), 413, ""},
	} {
		status, body := post(tc.path, tc.ctype, tc.body)
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: HTTP %d %.200q; want %d containing %q", tc.name, status, body, tc.status, tc.contains)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, e.http.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT / = %d", resp.StatusCode)
	}
}

// TestLargeAnswersStream checks that answers bigger than one stream chunk
// arrive whole in both protocols.
func TestLargeAnswersStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	const n = 800
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			vm := api.NewVM()
			vm.NameLabel = "bulk"
			vm.OtherConfig = xenapi.MapOf(map[string]string{"i": strings.Repeat("x", 200)})
			if _, err := tx.Create(vm); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range protocols {
		s := e.login(t, pc.p, "root", "pw")
		all, err := s.Do(ctx, "VM.get_all_records")
		if err != nil {
			t.Fatalf("%s: %v", pc.name, err)
		}
		bulk := 0
		for _, m := range all.Struct {
			if field(m.Value, "name_label") == "bulk" {
				bulk++
			}
		}
		if bulk != n {
			t.Fatalf("%s: %d of %d records arrived", pc.name, bulk, n)
		}
	}
}

func newEnvWith(t *testing.T, opts store.Options) *env {
	t.Helper()
	e := openEnv(t, t.TempDir(), Config{}, opts)
	t.Cleanup(e.close)
	return e
}
