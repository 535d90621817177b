package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

// generous bounds the wait for something that should happen soon.
const generous = 5 * time.Second

func newDriver(t *testing.T, o Options) *Driver {
	t.Helper()
	d, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func spec(uuid string, mem int64) domain.Spec {
	return domain.Spec{
		UUID: uuid, Name: "vm-" + uuid,
		MemoryStaticMax: 2 * mem, MemoryTarget: mem,
		VCPUsMax: 4, VCPUs: 2,
		Disks: []domain.Disk{{Device: "0", Path: "/img/" + uuid, Format: "raw", Bootable: true}},
		NICs:  []domain.NIC{{Device: "0", MAC: "aa:bb:cc:01:02:03", Bridge: "xenbr0", MTU: 1500}},
	}
}

func mustCreate(t *testing.T, d *Driver, s domain.Spec) int {
	t.Helper()
	id, err := d.Create(context.Background(), s)
	if err != nil {
		t.Fatalf("Create %s: %v", s.UUID, err)
	}
	return id
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func info(t *testing.T, d *Driver, uuid string) domain.Info {
	t.Helper()
	i, err := d.Info(context.Background(), uuid)
	if err != nil {
		t.Fatalf("Info %s: %v", uuid, err)
	}
	return i
}

func gone(t *testing.T, d *Driver, uuid string) {
	t.Helper()
	if _, err := d.Info(context.Background(), uuid); !errors.Is(err, domain.ErrNoDomain) {
		t.Fatalf("Info %s: got %v, want ErrNoDomain", uuid, err)
	}
	l, _ := d.List(context.Background())
	for _, i := range l {
		if i.UUID == uuid {
			t.Fatalf("List still shows %s", uuid)
		}
	}
}

// waitEvent returns the next event of that uuid and kind, skipping others.
func waitEvent(t *testing.T, d *Driver, uuid string, kind domain.EventKind, within time.Duration) domain.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-d.Events():
			if ev.UUID == uuid && ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event %v for %s within %v", kind, uuid, within)
		}
	}
}

// noEvent checks that no event of that uuid and kind comes for a while.
func noEvent(t *testing.T, d *Driver, uuid string, kind domain.EventKind, during time.Duration) {
	t.Helper()
	deadline := time.After(during)
	for {
		select {
		case ev := <-d.Events():
			if ev.UUID == uuid && ev.Kind == kind {
				t.Fatalf("unexpected event %v for %s", kind, uuid)
			}
		case <-deadline:
			return
		}
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestOptions(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	h, err := d.Host(context.Background())
	must(t, err)
	if h.TotalMemory != 16*GiB || h.CPUs != 4 || h.FreeMemory != 15*GiB {
		t.Errorf("defaults: %+v", h)
	}
	if d.Name() != "sim" {
		t.Errorf("Name %q", d.Name())
	}
	for _, o := range []Options{
		{TotalMemory: -1},
		{TotalMemory: GiB, Dom0Memory: GiB},
		{BootTime: -time.Second},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v): %v, want ErrInvalid", o, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type step struct {
		op      string // create unpause pause shutdown reboot destroy reset crash guest-shutdown guest-reboot
		wantErr error
		state   domain.State // after the step, unless gone
		gone    bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"create-unpause-pause-unpause", []step{
			{op: "create", state: domain.Paused},
			{op: "unpause", state: domain.Running},
			{op: "pause", state: domain.Paused},
			{op: "unpause", state: domain.Running},
		}},
		{"unpause twice", []step{
			{op: "create", state: domain.Paused},
			{op: "unpause", state: domain.Running},
			{op: "unpause", wantErr: ErrBadState, state: domain.Running},
		}},
		{"pause twice", []step{
			{op: "create", state: domain.Paused},
			{op: "pause", wantErr: ErrBadState, state: domain.Paused},
		}},
		{"create twice", []step{
			{op: "create", state: domain.Paused},
			{op: "create", wantErr: ErrExists, state: domain.Paused},
		}},
		{"clean shutdown", []step{
			{op: "create", state: domain.Paused}, {op: "unpause", state: domain.Running},
			{op: "shutdown", gone: true},
			{op: "unpause", wantErr: domain.ErrNoDomain, gone: true},
		}},
		{"clean reboot", []step{
			{op: "create", state: domain.Paused}, {op: "unpause", state: domain.Running},
			{op: "reboot", state: domain.Running},
		}},
		{"destroy paused", []step{
			{op: "create", state: domain.Paused},
			{op: "destroy", gone: true},
			{op: "destroy", wantErr: domain.ErrNoDomain, gone: true},
		}},
		{"crash then reset", []step{
			{op: "create", state: domain.Paused}, {op: "unpause", state: domain.Running},
			{op: "crash", state: domain.Crashed},
			{op: "unpause", wantErr: ErrBadState, state: domain.Crashed},
			{op: "pause", wantErr: ErrBadState, state: domain.Crashed},
			{op: "shutdown", wantErr: ErrBadState, state: domain.Crashed},
			{op: "reset", state: domain.Running},
		}},
		{"crash of a paused guest", []step{
			{op: "create", state: domain.Paused},
			{op: "crash", wantErr: ErrBadState, state: domain.Paused},
		}},
		{"guest shutdown then destroy", []step{
			{op: "create", state: domain.Paused}, {op: "unpause", state: domain.Running},
			{op: "guest-shutdown", state: domain.Halted},
			{op: "guest-shutdown", wantErr: ErrBadState, state: domain.Halted},
			{op: "destroy", gone: true},
		}},
		{"guest reboot", []step{
			{op: "create", state: domain.Paused}, {op: "unpause", state: domain.Running},
			{op: "guest-reboot", state: domain.Running},
		}},
		{"reset paused", []step{
			{op: "create", state: domain.Paused},
			{op: "reset", state: domain.Running},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, Options{})
			const u = "vm1"
			var domid int
			for i, s := range tc.steps {
				var err error
				switch s.op {
				case "create":
					var id int
					id, err = d.Create(ctx, spec(u, 256*MiB))
					if err == nil {
						domid = id
					}
				case "unpause":
					err = d.Unpause(ctx, u)
				case "pause":
					err = d.Pause(ctx, u)
				case "shutdown":
					err = d.Shutdown(ctx, u, false)
				case "reboot":
					err = d.Shutdown(ctx, u, true)
				case "destroy":
					err = d.Destroy(ctx, u)
				case "reset":
					err = d.Reset(ctx, u)
				case "crash":
					err = d.Crash(u)
				case "guest-shutdown":
					err = d.GuestShutdown(u)
				case "guest-reboot":
					err = d.GuestReboot(u)
				default:
					t.Fatalf("bad op %q", s.op)
				}
				if s.wantErr == nil && err != nil || s.wantErr != nil && !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d %s: error %v, want %v", i, s.op, err, s.wantErr)
				}
				if s.gone {
					gone(t, d, u)
					continue
				}
				in := info(t, d, u)
				if in.State != s.state {
					t.Fatalf("step %d %s: state %v, want %v", i, s.op, in.State, s.state)
				}
				if in.Domid != domid {
					t.Fatalf("step %d %s: domid %d, want %d", i, s.op, in.Domid, domid)
				}
			}
		})
	}
}

func TestStateErrorMessage(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	ctx := context.Background()
	mustCreate(t, d, spec("a", 64*MiB))
	err := d.Pause(ctx, "a")
	var se *StateError
	if !errors.As(err, &se) || se.State != domain.Paused || se.Op != "pause" {
		t.Fatalf("Pause of paused: %v", err)
	}
	if got := err.Error(); got != "sim: cannot pause domain a: it is paused" {
		t.Errorf("message %q", got)
	}
}

func TestDomidsIncrease(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		u := fmt.Sprint("vm", i)
		if id := mustCreate(t, d, spec(u, 64*MiB)); id != i {
			t.Fatalf("domid %d, want %d", id, i)
		}
		must(t, d.Destroy(ctx, u))
	}
	if id := mustCreate(t, d, spec("vm1", 64*MiB)); id != 4 {
		t.Fatalf("recreated domid %d, want 4 (never reused)", id)
	}
}

func TestSpecValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*domain.Spec)
		ok     bool
	}{
		{"fine", func(*domain.Spec) {}, true},
		{"no uuid", func(s *domain.Spec) { s.UUID = "" }, false},
		{"target above max", func(s *domain.Spec) { s.MemoryTarget = 3 * s.MemoryStaticMax }, false},
		{"no memory", func(s *domain.Spec) { s.MemoryTarget, s.MemoryStaticMax = 0, 0 }, false},
		{"target from max", func(s *domain.Spec) { s.MemoryTarget = 0 }, true},
		{"too many vcpus", func(s *domain.Spec) { s.VCPUs = 5 }, false},
		{"vcpus default", func(s *domain.Spec) { s.VCPUs, s.VCPUsMax = 0, 0 }, true},
		{"repeated disk", func(s *domain.Spec) { s.Disks = append(s.Disks, s.Disks[0]) }, false},
		{"unnamed nic", func(s *domain.Spec) { s.NICs[0].Device = "" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, Options{})
			s := spec("v", 128*MiB)
			tc.mutate(&s)
			_, err := d.Create(context.Background(), s)
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create: %v (want ok=%v)", err, tc.ok)
			}
		})
	}
}

func TestSpecIsCopied(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	s := spec("v", 128*MiB)
	s.Platform = map[string]string{"sim-os": "Debian"}
	mustCreate(t, d, s)
	s.Disks[0].Device = "changed"
	s.Platform["sim-os"] = "changed"
	disks, _, err := d.Devices("v")
	must(t, err)
	if disks[0].Device != "0" {
		t.Errorf("driver shares the caller's slice: %+v", disks)
	}
}

func TestMemoryAccounting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if got, want := Footprint(100*MiB), 100*MiB+MiB+MiB; got != want {
		t.Fatalf("Footprint(100 MiB) = %d, want %d", got, want)
	}
	if got := Overhead(1); got != 1+MiB {
		t.Fatalf("Overhead(1) = %d", got)
	}
	d := newDriver(t, Options{TotalMemory: 4 * GiB, Dom0Memory: GiB, CPUs: 8})
	free := func() int64 {
		h, err := d.Host(ctx)
		must(t, err)
		if h.TotalMemory != 4*GiB || h.CPUs != 8 {
			t.Fatalf("host %+v", h)
		}
		return h.FreeMemory
	}
	if f := free(); f != 3*GiB {
		t.Fatalf("free %d", f)
	}
	a := spec("a", GiB)
	a.MemoryStaticMax = 3 * GiB
	mustCreate(t, d, a)
	if f, want := free(), 3*GiB-Footprint(GiB); f != want {
		t.Fatalf("free after a: %d, want %d", f, want)
	}

	// Too big: the error carries the amounts.
	avail := free()
	_, err := d.Create(ctx, spec("b", 2*GiB))
	var nm *domain.NoMemoryError
	if !errors.Is(err, domain.ErrNoMemory) || !errors.As(err, &nm) {
		t.Fatalf("Create b: %v, want NoMemoryError", err)
	}
	if nm.Needed != Footprint(2*GiB) || nm.Available != avail {
		t.Fatalf("NoMemoryError %+v, want needed %d available %d", nm, Footprint(2*GiB), avail)
	}
	if _, err := d.Info(ctx, "b"); !errors.Is(err, domain.ErrNoDomain) {
		t.Fatalf("failed create left a domain: %v", err)
	}

	// Ballooning a up past the free memory fails with the difference.
	err = d.SetMemoryTarget(ctx, "a", 3*GiB)
	if !errors.As(err, &nm) || nm.Needed != Footprint(3*GiB)-Footprint(GiB) || nm.Available != avail {
		t.Fatalf("grow a: %v %+v", err, nm)
	}
	if err := d.SetMemoryTarget(ctx, "a", 4*GiB); !errors.Is(err, ErrInvalid) {
		t.Fatalf("grow past static max: %v", err)
	}
	// Shrinking frees memory and shows in MemoryActual.
	must(t, d.SetMemoryTarget(ctx, "a", 512*MiB))
	if in := info(t, d, "a"); in.MemoryActual != 512*MiB {
		t.Fatalf("MemoryActual %d", in.MemoryActual)
	}
	if f, want := free(), 3*GiB-Footprint(512*MiB); f != want {
		t.Fatalf("free after shrink: %d, want %d", f, want)
	}
	mustCreate(t, d, spec("b", 2*GiB-100*MiB))

	// A halted domain keeps its memory until destroyed.
	must(t, d.Unpause(ctx, "a"))
	must(t, d.GuestShutdown("a"))
	if f, want := free(), 3*GiB-Footprint(512*MiB)-Footprint(2*GiB-100*MiB); f != want {
		t.Fatalf("free with halted a: %d, want %d", f, want)
	}
	must(t, d.Destroy(ctx, "a"))
	must(t, d.Destroy(ctx, "b"))
	if f := free(); f != 3*GiB {
		t.Fatalf("free at the end: %d", f)
	}
}

func TestVCPUs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	for _, tc := range []struct {
		n  int
		ok bool
	}{{1, true}, {4, true}, {0, false}, {5, false}, {3, true}} {
		err := d.SetVCPUs(ctx, "v", tc.n)
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("SetVCPUs(%d): %v", tc.n, err)
		}
	}
	if in := info(t, d, "v"); in.VCPUs != 3 {
		t.Errorf("VCPUs %d, want 3", in.VCPUs)
	}
}

func TestCPUTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	d := newDriver(t, Options{Now: clk.Now})
	mustCreate(t, d, spec("v", 64*MiB)) // 2 VCPUs
	// Every vCPU busy, as the arithmetic below assumes.
	must(t, d.SetLoad("v", Load{CPU: 1}))
	if in := info(t, d, "v"); !in.StartTime.Equal(clk.Now()) || in.CPUTime != 0 {
		t.Fatalf("fresh: %+v", in)
	}
	clk.Add(time.Minute) // paused: no CPU time
	must(t, d.Unpause(ctx, "v"))
	clk.Add(10 * time.Second)
	if got := info(t, d, "v").CPUTime; got != 20*time.Second {
		t.Fatalf("CPUTime %v, want 20s", got)
	}
	must(t, d.SetVCPUs(ctx, "v", 4))
	clk.Add(time.Second)
	if got := info(t, d, "v").CPUTime; got != 24*time.Second {
		t.Fatalf("CPUTime %v, want 24s", got)
	}
	must(t, d.Pause(ctx, "v"))
	clk.Add(time.Hour)
	if got := info(t, d, "v").CPUTime; got != 24*time.Second {
		t.Fatalf("CPUTime while paused %v, want 24s", got)
	}
}

func TestDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	tests := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{"plug disk", func() error { return d.PlugDisk(ctx, "v", domain.Disk{Device: "1", Path: "/x"}) }, nil},
		{"plug same disk", func() error { return d.PlugDisk(ctx, "v", domain.Disk{Device: "1"}) }, ErrDeviceExists},
		{"plug cd", func() error { return d.PlugDisk(ctx, "v", domain.Disk{Device: "3", CD: true}) }, nil},
		{"plug unnamed", func() error { return d.PlugDisk(ctx, "v", domain.Disk{}) }, ErrInvalid},
		{"unplug disk", func() error { return d.UnplugDisk(ctx, "v", "0") }, nil},
		{"unplug unknown disk", func() error { return d.UnplugDisk(ctx, "v", "0") }, ErrNoDevice},
		{"plug nic", func() error { return d.PlugNIC(ctx, "v", domain.NIC{Device: "1", MAC: "aa:00:00:00:00:09"}) }, nil},
		{"plug same nic", func() error { return d.PlugNIC(ctx, "v", domain.NIC{Device: "0"}) }, ErrDeviceExists},
		{"unplug nic", func() error { return d.UnplugNIC(ctx, "v", "0") }, nil},
		{"unplug unknown nic", func() error { return d.UnplugNIC(ctx, "v", "7") }, ErrNoDevice},
		{"no domain", func() error { return d.PlugNIC(ctx, "nope", domain.NIC{Device: "1"}) }, domain.ErrNoDomain},
	}
	for _, tc := range tests { // sequential: each step builds on the last
		err := tc.call()
		if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	disks, nics, err := d.Devices("v")
	must(t, err)
	if len(disks) != 2 || disks[0].Device != "1" || disks[1].Device != "3" || len(nics) != 1 || nics[0].Device != "1" {
		t.Fatalf("devices %+v %+v", disks, nics)
	}
	// Halted domains take no hotplug.
	must(t, d.Unpause(ctx, "v"))
	must(t, d.GuestShutdown("v"))
	if err := d.PlugDisk(ctx, "v", domain.Disk{Device: "9"}); !errors.Is(err, ErrBadState) {
		t.Fatalf("plug into halted: %v", err)
	}
}

func TestGuestAgentReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const boot, delay = 30 * time.Millisecond, 20 * time.Millisecond
	d := newDriver(t, Options{BootTime: boot, AgentDelay: delay})
	s := spec("v", 256*MiB)
	s.Name = "ubuntu-web"
	s.NICs = append(s.NICs, domain.NIC{Device: "1", MAC: "00:16:3e:7f:00:ff"})
	mustCreate(t, d, s)
	noEvent(t, d, "v", domain.GuestAgent, 2*(boot+delay)) // paused: never boots
	start := time.Now()
	must(t, d.Unpause(ctx, "v"))
	ev := waitEvent(t, d, "v", domain.GuestAgent, generous)
	if el := time.Since(start); el < boot+delay {
		t.Errorf("agent reported after %v, before boot+delay %v", el, boot+delay)
	}
	a := ev.Agent
	if a == nil || !a.Live || !a.CanUseHotplug {
		t.Fatalf("report %+v", a)
	}
	if a.OSVersion["distro"] != "ubuntu" || !strings.HasPrefix(a.OSVersion["name"], "Ubuntu") {
		t.Errorf("os %v", a.OSVersion)
	}
	want := map[string]string{
		"0/ip": "10.1.2.3", "0/ipv4/0": "10.1.2.3", "0/ipv6/0": "fe80::a8bb:ccff:fe01:203",
		"1/ip": "10.127.0.254", "1/ipv4/0": "10.127.0.254", "1/ipv6/0": "fe80::216:3eff:fe7f:ff",
	}
	if fmt.Sprint(a.Networks) != fmt.Sprint(want) {
		t.Errorf("networks %v, want %v", a.Networks, want)
	}
	if a.PVDrivers["major"] == "" || a.MemoryFree != 128*MiB {
		t.Errorf("pv %v free %d", a.PVDrivers, a.MemoryFree)
	}
	// Once per boot...
	noEvent(t, d, "v", domain.GuestAgent, 2*(boot+delay))
	// ...and again when the networks change.
	must(t, d.UnplugNIC(ctx, "v", "1"))
	ev = waitEvent(t, d, "v", domain.GuestAgent, generous)
	if _, ok := ev.Agent.Networks["1/ip"]; ok || ev.Agent.Networks["0/ip"] == "" {
		t.Errorf("after unplug: %v", ev.Agent.Networks)
	}
}

func TestImmediateBoot(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	must(t, d.Unpause(context.Background(), "v"))
	select { // with no delays the report is queued by Unpause itself
	case ev := <-d.Events():
		if ev.Kind != domain.GuestAgent || ev.UUID != "v" {
			t.Fatalf("event %+v", ev)
		}
	default:
		t.Fatal("no agent report right after Unpause")
	}
}

func TestOSVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, simOS string
		distro      string
		osName      string
	}{
		{"debian-12", "", "debian", "Debian GNU/Linux 12 (bookworm)"},
		{"My CentOS box", "", "centos", "CentOS Stream 9"},
		{"rocky9", "", "rocky", "Rocky Linux 9.3 (Blue Onyx)"},
		{"Windows Server", "", "windows", ""},
		{"win10-desktop", "", "windows", ""},
		{"database", "", "linux", "Linux"},
		{"x", "Alpine Linux 3.19", "alpine", "Alpine Linux 3.19"},
		{"x", "Debian 11", "debian", "Debian 11"},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.simOS, func(t *testing.T) {
			t.Parallel()
			p := map[string]string{}
			if tc.simOS != "" {
				p["sim-os"] = tc.simOS
			}
			v := OSVersion(tc.name, p)
			if v["distro"] != tc.distro || tc.osName != "" && v["name"] != tc.osName {
				t.Errorf("OSVersion(%q, %q) = %v", tc.name, tc.simOS, v)
			}
		})
	}
}

func TestGuestIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ mac, v4, v6 string }{
		{"aa:bb:cc:01:02:03", "10.1.2.3", "fe80::a8bb:ccff:fe01:203"},
		{"AA:BB:CC:DD:EE:00", "10.221.238.1", "fe80::a8bb:ccff:fedd:ee00"},
		{"00:00:00:00:00:ff", "10.0.0.254", "fe80::200:ff:fe00:ff"},
	} {
		if got := GuestIPv4(tc.mac); got != tc.v4 {
			t.Errorf("GuestIPv4(%s) = %s, want %s", tc.mac, got, tc.v4)
		}
		if got := GuestIPv6(tc.mac); got != tc.v6 {
			t.Errorf("GuestIPv6(%s) = %s, want %s", tc.mac, got, tc.v6)
		}
	}
	if a, b := GuestIPv4("junk"), GuestIPv4("junk"); a != b || !strings.HasPrefix(a, "10.") {
		t.Errorf("unparsable MAC: %s %s", a, b)
	}
}

func TestPauseStopsBoot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const boot = 150 * time.Millisecond
	d := newDriver(t, Options{BootTime: boot})
	mustCreate(t, d, spec("v", 64*MiB))
	start := time.Now()
	must(t, d.Unpause(ctx, "v"))
	time.Sleep(boot / 5)
	must(t, d.Pause(ctx, "v"))
	ran := time.Since(start) // an upper bound of the running time
	if ran >= boot {
		t.Skipf("too slow a machine: %v to pause", ran)
	}
	noEvent(t, d, "v", domain.GuestAgent, 2*boot)
	resumed := time.Now()
	must(t, d.Unpause(ctx, "v"))
	waitEvent(t, d, "v", domain.GuestAgent, generous)
	// The rest of the boot ran after the second Unpause.
	if el := time.Since(resumed); el < boot-ran {
		t.Errorf("booted %v after unpause, ran %v before: boot was not paused", el, ran)
	}
}

func TestCleanShutdown(t *testing.T) {
	t.Parallel()
	const boot, shut = 20 * time.Millisecond, 40 * time.Millisecond
	tests := []struct {
		name   string
		reboot bool
	}{{"halt", false}, {"reboot", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			d := newDriver(t, Options{BootTime: boot, ShutdownTime: shut})
			id := mustCreate(t, d, spec("v", 64*MiB))
			must(t, d.Unpause(ctx, "v"))
			waitEvent(t, d, "v", domain.GuestAgent, generous)
			h0, _ := d.Host(ctx)
			start := time.Now()
			must(t, d.Shutdown(ctx, "v", tc.reboot))
			if el := time.Since(start); el < shut {
				t.Errorf("shutdown took %v < ShutdownTime %v", el, shut)
			}
			if !tc.reboot {
				gone(t, d, "v")
				h1, _ := d.Host(ctx)
				if h1.FreeMemory-h0.FreeMemory != Footprint(64*MiB) {
					t.Errorf("memory not freed: %d -> %d", h0.FreeMemory, h1.FreeMemory)
				}
				return
			}
			in := info(t, d, "v")
			if in.Domid != id || in.State != domain.Running {
				t.Fatalf("after reboot %+v", in)
			}
			waitEvent(t, d, "v", domain.GuestAgent, generous) // reports again
		})
	}
}

func TestShutdownWaitsForBoot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const boot, shut = 60 * time.Millisecond, 10 * time.Millisecond
	d := newDriver(t, Options{BootTime: boot, ShutdownTime: shut})
	mustCreate(t, d, spec("v", 64*MiB))
	start := time.Now()
	must(t, d.Unpause(ctx, "v"))
	must(t, d.Shutdown(ctx, "v", false))
	if el := time.Since(start); el < boot+shut {
		t.Errorf("a booting guest obeyed after %v < boot+shutdown %v", el, boot+shut)
	}
	gone(t, d, "v")
}

func TestShutdownOfPausedGuest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{ShutdownTime: 10 * time.Millisecond})
	mustCreate(t, d, spec("v", 64*MiB))
	errc := make(chan error, 1)
	go func() { errc <- d.Shutdown(ctx, "v", false) }()
	select {
	case err := <-errc:
		t.Fatalf("a paused guest shut down: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	must(t, d.Unpause(ctx, "v"))
	select {
	case err := <-errc:
		must(t, err)
	case <-time.After(generous):
		t.Fatal("no shutdown after unpause")
	}
	gone(t, d, "v")
}

func TestHang(t *testing.T) {
	t.Parallel()
	for _, reboot := range []bool{false, true} {
		t.Run(fmt.Sprint("reboot=", reboot), func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, Options{ShutdownTime: 10 * time.Millisecond})
			mustCreate(t, d, spec("v", 64*MiB))
			must(t, d.Unpause(context.Background(), "v"))
			must(t, d.Hang("v", true))
			ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
			defer cancel()
			err := d.Shutdown(ctx, "v", reboot)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown of hung guest: %v", err)
			}
			if in := info(t, d, "v"); in.State != domain.Running {
				t.Fatalf("hung guest state %v", in.State)
			}
			// The request was withdrawn: lifting the hang does nothing...
			must(t, d.Hang("v", false))
			time.Sleep(50 * time.Millisecond)
			info(t, d, "v")
			// ...and a new request is obeyed.
			must(t, d.Shutdown(context.Background(), "v", reboot))
			// A hard reset always works.
			if reboot {
				must(t, d.Hang("v", true))
				must(t, d.Reset(context.Background(), "v"))
				must(t, d.Shutdown(context.Background(), "v", false))
			}
		})
	}
}

func TestHangLiftedWhileWaiting(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{ShutdownTime: 10 * time.Millisecond})
	mustCreate(t, d, spec("v", 64*MiB))
	must(t, d.Unpause(context.Background(), "v"))
	must(t, d.Hang("v", true))
	errc := make(chan error, 1)
	go func() { errc <- d.Shutdown(context.Background(), "v", false) }()
	time.Sleep(50 * time.Millisecond)
	must(t, d.Hang("v", false))
	select {
	case err := <-errc:
		must(t, err)
	case <-time.After(generous):
		t.Fatal("shutdown not obeyed after the hang ended")
	}
	gone(t, d, "v")
}

func TestConflictingShutdowns(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	must(t, d.Unpause(context.Background(), "v"))
	must(t, d.Hang("v", true))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { errc <- d.Shutdown(ctx, "v", false) }()
	time.Sleep(20 * time.Millisecond)
	if err := d.Shutdown(context.Background(), "v", true); !errors.Is(err, ErrBadState) {
		t.Fatalf("reboot while a halt is pending: %v", err)
	}
	go func() { errc <- d.Shutdown(ctx, "v", false) }() // joins the first
	time.Sleep(20 * time.Millisecond)
	must(t, d.Crash("v"))
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrInterrupted) {
			t.Fatalf("waiter of a crashed guest: %v", err)
		}
	}
	cancel()
	waitEvent(t, d, "v", domain.GuestCrash, generous)
}

func TestGuestEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		act   func(*Driver, string) error
		kind  domain.EventKind
		state domain.State
	}{
		{"crash", (*Driver).Crash, domain.GuestCrash, domain.Crashed},
		{"shutdown", (*Driver).GuestShutdown, domain.GuestShutdown, domain.Halted},
		{"reboot", (*Driver).GuestReboot, domain.GuestReboot, domain.Running},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, Options{AgentDelay: time.Hour})
			id := mustCreate(t, d, spec("v", 64*MiB))
			must(t, d.Unpause(context.Background(), "v"))
			must(t, tc.act(d, "v"))
			ev := waitEvent(t, d, "v", tc.kind, generous)
			if ev.Agent != nil {
				t.Errorf("agent data in %v event", tc.kind)
			}
			if in := info(t, d, "v"); in.State != tc.state || in.Domid != id {
				t.Errorf("after %s: %+v", tc.name, in)
			}
			if err := tc.act(d, "nope"); !errors.Is(err, domain.ErrNoDomain) {
				t.Errorf("%s of unknown domain: %v", tc.name, err)
			}
		})
	}
}

func TestGuestObeysPendingRequest(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{ShutdownTime: time.Hour})
	mustCreate(t, d, spec("v", 64*MiB))
	must(t, d.Unpause(context.Background(), "v"))
	errc := make(chan error, 1)
	go func() { errc <- d.Shutdown(context.Background(), "v", false) }()
	time.Sleep(20 * time.Millisecond)
	must(t, d.GuestShutdown("v")) // the guest halts: that is obeying
	must(t, <-errc)
	gone(t, d, "v")
	noEvent(t, d, "v", domain.GuestShutdown, 20*time.Millisecond)
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		op, uuid string
		call     func(*Driver) error
	}{
		{"create", "", func(d *Driver) error { _, err := d.Create(ctx, spec("new", 64*MiB)); return err }},
		{"create", "new", func(d *Driver) error { _, err := d.Create(ctx, spec("new", 64*MiB)); return err }},
		{"unpause", "v", func(d *Driver) error { return d.Unpause(ctx, "v") }},
		{"pause", "", func(d *Driver) error { return d.Pause(ctx, "r") }},
		{"shutdown", "r", func(d *Driver) error { return d.Shutdown(ctx, "r", false) }},
		{"destroy", "v", func(d *Driver) error { return d.Destroy(ctx, "v") }},
		{"reset", "v", func(d *Driver) error { return d.Reset(ctx, "v") }},
		{"suspend", "r", func(d *Driver) error { return d.Suspend(ctx, "r", filepath.Join(t.TempDir(), "img")) }},
		{"resume", "v", func(d *Driver) error { _, err := d.Resume(ctx, spec("v", 64*MiB), "/nonexistent"); return err }},
		{"set_memory_target", "v", func(d *Driver) error { return d.SetMemoryTarget(ctx, "v", 32*MiB) }},
		{"set_vcpus", "v", func(d *Driver) error { return d.SetVCPUs(ctx, "v", 1) }},
		{"plug_disk", "v", func(d *Driver) error { return d.PlugDisk(ctx, "v", domain.Disk{Device: "5"}) }},
		{"unplug_disk", "v", func(d *Driver) error { return d.UnplugDisk(ctx, "v", "0") }},
		{"plug_nic", "v", func(d *Driver) error { return d.PlugNIC(ctx, "v", domain.NIC{Device: "5"}) }},
		{"unplug_nic", "v", func(d *Driver) error { return d.UnplugNIC(ctx, "v", "0") }},
		{"info", "v", func(d *Driver) error { _, err := d.Info(ctx, "v"); return err }},
		{"list", "", func(d *Driver) error { _, err := d.List(ctx); return err }},
		{"host", "", func(d *Driver) error { _, err := d.Host(ctx); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.op+"/"+tc.uuid, func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, Options{})
			mustCreate(t, d, spec("v", 64*MiB))
			mustCreate(t, d, spec("r", 64*MiB))
			must(t, d.Unpause(ctx, "r"))
			before, _ := d.List(ctx)
			must(t, d.FailNext(tc.op, tc.uuid))
			if err := tc.call(d); !errors.Is(err, domain.ErrInjected) {
				t.Fatalf("armed %s: %v, want ErrInjected", tc.op, err)
			}
			after, _ := d.List(ctx)
			for i := range before {
				before[i].CPUTime = 0
			}
			for i := range after {
				after[i].CPUTime = 0 // grows for the running one
			}
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Fatalf("injected failure had an effect:\n%v\n%v", before, after)
			}
			if err := tc.call(d); errors.Is(err, domain.ErrInjected) {
				t.Fatalf("second %s still fails: %v", tc.op, err)
			}
		})
	}
}

func TestFailNextMatching(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("a", 64*MiB))
	mustCreate(t, d, spec("b", 64*MiB))
	if err := d.FailNext("frobnicate", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown op: %v", err)
	}
	must(t, d.FailNext("unpause", "a"))
	must(t, d.FailNext("unpause", "a"))
	must(t, d.Unpause(ctx, "b")) // armed for a only
	for range 2 {
		if err := d.Unpause(ctx, "a"); !errors.Is(err, domain.ErrInjected) {
			t.Fatalf("unpause a: %v", err)
		}
	}
	must(t, d.Unpause(ctx, "a"))
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "dir", "v.suspend")
	d := newDriver(t, Options{TotalMemory: 4 * GiB, AgentDelay: 20 * time.Millisecond})
	s := spec("v", 512*MiB)
	id := mustCreate(t, d, s)
	must(t, d.Unpause(ctx, "v"))
	waitEvent(t, d, "v", domain.GuestAgent, generous)
	must(t, d.SetMemoryTarget(ctx, "v", 384*MiB))
	must(t, d.SetVCPUs(ctx, "v", 3))
	must(t, d.Hang("v", true))
	must(t, d.Suspend(ctx, "v", path))
	gone(t, d, "v")
	if h, _ := d.Host(ctx); h.FreeMemory != 3*GiB {
		t.Fatalf("suspend did not free memory: %d", h.FreeMemory)
	}

	fi, err := os.Stat(path)
	must(t, err)
	if fi.Size() < 384*MiB {
		t.Errorf("image size %d, want about the memory size", fi.Size())
	}
	head := make([]byte, 19)
	f, _ := os.Open(path)
	f.Read(head)
	f.Close()
	if string(head) != "XENITH-SIM-SUSPEND " {
		t.Errorf("header %q", head)
	}

	// Errors: another VM's spec, a missing file, a corrupt file, no memory.
	if _, err := d.Resume(ctx, spec("w", 64*MiB), path); !errors.Is(err, ErrBadImage) {
		t.Errorf("resume as another VM: %v", err)
	}
	if _, err := d.Resume(ctx, s, path+".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resume of a missing image: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	for _, content := range []string{"", "garbage\n", "XENITH-SIM-SUSPEND 1 100\n{\"vers", "XENITH-SIM-SUSPEND 1 3\n{x}"} {
		must(t, os.WriteFile(bad, []byte(content), 0o600))
		if _, err := d.Resume(ctx, s, bad); !errors.Is(err, ErrBadImage) {
			t.Errorf("resume of %q: %v", content, err)
		}
	}
	mustCreate(t, d, spec("hog", 2800*MiB))
	var nm *domain.NoMemoryError
	if _, err := d.Resume(ctx, s, path); !errors.As(err, &nm) || nm.Needed != Footprint(384*MiB) {
		t.Errorf("resume without memory: %v", err)
	}
	must(t, d.Destroy(ctx, "hog"))

	id2, err := d.Resume(ctx, s, path)
	must(t, err)
	if id2 <= id {
		t.Errorf("resumed domid %d, want a new one after %d", id2, id)
	}
	in := info(t, d, "v")
	if in.State != domain.Paused || in.MemoryActual != 384*MiB || in.VCPUs != 3 {
		t.Errorf("resumed %+v", in)
	}
	if _, err := d.Resume(ctx, s, path); !errors.Is(err, ErrExists) {
		t.Errorf("second resume: %v", err)
	}
	// A booted guest does not boot again; its agent reports after
	// AgentDelay. It is still hung.
	must(t, d.Unpause(ctx, "v"))
	waitEvent(t, d, "v", domain.GuestAgent, generous)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(sctx, "v", false); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang lost across suspend: %v", err)
	}
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	o := Options{StateDir: dir, BootTime: 100 * time.Millisecond}
	d1, err := New(o)
	must(t, err)
	idR := mustCreate(t, d1, spec("running", 256*MiB))
	idP := mustCreate(t, d1, spec("paused", 128*MiB))
	idB := mustCreate(t, d1, spec("booting", 64*MiB))
	idC := mustCreate(t, d1, spec("crashed", 64*MiB))
	mustCreate(t, d1, spec("destroyed", 64*MiB))
	must(t, d1.Unpause(ctx, "running"))
	waitEvent(t, d1, "running", domain.GuestAgent, generous)
	must(t, d1.PlugDisk(ctx, "running", domain.Disk{Device: "xvdb", Path: "/b"}))
	must(t, d1.SetMemoryTarget(ctx, "running", 200*MiB))
	must(t, d1.Unpause(ctx, "crashed"))
	must(t, d1.Crash("crashed"))
	must(t, d1.Destroy(ctx, "destroyed"))
	must(t, d1.Hang("paused", true))
	before, _ := d1.List(ctx)
	must(t, d1.Unpause(ctx, "booting")) // booting when the driver goes away
	must(t, d1.Close())
	must(t, d1.Close()) // idempotent
	if _, err := d1.List(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}

	d2 := newDriver(t, o)
	after, err := d2.List(ctx)
	must(t, err)
	if len(after) != 4 {
		t.Fatalf("reloaded %d domains: %+v", len(after), after)
	}
	want := map[string]struct {
		id    int
		state domain.State
	}{
		"running": {idR, domain.Running}, "paused": {idP, domain.Paused},
		"booting": {idB, domain.Running}, "crashed": {idC, domain.Crashed},
	}
	for i, in := range after {
		w := want[in.UUID]
		if in.Domid != w.id || in.State != w.state {
			t.Errorf("%s: %+v, want domid %d %v", in.UUID, in, w.id, w.state)
		}
		for _, b := range before {
			if b.UUID == in.UUID && (!b.StartTime.Equal(in.StartTime) || b.MemoryActual != in.MemoryActual) {
				t.Errorf("%s changed: %+v -> %+v", in.UUID, b, after[i])
			}
		}
	}
	disks, _, _ := d2.Devices("running")
	if len(disks) != 2 {
		t.Errorf("hotplugged disk lost: %+v", disks)
	}
	// The boot goes on: the agent of "booting" reports on the new driver
	// (unless, on a slow machine, it did before d1 closed).
	bootedEarly := false
	for len(d1.Events()) > 0 {
		if ev := <-d1.Events(); ev.UUID == "booting" && ev.Kind == domain.GuestAgent {
			bootedEarly = true
		}
	}
	if !bootedEarly {
		waitEvent(t, d2, "booting", domain.GuestAgent, generous)
	}
	// Domids go on too.
	if id := mustCreate(t, d2, spec("new", 64*MiB)); id != idC+2 {
		t.Errorf("new domid %d, want %d", id, idC+2)
	}
	// The hang survived.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	must(t, d2.Unpause(ctx, "paused"))
	if err := d2.Shutdown(sctx, "paused", false); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang lost across reload: %v", err)
	}
	h, _ := d2.Host(ctx)
	wantFree := 15*GiB - Footprint(200*MiB) - Footprint(128*MiB) - 3*Footprint(64*MiB)
	if h.FreeMemory != wantFree {
		t.Errorf("free after reload %d, want %d", h.FreeMemory, wantFree)
	}
}

func TestPersistencePendingShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	o := Options{StateDir: dir, ShutdownTime: time.Hour}
	d1, err := New(o)
	must(t, err)
	for _, u := range []string{"halt", "reboot", "paused"} {
		mustCreate(t, d1, spec(u, 64*MiB))
		must(t, d1.Unpause(ctx, u))
	}
	errc := make(chan error, 3)
	go func() { errc <- d1.Shutdown(ctx, "halt", false) }()
	go func() { errc <- d1.Shutdown(ctx, "reboot", true) }()
	must(t, d1.Pause(ctx, "paused"))
	go func() { errc <- d1.Shutdown(ctx, "paused", false) }()
	deadline := time.Now().Add(generous)
	for {
		d1.mu.Lock()
		n := 0
		for _, x := range d1.doms {
			if x.rec.Pending != "" {
				n++
			}
		}
		d1.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests not pending")
		}
		time.Sleep(time.Millisecond)
	}
	must(t, d1.Close())
	for range 3 {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("waiter at Close: %v", err)
		}
	}

	d2 := newDriver(t, o)
	gone(t, d2, "halt") // finished on load
	if in := info(t, d2, "reboot"); in.State != domain.Running {
		t.Errorf("reboot: %+v", in)
	}
	waitEvent(t, d2, "reboot", domain.GuestAgent, generous) // rebooted: reports again
	if in := info(t, d2, "paused"); in.State != domain.Paused {
		t.Errorf("paused: %+v", in) // withdrawn: a paused guest could not obey
	}
}

func TestCorruptStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600))
	if _, err := New(Options{StateDir: dir}); err == nil {
		t.Fatal("New accepted a corrupt state file")
	}
}

func TestEventsDropOldest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	must(t, d.Unpause(ctx, "v")) // agent report #1
	for range EventBuffer + 9 {
		must(t, d.GuestReboot("v")) // GuestReboot, then an agent report
	}
	if got := len(d.Events()); got != EventBuffer {
		t.Fatalf("queued %d", got)
	}
	if got, want := d.EventsDropped(), uint64(1+2*(EventBuffer+9)-EventBuffer); got != want {
		t.Fatalf("dropped %d, want %d", got, want)
	}
	if ev := <-d.Events(); ev.Kind != domain.GuestReboot {
		t.Fatalf("oldest kept %+v", ev) // 2*9+1 dropped: the oldest left is a reboot
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := New(Options{BootTime: time.Hour})
	must(t, err)
	mustCreate(t, d, spec("v", 64*MiB))
	must(t, d.Unpause(ctx, "v"))
	errc := make(chan error, 1)
	go func() { errc <- d.Shutdown(ctx, "v", false) }()
	time.Sleep(20 * time.Millisecond)
	must(t, d.Close())
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(generous):
		t.Fatal("Close left a waiter blocked")
	}
	for name, err := range map[string]error{
		"unpause":   d.Unpause(ctx, "v"),
		"crash":     d.Crash("v"),
		"fail-next": d.FailNext("create", ""),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

func TestContextHonoured(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Create(ctx, spec("v", 64*MiB)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with done ctx: %v", err)
	}
	if _, err := d.List(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{StateDir: t.TempDir(), TotalMemory: 64 * GiB, BootTime: time.Millisecond, ShutdownTime: time.Millisecond})
	go func() { // a reader, as the domain manager would be
		for range d.Events() {
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		wg.Go(func() {
			for i := range 6 {
				u := fmt.Sprintf("vm-%d-%d", w, i)
				steps := []func() error{
					func() error { _, err := d.Create(ctx, spec(u, 32*MiB)); return err },
					func() error { return d.Unpause(ctx, u) },
					func() error { return d.PlugNIC(ctx, u, domain.NIC{Device: "1", MAC: "00:16:3e:00:00:01"}) },
					func() error { return d.SetMemoryTarget(ctx, u, 48*MiB) },
					func() error { return d.Shutdown(ctx, u, true) },
					func() error { return d.Pause(ctx, u) },
					func() error { return d.Suspend(ctx, u, filepath.Join(t.TempDir(), u)) },
				}
				for _, s := range steps {
					if err := s(); err != nil {
						errs <- fmt.Errorf("%s: %w", u, err)
					}
				}
			}
		})
	}
	// Contending on one domain: every call either works or fails cleanly.
	mustCreate(t, d, spec("shared", 64*MiB))
	for range 4 {
		wg.Go(func() {
			for range 50 {
				_ = d.Unpause(ctx, "shared")
				_ = d.Pause(ctx, "shared")
				_, _ = d.Info(ctx, "shared")
				_ = d.SetVCPUs(ctx, "shared", 3)
				_, _ = d.List(ctx)
				_, _ = d.Host(ctx)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l, _ := d.List(ctx)
	if len(l) != 1 || l[0].UUID != "shared" {
		t.Errorf("left over: %+v", l)
	}
}
