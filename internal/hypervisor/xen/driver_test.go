package xen

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

const (
	vmA = "0f0e0d0c-0b0a-4908-8706-050403020100"
	vmB = "11111111-2222-4333-8444-555555555555"
)

func spec(uuid string) domain.Spec {
	return domain.Spec{
		UUID: uuid, Name: "guest", MemoryStaticMax: 128 << 20, MemoryTarget: 96 << 20, VCPUsMax: 2, VCPUs: 1,
		Kernel: "/boot/vmlinux", Ramdisk: "/boot/initrd", Args: "console=hvc0",
		NICs: []domain.NIC{{Device: "0", MAC: "00:16:3e:01:02:03", Bridge: "xenbr0"}},
	}
}

type rig struct {
	t   *testing.T
	x   *fakeXen
	xs  *fakeXS
	d   *Driver
	dir string
}

func newRig(t *testing.T, withXS bool) *rig {
	t.Helper()
	r := &rig{t: t, x: newFakeXen(t), dir: t.TempDir()}
	if withXS {
		r.xs = newFakeXS()
		r.x.xs = r.xs
	}
	r.open()
	return r
}

func (r *rig) open() {
	r.t.Helper()
	opts := Options{StateDir: r.dir, Runner: r.x, PollInterval: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if r.xs != nil {
		opts.XenStore = r.xs
	} else {
		opts.NoXenStore = true
	}
	d, err := New(opts)
	if err != nil {
		r.t.Fatal(err)
	}
	r.d = d
	r.t.Cleanup(func() { d.Close() })
}

func (r *rig) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r.t.Cleanup(cancel)
	return ctx
}

func (r *rig) start(uuid string) int {
	r.t.Helper()
	id, err := r.d.Create(r.ctx(), spec(uuid))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.d.Unpause(r.ctx(), uuid); err != nil {
		r.t.Fatal(err)
	}
	return id
}

func (r *rig) state(uuid string) domain.State {
	r.t.Helper()
	in, err := r.d.Info(r.ctx(), uuid)
	if err != nil {
		r.t.Fatal(err)
	}
	return in.State
}

func (r *rig) event(kind domain.EventKind) domain.Event {
	r.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-r.d.Events():
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			r.t.Fatalf("no event of kind %d", kind)
		}
	}
}

func TestLifecycle(t *testing.T) {
	for _, withXS := range []bool{true, false} {
		name := "polling"
		if withXS {
			name = "xenstore"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, withXS)
			ctx := r.ctx()
			id, err := r.d.Create(ctx, spec(vmA))
			if err != nil {
				t.Fatal(err)
			}
			if id != 1 || r.state(vmA) != domain.Paused {
				t.Fatalf("after create: domid %d state %v", id, r.state(vmA))
			}
			cfg := r.x.dom(vmA).cfg
			for _, want := range []string{`name = "` + vmA + `"`, "memory = 96", "maxmem = 128", `on_poweroff = "preserve"`, `"devid=0,mac=00:16:3e:01:02:03,bridge=xenbr0"`} {
				if !strings.Contains(cfg, want) {
					t.Errorf("config lacks %q:\n%s", want, cfg)
				}
			}
			if _, err := r.d.Create(ctx, spec(vmA)); !errors.Is(err, ErrExists) {
				t.Errorf("second create: %v, want ErrExists", err)
			}
			for _, step := range []struct {
				name string
				do   func() error
				want domain.State
			}{
				{"unpause", func() error { return r.d.Unpause(ctx, vmA) }, domain.Running},
				{"pause", func() error { return r.d.Pause(ctx, vmA) }, domain.Paused},
				{"unpause again", func() error { return r.d.Unpause(ctx, vmA) }, domain.Running},
				{"mem-set", func() error { return r.d.SetMemoryTarget(ctx, vmA, 64<<20) }, domain.Running},
				{"vcpu-set", func() error { return r.d.SetVCPUs(ctx, vmA, 2) }, domain.Running},
				{"plug disk", func() error {
					return r.d.PlugDisk(ctx, vmA, domain.Disk{Device: "1", Path: "/srv/d.img", Format: "raw"})
				}, domain.Running},
				{"plug nic", func() error {
					return r.d.PlugNIC(ctx, vmA, domain.NIC{Device: "1", MAC: "00:16:3e:00:00:01", Bridge: "xenbr0"})
				}, domain.Running},
				{"unplug disk", func() error { return r.d.UnplugDisk(ctx, vmA, "1") }, domain.Running},
				{"unplug nic", func() error { return r.d.UnplugNIC(ctx, vmA, "1") }, domain.Running},
			} {
				if err := step.do(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				if got := r.state(vmA); got != step.want {
					t.Fatalf("after %s: %v, want %v", step.name, got, step.want)
				}
			}
			for _, c := range []string{"mem-set " + vmA + " 65536k", "vcpu-set " + vmA + " 2",
				"block-attach " + vmA + " vdev=xvdb,access=rw,format=raw,target=/srv/d.img",
				"network-attach " + vmA + " devid=1 mac=00:16:3e:00:00:01 bridge=xenbr0",
				"block-detach " + vmA + " xvdb", "network-detach " + vmA + " 1"} {
				if r.x.called(c) != 1 {
					t.Errorf("xl %s: called %d times; calls %q", c, r.x.called(c), r.x.calls)
				}
			}
			// suspend / resume
			img := filepath.Join(t.TempDir(), "s.img")
			if err := r.d.Suspend(ctx, vmA, img); err != nil {
				t.Fatal(err)
			}
			if _, err := r.d.Info(ctx, vmA); !errors.Is(err, domain.ErrNoDomain) {
				t.Fatalf("after suspend: Info %v", err)
			}
			id, err = r.d.Resume(ctx, spec(vmA), img)
			if err != nil || id != 2 || r.state(vmA) != domain.Paused {
				t.Fatalf("resume: domid %d err %v", id, err)
			}
			if err := r.d.Unpause(ctx, vmA); err != nil {
				t.Fatal(err)
			}
			// clean reboot: rebuilt with a new domid, no event
			if err := r.d.Shutdown(ctx, vmA, true); err != nil {
				t.Fatal(err)
			}
			in, err := r.d.Info(ctx, vmA)
			if err != nil || in.Domid != 3 || in.State != domain.Running {
				t.Fatalf("after clean reboot: %+v %v", in, err)
			}
			// clean halt: the domain is gone when Shutdown returns
			if err := r.d.Shutdown(ctx, vmA, false); err != nil {
				t.Fatal(err)
			}
			if r.x.dom(vmA) != nil {
				t.Fatal("domain still there after a clean halt")
			}
			if err := r.d.Destroy(ctx, vmA); !errors.Is(err, domain.ErrNoDomain) {
				t.Fatalf("destroy of a gone domain: %v", err)
			}
			if _, err := os.Stat(filepath.Join(r.dir, "domains", vmA+".json")); !os.IsNotExist(err) {
				t.Fatalf("record of a gone domain still on disk: %v", err)
			}
		})
	}
}

func TestGuestEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		act    func(r *rig)
		kind   domain.EventKind
		state  domain.State
		domid  int
		absent bool
	}{
		{"poweroff", func(r *rig) { r.x.guestDoes(vmA, reasonPoweroff) }, domain.GuestShutdown, domain.Halted, 1, false},
		{"crash", func(r *rig) { r.x.guestDoes(vmA, reasonCrash) }, domain.GuestCrash, domain.Crashed, 1, false},
		{"watchdog", func(r *rig) { r.x.guestDoes(vmA, reasonWatchdog) }, domain.GuestCrash, domain.Crashed, 1, false},
		{"reboot rebuilds", func(r *rig) { r.x.guestDoes(vmA, reasonReboot) }, domain.GuestReboot, domain.Running, 2, false},
		{"sysrq o", func(r *rig) { must(r.t, r.d.GuestShutdown(vmA)) }, domain.GuestShutdown, domain.Halted, 1, false},
		{"sysrq b", func(r *rig) { must(r.t, r.d.GuestReboot(vmA)) }, domain.GuestReboot, domain.Running, 2, false},
		{"sysrq c", func(r *rig) { must(r.t, r.d.Crash(vmA)) }, domain.GuestCrash, domain.Crashed, 1, false},
		{"destroyed behind our back", func(r *rig) {
			_, err := r.x.Run(context.Background(), "xl", "destroy", vmA)
			must(r.t, err)
		}, domain.GuestShutdown, 0, 0, true},
	} {
		for _, withXS := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: "/xenstore", false: "/polling"}[withXS], func(t *testing.T) {
				r := newRig(t, withXS)
				r.start(vmA)
				tc.act(r)
				ev := r.event(tc.kind)
				if ev.UUID != vmA {
					t.Fatalf("event for %s", ev.UUID)
				}
				in, err := r.d.Info(r.ctx(), vmA)
				if tc.absent {
					if !errors.Is(err, domain.ErrNoDomain) {
						t.Fatalf("Info: %v", err)
					}
					return
				}
				if err != nil || in.State != tc.state || in.Domid != tc.domid {
					t.Fatalf("after event: %+v %v; want %v domid %d", in, err, tc.state, tc.domid)
				}
				// no duplicate for the same happening
				select {
				case ev := <-r.d.Events():
					if ev.Kind == tc.kind {
						t.Fatalf("duplicate event %+v", ev)
					}
				case <-time.After(100 * time.Millisecond):
				}
			})
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestShutdownTimeoutWithdraws(t *testing.T) {
	r := newRig(t, true)
	r.start(vmA)
	r.x.obey = false
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.d.Shutdown(ctx, vmA, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown of a guest that ignores it: %v", err)
	}
	if !r.xs.wrote("/local/domain/1/control/shutdown=") {
		t.Fatalf("request not withdrawn; writes %q", r.xs.writes)
	}
	if r.state(vmA) != domain.Running {
		t.Fatal("domain not running any more")
	}
	// A guest that obeys later still works with a new request.
	r.x.obey = true
	if err := r.d.Shutdown(r.ctx(), vmA, false); err != nil {
		t.Fatal(err)
	}
}

func TestNoMemory(t *testing.T) {
	r := newRig(t, false)
	r.x.freeMiB = 50
	_, err := r.d.Create(r.ctx(), spec(vmA))
	var nm *domain.NoMemoryError
	if !errors.As(err, &nm) || !errors.Is(err, domain.ErrNoMemory) || nm.Available != 50<<20 {
		t.Fatalf("create without memory: %v", err)
	}
	if r.x.called("create") != 0 {
		t.Fatal("xl create ran although memory was short")
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	r := newRig(t, false)
	r.x.fail["create"] = r.x.err([]string{"create"}, "libxl: error: hotplug script failed")
	if _, err := r.d.Create(r.ctx(), spec(vmA)); err == nil || !strings.Contains(err.Error(), "hotplug script failed") {
		t.Fatalf("create: %v", err)
	}
	if infos, err := r.d.List(r.ctx()); err != nil || len(infos) != 0 {
		t.Fatalf("List after a failed create: %v %v", infos, err)
	}
	// and the VM can be started afterwards
	r.start(vmA)
}

func TestReadoptAfterRestart(t *testing.T) {
	r := newRig(t, true)
	r.start(vmA)
	r.start(vmB)
	must(t, r.d.Pause(r.ctx(), vmB))
	r.d.Close()
	// While nobody watched, B's guest rebooted.
	r.x.guestDoes(vmB, reasonReboot)
	r.xs = newFakeXS()
	r.x.xs = r.xs
	r.open()
	infos, err := r.d.List(r.ctx())
	if err != nil || len(infos) != 2 {
		t.Fatalf("List: %+v %v", infos, err)
	}
	if infos[0].UUID != vmA || infos[0].Domid != 1 || infos[0].State != domain.Running || infos[0].StartTime.IsZero() {
		t.Fatalf("A not adopted: %+v", infos[0])
	}
	ev := r.event(domain.GuestReboot)
	if ev.UUID != vmB {
		t.Fatalf("reboot event for %s", ev.UUID)
	}
	in, err := r.d.Info(r.ctx(), vmB)
	if err != nil || in.Domid != 3 || in.State != domain.Running {
		t.Fatalf("B after its reboot: %+v %v", in, err)
	}
	// The rebuilt domain kept its spec.
	if c := r.x.dom(vmB).cfg; !strings.Contains(c, `kernel = "/boot/vmlinux"`) {
		t.Fatalf("rebuilt config:\n%s", c)
	}
}

func TestForgetsDomainsGoneWhileDown(t *testing.T) {
	r := newRig(t, false)
	r.start(vmA)
	r.d.Close()
	_, err := r.x.Run(context.Background(), "xl", "destroy", vmA)
	must(t, err)
	r.open()
	if _, err := os.Stat(filepath.Join(r.dir, "domains", vmA+".json")); !os.IsNotExist(err) {
		t.Fatalf("record kept: %v", err)
	}
	if _, err := r.d.Info(r.ctx(), vmA); !errors.Is(err, domain.ErrNoDomain) {
		t.Fatal(err)
	}
}

func TestGuestAgent(t *testing.T) {
	r := newRig(t, true)
	r.start(vmA)
	base := "/local/domain/1/"
	for k, v := range map[string]string{
		"control/feature-poweroff": "1", "data/os_name": "Debian GNU/Linux 12", "data/os_distro": "debian",
		"data/os_majorver": "12", "data/meminfo_free": "1024",
		"attr/PVAddons/MajorVersion": "8", "attr/vif/0/ipv4/0": "10.0.0.5",
	} {
		r.xs.set(base+k, v)
	}
	deadline := time.After(5 * time.Second)
	for {
		ev := r.event(domain.GuestAgent)
		rep := ev.Agent
		if rep.OSVersion["distro"] == "debian" && rep.Networks["0/ip"] == "10.0.0.5" && rep.PVDrivers["major"] == "8" && rep.MemoryFree == 1<<20 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("last report %+v", rep)
		default:
		}
	}
}

func TestHost(t *testing.T) {
	r := newRig(t, false)
	h, err := r.d.Host(r.ctx())
	if err != nil || h.TotalMemory != 8191<<20 || h.FreeMemory != 4096<<20 || h.CPUs != 2 {
		t.Fatalf("%+v %v", h, err)
	}
	fields, err := r.d.XenInfo(r.ctx())
	if err != nil || fields["xen_version"] != "4.17.7" {
		t.Fatalf("%v %v", fields, err)
	}
	mem, vcpus, err := r.d.ControlDomain(r.ctx())
	if err != nil || mem != 768<<20 || vcpus != 2 {
		t.Fatalf("ControlDomain = %d, %d, %v; want 768 MiB, 2", mem, vcpus, err)
	}
}

func TestClosed(t *testing.T) {
	r := newRig(t, false)
	r.d.Close()
	if _, err := r.d.Create(r.ctx(), spec(vmA)); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestCreateLeavesStrayDomainAlone(t *testing.T) {
	r := newRig(t, false)
	r.start(vmA)
	// The driver's record is lost; the domain still runs.
	r.d.Close()
	must(t, os.Remove(filepath.Join(r.dir, "domains", vmA+".json")))
	r.open()
	if _, err := r.d.Create(r.ctx(), spec(vmA)); !errors.Is(err, ErrExists) {
		t.Fatalf("create over a stray domain: %v", err)
	}
	if r.x.dom(vmA) == nil {
		t.Fatal("the stray domain was destroyed")
	}
}
