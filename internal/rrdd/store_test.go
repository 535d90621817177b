package rrdd

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

const vmA = "0f0e0d0c-0b0a-4908-8706-050403020100"

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, "host-uuid", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// feed records n samples 5 s apart ending at end: a guest using half of
// each of its two vCPUs, 4 KiB/s read from xvda, 1 KiB/s received on VIF 0.
func feed(s *Store, id string, end time.Time, n int) {
	for i := n - 1; i >= 0; i-- {
		at := end.Add(-time.Duration(i) * Step)
		k := time.Duration(n - 1 - i)
		half := k * Step / 2
		s.RecordVM(domain.VMSample{UUID: id, MemoryTarget: 512 << 20, DiskNames: map[string]string{"0": "xvda"},
			Stats: domain.Stats{Time: at, CPUTime: 2 * half, VCPUTime: []time.Duration{half, half}, MemoryActual: 512 << 20,
				Disks: map[string]domain.IOCounters{"0": {ReadBytes: int64(k) * 5 * 4096}},
				NICs:  map[string]domain.IOCounters{"0": {ReadBytes: int64(k) * 5 * 1024}}}})
		s.RecordHost(domain.HostSample{Time: at, CPUAvg: 0.25, MemoryTotal: 4 << 30, MemoryFree: 1 << 30})
	}
}

func TestRecordAndExport(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	end := time.Now().Truncate(Step)
	feed(s, vmA, end, 30)
	db, err := s.VM(vmA)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"cpu0": 0.5, "cpu1": 0.5, "memory": 512 << 20, "memory_target": 512 << 20,
		"vbd_xvda_read": 4096, "vbd_xvda_write": 0, "vif_0_rx": 1024, "vif_0_tx": 0} {
		if got, ok := db.Query(name); !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v (%v), want %v", name, got, ok, want)
		}
	}
	if got, _ := s.Host().Query("memory_free_kib"); got != 1<<20 {
		t.Errorf("memory_free_kib = %v", got)
	}
	for _, tc := range []struct {
		name   string
		q      UpdatesQuery
		want   []string
		absent []string
	}{
		{"VMs", UpdatesQuery{Start: -60}, []string{"AVERAGE:vm:" + vmA + ":cpu1"}, []string{"AVERAGE:host:host-uuid:cpu_avg"}},
		{"and host", UpdatesQuery{Start: -60, Host: true}, []string{"AVERAGE:vm:" + vmA + ":cpu1", "MAX:host:host-uuid:cpu_avg"}, nil},
		{"host only", UpdatesQuery{Start: -60, Host: true, NoVMs: true}, []string{"AVERAGE:host:host-uuid:loadavg"}, []string{"AVERAGE:vm:" + vmA + ":cpu1"}},
		{"another VM", UpdatesQuery{Start: -60, VM: "0f0e0d0c-0b0a-4908-8706-0504030201ff"}, nil, []string{"AVERAGE:vm:" + vmA + ":cpu1"}},
	} {
		u, err := s.Updates(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, w := range tc.want {
			if !slices.Contains(u.Legend, w) {
				t.Errorf("%s: legend %v lacks %s", tc.name, u.Legend, w)
			}
		}
		for _, a := range tc.absent {
			if slices.Contains(u.Legend, a) {
				t.Errorf("%s: legend %v has %s", tc.name, u.Legend, a)
			}
		}
	}
}

func TestArchiveAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	end := time.Now().Truncate(Step)
	feed(s, vmA, end, 10)
	// The VM stops: its RRD goes to disk and out of the live exports.
	s.VMStopped(vmA)
	if _, err := os.Stat(filepath.Join(dir, vmA+".rrd.gz")); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Updates(UpdatesQuery{Start: -60}); len(u.Legend) != 0 {
		t.Fatalf("a stopped VM is exported: %v", u.Legend)
	}
	if db, err := s.VM(vmA); err != nil || db.LastUpdate().Unix() != end.Unix() {
		t.Fatalf("archived RRD: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A new xenithd finds the host's history and the VM's; the VM's goes
	// on when it runs again.
	s2 := open(t, dir)
	if got := s2.Host().LastUpdate().Unix(); got != end.Unix() {
		t.Fatalf("host RRD last updated %d, want %d", got, end.Unix())
	}
	feed(s2, vmA, end.Add(time.Minute), 3)
	db, err := s2.VM(vmA)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s2.Updates(UpdatesQuery{Start: end.Add(-30 * time.Second).Unix()})
	if err != nil || len(u.Rows) == 0 {
		t.Fatalf("updates after restart: %v %+v", err, u)
	}
	if _, ok := db.Query("cpu0"); !ok {
		t.Fatal("cpu0 lost")
	}
	// Destroyed: gone from disk.
	s2.Forget(vmA)
	if _, err := s2.VM(vmA); !errors.Is(err, ErrUnknown) {
		t.Fatalf("forgotten VM: %v", err)
	}
}

func TestDamagedFilesSetAside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"host", vmA} {
		if err := os.WriteFile(filepath.Join(dir, name+".rrd.gz"), []byte("not gzip"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, dir) // does not fail
	if _, err := os.Stat(filepath.Join(dir, "host.rrd.gz.bad")); err != nil {
		t.Fatalf("damaged host RRD not set aside: %v", err)
	}
	feed(s, vmA, time.Now().Truncate(Step), 2)
	if _, err := os.Stat(filepath.Join(dir, vmA+".rrd.gz.bad")); err != nil {
		t.Fatalf("damaged VM RRD not set aside: %v", err)
	}
	if _, ok := s.Host().Query("cpu_avg"); !ok {
		t.Fatal("no fresh host RRD")
	}
}

func TestBadUUIDsIgnored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	feed(s, "../../etc/passwd", time.Now(), 2)
	if _, err := s.VM("../../etc/passwd"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("VM with a path for uuid: %v", err)
	}
	s.VMStopped("../../etc/passwd")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "host.rrd.gz" {
			t.Fatalf("unexpected file %s", e.Name())
		}
	}
}
