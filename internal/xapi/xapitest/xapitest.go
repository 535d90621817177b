// Package xapitest builds a whole xenithd in process for the tests of the
// packages that stand on the XenAPI server (the xenopsd and xend fronts):
// a store, the first-start inventory, the simulator, the domain manager and
// the server, wired as cmd/xenithd wires them.
package xapitest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/inventory"
	"github.com/xenith/xenith/internal/rrdd"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xapi"
)

// RootPassword is root's password in every Stack.
const RootPassword = "pw"

// HostInfo is the machine the inventory of a Stack describes.
var HostInfo = hostinfo.Info{
	Hostname: "testhost", Address: "192.0.2.10", CPUCount: 2, CPUModel: "Test CPU", CPUVendor: "GenuineTest",
	MemoryTotal: 8 << 30, MemoryFree: 6 << 30, UUIDSeed: "test-seed",
	Interfaces: []hostinfo.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", IPv4: "192.0.2.10", Netmask: "255.255.255.0", MTU: 1500, Up: true}},
}

// Stack is the in-process xenithd. Everything is closed when the test ends.
type Stack struct {
	Store  *store.Store
	Server *xapi.Server
	RRDs   *rrdd.Store // statistics, fed by the domain manager every domain.MetricsInterval
	Log    *slog.Logger
	Ctx    context.Context // cancelled when the test ends
}

// New builds a Stack on the simulator (fast boots and shutdowns). wrap, if
// not nil, replaces the driver the domain manager sees, e.g. to hide the
// simulator's optional capabilities.
func New(t testing.TB, wrap func(*sim.Driver) domain.Driver) *Stack {
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
	if err := users.SetPassword("root", RootPassword); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	host, err := inventory.Ensure(ctx, st, inventory.Options{DataDir: dir, Version: "test", Info: HostInfo})
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
	hostRow, err := st.Get(api.ClassHost, host)
	if err != nil {
		t.Fatal(err)
	}
	rrds, err := rrdd.Open(filepath.Join(dir, "rrd"), hostRow.Rec.(*api.Host).UUID, log)
	if err != nil {
		t.Fatal(err)
	}
	doms := domain.New(domain.Config{Store: st, Driver: d, Host: host, Log: log, StateDir: dir, Samples: rrds})
	srv := xapi.New(xapi.Config{Store: st, Users: users, Log: log, Host: host, Domains: doms, RRDs: rrds})
	go doms.Run(ctx)
	t.Cleanup(func() { cancel(); drv.Close(); st.Close() })
	return &Stack{Store: st, Server: srv, RRDs: rrds, Log: log, Ctx: ctx}
}
