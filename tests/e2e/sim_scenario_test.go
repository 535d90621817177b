package e2e

import (
	"testing"
	"time"
)

// TestSimScenario runs tests/peers/python/driver_scenario.py, the scenario
// TestQEMU and TestXen run on real guests, against the simulator: its
// guests print the test guest's console markers and obey its commands
// (internal/hypervisor/sim/console.go), their consoles are reached through
// xenithd's console proxy, and they survive a SIGKILL of xenithd.
func TestSimScenario(t *testing.T) {
	t.Parallel()
	requirePythonClient(t)
	root := repoRoot(t)
	guest := buildGuest(t, root)
	data := t.TempDir()
	flags := []string{"--data", data, "--hypervisor", "sim"}
	d := startDaemon(t, flags...)
	args := driverScenario(root, "sim", guest, data)
	t.Run("scenario", func(t *testing.T) {
		runPeer(t, d, 2*time.Minute, root, debianPython, args(d, "main")...)
	})
	t.Run("restart", func(t *testing.T) {
		runPeer(t, d, time.Minute, root, debianPython, args(d, "start-two")...)
		d.Kill()
		d2 := startDaemon(t, append(flags, "--root-password", d.Password)...)
		runPeer(t, d2, time.Minute, root, debianPython, args(d2, "check-two")...)
	})
}
