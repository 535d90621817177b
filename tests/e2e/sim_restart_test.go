package e2e

import (
	"context"
	"testing"

	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// TestSimDomainsOutliveRestart: simulated domains behave like real ones
// across a xenithd crash: after SIGKILL and a restart, a running VM is still
// running with the same domid, and can be controlled again.
func TestSimDomainsOutliveRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := startDaemon(t, "--sim-boot-time", "0", "--sim-shutdown-time", "0")
	s, err := client.New(d.URL, client.JSONRPC, nil).Login(ctx, "root", d.Password)
	if err != nil {
		t.Fatal(err)
	}
	rec := wire.Struct(
		wire.Member{Name: "name_label", Value: wire.String("survivor")},
		wire.Member{Name: "memory_static_max", Value: wire.Int(256 << 20)},
		wire.Member{Name: "memory_dynamic_max", Value: wire.Int(256 << 20)},
		wire.Member{Name: "memory_dynamic_min", Value: wire.Int(256 << 20)},
		wire.Member{Name: "memory_static_min", Value: wire.Int(128 << 20)},
		wire.Member{Name: "VCPUs_max", Value: wire.Int(1)},
		wire.Member{Name: "VCPUs_at_startup", Value: wire.Int(1)},
	)
	vm, err := s.Do(ctx, "VM.create", rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Do(ctx, "VM.start", vm, wire.Bool(false), wire.Bool(false)); err != nil {
		t.Fatal(err)
	}
	domid, _ := s.Do(ctx, "VM.get_domid", vm)
	d.Kill()

	d2 := startDaemon(t, "--data", d.DataDir, "--root-password", d.Password, "--sim-boot-time", "0", "--sim-shutdown-time", "0")
	s2, err := client.New(d2.URL, client.XMLRPC, nil).Login(ctx, "root", d2.Password)
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := s2.Do(ctx, "VM.get_power_state", vm)
	domid2, _ := s2.Do(ctx, "VM.get_domid", vm)
	before, _ := xenapi.DecInt(domid)
	after, _ := xenapi.DecInt(domid2)
	if ps.Str != "Running" || before <= 0 || after != before {
		t.Fatalf("after SIGKILL and restart: %s domid %+v (was %+v)\n%s", ps.Str, domid2, domid, d2.Log(20))
	}
	if _, err := s2.Do(ctx, "VM.clean_shutdown", vm); err != nil {
		t.Fatalf("the adopted VM cannot be shut down: %v", err)
	}
	if ps, _ := s2.Do(ctx, "VM.get_power_state", vm); ps.Str != "Halted" {
		t.Fatalf("after clean_shutdown: %s", ps.Str)
	}
}
