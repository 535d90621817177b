package xenops

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/inventory"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xenapi"
)

// env is a whole xenithd in process: store, inventory, simulator, XenAPI
// server, and the xenopsd front over it.
type env struct {
	st    *store.Store
	srv   *xapi.Server
	front *xapi.Front
	svc   *Service
	sess  xenapi.Ref
}

var testInfo = hostinfo.Info{
	Hostname: "testhost", Address: "192.0.2.10", CPUCount: 2, CPUModel: "Test CPU", CPUVendor: "GenuineTest",
	MemoryTotal: 8 << 30, MemoryFree: 6 << 30, UUIDSeed: "test-seed",
	Interfaces: []hostinfo.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", IPv4: "192.0.2.10", Netmask: "255.255.255.0", MTU: 1500, Up: true}},
}

func newEnv(t testing.TB) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the simulator's driver wrapped by wrap (nil:
// the simulator itself), e.g. to hide its optional capabilities.
func newEnvWith(t testing.TB, wrap func(*sim.Driver) domain.Driver) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.OpenUsers(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := users.SetPassword("root", "pw"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	host, err := inventory.Ensure(ctx, st, inventory.Options{DataDir: dir, Version: "test", Info: testInfo})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	drv, err := sim.New(sim.Options{StateDir: filepath.Join(dir, "sim"), TotalMemory: 16 << 30, CPUs: 4,
		BootTime: 10 * time.Millisecond, ShutdownTime: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var d domain.Driver = drv
	if wrap != nil {
		d = wrap(drv)
	}
	doms := domain.New(domain.Config{Store: st, Driver: d, Host: host, Log: log, StateDir: dir})
	srv := xapi.New(xapi.Config{Store: st, Users: users, Log: log, Host: host, Domains: doms})
	go doms.Run(ctx)
	t.Cleanup(func() { cancel(); drv.Close(); st.Close() })
	front := srv.NewFront("test-xenopsd")
	sess, err := front.Authenticate(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	svc := New(Config{Front: front, Log: log, Version: "test"})
	t.Cleanup(func() { svc.Close() })
	return &env{st: st, srv: srv, front: front, svc: svc, sess: sess}
}
