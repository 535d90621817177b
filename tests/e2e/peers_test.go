package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real XenAPI clients against a fresh xenithd:
//   - python-http:   Debian's python3-os-xenapi XenAPI.py over XML-RPC/HTTP,
//     including Async.* tasks (task.get_record polling, task.cancel/destroy)
//     and events (event.from, event.register/next/unregister)
//   - python-socket: the same through the unix socket (xapi_local's transport)
//   - python-stats, node-stats: statistics (/rrd_updates, /vm_rrd, /host_rrd,
//     *.get_data_sources) read by XenAPI.py and by the xen-api connector's
//     getResource, as Xen Orchestra's stats views do
//   - node:          Xen Orchestra's xen-api npm connector over JSON-RPC, then
//     with its event watcher on: the object cache must fill, follow changes
//     made by another client (XenAPI.py, tests/peers/python/other_client.py),
//     and settle callAsync tasks; the watcher again over XML-RPC
//
// The clients are installed by scripts/install-test-deps.sh; when they are
// missing the subtests fail (they do not skip).

const (
	debianPython  = "/usr/bin/python3"
	pythonTimeout = 2 * time.Minute
	nodeTimeout   = 90 * time.Second // the script has its own 60 s global timeout
	installHint   = "run scripts/install-test-deps.sh (as root) to install the peer clients"
)

func TestPeers(t *testing.T) {
	root := repoRoot(t)
	d := startDaemon(t)
	pyScript := filepath.Join(root, "tests", "peers", "python", "scenario.py")
	nodeDir := filepath.Join(root, "tests", "peers", "node")

	t.Run("python-http", func(t *testing.T) {
		requirePythonClient(t)
		runPeer(t, d, pythonTimeout, root, debianPython, pyScript,
			"--url", d.URL, "--user", "root", "--password", d.Password)
	})

	t.Run("python-socket", func(t *testing.T) {
		requirePythonClient(t)
		if d.Socket == "" {
			t.Fatal("daemon started without --socket")
		}
		runPeer(t, d, pythonTimeout, root, debianPython, pyScript,
			"--socket", d.Socket, "--user", "root", "--password", d.Password)
	})

	// Statistics: /rrd_updates, /vm_rrd, /host_rrd and the data source
	// messages, as XenAPI.py users and Xen Orchestra read them.
	t.Run("python-stats", func(t *testing.T) {
		requirePythonClient(t)
		runPeer(t, d, pythonTimeout, root, debianPython, filepath.Join(root, "tests", "peers", "python", "stats.py"),
			"--url", d.URL, "--user", "root", "--password", d.Password)
	})

	t.Run("node-stats", func(t *testing.T) {
		node := requireNodeClient(t, nodeDir)
		runPeer(t, d, nodeTimeout, nodeDir, node, filepath.Join(nodeDir, "stats.mjs"),
			"--url", d.URL, "--user", "root", "--password", d.Password)
	})

	t.Run("node", func(t *testing.T) {
		node := requireNodeClient(t, nodeDir)
		requirePythonClient(t) // the "other client" of the event checks
		runPeer(t, d, nodeTimeout, nodeDir, node, filepath.Join(nodeDir, "scenario.mjs"),
			"--url", d.URL, "--user", "root", "--password", d.Password, "--python", debianPython)
	})
}

func requirePythonClient(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s not found (%v): the Python peer test needs Debian's python3 with python3-os-xenapi; %s",
			debianPython, err, installHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, "-c", "import os_xenapi.client.XenAPI").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import os_xenapi.client.XenAPI (Debian package python3-os-xenapi): %v\n%s\n%s",
			debianPython, err, out, installHint)
	}
}

func requireNodeClient(t *testing.T, nodeDir string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found on PATH (%v); the Node peer test needs Node.js >= 18", err)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "xen-api", "package.json")); err != nil {
		t.Fatalf("%s/node_modules/xen-api is missing (%v); %s", nodeDir, err, installHint)
	}
	return node
}

// runPeer runs a peer-client script with a timeout. Its output is logged
// (visible with -v) and, on failure, shown with the daemon's log tail.
func runPeer(t *testing.T, d *Daemon, timeout time.Duration, dir, prog string, args ...string) {
	t.Helper()
	if exited, err := d.Exited(); exited {
		t.Fatalf("xenithd is no longer running (%v)\n--- xenithd log (tail) ---\n%s", err, d.Log(60))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "NO_COLOR=1")
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	shown := strings.ReplaceAll(strings.Join(append([]string{prog}, args...), " "), d.Password, "***")

	if err == nil {
		t.Logf("%s: ok in %v\n%s", shown, elapsed, out.String())
		return
	}
	why := err.Error()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why = "timed out after " + timeout.String()
	}
	daemonState := "xenithd still running"
	if exited, werr := d.Exited(); exited {
		daemonState = "xenithd EXITED: " + errString(werr)
	}
	t.Fatalf("%s: %s after %v (%s)\n--- output ---\n%s\n--- xenithd log (tail) ---\n%s",
		shown, why, elapsed, daemonState, out.String(), d.Log(40))
}

func errString(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}
