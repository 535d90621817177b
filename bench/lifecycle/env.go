// Package lifecycle benchmarks VM lifecycle operations of xenithd on the
// simulated hypervisor (issue 5): the cost of VM.start with a zero boot
// time, a boot storm of 1,000 VMs, and a store holding 64 hosts' worth of
// halted VMs. See BENCHMARKS.md, section "Issue 5".
//
// The environment is built the way cmd/xenithd builds it (store.Open on a
// bbolt file, inventory.Ensure, sim.New with a StateDir, domain.New,
// xapi.New with Domains, Domains.Run), served on a TCP loopback port.
package lifecycle

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/inventory"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xenapi"
)

// Password is root's password.
const Password = "bench-root-password"

// VMMemory is the memory of every benchmark VM (static and dynamic max).
const VMMemory int64 = 256 << 20

// Info is a fixed host description, so figures do not depend on the
// machine's interfaces.
var Info = hostinfo.Info{
	Hostname: "bench-host", Address: "192.0.2.10", CPUCount: 2, CPUModel: "Bench CPU", CPUVendor: "GenuineBench",
	CPUs:        []hostinfo.CPU{{Number: 0, Vendor: "GenuineBench"}, {Number: 1, Vendor: "GenuineBench"}},
	MemoryTotal: 1 << 40, MemoryFree: 1 << 40, UUIDSeed: "bench-seed",
	Interfaces: []hostinfo.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", IPv4: "192.0.2.10", Netmask: "255.255.255.0", MTU: 1500, Up: true}},
}

// Options configures New.
type Options struct {
	// Memory selects a memory-only store; otherwise bbolt in Dir.
	Memory bool
	// NoSync skips fsync in the bbolt store (not what xenithd does).
	NoSync bool
	// SimMemoryOnly runs the simulator without a StateDir; xenithd gives
	// it DATA/sim, where every domain change rewrites sim-domains.json
	// (temp file, fsync, rename, fsync of the directory).
	SimMemoryOnly bool
	// TotalMemory of the simulated host (default 1 TiB).
	TotalMemory int64
	// Dir, if set, is used (and kept) instead of a new temporary
	// directory; a database already there is opened.
	Dir string
	// NoServer skips the XenAPI server and its listener.
	NoServer bool
}

// Env is a running xenithd core with the sim driver.
type Env struct {
	Dir    string
	Store  *store.Store
	Host   xenapi.Ref
	Driver *sim.Driver
	Mgr    *domain.Manager
	Server *xapi.Server
	URL    string // http://127.0.0.1:port, "" with NoServer

	keep   bool
	hs     *http.Server
	cancel context.CancelFunc
}

// New builds an environment in a new temporary directory.
func New(o Options) (*Env, error) {
	dir, err := o.Dir, error(nil)
	if dir == "" {
		if dir, err = os.MkdirTemp("", "xenith-lifecycle-"); err != nil {
			return nil, err
		}
	}
	e := &Env{Dir: dir, keep: o.Dir != ""}
	sopts := store.Options{}
	if !o.Memory {
		sopts = store.Options{Path: filepath.Join(dir, "xenith.db"), NoSync: o.NoSync}
	}
	if e.Store, err = store.Open(sopts); err != nil {
		if !e.keep {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	ctx := context.Background()
	if e.Host, err = inventory.Ensure(ctx, e.Store, inventory.Options{DataDir: dir, Version: "bench", Info: Info}); err != nil {
		e.Close()
		return nil, err
	}
	if o.TotalMemory == 0 {
		o.TotalMemory = 1 << 40
	}
	simDir := filepath.Join(dir, "sim")
	if o.SimMemoryOnly {
		simDir = ""
	} else if err = os.MkdirAll(simDir, 0o755); err != nil {
		e.Close()
		return nil, err
	}
	if e.Driver, err = sim.New(sim.Options{StateDir: simDir, TotalMemory: o.TotalMemory, CPUs: 64}); err != nil {
		e.Close()
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	e.Mgr = domain.New(domain.Config{Store: e.Store, Driver: e.Driver, Host: e.Host, Log: log, StateDir: dir})
	rctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.Mgr.Run(rctx)
	if o.NoServer {
		return e, nil
	}
	users, err := auth.OpenUsers(filepath.Join(dir, "users.json"))
	if err == nil {
		err = users.SetPassword("root", Password)
	}
	if err != nil {
		e.Close()
		return nil, err
	}
	e.Server = xapi.New(xapi.Config{Store: e.Store, Users: users, Log: log, Host: e.Host, Domains: e.Mgr})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Close()
		return nil, err
	}
	e.hs = &http.Server{Handler: e.Server.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	go e.hs.Serve(ln)
	e.URL = "http://" + ln.Addr().String()
	return e, nil
}

// Close stops everything and removes the directory.
func (e *Env) Close() {
	if e.hs != nil {
		e.hs.Close()
	}
	if e.cancel != nil {
		e.cancel()
	}
	if e.Driver != nil {
		e.Driver.Close()
	}
	if e.Store != nil {
		e.Store.Close()
	}
	if !e.keep {
		os.RemoveAll(e.Dir)
	}
}

// HTTPClient returns a client with its own transport keeping up to conns
// keep-alive connections.
func HTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
}

// Login opens a session over p with its own HTTP client.
func (e *Env) Login(ctx context.Context, p client.Protocol, conns int) (*client.Session, error) {
	return client.New(e.URL, p, HTTPClient(conns)).Login(ctx, "root", Password)
}

// NewHaltedVM returns a halted VM of VMMemory with XCP-ng-like maps (no
// devices), and its VM_metrics. Strings that differ between real VMs
// differ here too.
func NewHaltedVM(i int, now time.Time) (*api.VM, *api.VMMetrics) {
	name := fmt.Sprintf("vm-%05d", i)
	vm := api.NewVM()
	vm.UUID = uuid.NewString()
	vm.NameLabel = name
	vm.NameDescription = "Debian Bookworm 12 guest " + name
	vm.UserVersion = 1
	vm.MemoryOverhead = sim.Overhead(VMMemory)
	vm.MemoryStaticMax, vm.MemoryDynamicMax, vm.MemoryTarget = VMMemory, VMMemory, VMMemory
	vm.MemoryDynamicMin, vm.MemoryStaticMin = VMMemory, VMMemory/2
	vm.VCPUsMax, vm.VCPUsAtStartup = 2, 1
	vm.VCPUsParams = xenapi.MapOf(map[string]string{"weight": "256"})
	vm.ActionsAfterShutdown = api.OnNormalExitDestroy
	vm.ActionsAfterReboot = api.OnNormalExitRestart
	vm.ActionsAfterCrash = api.OnCrashBehaviourRestart
	vm.HVMBootPolicy = "BIOS order"
	vm.HVMBootParams = xenapi.MapOf(map[string]string{"order": "cdn", "firmware": "uefi"})
	vm.Platform = xenapi.MapOf(map[string]string{"videoram": "8", "hpet": "true", "device-model": "qemu-upstream-uefi",
		"apic": "true", "vga": "std", "nx": "true", "pae": "true", "viridian": "false", "acpi": "1", "cores-per-socket": "1"})
	vm.OtherConfig = xenapi.MapOf(map[string]string{"base_template_name": "Debian Bookworm 12", "mac_seed": uuid.NewString(),
		"install-methods": "cdrom,nfs,http,ftp", "linux_template": "true"})
	vm.Tags = []string{"web"}
	vm.HardwarePlatformVersion = 2
	vm.DomainType = api.DomainTypeHVM
	vm.GenerationID = "0:0"
	vm.PowerState = api.VMPowerStateHalted
	vm.Domid = -1
	vm.AllowedOperations = domain.AllowedOperations(vm)

	m := api.NewVMMetrics()
	m.UUID = uuid.NewString()
	m.MemoryActual = VMMemory
	m.VCPUsNumber = 1
	m.InstallTime = now.Add(-time.Duration(i) * time.Hour)
	m.LastUpdated = xenapi.Epoch
	m.StartTime = xenapi.Epoch
	m.CurrentDomainType = api.DomainTypeUnspecified
	return vm, m
}

// AddHalted creates n halted VMs (numbered from first) with a VM_metrics
// each, batch VMs per store transaction, and returns their references.
func AddHalted(ctx context.Context, st *store.Store, first, n, batch int) ([]xenapi.Ref, error) {
	now := time.Now().UTC().Truncate(time.Second)
	refs := make([]xenapi.Ref, 0, n)
	for lo := first; lo < first+n; lo += batch {
		hi := min(lo+batch, first+n)
		err := st.Update(ctx, func(tx *store.Tx) error {
			for i := lo; i < hi; i++ {
				vm, m := NewHaltedVM(i, now)
				mref, err := tx.Create(m)
				if err != nil {
					return err
				}
				vm.Metrics = mref
				ref, err := tx.Create(vm)
				if err != nil {
					return err
				}
				refs = append(refs, ref)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// PowerStates counts the VMs of refs by power state.
func PowerStates(st *store.Store, refs []xenapi.Ref) map[api.VMPowerState]int {
	out := map[api.VMPowerState]int{}
	for _, r := range refs {
		row, err := st.Get(api.ClassVM, r)
		if err != nil {
			out["missing"]++
			continue
		}
		out[row.Rec.(*api.VM).PowerState]++
	}
	return out
}
