package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The xe tests run the real cmd/xe binary against a real xenithd: a new
// user's session (golden transcript in testdata/xe), every error path with
// its exit status, the remote (TCP) connection, Ctrl-C on a running task,
// event-wait and the bash completion.

var updateXe = flag.Bool("update", false, "rewrite the golden files under testdata/xe")

// xeTimeout bounds one xe invocation.
const xeTimeout = 30 * time.Second

// buildXe builds ./cmd/xe into dir.
func buildXe(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "xe")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/xe")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xe: %v\n%s", err, out)
	}
	return bin
}

// xeRun is one xe invocation's outcome.
type xeRun struct {
	stdout, stderr string
	code           int
}

// xeCmd prepares xe with the local socket of d (XE_SOCKET) and no ~/.xe.
func xeCmd(ctx context.Context, bin string, d *Daemon, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "XE_SOCKET="+d.Socket, "HOME="+os.TempDir()+"/xenith-xe-nohome")
	return cmd
}

func runXe(t *testing.T, bin string, d *Daemon, args ...string) xeRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xeTimeout)
	defer cancel()
	cmd := xeCmd(ctx, bin, d, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := xeRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("xe %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustXe runs xe and fails the test unless it succeeds.
func mustXe(t *testing.T, bin string, d *Daemon, args ...string) string {
	t.Helper()
	r := runXe(t, bin, d, args...)
	if r.code != 0 {
		t.Fatalf("xe %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// normalizer replaces uuids by <uuid-N>, numbered in order of appearance
// across a whole transcript, so that the golden file shows which uuids are
// the same object.
type normalizer map[string]string

func (n normalizer) apply(s string) string {
	return uuidRE.ReplaceAllStringFunc(s, func(u string) string {
		if r, ok := n[u]; ok {
			return r
		}
		r := fmt.Sprintf("<uuid-%d>", len(n)+1)
		n[u] = r
		return r
	})
}

func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "xe", name)
	if *updateXe {
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
		t.Fatalf("%v (run go test ./tests/e2e -run Xe -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./tests/e2e -run Xe -update rewrites it)\n--- got ---\n%s", path, got)
	}
}

// TestXe runs the xe scenarios; they share one xe binary and one daemon
// (each scenario works on its own VMs).
func TestXe(t *testing.T) {
	bin := buildXe(t, t.TempDir())
	d := startDaemon(t, "--sim-boot-time", "200ms", "--sim-shutdown-time", "100ms")

	t.Run("Session", func(t *testing.T) { xeSession(t, bin, d) })
	t.Run("Errors", func(t *testing.T) { t.Parallel(); xeErrors(t, bin, d) })
	t.Run("Remote", func(t *testing.T) { t.Parallel(); xeRemote(t, bin, d) })
	t.Run("EventWait", func(t *testing.T) { t.Parallel(); xeEventWait(t, bin, d) })
	t.Run("Generic", func(t *testing.T) { t.Parallel(); xeGeneric(t, bin, d) })
	t.Run("Completion", func(t *testing.T) { t.Parallel(); xeCompletion(t, bin, d) })
	t.Run("CtrlC", func(t *testing.T) { t.Parallel(); xeCtrlC(t, bin) })
}

// xeSession is what a new user does: install VMs from a template, start
// one, list with filters, params= and --minimal, change fields, shut down
// and uninstall. The whole transcript is compared with a golden file.
func xeSession(t *testing.T, bin string, d *Daemon) {
	var transcript strings.Builder
	norm := normalizer{}
	step := func(wantCode int, args ...string) string {
		t.Helper()
		r := runXe(t, bin, d, args...)
		quoted := make([]string, len(args))
		for i, a := range args {
			if strings.ContainsAny(a, " \"'") {
				a = fmt.Sprintf("%q", a)
			}
			quoted[i] = a
		}
		fmt.Fprintf(&transcript, "$ xe %s\n%s", norm.apply(strings.Join(quoted, " ")), norm.apply(r.stdout))
		if r.stderr != "" {
			fmt.Fprintf(&transcript, "[stderr]\n%s", norm.apply(r.stderr))
		}
		fmt.Fprintf(&transcript, "[exit %d]\n\n", r.code)
		if r.code != wantCode {
			t.Errorf("xe %s: exit %d, want %d\n%s%s", strings.Join(args, " "), r.code, wantCode, r.stdout, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	web1 := step(0, "vm-install", "template=Debian Bookworm 12", "new-name-label=web1")
	step(0, "vm-install", "template=Debian Bookworm 12", "new-name-label=web2")
	step(0, "vm-list", "is-control-domain=false")
	step(0, "vm-start", "vm=web1")
	step(0, "vm-list", "power-state=running", "is-control-domain=false", "params=name-label,power-state,VCPUs-max,memory-static-max")
	step(0, "vm-list", "is-control-domain=false", "params=name-label", "--minimal")
	step(0, "vm-list", "power-state=halted", "--minimal")
	step(0, "vm-param-get", "uuid="+web1, "param-name=power-state")
	step(0, "vm-param-set", "uuid="+web1, "name-description=front end", "other-config:role=web")
	step(0, "vm-param-get", "uuid="+web1, "param-name=other-config", "param-key=role")
	step(0, "vm-param-add", "uuid="+web1, "param-name=tags", "param-key=prod")
	step(0, "vm-list", "tags:contains=prod", "params=name-label,name-description,tags")
	step(0, "vm-disk-list", "vm=web1")
	step(1, "vm-start", "vm=web1")
	step(0, "vm-shutdown", "vm=web1")
	step(1, "vm-shutdown", "vm=web1")
	step(1, "vm-start", "is-control-domain=false")
	step(0, "vm-start", "power-state=halted", "--multiple")
	step(0, "vm-list", "is-control-domain=false", "params=name-label,power-state")
	step(0, "vm-shutdown", "power-state=running", "--multiple", "--force")
	step(0, "vm-uninstall", "vm=web1", "--force")
	step(0, "vm-uninstall", "vm=web2", "--force")
	step(0, "vm-list", "is-control-domain=false")
	compareGolden(t, "session.golden", transcript.String())
}

// xeErrors checks every error path: the message and the exit status.
func xeErrors(t *testing.T, bin string, d *Daemon) {
	vm := mustXe(t, bin, d, "vm-install", "template=Debian Bookworm 12", "new-name-label=errs")
	mustXe(t, bin, d, "vm-install", "template=Debian Bookworm 12", "new-name-label=errs2")
	tests := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stderr []string
	}{
		{"no command gives help", nil, nil, 0, nil},
		{"unknown command", []string{"vm-fly"}, nil, 2, []string{"Unknown command: vm-fly", "xe help"}},
		{"missing parameter", []string{"vm-install", "template=x"}, nil, 2, []string{"Required parameter not found: new-name-label", "command name            : vm-install"}},
		{"unknown parameter", []string{"vm-start", "vm=errs", "speed=fast"}, nil, 2, []string{"Unknown parameter 'speed'", "command name            : vm-start"}},
		{"unknown switch", []string{"vm-list", "--force"}, nil, 2, []string{"Unknown switch: --force"}},
		{"bad syntax", []string{"vm-list", "-z"}, nil, 2, []string{"Syntax error: Unknown switch: -z"}},
		{"bare word", []string{"vm-list", "running"}, nil, 2, []string{"not of the form name=value"}},
		{"unknown field in params", []string{"vm-list", "params=colour"}, nil, 2, []string{"Unknown field 'colour'"}},
		{"unknown field filter", []string{"vm-list", "colour=red"}, nil, 2, []string{"Unknown parameter 'colour'"}},
		{"bad size", []string{"vm-memory-set", "vm=errs", "memory=lots"}, nil, 2, []string{"memory must be a size"}},
		{"no match", []string{"vm-start", "vm=nothing-like-this"}, nil, 1, []string{"Error: No matching VMs found"}},
		{"several without --multiple", []string{"vm-start", "power-state=halted"}, nil, 1, []string{"--multiple required"}},
		{"bad power state", []string{"vm-shutdown", "vm=errs"}, nil, 1, []string{
			"The VM is not in the power state this operation needs.", "vm: " + vm + " (errs)", "expected: running", "actual: halted"}},
		{"invalid uuid", []string{"vm-param-list", "uuid=00000000-0000-0000-0000-000000000000"}, nil, 1, []string{"The uuid you supplied was invalid.", "uuid: 00000000-0000-0000-0000-000000000000"}},
		{"read-only field", []string{"vm-param-set", "uuid=" + vm, "power-state=running"}, nil, 1, []string{"Error: Field 'power-state' is read-only."}},
		{"wrong type", []string{"vm-param-set", "uuid=" + vm, "VCPUs-max=many"}, nil, 1, []string{"Error: Parameter VCPUs-max must be an integer"}},
		{"bad enum", []string{"vm-param-set", "uuid=" + vm, "actions-after-crash=explode"}, nil, 1, []string{"must be one of"}},
		{"unknown param-name", []string{"vm-param-get", "uuid=" + vm, "param-name=colour"}, nil, 1, []string{"Unknown field 'colour'"}},
		{"missing map key", []string{"vm-param-get", "uuid=" + vm, "param-name=other-config", "param-key=nope"}, nil, 1, []string{"Key nope not found in map"}},
		{"no template", []string{"vm-install", "template=No Such OS", "new-name-label=x"}, nil, 1, []string{"No templates matched"}},
		{"template is a VM", []string{"vm-install", "template-uuid=" + vm, "new-name-label=x"}, nil, 1, []string{"Can only install from templates"}},
		{"uninstall unconfirmed", []string{"vm-uninstall", "vm=errs2"}, nil, 1, []string{"Not confirmed"}},
		{"no socket", []string{"vm-list"}, []string{"XE_SOCKET=/nonexistent/xapi.sock"}, 3, []string{"Failed to contact a running management agent"}},
		{"remote without password", []string{"-s", "127.0.0.1", "--nossl", "vm-list"}, nil, 3, []string{"Username/password must be specified"}},
		{"remote bad password", []string{"-s", strings.TrimPrefix(d.URL, "http://"), "--nossl", "-u", "root", "-pw", "wrong", "vm-list"}, nil, 3, []string{"Authentication failed"}},
		{"missing password file", []string{"-s", "127.0.0.1", "-pwf", "/nonexistent/pw", "vm-list"}, nil, 3, []string{"Error opening password file"}},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), xeTimeout)
		cmd := xeCmd(ctx, bin, d, tt.args...)
		cmd.Env = append(cmd.Env, tt.env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Stdin = strings.NewReader("no\n")
		err := cmd.Run()
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if code != tt.code {
			t.Errorf("%s: xe %s: exit %d, want %d\nstdout: %s\nstderr: %s", tt.name, strings.Join(tt.args, " "), code, tt.code, out.String(), errb.String())
		}
		for _, want := range tt.stderr {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("%s: stderr lacks %q:\n%s", tt.name, want, errb.String())
			}
		}
	}
	// The refused uninstall destroyed nothing.
	if got := mustXe(t, bin, d, "vm-list", "name-label=errs2", "--minimal"); got == "" {
		t.Error("vm-uninstall without confirmation destroyed the VM")
	}
	mustXe(t, bin, d, "vm-uninstall", "name-label=errs", "--force")
	mustXe(t, bin, d, "vm-uninstall", "name-label=errs2", "--force")
}

// xeRemote talks to the daemon over TCP with a user and password, as one
// does from another machine (--nossl: the test daemon has no HTTPS).
func xeRemote(t *testing.T, bin string, d *Daemon) {
	hostPort := strings.TrimPrefix(d.URL, "http://")
	host, port, _ := strings.Cut(hostPort, ":")
	local := mustXe(t, bin, d, "host-list", "--minimal")
	remote := mustXe(t, bin, d, "-s", host, "-p", port, "--nossl", "-u", "root", "-pw", d.Password, "host-list", "--minimal")
	if remote != local || remote == "" {
		t.Errorf("host-list over TCP = %q, over the socket %q", remote, local)
	}
	pwf := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwf, []byte("root\n"+d.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mustXe(t, bin, d, "-s", hostPort, "--nossl", "-pwf", pwf, "pool-list", "params=master", "--minimal"); got != local {
		t.Errorf("pool master via -pwf = %q, want the host %q", got, local)
	}
}

// xeEventWait waits for a VM to run, and times out waiting for the
// impossible.
func xeEventWait(t *testing.T, bin string, d *Daemon) {
	mustXe(t, bin, d, "vm-install", "template=Debian Bookworm 12", "new-name-label=waiter")
	ctx, cancel := context.WithTimeout(context.Background(), xeTimeout)
	defer cancel()
	wait := xeCmd(ctx, bin, d, "event-wait", "class=vm", "name-label=waiter", "power-state=running")
	var errb bytes.Buffer
	wait.Stderr = &errb
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wait.Wait() }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("event-wait returned before the VM started: %v %s", err, errb.String())
	default:
	}
	mustXe(t, bin, d, "vm-start", "vm=waiter")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("event-wait: %v %s", err, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("event-wait did not notice the VM start")
	}
	r := runXe(t, bin, d, "event-wait", "class=vm", "name-label=waiter", "power-state=/=running", "timeout=0.5")
	if r.code != 1 || !strings.Contains(r.stderr, "Timed out") {
		t.Errorf("event-wait timeout: exit %d, stderr %q", r.code, r.stderr)
	}
	mustXe(t, bin, d, "vm-uninstall", "vm=waiter", "--force")
}

// xeGeneric exercises the schema-generated commands on other classes and
// the storage/network everyday commands.
func xeGeneric(t *testing.T, bin string, d *Daemon) {
	sr := mustXe(t, bin, d, "pool-list", "params=default-SR", "--minimal")
	vdi := mustXe(t, bin, d, "vdi-create", "sr-uuid="+sr, "name-label=scratch", "virtual-size=64MiB")
	if got := mustXe(t, bin, d, "vdi-param-get", "uuid="+vdi, "param-name=virtual-size"); got != "67108864" {
		t.Errorf("virtual-size = %s", got)
	}
	mustXe(t, bin, d, "vdi-param-set", "uuid="+vdi, "name-description=temp", "other-config:purpose=test")
	mustXe(t, bin, d, "vdi-param-add", "uuid="+vdi, "param-name=other-config", "a=1", "b=2")
	mustXe(t, bin, d, "vdi-param-remove", "uuid="+vdi, "param-name=other-config", "param-key=a")
	if got := mustXe(t, bin, d, "vdi-param-get", "uuid="+vdi, "param-name=other-config"); got != "b: 2; purpose: test" {
		t.Errorf("other-config = %q", got)
	}
	mustXe(t, bin, d, "vdi-param-clear", "uuid="+vdi, "param-name=other-config")
	if got := mustXe(t, bin, d, "vdi-param-get", "uuid="+vdi, "param-name=other-config"); got != "" {
		t.Errorf("other-config after clear = %q", got)
	}
	if got := mustXe(t, bin, d, "vdi-list", "name-label=scratch", "sr-uuid="+sr, "--minimal"); got != vdi {
		t.Errorf("vdi-list by name and sr-uuid = %q, want %s", got, vdi)
	}
	mustXe(t, bin, d, "vdi-resize", "uuid="+vdi, "disk-size=128MiB")
	clone := mustXe(t, bin, d, "vdi-clone", "uuid="+vdi, "new-name-label=scratch-clone")
	if got := mustXe(t, bin, d, "vdi-param-get", "uuid="+clone, "param-name=name-label"); got != "scratch-clone" {
		t.Errorf("clone name = %q", got)
	}
	snap := mustXe(t, bin, d, "vdi-snapshot", "uuid="+vdi)
	for _, u := range []string{snap, clone, vdi} {
		mustXe(t, bin, d, "vdi-destroy", "uuid="+u)
	}
	net := mustXe(t, bin, d, "network-create", "name-label=backend")
	vm := mustXe(t, bin, d, "vm-install", "template=Debian Bookworm 12", "new-name-label=devices")
	vif := mustXe(t, bin, d, "vif-create", "vm-uuid="+vm, "network-uuid="+net, "device=0")
	out := mustXe(t, bin, d, "vm-vif-list", "vm=devices")
	if !strings.Contains(out, vif) || !strings.Contains(out, "network-uuid ( RO): "+net) {
		t.Errorf("vm-vif-list:\n%s", out)
	}
	vdi2 := mustXe(t, bin, d, "vdi-create", "sr-uuid="+sr, "name-label=data", "virtual-size=1MiB")
	vbd := mustXe(t, bin, d, "vbd-create", "vm-uuid="+vm, "vdi-uuid="+vdi2, "device=1")
	if got := mustXe(t, bin, d, "vbd-list", "uuid="+vbd, "params=vm-name-label,vdi-uuid", "--minimal"); got != "devices" {
		t.Errorf("vbd vm-name-label = %q", got)
	}
	mustXe(t, bin, d, "vm-start", "vm=devices")
	mustXe(t, bin, d, "vbd-unplug", "uuid="+vbd)
	mustXe(t, bin, d, "vbd-plug", "uuid="+vbd)
	mustXe(t, bin, d, "vm-shutdown", "vm=devices", "--force")
	mustXe(t, bin, d, "vbd-destroy", "uuid="+vbd)
	mustXe(t, bin, d, "vdi-destroy", "uuid="+vdi2)
	mustXe(t, bin, d, "vif-destroy", "uuid="+vif)
	snapVM := mustXe(t, bin, d, "vm-snapshot", "vm=devices", "new-name-label=before")
	if got := mustXe(t, bin, d, "snapshot-list", "params=name-label", "--minimal"); got != "before" {
		t.Errorf("snapshot-list = %q", got)
	}
	mustXe(t, bin, d, "snapshot-uninstall", "snapshot-uuid="+snapVM, "--force")
	copyVM := mustXe(t, bin, d, "vm-copy", "vm=devices", "new-name-label=devices-copy", "new-name-description=copied")
	if got := mustXe(t, bin, d, "vm-param-get", "uuid="+copyVM, "param-name=name-description"); got != "copied" {
		t.Errorf("copy description = %q", got)
	}
	mustXe(t, bin, d, "vm-uninstall", "name-label=devices-copy", "--force")
	mustXe(t, bin, d, "vm-uninstall", "vm=devices", "--force")
	mustXe(t, bin, d, "network-destroy", "uuid="+net)
	if out := mustXe(t, bin, d, "host-param-list", "uuid="+mustXe(t, bin, d, "host-list", "--minimal")); !strings.Contains(out, "name-label ( RW): ") {
		t.Errorf("host-param-list:\n%s", out)
	}
}

// xeCompletion runs the bash completion script against the daemon.
func xeCompletion(t *testing.T, bin string, d *Daemon) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	script := filepath.Join(repoRoot(t), "scripts", "xe-completion.bash")
	prog := `source "$1"
t() { COMP_LINE="$1"; COMP_POINT=${#1}; read -ra COMP_WORDS <<< "$1"; _xe; printf '%s|' "${COMPREPLY[@]}"; echo; }
t "xe vm-shutd"
t "xe vm-list power-state=ha"
t "xe vm-install template=Debian\\ Bookw"
t "xe sr-param-list uuid="
`
	cmd := exec.Command(bash, "-c", prog, "bash", script)
	cmd.Env = append(os.Environ(), "XE_SOCKET="+d.Socket, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	sr := mustXe(t, bin, d, "sr-list", "name-label=Local storage", "--minimal")
	want := []string{"vm-shutdown|", "halted|", `Debian\ Bookworm\ 12|`}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Errorf("completion %d = %q, want %q (all: %q)", i, lines[i], w, lines)
		}
	}
	if len(lines) < 4 || !strings.Contains(lines[3], sr+"|") {
		t.Errorf("sr uuid completion lacks %s: %q", sr, lines)
	}
}

// xeCtrlC interrupts a clean shutdown that the guest takes long to obey:
// the task is cancelled on the server, xe exits 130 and the VM runs on.
func xeCtrlC(t *testing.T, bin string) {
	d := startDaemon(t, "--sim-shutdown-time", "30s")
	vm := mustXe(t, bin, d, "vm-install", "template=Debian Bookworm 12", "new-name-label=slow")
	mustXe(t, bin, d, "vm-start", "vm=slow")
	ctx, cancel := context.WithTimeout(context.Background(), xeTimeout)
	defer cancel()
	cmd := xeCmd(ctx, bin, d, "vm-shutdown", "vm=slow")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the task to exist, then press Ctrl-C.
	deadline := time.Now().Add(10 * time.Second)
	for mustXe(t, bin, d, "task-list", "--minimal") == "" {
		if time.Now().After(deadline) {
			t.Fatal("no task appeared for vm-shutdown")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("vm-shutdown after Ctrl-C: %v (want exit 130)\n%s", err, errb.String())
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("Ctrl-C took %v to stop vm-shutdown", el)
	}
	if !strings.Contains(errb.String(), "Cancelling the task") || !strings.Contains(errb.String(), "Operation cancelled") {
		t.Errorf("stderr: %s", errb.String())
	}
	if got := mustXe(t, bin, d, "vm-param-get", "uuid="+vm, "param-name=power-state"); got != "running" {
		t.Errorf("power-state after the cancelled shutdown = %s", got)
	}
	// The cancelled task was destroyed by xe.
	if got := mustXe(t, bin, d, "task-list", "--minimal"); got != "" {
		t.Errorf("tasks left behind: %s", got)
	}
	mustXe(t, bin, d, "vm-shutdown", "vm=slow", "--force")
}
