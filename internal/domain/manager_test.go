package domain_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// The manager over the simulator, wrapped where a test needs to see or add
// to what crosses the Driver boundary.

// wrapped is the sim driver plus the optional capabilities (consoles,
// stats), and a record of the specs Resume was given.
type wrapped struct {
	*sim.Driver

	mu      sync.Mutex
	resumed []domain.Spec
	stats   map[string]int // Stats calls per uuid
}

func (w *wrapped) Resume(ctx context.Context, spec domain.Spec, path string) (int, error) {
	w.mu.Lock()
	w.resumed = append(w.resumed, spec)
	w.mu.Unlock()
	return w.Driver.Resume(ctx, spec, path)
}

func (w *wrapped) lastResume() domain.Spec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.resumed[len(w.resumed)-1]
}

// withConsoles adds domain.ConsoleDriver: a serial and a VNC console per
// existing domain.
type withConsoles struct{ *wrapped }

func (w withConsoles) Consoles(ctx context.Context, uuid string) ([]domain.Console, error) {
	if _, err := w.Info(ctx, uuid); err != nil {
		return nil, err
	}
	return []domain.Console{
		{Protocol: "vt100", Location: "unix:///run/test/" + uuid + "/serial.sock"},
		{Protocol: "rfb", Location: "unix:///run/test/" + uuid + "/vnc.sock", Other: map[string]string{"k": "v"}},
	}, nil
}

// withStats adds domain.StatsDriver: every call advances vCPU 0 by half the
// sampling interval of wall time (50% utilisation) and disk 0 / NIC 0 by
// 1 MiB read and 512 KiB written.
type withStats struct {
	*wrapped
	interval time.Duration
}

func (w withStats) Stats(ctx context.Context, uuid string) (domain.Stats, error) {
	info, err := w.Info(ctx, uuid)
	if err != nil {
		return domain.Stats{}, err
	}
	w.mu.Lock()
	n := w.stats[uuid] + 1
	w.stats[uuid] = n
	w.mu.Unlock()
	io := domain.IOCounters{ReadBytes: int64(n) << 20, WriteBytes: int64(n) << 19}
	return domain.Stats{
		// Synthetic time: exactly one interval per sample.
		Time:         time.Unix(1000, 0).Add(time.Duration(n) * w.interval),
		CPUTime:      time.Duration(n) * w.interval / 2,
		VCPUTime:     []time.Duration{time.Duration(n) * w.interval / 2},
		MemoryActual: info.MemoryActual - 1<<20,
		Disks:        map[string]domain.IOCounters{"0": io},
		NICs:         map[string]domain.IOCounters{"0": io},
	}, nil
}

type env struct {
	st   *store.Store
	mgr  *domain.Manager
	sim  *sim.Driver
	w    *wrapped
	vm   xenapi.Ref
	host xenapi.Ref
}

// newEnv makes a store with one halted VM (two VBDs, two VIFs, metrics
// objects) and a manager over drv(sim), running until the test ends.
func newEnv(t *testing.T, timeout time.Duration, drv func(*wrapped) domain.Driver) *env {
	t.Helper()
	return newEnvSink(t, timeout, drv, nil)
}

// newEnvSink is newEnv with a StatsSink for the manager's samples.
func newEnvSink(t *testing.T, timeout time.Duration, drv func(*wrapped) domain.Driver, sink domain.StatsSink) *env {
	t.Helper()
	st, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sd, err := sim.New(sim.Options{TotalMemory: 8 << 30, CPUs: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	w := &wrapped{Driver: sd, stats: map[string]int{}}
	e := &env{st: st, sim: sd, w: w}
	ctx := context.Background()
	err = st.Update(ctx, func(tx *store.Tx) error {
		hm, err := tx.Create(api.NewHostMetrics())
		if err != nil {
			return err
		}
		host := api.NewHost()
		host.Metrics = hm
		if e.host, err = tx.Create(host); err != nil {
			return err
		}
		mt, err := tx.Create(api.NewVMMetrics())
		if err != nil {
			return err
		}
		vm := api.NewVM()
		vm.NameLabel, vm.PowerState, vm.Domid, vm.Metrics = "unit", api.VMPowerStateHalted, -1, mt
		vm.MemoryStaticMax, vm.MemoryDynamicMax, vm.MemoryDynamicMin, vm.MemoryStaticMin = 256<<20, 256<<20, 256<<20, 128<<20
		vm.VCPUsMax, vm.VCPUsAtStartup = 1, 1
		vm.PVKernel = "/nonexistent/vmlinuz"
		vm.ActionsAfterShutdown, vm.ActionsAfterReboot, vm.ActionsAfterCrash = "destroy", "restart", "destroy"
		if e.vm, err = tx.Create(vm); err != nil {
			return err
		}
		for _, dev := range []string{"0", "1"} {
			bm, err := tx.Create(api.NewVBDMetrics())
			if err != nil {
				return err
			}
			vbd := api.NewVBD()
			vbd.VM, vbd.Userdevice, vbd.Type, vbd.Mode, vbd.Empty, vbd.Metrics = e.vm, dev, api.VBDTypeDisk, api.VBDModeRW, false, bm
			if _, err := tx.Create(vbd); err != nil {
				return err
			}
			fm, err := tx.Create(api.NewVIFMetrics())
			if err != nil {
				return err
			}
			vif := api.NewVIF()
			vif.VM, vif.Device, vif.MAC, vif.MTU, vif.Metrics = e.vm, dev, "00:16:3e:00:00:0"+dev, 1500, fm
			if _, err := tx.Create(vif); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.mgr = domain.New(domain.Config{Store: st, Driver: drv(w), Host: e.host, Log: log, StateDir: t.TempDir(), CleanShutdownTimeout: timeout, Samples: sink})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.mgr.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func plain(w *wrapped) domain.Driver { return w }

// modify changes one record in its own transaction.
func (e *env) modify(t *testing.T, c *xenapi.Class, ref xenapi.Ref, f func(xenapi.Record)) {
	t.Helper()
	err := e.st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.Modify(c, ref, func(r xenapi.Record) error { f(r); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) vmRec(t *testing.T) *api.VM {
	t.Helper()
	row, err := e.st.Get(api.ClassVM, e.vm)
	if err != nil {
		t.Fatal(err)
	}
	return row.Rec.(*api.VM)
}

// attached lists the devices whose currently_attached is set: VBD
// userdevices, then "vif" + VIF device.
func (e *env) attached(t *testing.T) []string {
	t.Helper()
	vm := e.vmRec(t)
	var out []string
	for _, r := range vm.VBDs {
		if row, err := e.st.Get(api.ClassVBD, r); err == nil && row.Rec.(*api.VBD).CurrentlyAttached {
			out = append(out, row.Rec.(*api.VBD).Userdevice)
		}
	}
	for _, r := range vm.VIFs {
		if row, err := e.st.Get(api.ClassVIF, r); err == nil && row.Rec.(*api.VIF).CurrentlyAttached {
			out = append(out, "vif"+row.Rec.(*api.VIF).Device)
		}
	}
	return out
}

func (e *env) device(t *testing.T, c *xenapi.Class, dev string) xenapi.Ref {
	t.Helper()
	for _, row := range e.st.All(c) {
		switch d := row.Rec.(type) {
		case *api.VBD:
			if d.Userdevice == dev {
				return row.Ref
			}
		case *api.VIF:
			if d.Device == dev {
				return row.Ref
			}
		}
	}
	t.Fatalf("no %s %s", c.Name, dev)
	return ""
}

func equal(a, b []string) bool {
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

// A disk and a NIC unplugged before suspend stay out of the resumed
// domain: suspend keeps currently_attached (as xapi does) and resume builds
// the domain from the devices recorded attached.
func TestResumeOnlyPluggedDevices(t *testing.T) {
	e := newEnv(t, 0, plain)
	ctx := context.Background()
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	if got := e.attached(t); !equal(got, []string{"0", "1", "vif0", "vif1"}) {
		t.Fatalf("attached after start: %v", got)
	}
	if err := e.mgr.UnplugVBD(ctx, e.device(t, api.ClassVBD, "1")); err != nil {
		t.Fatal(err)
	}
	if err := e.mgr.UnplugVIF(ctx, e.device(t, api.ClassVIF, "1")); err != nil {
		t.Fatal(err)
	}
	if err := e.mgr.Suspend(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	if got := e.attached(t); !equal(got, []string{"0", "vif0"}) {
		t.Fatalf("attached while suspended: %v, want [0 vif0]", got)
	}
	if err := e.mgr.Resume(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	spec := e.w.lastResume()
	if len(spec.Disks) != 1 || spec.Disks[0].Device != "0" || len(spec.NICs) != 1 || spec.NICs[0].Device != "0" {
		t.Fatalf("resume spec: disks %+v NICs %+v; want only device 0 of each", spec.Disks, spec.NICs)
	}
	if p := e.vmRec(t).PowerState; p != api.VMPowerStateRunning {
		t.Fatalf("after resume: %s", p)
	}
	if got := e.attached(t); !equal(got, []string{"0", "vif0"}) {
		t.Fatalf("attached after resume: %v, want [0 vif0]", got)
	}
	// The unplugged disk can be plugged into the resumed domain.
	if err := e.mgr.PlugVBD(ctx, e.device(t, api.ClassVBD, "1")); err != nil {
		t.Fatal(err)
	}
	if err := e.mgr.HardShutdown(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	if got := e.attached(t); len(got) != 0 {
		t.Fatalf("attached after hard shutdown: %v", got)
	}
	// A fresh start takes every device again.
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	if got := e.attached(t); !equal(got, []string{"0", "1", "vif0", "vif1"}) {
		t.Fatalf("attached after a new start: %v", got)
	}
}

// A suspended VM none of whose devices is recorded attached (suspended by
// an older xenithd, which cleared the flags) resumes with all of them.
func TestResumeLegacyAllDetached(t *testing.T) {
	e := newEnv(t, 0, plain)
	ctx := context.Background()
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	if err := e.mgr.Suspend(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	rows := map[*xenapi.Class][]*store.Row{api.ClassVBD: e.st.All(api.ClassVBD), api.ClassVIF: e.st.All(api.ClassVIF)}
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		for c, rs := range rows {
			for _, row := range rs {
				if err := tx.Modify(c, row.Ref, func(r xenapi.Record) error {
					switch d := r.(type) {
					case *api.VBD:
						d.CurrentlyAttached = false
					case *api.VIF:
						d.CurrentlyAttached = false
					}
					return nil
				}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.mgr.Resume(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	if spec := e.w.lastResume(); len(spec.Disks) != 2 || len(spec.NICs) != 2 {
		t.Fatalf("resume spec: %d disks, %d NICs; want all 2 and 2", len(spec.Disks), len(spec.NICs))
	}
}

// A guest that ignores the power button: clean_shutdown fails after the
// configured timeout with xapi's VM_SHUTDOWN_TIMEOUT [vm; timeout as OCaml
// prints a float] and the VM keeps running; shutdown falls back to hard.
func TestCleanShutdownTimeout(t *testing.T) {
	e := newEnv(t, 300*time.Millisecond, plain)
	ctx := context.Background()
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Hang(e.vmRec(t).UUID, true); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	err := e.mgr.CleanShutdown(ctx, e.vm)
	took := time.Since(t0)
	var xe *xenapi.Error
	if !errors.As(err, &xe) || xe.Code != api.ErrVMShutdownTimeout || len(xe.Params) != 2 ||
		xe.Params[0] != string(e.vm) || xe.Params[1] != "0.3" {
		t.Fatalf("CleanShutdown of a hung guest: %v; want VM_SHUTDOWN_TIMEOUT [%s 0.3]", err, e.vm)
	}
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Fatalf("CleanShutdown gave up after %v, want about 300ms", took)
	}
	if vm := e.vmRec(t); vm.PowerState != api.VMPowerStateRunning || len(vm.CurrentOperations) != 0 {
		t.Fatalf("after the timeout: %s, operations %v", vm.PowerState, vm.CurrentOperations)
	}
	err = e.mgr.CleanReboot(ctx, e.vm)
	if !errors.As(err, &xe) || xe.Code != api.ErrVMShutdownTimeout {
		t.Fatalf("CleanReboot of a hung guest: %v; want VM_SHUTDOWN_TIMEOUT", err)
	}
	if err := e.mgr.Shutdown(ctx, e.vm); err != nil {
		t.Fatalf("Shutdown (falls back to hard): %v", err)
	}
	if vm := e.vmRec(t); vm.PowerState != api.VMPowerStateHalted || vm.Domid != -1 {
		t.Fatalf("after Shutdown: %s domid %d", vm.PowerState, vm.Domid)
	}
	if _, err := e.sim.Info(ctx, e.vmRec(t).UUID); !errors.Is(err, domain.ErrNoDomain) {
		t.Fatalf("the domain outlived Shutdown: %v", err)
	}
}

// The timeout in the error is spelled as OCaml's string_of_float, and a
// zero Config value means the 60 s default.
func TestCleanShutdownTimeoutSpelling(t *testing.T) {
	for _, c := range []struct {
		timeout time.Duration
		want    string
	}{{0, "60."}, {time.Second, "1."}, {250 * time.Millisecond, "0.25"}} {
		e := newEnv(t, c.timeout, plain)
		if c.timeout == 0 {
			if e.mgr.CleanShutdownTimeout != domain.DefaultCleanShutdownTimeout {
				t.Fatalf("default timeout %v", e.mgr.CleanShutdownTimeout)
			}
			e.mgr.CleanShutdownTimeout = 10 * time.Millisecond
		}
		ctx := context.Background()
		if err := e.mgr.Start(ctx, e.vm, false); err != nil {
			t.Fatal(err)
		}
		if err := e.sim.Hang(e.vmRec(t).UUID, true); err != nil {
			t.Fatal(err)
		}
		err := e.mgr.CleanShutdown(ctx, e.vm)
		var xe *xenapi.Error
		if c.timeout == 0 {
			// Only the spelling of 10 ms is checked here.
			if !errors.As(err, &xe) || xe.Params[1] != "0.01" {
				t.Fatalf("timeout 10ms: %v", err)
			}
			continue
		}
		if !errors.As(err, &xe) || xe.Params[1] != c.want {
			t.Fatalf("timeout %v: %v, want %q", c.timeout, err, c.want)
		}
	}
}

func (e *env) consoles(t *testing.T) map[string]*api.Console {
	t.Helper()
	out := map[string]*api.Console{}
	for _, r := range e.vmRec(t).Consoles {
		row, err := e.st.Get(api.ClassConsole, r)
		if err != nil {
			t.Fatalf("VM.consoles lists %s, which does not exist", r)
		}
		c := row.Rec.(*api.Console)
		out[string(c.Protocol)] = c
	}
	if n := e.st.Count(api.ClassConsole); n != len(out) {
		t.Fatalf("%d console objects, %d on the VM", n, len(out))
	}
	return out
}

// Console objects exist exactly while the domain does: made at start and
// resume, gone at suspend and shutdown, unchanged across a reboot.
func TestConsolesFollowDomain(t *testing.T) {
	e := newEnv(t, 0, func(w *wrapped) domain.Driver { return withConsoles{w} })
	ctx := context.Background()
	if got := e.consoles(t); len(got) != 0 {
		t.Fatalf("consoles of a halted VM: %v", got)
	}
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	uuid := e.vmRec(t).UUID
	check := func(when string) {
		t.Helper()
		got := e.consoles(t)
		vt, rfb := got["vt100"], got["rfb"]
		if len(got) != 2 || vt == nil || rfb == nil {
			t.Fatalf("%s: consoles %v, want vt100 and rfb", when, got)
		}
		if vt.Location != "unix:///run/test/"+uuid+"/serial.sock" || vt.VM != e.vm {
			t.Fatalf("%s: serial console %+v", when, vt)
		}
		if rfb.OtherConfig.Get("k") != "v" {
			t.Fatalf("%s: other_config of the VNC console %v", when, rfb.OtherConfig)
		}
	}
	check("after start")
	before := e.vmRec(t).Consoles
	if err := e.mgr.HardReboot(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	check("after reboot")
	if after := e.vmRec(t).Consoles; !equal(refs(before), refs(after)) {
		t.Fatalf("console objects replaced across a reboot: %v -> %v", before, after)
	}
	if err := e.mgr.Suspend(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	if got := e.consoles(t); len(got) != 0 {
		t.Fatalf("consoles while suspended: %v", got)
	}
	if err := e.mgr.Resume(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	check("after resume")
	if err := e.mgr.CleanShutdown(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	if got := e.consoles(t); len(got) != 0 {
		t.Fatalf("consoles after shutdown: %v", got)
	}
}

func refs(r []xenapi.Ref) []string {
	out := make([]string, len(r))
	for i, x := range r {
		out[i] = string(x)
	}
	return out
}

// The metrics loop samples a StatsDriver and writes VM_metrics
// (memory_actual, VCPUs_utilisation), VBD_metrics and VIF_metrics rates.
func TestMetricsLoop(t *testing.T) {
	old := domain.MetricsInterval
	domain.MetricsInterval = 20 * time.Millisecond
	t.Cleanup(func() { domain.MetricsInterval = old })
	e := newEnv(t, 0, func(w *wrapped) domain.Driver { return withStats{w, time.Second} })
	ctx := context.Background()
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	vm := e.vmRec(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		row, err := e.st.Get(api.ClassVMMetrics, vm.Metrics)
		if err != nil {
			t.Fatal(err)
		}
		mt := row.Rec.(*api.VMMetrics)
		if len(mt.VCPUsUtilisation) == 1 {
			if u := mt.VCPUsUtilisation[0]; u.Key != 0 || u.Value < 0.49 || u.Value > 0.51 {
				t.Fatalf("VCPUs_utilisation %v, want {0: 0.5}", mt.VCPUsUtilisation)
			}
			if mt.MemoryActual != 255<<20 {
				t.Fatalf("memory_actual %d, want the driver's %d", mt.MemoryActual, 255<<20)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM_metrics never got VCPUs_utilisation: %+v", mt)
		}
		time.Sleep(10 * time.Millisecond)
	}
	vbd, _ := e.st.Get(api.ClassVBD, e.device(t, api.ClassVBD, "0"))
	bm, _ := e.st.Get(api.ClassVBDMetrics, vbd.Rec.(*api.VBD).Metrics)
	if m := bm.Rec.(*api.VBDMetrics); m.IoReadKbs != 1024 || m.IoWriteKbs != 512 {
		t.Fatalf("VBD_metrics io_read_kbs %v io_write_kbs %v, want 1024 and 512", m.IoReadKbs, m.IoWriteKbs)
	}
	vif, _ := e.st.Get(api.ClassVIF, e.device(t, api.ClassVIF, "0"))
	fm, _ := e.st.Get(api.ClassVIFMetrics, vif.Rec.(*api.VIF).Metrics)
	if m := fm.Rec.(*api.VIFMetrics); m.IoReadKbs != 1024 || m.IoWriteKbs != 512 {
		t.Fatalf("VIF_metrics io_read_kbs %v io_write_kbs %v, want 1024 and 512", m.IoReadKbs, m.IoWriteKbs)
	}
	// Device 1 has no counters: its metrics stay untouched.
	vbd1, _ := e.st.Get(api.ClassVBD, e.device(t, api.ClassVBD, "1"))
	bm1, _ := e.st.Get(api.ClassVBDMetrics, vbd1.Rec.(*api.VBD).Metrics)
	if m := bm1.Rec.(*api.VBDMetrics); m.IoReadKbs != 0 {
		t.Fatalf("VBD_metrics of a device without counters: %v", m.IoReadKbs)
	}
	// A halted VM is no longer sampled.
	if err := e.mgr.HardShutdown(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	e.w.mu.Lock()
	n := e.w.stats[vm.UUID]
	e.w.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	e.w.mu.Lock()
	n2 := e.w.stats[vm.UUID]
	e.w.mu.Unlock()
	if n2 > n+1 {
		t.Fatalf("Stats still called for a halted VM: %d -> %d", n, n2)
	}
}

// host_metrics memory follows the domains: read at start, and again after
// each start and stop.
func TestHostMetricsFollowDomains(t *testing.T) {
	e := newEnv(t, 0, plain)
	ctx := context.Background()
	free := func() int64 {
		row, _ := e.st.Get(api.ClassHost, e.host)
		m, _ := e.st.Get(api.ClassHostMetrics, row.Rec.(*api.Host).Metrics)
		return m.Rec.(*api.HostMetrics).MemoryFree
	}
	wait := func(what string, want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for free() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: memory_free %d, want %d", what, free(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	idle := int64(7 << 30) // 8 GiB less the simulator's 1 GiB for dom0
	wait("at start", idle)
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	wait("running", idle-sim.Footprint(256<<20))
	if err := e.mgr.HardShutdown(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	wait("halted", idle)
}

// An HVM (or PVH) VM needs a host whose capabilities offer hvm, as xapi
// checks: VM_HVM_REQUIRED otherwise, before any domain is built.
func TestHVMNeedsHostSupport(t *testing.T) {
	e := newEnv(t, 0, plain)
	ctx := context.Background()
	set := func(caps []string, policy string, platform map[string]string) {
		t.Helper()
		err := e.st.Update(ctx, func(tx *store.Tx) error {
			if err := tx.Modify(api.ClassHost, e.host, func(r xenapi.Record) error {
				r.(*api.Host).Capabilities = caps
				return nil
			}); err != nil {
				return err
			}
			return tx.Modify(api.ClassVM, e.vm, func(r xenapi.Record) error {
				vm := r.(*api.VM)
				vm.HVMBootPolicy, vm.Platform = policy, xenapi.MapOf(platform)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pvOnly := []string{"xen-3.0-x86_64", "xen-3.0-x86_32p"}
	for _, tc := range []struct {
		name     string
		caps     []string
		policy   string
		platform map[string]string
		wantErr  bool
	}{
		{"PV on a PV-only host", pvOnly, "", nil, false},
		{"HVM on a PV-only host", pvOnly, "BIOS order", nil, true},
		{"PVH on a PV-only host", pvOnly, "", map[string]string{"pvh": "true"}, true},
		{"HVM on an HVM host", append(pvOnly, "hvm-3.0-x86_64"), "BIOS order", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.caps, tc.policy, tc.platform)
			err := e.mgr.Start(ctx, e.vm, false)
			var xe *xenapi.Error
			switch {
			case tc.wantErr && (!errors.As(err, &xe) || xe.Code != api.ErrVMHVMRequired || xe.Params[0] != string(e.vm)):
				t.Fatalf("Start: %v, want VM_HVM_REQUIRED(%s)", err, e.vm)
			case tc.wantErr:
				if l, _ := e.sim.List(ctx); len(l) != 0 {
					t.Fatalf("a domain was built: %v", l)
				}
			case err != nil:
				t.Fatalf("Start: %v", err)
			default:
				if err := e.mgr.HardShutdown(ctx, e.vm); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestAdoptKeepsS3: a manager that adopts a running domain (xenithd
// restarted) records the guest's ACPI S3 state as it is now.
func TestAdoptKeepsS3(t *testing.T) {
	e := newEnv(t, 0, plain)
	ctx := context.Background()
	e.modify(t, api.ClassHost, e.host, func(r xenapi.Record) { r.(*api.Host).Capabilities = []string{"xen-3.0-x86_64", "hvm-3.0-x86_64"} })
	e.modify(t, api.ClassVM, e.vm, func(r xenapi.Record) { r.(*api.VM).HVMBootPolicy = "BIOS order" })
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	vm := e.vmRec(t)
	metricsState := func() []string {
		t.Helper()
		row, err := e.st.Get(api.ClassVMMetrics, vm.Metrics)
		if err != nil {
			t.Fatal(err)
		}
		return row.Rec.(*api.VMMetrics).State
	}
	setMetricsState := func(state ...string) {
		t.Helper()
		e.modify(t, api.ClassVMMetrics, vm.Metrics, func(r xenapi.Record) { r.(*api.VMMetrics).State = state })
	}
	// adopt runs a second manager over the same store and driver, as a
	// restarted xenithd would, until it records want.
	adopt := func(want ...string) {
		t.Helper()
		m := domain.New(domain.Config{Store: e.st, Driver: e.w, Host: e.host, StateDir: t.TempDir(),
			Log: slog.New(slog.DiscardHandler)})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { m.Run(rctx); close(done) }()
		defer func() { cancel(); <-done }()
		for deadline := time.Now().Add(5 * time.Second); !equal(metricsState(), want); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("adopted with state %v, want %v", metricsState(), want)
			}
		}
	}
	// Asleep while the record says awake (the guest slept meanwhile).
	if err := e.sim.S3Suspend(ctx, vm.UUID); err != nil {
		t.Fatal(err)
	}
	setMetricsState("running")
	adopt("running", domain.S3State)
	// Awake while the record says asleep.
	if err := e.sim.S3Resume(ctx, vm.UUID); err != nil {
		t.Fatal(err)
	}
	adopt("running")
}

// sink records what the manager hands a StatsSink.
type sink struct {
	mu      sync.Mutex
	vms     []domain.VMSample
	hosts   []domain.HostSample
	stopped []string
}

func (s *sink) RecordVM(v domain.VMSample) { s.mu.Lock(); s.vms = append(s.vms, v); s.mu.Unlock() }
func (s *sink) RecordHost(h domain.HostSample) {
	s.mu.Lock()
	s.hosts = append(s.hosts, h)
	s.mu.Unlock()
}
func (s *sink) VMStopped(id string) { s.mu.Lock(); s.stopped = append(s.stopped, id); s.mu.Unlock() }

func TestStatsSink(t *testing.T) {
	old := domain.MetricsInterval
	domain.MetricsInterval = 20 * time.Millisecond
	t.Cleanup(func() { domain.MetricsInterval = old })
	sk := &sink{}
	e := newEnvSink(t, 0, func(w *wrapped) domain.Driver { return withStats{w, time.Second} }, sk)
	ctx := context.Background()
	// VBD 0 is known to the guest as xvda.
	e.modify(t, api.ClassVBD, e.device(t, api.ClassVBD, "0"), func(r xenapi.Record) { r.(*api.VBD).Device = "xvda" })
	if err := e.mgr.Start(ctx, e.vm, false); err != nil {
		t.Fatal(err)
	}
	vm := e.vmRec(t)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			sk.mu.Lock()
			done := ok()
			sk.mu.Unlock()
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s", what)
			}
		}
	}
	// The synthetic driver: half a second of CPU per second, on a host of
	// 4 CPUs (sim.Options in newEnv).
	waitFor("host sample with the guests' CPU", func() bool {
		for _, h := range sk.hosts {
			if h.CPUAvg > 0 {
				return true
			}
		}
		return false
	})
	sk.mu.Lock()
	v := sk.vms[len(sk.vms)-1]
	h := sk.hosts[len(sk.hosts)-1]
	sk.mu.Unlock()
	if v.UUID != vm.UUID || v.DiskNames["0"] != "xvda" || v.MemoryTarget != vm.MemoryTarget || len(v.Stats.VCPUTime) != 1 {
		t.Fatalf("VM sample %+v", v)
	}
	// withStats advances its clock one second and vCPU 0 half a second
	// per call: the guests' share of the host's 4 CPUs is 0.5/4.
	sk.mu.Lock()
	for _, hs := range sk.hosts {
		if !math.IsNaN(hs.CPUAvg) && math.Abs(hs.CPUAvg-0.125) > 1e-9 {
			t.Errorf("host CPUAvg %v, want 0.125", hs.CPUAvg)
		}
	}
	sk.mu.Unlock()
	if h.MemoryTotal != 8<<30 || h.MemoryFree <= 0 || h.MemoryFree >= h.MemoryTotal {
		t.Fatalf("host sample %+v", h)
	}
	if err := e.mgr.HardShutdown(ctx, e.vm); err != nil {
		t.Fatal(err)
	}
	waitFor("VMStopped", func() bool { return slices.Contains(sk.stopped, vm.UUID) })
}
