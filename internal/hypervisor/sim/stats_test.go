package sim

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

func stats(t *testing.T, d *Driver, uuid string) domain.Stats {
	t.Helper()
	st, err := d.Stats(context.Background(), uuid)
	if err != nil {
		t.Fatalf("Stats %s: %v", uuid, err)
	}
	return st
}

func rw(r, w int64) domain.IOCounters { return domain.IOCounters{ReadBytes: r, WriteBytes: w} }

// statsSpec is an HVM guest (for S3) with 2 of 4 vCPUs, a writable disk,
// a read-only disk, a CD with a medium, an empty CD drive and two NICs.
func statsSpec(uuid string) domain.Spec {
	s := hvmSpec(uuid, 64*MiB)
	s.Disks = []domain.Disk{
		{Device: "0", Path: "/img/0", Format: "raw", Bootable: true},
		{Device: "1", Path: "/img/1", Format: "raw", ReadOnly: true},
		{Device: "3", Path: "/iso/x.iso", Format: "raw", ReadOnly: true, CD: true},
		{Device: "4", CD: true, ReadOnly: true},
	}
	s.NICs = []domain.NIC{
		{Device: "0", MAC: "aa:bb:cc:01:02:03", Bridge: "xenbr0"},
		{Device: "1", MAC: "aa:bb:cc:01:02:04", Bridge: "xenbr0"},
	}
	return s
}

// One guest through a life of loads, pauses, S3, vCPU and device changes:
// after each step and a wait on the fake clock, the counters are exactly
// what the rates make of the time the guest ran.
func TestStatsFollowTheLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	d := newDriver(t, Options{Now: clk.Now})
	mustCreate(t, d, statsSpec("v"))
	s := time.Second
	steps := []struct {
		name  string
		do    func() error
		wait  time.Duration
		cpu   time.Duration
		vcpu  []time.Duration
		disks map[string]domain.IOCounters
		nics  map[string]domain.IOCounters
	}{
		{
			name: "paused: nothing accrues", wait: time.Minute,
			vcpu:  []time.Duration{0, 0},
			disks: map[string]domain.IOCounters{"0": {}, "1": {}, "3": {}},
			nics:  map[string]domain.IOCounters{"0": {}, "1": {}},
		},
		{
			name: "running at the load",
			do: func() error {
				if err := d.SetLoad("v", Load{CPU: 0.5, DiskReadBps: 1000, DiskWriteBps: 100, NetRxBps: 2000, NetTxBps: 200}); err != nil {
					return err
				}
				return d.Unpause(ctx, "v")
			},
			wait: 10 * s, cpu: 10 * s, vcpu: []time.Duration{5 * s, 5 * s},
			// Read-only disks and CDs write nothing.
			disks: map[string]domain.IOCounters{"0": rw(10000, 1000), "1": rw(10000, 0), "3": rw(10000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 2000)},
		},
		{
			name: "paused again", do: func() error { return d.Pause(ctx, "v") }, wait: time.Hour,
			cpu: 10 * s, vcpu: []time.Duration{5 * s, 5 * s},
			disks: map[string]domain.IOCounters{"0": rw(10000, 1000), "1": rw(10000, 0), "3": rw(10000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 2000)},
		},
		{
			name: "unpaused", do: func() error { return d.Unpause(ctx, "v") }, wait: 10 * s,
			cpu: 20 * s, vcpu: []time.Duration{10 * s, 10 * s},
			disks: map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 0), "3": rw(20000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(40000, 4000), "1": rw(40000, 4000)},
		},
		{
			name: "a new load keeps what the old one did",
			do:   func() error { return d.SetLoad("v", Load{CPU: 0.25, NetRxBps: 1000}) }, wait: 4 * s,
			cpu: 22 * s, vcpu: []time.Duration{11 * s, 11 * s},
			disks: map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 0), "3": rw(20000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(44000, 4000), "1": rw(44000, 4000)},
		},
		{
			name: "a vCPU comes online from zero", do: func() error { return d.SetVCPUs(ctx, "v", 3) }, wait: 4 * s,
			cpu: 25 * s, vcpu: []time.Duration{12 * s, 12 * s, 1 * s},
			disks: map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 0), "3": rw(20000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(48000, 4000), "1": rw(48000, 4000)},
		},
		{
			name: "asleep in S3", do: func() error { return d.S3Suspend(ctx, "v") }, wait: time.Hour,
			cpu: 25 * s, vcpu: []time.Duration{12 * s, 12 * s, 1 * s},
			disks: map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 0), "3": rw(20000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(48000, 4000), "1": rw(48000, 4000)},
		},
		{
			name: "woken from S3", do: func() error { return d.S3Resume(ctx, "v") }, wait: 4 * s,
			cpu: 28 * s, vcpu: []time.Duration{13 * s, 13 * s, 2 * s},
			disks: map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 0), "3": rw(20000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(52000, 4000), "1": rw(52000, 4000)},
		},
		{
			// Offline vCPUs are not listed; their time stays in the total.
			name: "vCPUs go offline", do: func() error { return d.SetVCPUs(ctx, "v", 1) }, wait: 4 * s,
			cpu: 29 * s, vcpu: []time.Duration{14 * s},
			disks: map[string]domain.IOCounters{"0": rw(20000, 2000), "1": rw(20000, 0), "3": rw(20000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(56000, 4000), "1": rw(56000, 4000)},
		},
		{
			name: "plugged devices start from zero, unplugged ones vanish",
			do: func() error {
				return errors.Join(
					d.SetLoad("v", Load{CPU: 0.25, DiskReadBps: 500, NetRxBps: 1000}),
					d.UnplugDisk(ctx, "v", "3"),
					d.PlugDisk(ctx, "v", domain.Disk{Device: "5", Path: "/img/5", Format: "raw"}),
					d.UnplugNIC(ctx, "v", "1"),
					d.PlugNIC(ctx, "v", domain.NIC{Device: "2", MAC: "aa:bb:cc:01:02:05", Bridge: "xenbr0"}),
				)
			},
			wait: 4 * s, cpu: 30 * s, vcpu: []time.Duration{15 * s},
			disks: map[string]domain.IOCounters{"0": rw(22000, 2000), "1": rw(22000, 0), "5": rw(2000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(60000, 4000), "2": rw(4000, 0)},
		},
		{
			name: "a device plugged again starts from zero",
			do: func() error {
				return errors.Join(d.UnplugDisk(ctx, "v", "0"), d.PlugDisk(ctx, "v", domain.Disk{Device: "0", Path: "/img/0b", Format: "raw"}))
			},
			wait: 2 * s, cpu: 30*s + s/2, vcpu: []time.Duration{15*s + s/2},
			disks: map[string]domain.IOCounters{"0": rw(1000, 0), "1": rw(23000, 0), "5": rw(3000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(62000, 4000), "2": rw(6000, 0)},
		},
		{
			name: "a device plugged again while paused starts from zero",
			do: func() error {
				return errors.Join(d.Pause(ctx, "v"), d.UnplugNIC(ctx, "v", "0"),
					d.PlugNIC(ctx, "v", domain.NIC{Device: "0", MAC: "aa:bb:cc:01:02:03", Bridge: "xenbr0"}), d.Unpause(ctx, "v"))
			},
			wait: 2 * s, cpu: 31 * s, vcpu: []time.Duration{16 * s},
			disks: map[string]domain.IOCounters{"0": rw(2000, 0), "1": rw(24000, 0), "5": rw(4000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(2000, 0), "2": rw(8000, 0)},
		},
		{
			name: "a crashed domain's counters stand still", do: func() error { return d.Crash("v") }, wait: time.Hour,
			cpu: 31 * s, vcpu: []time.Duration{16 * s},
			disks: map[string]domain.IOCounters{"0": rw(2000, 0), "1": rw(24000, 0), "5": rw(4000, 0)},
			nics:  map[string]domain.IOCounters{"0": rw(2000, 0), "2": rw(8000, 0)},
		},
	}
	var prev domain.Stats
	for _, step := range steps {
		if step.do != nil {
			if err := step.do(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}
		clk.Add(step.wait)
		st := stats(t, d, "v")
		if !st.Time.Equal(clk.Now()) || st.MemoryActual != 64*MiB {
			t.Errorf("%s: time %v memory %d, want %v and %d", step.name, st.Time, st.MemoryActual, clk.Now(), 64*MiB)
		}
		if st.CPUTime != step.cpu || !reflect.DeepEqual(st.VCPUTime, step.vcpu) {
			t.Errorf("%s: CPU time %v per vCPU %v, want %v and %v", step.name, st.CPUTime, st.VCPUTime, step.cpu, step.vcpu)
		}
		if in := info(t, d, "v"); in.CPUTime != st.CPUTime {
			t.Errorf("%s: Info's CPU time %v, Stats' %v", step.name, in.CPUTime, st.CPUTime)
		}
		if !reflect.DeepEqual(st.Disks, step.disks) || !reflect.DeepEqual(st.NICs, step.nics) {
			t.Errorf("%s: disks %v NICs %v, want %v and %v", step.name, st.Disks, st.NICs, step.disks, step.nics)
		}
		// Counters never go back (a device plugged again is a new one).
		if st.CPUTime < prev.CPUTime {
			t.Errorf("%s: CPU time went back from %v to %v", step.name, prev.CPUTime, st.CPUTime)
		}
		for i := range min(len(st.VCPUTime), len(prev.VCPUTime)) {
			if st.VCPUTime[i] < prev.VCPUTime[i] {
				t.Errorf("%s: vCPU %d went back from %v to %v", step.name, i, prev.VCPUTime[i], st.VCPUTime[i])
			}
		}
		prev = st
	}
}

func TestStatsDefaultLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	d := newDriver(t, Options{Now: clk.Now})
	mustCreate(t, d, spec("v", 64*MiB)) // 2 vCPUs, disk 0, NIC 0
	if l, err := d.Load("v"); err != nil || l != (Load{CPU: DefaultCPULoad}) {
		t.Fatalf("Load = %+v, %v; want the default", l, err)
	}
	must(t, d.Unpause(ctx, "v"))
	clk.Add(100 * time.Second)
	st := stats(t, d, "v")
	each := time.Duration(DefaultCPULoad * float64(100*time.Second))
	if st.CPUTime != 2*each || !reflect.DeepEqual(st.VCPUTime, []time.Duration{each, each}) {
		t.Errorf("CPU time %v per vCPU %v, want %v each", st.CPUTime, st.VCPUTime, each)
	}
	quiet := map[string]domain.IOCounters{"0": {}}
	if !reflect.DeepEqual(st.Disks, quiet) || !reflect.DeepEqual(st.NICs, quiet) {
		t.Errorf("disks %v NICs %v, want quiet device 0s", st.Disks, st.NICs)
	}
}

func TestSetLoadRejects(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	good := Load{CPU: 0.5, DiskReadBps: 1, DiskWriteBps: 2, NetRxBps: 3, NetTxBps: 4}
	must(t, d.SetLoad("v", good))
	for _, tc := range []struct {
		name string
		l    Load
	}{
		{"negative cpu", Load{CPU: -0.1}},
		{"cpu above 1", Load{CPU: 1.01}},
		{"NaN cpu", Load{CPU: math.NaN()}},
		{"infinite cpu", Load{CPU: math.Inf(1)}},
		{"negative disk read", Load{DiskReadBps: -1}},
		{"NaN disk write", Load{DiskWriteBps: math.NaN()}},
		{"infinite rx", Load{NetRxBps: math.Inf(1)}},
		{"negative tx", Load{NetTxBps: -0.5}},
		{"rate above MaxRate", Load{DiskReadBps: 2 * MaxRate}},
	} {
		if err := d.SetLoad("v", tc.l); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: SetLoad = %v, want ErrInvalid", tc.name, err)
		}
	}
	if l, _ := d.Load("v"); l != good {
		t.Errorf("a rejected load changed it: %+v", l)
	}
	// The edges are fine.
	must(t, d.SetLoad("v", Load{CPU: 1, DiskReadBps: MaxRate}))
	must(t, d.SetLoad("v", Load{}))
}

// Concurrent changes of different fields all take effect.
func TestChangeLoadConcurrently(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				must(t, d.ChangeLoad("v", func(l *Load) { l.DiskReadBps++ }))
			} else {
				must(t, d.ChangeLoad("v", func(l *Load) { l.NetTxBps++ }))
			}
		}()
	}
	wg.Wait()
	if l, _ := d.Load("v"); l.DiskReadBps != 25 || l.NetTxBps != 25 || l.CPU != DefaultCPULoad {
		t.Fatalf("after 25 + 25 concurrent changes: %+v", l)
	}
	if err := d.ChangeLoad("v", func(l *Load) { l.CPU = 2 }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ChangeLoad to CPU 2: %v", err)
	}
}

func TestStatsErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{})
	mustCreate(t, d, spec("v", 64*MiB))
	must(t, d.Unpause(ctx, "v"))
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"Stats of no domain", func() error { _, err := d.Stats(ctx, "nope"); return err }, domain.ErrNoDomain},
		{"Load of no domain", func() error { _, err := d.Load("nope"); return err }, domain.ErrNoDomain},
		{"SetLoad of no domain", func() error { return d.SetLoad("nope", Load{}) }, domain.ErrNoDomain},
		{"injected Stats failure", func() error {
			if err := d.FailNext("stats", "v"); err != nil {
				return err
			}
			_, err := d.Stats(ctx, "v")
			return err
		}, domain.ErrInjected},
		{"SetLoad of a halted domain", func() error {
			if err := d.GuestShutdown("v"); err != nil {
				return err
			}
			return d.SetLoad("v", Load{})
		}, ErrBadState},
		{"Stats after Close", func() error { d.Close(); _, err := d.Stats(ctx, "v"); return err }, ErrClosed},
		{"SetLoad after Close", func() error { return d.SetLoad("v", Load{}) }, ErrClosed},
	} {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The load and the counters are in the state file: a new driver carries
// on (including the time no driver watched); a record from before
// per-vCPU accounting gets its CPU time spread over its vCPUs.
func TestStatsPersist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	dir := t.TempDir()
	o := Options{StateDir: dir, Now: clk.Now}
	d1, err := New(o)
	must(t, err)
	mustCreate(t, d1, spec("v", 64*MiB))
	l := Load{CPU: 0.5, DiskWriteBps: 100, NetTxBps: 10}
	must(t, d1.SetLoad("v", l))
	must(t, d1.Unpause(ctx, "v"))
	clk.Add(10 * time.Second)
	must(t, d1.PlugNIC(ctx, "v", domain.NIC{Device: "1", MAC: "aa:bb:cc:01:02:09"})) // folds the counters
	clk.Add(10 * time.Second)
	must(t, d1.Close())
	clk.Add(10 * time.Second) // nobody watches; the guest runs on

	d2 := newDriver(t, o)
	if got, err := d2.Load("v"); err != nil || got != l {
		t.Fatalf("load after restart %+v, %v; want %+v", got, err, l)
	}
	st := stats(t, d2, "v")
	if st.CPUTime != 30*time.Second || !reflect.DeepEqual(st.VCPUTime, []time.Duration{15 * time.Second, 15 * time.Second}) {
		t.Errorf("after restart: CPU time %v per vCPU %v, want 30s, 15s each", st.CPUTime, st.VCPUTime)
	}
	if want := map[string]domain.IOCounters{"0": rw(0, 3000)}; !reflect.DeepEqual(st.Disks, want) {
		t.Errorf("after restart: disks %v, want %v", st.Disks, want)
	}
	if want := map[string]domain.IOCounters{"0": rw(0, 300), "1": rw(0, 200)}; !reflect.DeepEqual(st.NICs, want) {
		t.Errorf("after restart: NICs %v, want %v", st.NICs, want)
	}

	old := t.TempDir()
	must(t, os.WriteFile(filepath.Join(old, StateFile), []byte(`{"version":1,"next_domid":2,"domains":[{"spec":{"UUID":"a","MemoryStaticMax":1048576,"MemoryTarget":1048576,"VCPUsMax":2,"VCPUs":2},"domid":1,"state":"paused","start_time":"2025-01-01T00:00:00Z","cpu_time_ns":3000000001,"uptime_ns":5}]}`), 0o600))
	d3 := newDriver(t, Options{StateDir: old, Now: clk.Now})
	if st := stats(t, d3, "a"); st.CPUTime != 3000000001 || !reflect.DeepEqual(st.VCPUTime, []time.Duration{1500000001, 1500000000}) {
		t.Errorf("old record: CPU time %v per vCPU %v", st.CPUTime, st.VCPUTime)
	}

	bad := t.TempDir()
	must(t, os.WriteFile(filepath.Join(bad, StateFile), []byte(`{"version":1,"domains":[{"spec":{"UUID":"a","MemoryStaticMax":1048576,"MemoryTarget":1048576,"VCPUsMax":1,"VCPUs":1},"domid":1,"state":"paused","load":{"cpu":2}}]}`), 0o600))
	if d, err := New(Options{StateDir: bad}); err == nil {
		d.Close()
		t.Error("a state file with a load out of range was accepted")
	}
}

// A suspend image keeps the load; the resumed domain is a new one whose
// counters start from zero.
func TestStatsSuspendResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	d := newDriver(t, Options{Now: clk.Now})
	mustCreate(t, d, spec("v", 64*MiB))
	l := Load{CPU: 0.5, DiskReadBps: 100, NetRxBps: 10}
	must(t, d.SetLoad("v", l))
	must(t, d.Unpause(ctx, "v"))
	clk.Add(10 * time.Second)
	img := filepath.Join(t.TempDir(), "img")
	must(t, d.Suspend(ctx, "v", img))
	if _, err := d.Resume(ctx, spec("v", 64*MiB), img); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Load("v"); got != l {
		t.Fatalf("load after resume %+v, want %+v", got, l)
	}
	if st := stats(t, d, "v"); st.CPUTime != 0 || st.Disks["0"] != (domain.IOCounters{}) || st.NICs["0"] != (domain.IOCounters{}) {
		t.Errorf("resumed domain's counters: %+v", st)
	}
	must(t, d.Unpause(ctx, "v"))
	clk.Add(10 * time.Second)
	if st := stats(t, d, "v"); st.CPUTime != 10*time.Second || st.Disks["0"] != rw(1000, 0) || st.NICs["0"] != rw(100, 0) {
		t.Errorf("resumed and running: %+v", st)
	}

	// An image whose load is out of range is a bad image.
	badImg := filepath.Join(t.TempDir(), "bad")
	must(t, writeImage(badImg, &record{Spec: spec("w", 64*MiB), Load: &Load{CPU: 2}}))
	if _, err := d.Resume(ctx, spec("w", 64*MiB), badImg); !errors.Is(err, ErrBadImage) {
		t.Errorf("image with a bad load: %v, want ErrBadImage", err)
	}
}
