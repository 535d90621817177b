package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQEMU runs tests/peers/python/driver_scenario.py (XenAPI.py) against a
// real `xenithd --hypervisor qemu` with real guests (scripts/guest/build.sh,
// cached), then kills xenithd with SIGKILL while two guests run and checks
// the restarted daemon re-adopts both.
//
// Skips only when qemu-system-x86_64 is not installed. The accelerator is
// TCG unless XENITH_QEMU_ACCEL says otherwise (auto, kvm): TCG is what every
// CI machine can do, and a /dev/kvm that opens is not always one that boots.
func TestQEMU(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (Debian qemu-system-x86; scripts/install-test-deps.sh installs it)")
	}
	requirePythonClient(t)
	root := repoRoot(t)
	guest := buildGuest(t, root)
	accel := os.Getenv("XENITH_QEMU_ACCEL")
	if accel == "" {
		accel = "tcg"
	}
	// A short data dir: QEMU's unix sockets live in it.
	data, err := os.MkdirTemp("/tmp", "xqe-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: no QEMU of this test survives it.
	t.Cleanup(func() {
		killQEMUs(t, data)
		os.RemoveAll(data)
	})
	flags := []string{"--data", data, "--hypervisor", "qemu", "--qemu-accel", accel}
	d := startDaemon(t, flags...)
	args := driverScenario(root, "qemu", guest, data)
	t.Run("scenario", func(t *testing.T) {
		runPeer(t, d, 4*time.Minute, root, debianPython, args(d, "main")...)
	})
	t.Run("restart", func(t *testing.T) {
		before := qemuPids(data)
		runPeer(t, d, 3*time.Minute, root, debianPython, args(d, "start-two")...)
		pids := qemuPids(data)
		if len(pids)-len(before) != 2 {
			t.Fatalf("want 2 more QEMU processes, have %v (before: %v)", pids, before)
		}
		d.Kill()
		d2 := startDaemon(t, append(flags, "--root-password", d.Password)...)
		if got := qemuPids(data); !equalInts(got, pids) {
			t.Fatalf("QEMU processes changed across the restart: %v -> %v", pids, got)
		}
		runPeer(t, d2, 3*time.Minute, root, debianPython, args(d2, "check-two")...)
	})
}

// driverScenario gives the command line of tests/peers/python/driver_scenario.py
// for one phase against a daemon: its file SR and state file live in dir.
func driverScenario(root, driver, guest, dir string) func(d *Daemon, phase string) []string {
	script := filepath.Join(root, "tests", "peers", "python", "driver_scenario.py")
	return func(d *Daemon, phase string) []string {
		return []string{script, "--url", d.URL, "--user", "root", "--password", d.Password, "--driver", driver,
			"--guest", guest, "--sr-dir", filepath.Join(dir, "sr"), "--phase", phase,
			"--state", filepath.Join(dir, "scenario-state.json")}
	}
}

// buildGuest runs scripts/guest/build.sh (cached) and returns its folder.
func buildGuest(t *testing.T, root string) string {
	t.Helper()
	if dir := os.Getenv("XENITH_GUEST_DIR"); dir != "" {
		return dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(root, "scripts", "guest", "build.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/guest/build.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// qemuPids lists the QEMU processes whose command line mentions dir.
func qemuPids(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmd, []byte(dir+"/")) || !bytes.Contains(cmd, []byte("qemu-system")) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// killQEMUs kills, by pid, the QEMU processes this test started.
func killQEMUs(t *testing.T, dir string) {
	for _, pid := range qemuPids(dir) {
		t.Logf("killing leftover QEMU pid %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
