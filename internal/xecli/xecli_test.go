package xecli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		argv    []string
		cmd     string
		params  []Param
		flags   []string
		conn    ConnOptions
		wantErr string
	}{
		{name: "plain", argv: []string{"vm-list", "power-state=running", "params=uuid"}, cmd: "vm-list",
			params: []Param{{"power-state", "running"}, {"params", "uuid"}}},
		{name: "value with =", argv: []string{"vm-param-set", "uuid=u", "other-config:k=a=b"}, cmd: "vm-param-set",
			params: []Param{{"uuid", "u"}, {"other-config:k", "a=b"}}},
		{name: "switches anywhere", argv: []string{"-s", "h1", "vm-shutdown", "--force", "-u", "root", "-pw", "x", "--multiple", "-p", "8443", "--nossl"},
			cmd: "vm-shutdown", flags: []string{"force", "multiple"}, conn: ConnOptions{Server: "h1", User: "root", Password: "x", Port: "8443", NoSSL: true}},
		{name: "-h is the server", argv: []string{"-h", "h2", "host-list", "-pwf", "/f"}, cmd: "host-list", conn: ConnOptions{Server: "h2", PasswordFile: "/f"}},
		{name: "empty value", argv: []string{"vm-param-set", "uuid=u", "name-description="}, cmd: "vm-param-set",
			params: []Param{{"uuid", "u"}, {"name-description", ""}}},
		{name: "unknown switch", argv: []string{"vm-list", "-x"}, wantErr: "Unknown switch: -x"},
		{name: "switch without value", argv: []string{"vm-list", "-u"}, wantErr: "Switch -u requires a parameter"},
		{name: "command missing", argv: []string{"uuid=1"}, wantErr: "command name is missing"},
		{name: "duplicate", argv: []string{"vm-list", "uuid=1", "uuid=2"}, wantErr: "given twice"},
		{name: "no name", argv: []string{"vm-list", "=x"}, wantErr: "has no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := Parse(tt.argv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Command != tt.cmd {
				t.Errorf("command %q, want %q", a.Command, tt.cmd)
			}
			if len(a.Params) != len(tt.params) {
				t.Fatalf("params %v, want %v", a.Params, tt.params)
			}
			for i := range tt.params {
				if a.Params[i] != tt.params[i] {
					t.Errorf("param %d = %v, want %v", i, a.Params[i], tt.params[i])
				}
			}
			for _, f := range tt.flags {
				if !a.Flags[f] {
					t.Errorf("flag %s not set", f)
				}
			}
			if a.Conn != tt.conn {
				t.Errorf("conn %+v, want %+v", a.Conn, tt.conn)
			}
		})
	}
}

func TestRecordLayout(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := &printer{w: &b}
	p.table([][]kv{
		{{"uuid ( RO)", "1"}, {"name-label ( RW)", "a"}, {"power-state ( RO)", "halted"}},
		{{"uuid ( RO)", "2"}, {"name-label ( RW)", "b,c"}, {"power-state ( RO)", "running"}},
	})
	p.flush()
	golden(t, "record_layout.txt", b.String())

	b.Reset()
	p = &printer{w: &b, minimal: true}
	p.table([][]kv{{{"uuid ( RO)", "1"}}, {{"uuid ( RO)", `x,y\z`}}})
	p.flush()
	if got, want := b.String(), `1,x\,y\\z`+"\n"; got != want {
		t.Errorf("minimal = %q, want %q", got, want)
	}
}

func TestFieldMarkers(t *testing.T) {
	t.Parallel()
	vm := lookupClass("vm")
	tests := []struct{ field, label string }{
		{"uuid", "uuid ( RO)"},
		{"name-label", "name-label ( RW)"},
		{"power-state", "power-state ( RO)"},
		{"other-config", "other-config (MRW)"},
		{"tags", "tags (SRW)"},
		{"allowed-operations", "allowed-operations (SRO)"},
		{"current-operations", "current-operations (MRO)"},
		{"VCPUs-max", "VCPUs-max ( RW)"},
		{"memory-target", "memory-target ( RO) [DEPRECATED]"},
	}
	for _, tt := range tests {
		f := vm.field(tt.field)
		if f == nil {
			t.Errorf("vm has no field %s", tt.field)
			continue
		}
		if got := f.label(); got != tt.label {
			t.Errorf("%s: label %q, want %q", tt.field, got, tt.label)
		}
	}
	// Ref fields named after their class become <class>-uuid, plus the
	// name-label of the object they point at.
	vbd := lookupClass("vbd")
	for _, n := range []string{"vm-uuid", "vm-name-label", "vdi-uuid", "vdi-name-label"} {
		if vbd.field(n) == nil {
			t.Errorf("vbd has no field %s", n)
		}
	}
	for _, n := range []string{"vm", "template", "snapshot", "host", "pool", "sr", "vdi", "vbd", "vif", "pif", "network", "pbd", "task", "bond", "vlan", "patch", "host-cpu"} {
		if lookupClass(n) == nil {
			t.Errorf("no xe class %s", n)
		}
	}
}

func TestErrorLines(t *testing.T) {
	t.Parallel()
	names := func(_ context.Context, class, ref string) string {
		return "uuid-of-" + class + "-" + ref[len("OpaqueRef:"):]
	}
	tests := []struct {
		name string
		err  *xenapi.Error
	}{
		{"bad_power_state", xenapi.NewError("VM_BAD_POWER_STATE", "OpaqueRef:1", "running", "halted")},
		{"other_op", xenapi.NewError("OTHER_OPERATION_IN_PROGRESS", "SR", "OpaqueRef:2", "scan", "t")},
		{"unknown_code", xenapi.NewError("SOMETHING_NEW", "a", "b")},
		{"too_few", xenapi.NewError("UUID_INVALID", "VM")},
		{"too_many", xenapi.NewError("HANDLE_INVALID", "VM", "OpaqueRef:3", "extra")},
		{"bare", xenapi.NewError("SESSION_AUTHENTICATION_FAILED")},
	}
	var b bytes.Buffer
	for _, tt := range tests {
		b.WriteString("== " + tt.name + "\n")
		writeXenAPIError(context.Background(), &b, tt.err, names)
	}
	golden(t, "errors.txt", b.String())
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true}, {"512MiB", 512 << 20, true}, {"2GiB", 2 << 30, true}, {"4G", 4 << 30, true},
		{"1KiB", 1024, true}, {"10B", 10, true}, {"x", 0, false}, {"MiB", 0, false}, {"99999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestRecipeOnSR(t *testing.T) {
	t.Parallel()
	in := `<provision><disk device="0" size="10" sr="" bootable="true" type="system"/><disk device="1" size="5" type="user"/></provision>`
	got, err := recipeOnSR(in, "sr-1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(got, `sr="sr-1"`) != 2 || strings.Contains(got, `sr=""`) {
		t.Errorf("recipe not rewritten: %s", got)
	}
	if _, err := recipeOnSR("<provision><disk", "x"); err == nil {
		t.Error("malformed recipe accepted")
	}
}

func TestParseTaskResult(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"<value>OpaqueRef:abc</value>", "OpaqueRef:abc"},
		{"<value><string>x</string></value>", "x"},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		v, err := parseTaskResult(tt.in)
		if err != nil || v.Str != tt.want {
			t.Errorf("parseTaskResult(%q) = %q, %v; want %q", tt.in, v.Str, err, tt.want)
		}
	}
}

// fakeServer answers a few calls; anything else fails loudly.
type fakeServer struct {
	calls []string
	vms   wire.Value // VM.get_all_records
}

func (f *fakeServer) Call(_ context.Context, method string, params ...wire.Value) (wire.Value, error) {
	f.calls = append(f.calls, method)
	switch method {
	case "session.login_with_password":
		return wire.String("OpaqueRef:session"), nil
	case "session.logout":
		return wire.Value{}, nil
	case "VM.get_all_records":
		return f.vms, nil
	case "VM.get_uuid":
		return wire.String("uuid-" + params[1].Str), nil
	case "VM.get_name_label":
		return wire.String("name-" + params[1].Str), nil
	case "VM.clean_shutdown", "Async.VM.clean_shutdown":
		return wire.Value{}, xenapi.NewError("VM_BAD_POWER_STATE", params[1].Str, "running", "halted")
	}
	return wire.Value{}, xenapi.NewError("MESSAGE_METHOD_UNKNOWN", method)
}

func vmRecord(uuid, name, power string) wire.Value {
	return wire.Struct(
		wire.Member{Name: "uuid", Value: wire.String(uuid)},
		wire.Member{Name: "name_label", Value: wire.String(name)},
		wire.Member{Name: "power_state", Value: wire.String(power)},
		wire.Member{Name: "is_a_template", Value: wire.Bool(false)},
		wire.Member{Name: "is_control_domain", Value: wire.Bool(false)},
		wire.Member{Name: "VCPUs_max", Value: wire.Int(2)},
		wire.Member{Name: "other_config", Value: wire.Struct(wire.Member{Name: "k", Value: wire.String("v")})},
		wire.Member{Name: "tags", Value: wire.Array(wire.String("a"), wire.String("b"))},
	)
}

// TestRunFake drives whole commands against a fake server: output, error
// text and exit status.
func TestRunFake(t *testing.T) {
	t.Parallel()
	vms := wire.Struct(
		wire.Member{Name: "OpaqueRef:2", Value: vmRecord("u2", "web", "Running")},
		wire.Member{Name: "OpaqueRef:1", Value: vmRecord("u1", "db", "Halted")},
		wire.Member{Name: "OpaqueRef:3", Value: vmRecord("u3", "cache", "Halted")},
	)
	tests := []struct {
		name string
		argv []string
		code int
	}{
		{"list", []string{"vm-list"}, ExitOK},
		{"list_filtered_params", []string{"vm-list", "power-state=halted", "params=name-label,VCPUs-max,other-config,tags"}, ExitOK},
		{"list_map_filter", []string{"vm-list", "other-config:k=v", "--minimal"}, ExitOK},
		{"list_set_filter", []string{"vm-list", "tags:contains=b", "params=name-label", "--minimal"}, ExitOK},
		{"list_bad_filter", []string{"vm-list", "colour=red"}, ExitUsage},
		{"list_bad_params", []string{"vm-list", "params=colour"}, ExitUsage},
		{"shutdown_error", []string{"vm-shutdown", "vm=web"}, ExitFailure},
		{"shutdown_none", []string{"vm-shutdown", "vm=nothing"}, ExitFailure},
		{"shutdown_many", []string{"vm-shutdown", "power-state=halted"}, ExitFailure},
		{"shutdown_multiple", []string{"vm-shutdown", "power-state=halted", "--multiple"}, ExitFailure},
		{"unknown_command", []string{"vm-fly"}, ExitUsage},
		{"unknown_param", []string{"vm-start", "vm=web", "speed=fast"}, ExitUsage},
		{"unknown_switch", []string{"vm-list", "--force"}, ExitUsage},
		{"missing_param", []string{"vm-install", "template=x"}, ExitUsage},
		{"syntax", []string{"vm-list", "-q"}, ExitUsage},
		{"bare_word", []string{"vm-list", "running"}, ExitUsage},
		{"help_command", []string{"help", "vm-shutdown"}, ExitOK},
		{"help_unknown", []string{"help", "vm-fly"}, ExitUsage},
	}
	var all bytes.Buffer
	for _, tt := range tests {
		var out, errb bytes.Buffer
		f := &fakeServer{vms: vms}
		env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
			Dial: func(*ConnOptions) (Caller, bool, error) { return f, true, nil }}
		code := Run(context.Background(), tt.argv, env)
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.name, code, tt.code, out.String(), errb.String())
		}
		all.WriteString("== xe " + strings.Join(tt.argv, " ") + "\n-- stdout\n" + out.String() + "-- stderr\n" + errb.String())
	}
	golden(t, "run_fake.txt", all.String())
}

func TestHelpLists(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	if code := Run(context.Background(), []string{"help"}, env); code != ExitOK {
		t.Fatalf("help: exit %d: %s", code, out.String())
	}
	golden(t, "help.txt", out.String())

	out.Reset()
	if code := Run(context.Background(), []string{"help", "--all", "--minimal"}, env); code != ExitOK {
		t.Fatalf("help --all: exit %d", code)
	}
	cmds := strings.Split(strings.TrimSpace(out.String()), ",")
	for _, want := range []string{
		"vm-install", "vm-start", "vm-shutdown", "vm-reboot", "vm-suspend", "vm-resume", "vm-pause", "vm-unpause",
		"vm-clone", "vm-copy", "vm-snapshot", "vm-uninstall", "vm-destroy", "vm-memory-limits-set", "vm-vcpu-hotplug",
		"vm-disk-list", "vm-vif-list", "vm-cd-add", "vm-cd-insert", "vm-cd-eject", "vdi-create", "vdi-destroy",
		"vdi-resize", "vdi-clone", "vdi-snapshot", "vbd-create", "vbd-plug", "vbd-unplug", "vbd-destroy",
		"vif-create", "vif-plug", "vif-unplug", "vif-destroy", "network-create", "network-destroy", "vlan-create",
		"bond-create", "sr-create", "sr-scan", "sr-list", "host-list", "host-param-list", "pool-list", "task-list",
		"task-cancel", "template-list", "user-password-change", "event-wait", "help",
		"vm-param-get", "vm-param-set", "vm-param-add", "vm-param-remove", "vm-param-clear", "snapshot-list",
	} {
		found := false
		for _, c := range cmds {
			if c == want {
				found = true
			}
		}
		if !found {
			t.Errorf("help --all lacks %s", want)
		}
	}
}

func TestCompleteOffline(t *testing.T) {
	t.Parallel()
	env := &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" },
		Dial: func(*ConnOptions) (Caller, bool, error) { return &fakeServer{vms: wire.Struct()}, true, nil }}
	tests := []struct {
		before []string
		cur    string
		want   []string
	}{
		{nil, "vm-shut", []string{"vm-shutdown"}},
		{[]string{"help"}, "vm-unp", []string{"vm-unpause"}},
		{[]string{"vm-shutdown"}, "--f", []string{"--force"}},
		{[]string{"vm-install"}, "new-", []string{"new-name-label="}},
		{[]string{"vm-list"}, "power-state=h", []string{"power-state=halted"}},
		{[]string{"vm-param-get", "uuid=x"}, "param-name=name-l", []string{"param-name=name-label"}},
		{[]string{"vm-list"}, "params=uuid,power-", []string{"params=uuid,power-state"}},
	}
	for _, tt := range tests {
		got := completeWords(context.Background(), tt.before, tt.cur, env)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("complete %v %q = %v, want %v", tt.before, tt.cur, got, tt.want)
		}
	}
}
