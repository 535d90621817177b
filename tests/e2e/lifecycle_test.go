package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// lifecycleTimeout bounds tests/peers/python/lifecycle.py; with the short
// simulator timings below the whole scenario takes a few seconds.
const lifecycleTimeout = 60 * time.Second

// TestLifecycleScenario drives one VM through its whole life with the real
// Python XenAPI client (tests/peers/python/lifecycle.py): template clone,
// provision, VIF, start (guest metrics), pause/unpause, suspend/resume,
// snapshot, clean shutdown, wrong-power-state errors, Async.VM.start, hard
// shutdown, a simulated crash and destroy, each step also followed with
// event.from from a second session. It runs its own xenithd with short
// simulator boot/shutdown times.
func TestLifecycleScenario(t *testing.T) {
	requirePythonClient(t)
	root := repoRoot(t)
	d := startDaemon(t, "--sim-boot-time", "200ms", "--sim-shutdown-time", "100ms")
	script := filepath.Join(root, "tests", "peers", "python", "lifecycle.py")
	runPeer(t, d, lifecycleTimeout, root, debianPython, script,
		"--url", d.URL, "--user", "root", "--password", d.Password)
}
