// Package rrdd keeps the performance statistics of a host and of its VMs
// as round-robin databases (package rrd), in the role of xapi's xcp-rrdd:
// the domain manager hands it a sample of every running domain every few
// seconds, the XenAPI server reads it for /rrd_updates, /host_rrd,
// /vm_rrd and the *.get_data_sources messages.
//
// A VM's RRD is in memory while the VM runs; when it stops, the RRD is
// written to the data directory and dropped (xapi archives it the same
// way), and read back when the VM runs again, so its history spans
// reboots and xenithd restarts. The host's RRD is written every
// SaveInterval and when xenithd stops.
package rrdd

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/rrd"
	"github.com/xenith/xenith/internal/xenapi"
)

// Step is the base step of every RRD: the domain manager samples at this
// interval (domain.MetricsInterval).
const Step = 5 * time.Second

// SaveInterval is how often the host's RRD and the running VMs' RRDs are
// written to disk, bounding what a crash of xenithd loses.
var SaveInterval = 10 * time.Minute

// ErrUnknown is returned for a VM or data source without statistics.
var ErrUnknown = errors.New("rrdd: no such statistics")

// Store holds the RRDs. It is safe for concurrent use.
type Store struct {
	dir      string // "" keeps everything in memory
	hostUUID string
	log      *slog.Logger
	host     *rrd.DB // set by Open; the DB guards itself

	mu    sync.Mutex
	vms   map[string]*rrd.DB // running VMs, by uuid
	saved time.Time
}

// Open returns the store for the host hostUUID, reading the host's RRD
// from dir if an earlier run left one. dir "" keeps nothing on disk.
func Open(dir, hostUUID string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{dir: dir, hostUUID: hostUUID, log: log, vms: map[string]*rrd.DB{}, saved: time.Now()}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	db, err := s.load("host")
	switch {
	case err == nil:
		s.host = db
	case errors.Is(err, os.ErrNotExist):
		s.host = newHostDB()
	default:
		// A damaged file must not stop the daemon: keep it aside, start
		// a fresh history.
		log.Warn("unreadable host RRD; starting a new one", "err", err)
		s.setAside("host")
		s.host = newHostDB()
	}
	return s, nil
}

// VMs keep averages only (xapi's default: min and max for VMs cost three
// times the memory); the host keeps all three.
func newVMDB() *rrd.DB   { return rrd.New(Step, rrd.DefaultArchives(rrd.Average)) }
func newHostDB() *rrd.DB { return rrd.New(Step, rrd.DefaultArchives(rrd.Average, rrd.Min, rrd.Max)) }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+".rrd.gz") }

func (s *Store) load(name string) (*rrd.DB, error) {
	if s.dir == "" {
		return nil, os.ErrNotExist
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return rrd.ReadDump(zr)
}

func (s *Store) setAside(name string) {
	if err := os.Rename(s.path(name), s.path(name)+".bad"); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("setting aside an unreadable RRD", "name", name, "err", err)
	}
}

// save writes db atomically (a crash leaves the old file or the new one).
func (s *Store) save(name string, db *rrd.DB) error {
	if s.dir == "" {
		return nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := db.WriteDump(zw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	tmp := s.path(name) + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path(name))
}

// vmDB returns a running VM's RRD, reading its archive or making a new
// one the first time; s.mu is held.
func (s *Store) vmDB(id string) *rrd.DB {
	if db := s.vms[id]; db != nil {
		return db
	}
	db, err := s.load(id)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("unreadable VM RRD; starting a new one", "vm", id, "err", err)
			s.setAside(id)
		}
		db = newVMDB()
	}
	s.vms[id] = db
	return db
}

// RecordVM adds a sample of a running VM (domain.StatsSink).
func (s *Store) RecordVM(smp domain.VMSample) {
	if !xenapi.IsUUID(smp.UUID) {
		return
	}
	vals := vmValues(smp)
	s.mu.Lock()
	db := s.vmDB(smp.UUID)
	s.mu.Unlock()
	if err := db.Update(smp.Stats.Time, vals); err != nil {
		s.log.Debug("VM sample not recorded", "vm", smp.UUID, "err", err)
	}
}

// RecordHost adds a sample of the host (domain.StatsSink), and writes the
// RRDs to disk every SaveInterval.
func (s *Store) RecordHost(smp domain.HostSample) {
	vals := hostValues(smp, loadAvg())
	s.mu.Lock()
	due := s.dir != "" && time.Since(s.saved) >= SaveInterval
	if due {
		s.saved = time.Now()
	}
	s.mu.Unlock()
	if err := s.host.Update(smp.Time, vals); err != nil {
		s.log.Debug("host sample not recorded", "err", err)
	}
	if due {
		if err := s.Save(); err != nil {
			s.log.Warn("saving RRDs", "err", err)
		}
	}
}

// VMStopped archives the RRD of a VM that no longer runs (domain.StatsSink).
func (s *Store) VMStopped(id string) {
	s.mu.Lock()
	db := s.vms[id]
	delete(s.vms, id)
	s.mu.Unlock()
	if db == nil {
		return
	}
	if err := s.save(id, db); err != nil {
		s.log.Warn("archiving a VM's RRD", "vm", id, "err", err)
	}
}

// Save writes the host's RRD and every running VM's.
func (s *Store) Save() error {
	s.mu.Lock()
	vms := make(map[string]*rrd.DB, len(s.vms))
	for id, db := range s.vms {
		vms[id] = db
	}
	s.mu.Unlock()
	errs := []error{s.save("host", s.host)}
	for id, db := range vms {
		errs = append(errs, s.save(id, db))
	}
	return errors.Join(errs...)
}

// Close saves everything.
func (s *Store) Close() error { return s.Save() }

// HostUUID is the uuid the host's legend entries carry.
func (s *Store) HostUUID() string { return s.hostUUID }

// Host returns the host's RRD.
func (s *Store) Host() *rrd.DB { return s.host }

// VM returns a VM's RRD: the live one while it runs, else its archive.
// ErrUnknown if it never ran here.
func (s *Store) VM(id string) (*rrd.DB, error) {
	if !xenapi.IsUUID(id) {
		return nil, fmt.Errorf("%w: VM %q", ErrUnknown, id)
	}
	s.mu.Lock()
	db := s.vms[id]
	s.mu.Unlock()
	if db != nil {
		return db, nil
	}
	db, err := s.load(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: VM %s has no statistics on this host", ErrUnknown, id)
	}
	return db, err
}

// Forget drops a VM's statistics for good (the VM was destroyed).
func (s *Store) Forget(id string) {
	if !xenapi.IsUUID(id) {
		return
	}
	s.mu.Lock()
	delete(s.vms, id)
	s.mu.Unlock()
	if s.dir != "" {
		if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing a VM's RRD", "vm", id, "err", err)
		}
	}
}

// UpdatesQuery is what /rrd_updates asks for.
type UpdatesQuery struct {
	Start    int64   // unix seconds; negative: relative to the last update
	Interval int64   // seconds between rows wanted (0: the finest)
	CF       *rrd.CF // nil: every consolidation function kept
	Host     bool    // include the host's RRD
	VM       string  // "" every running VM, else only this one
	NoVMs    bool    // no VM at all (vm_uuid=none)
}

// Updates exports the running VMs' RRDs (and the host's) as xport rows,
// the VMs' legend entries prefixed "vm:<uuid>:", the host's
// "host:<uuid>:".
func (s *Store) Updates(q UpdatesQuery) (rrd.Updates, error) {
	s.mu.Lock()
	var dbs []rrd.Prefixed
	if q.Host {
		dbs = append(dbs, rrd.Prefixed{Prefix: "host:" + s.hostUUID + ":", DB: s.host})
	}
	ids := make([]string, 0, len(s.vms))
	for id := range s.vms {
		if !q.NoVMs && (q.VM == "" || q.VM == id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		dbs = append(dbs, rrd.Prefixed{Prefix: "vm:" + id + ":", DB: s.vms[id]})
	}
	s.mu.Unlock()
	if len(dbs) == 0 {
		// Nothing runs: an empty export, as xapi gives for an idle host
		// asked without host=true.
		return rrd.Updates{Step: int64(Step / time.Second)}, nil
	}
	return rrd.Export(dbs, q.Start, q.Interval, q.CF)
}

// ------------------------------------------------------------ data sources

// Data source names follow xapi's, which clients (Xen Orchestra's stats,
// monitoring scripts) look for by name.

func vmValues(smp domain.VMSample) []rrd.Value {
	st := smp.Stats
	vals := make([]rrd.Value, 0, 2+len(st.VCPUTime)+2*len(st.Disks)+2*len(st.NICs))
	for i, c := range st.VCPUTime {
		vals = append(vals, rrd.Value{Source: rrd.Source{Name: fmt.Sprintf("cpu%d", i), Kind: rrd.Derive, Min: 0, Max: 1,
			Units: "(fraction)", Description: fmt.Sprintf("CPU%d usage", i)}, V: c.Seconds()})
	}
	vals = append(vals, rrd.Value{Source: rrd.Source{Name: "memory", Kind: rrd.Gauge, Min: 0, Max: math.Inf(1),
		Units: "B", Description: "Memory currently allocated to the VM"}, V: float64(st.MemoryActual)})
	if smp.MemoryTarget > 0 {
		vals = append(vals, rrd.Value{Source: rrd.Source{Name: "memory_target", Kind: rrd.Gauge, Min: 0, Max: math.Inf(1),
			Units: "B", Description: "Target of the VM's balloon driver"}, V: float64(smp.MemoryTarget)})
	}
	for _, key := range sortedKeys(st.Disks) {
		name := smp.DiskNames[key]
		if name == "" {
			name = key
		}
		c := st.Disks[key]
		vals = append(vals,
			rrd.Value{Source: rrd.Source{Name: "vbd_" + name + "_read", Kind: rrd.Derive, Min: 0, Max: math.Inf(1),
				Units: "B/s", Description: "Reads from device " + name + " in bytes per second"}, V: float64(c.ReadBytes)},
			rrd.Value{Source: rrd.Source{Name: "vbd_" + name + "_write", Kind: rrd.Derive, Min: 0, Max: math.Inf(1),
				Units: "B/s", Description: "Writes to device " + name + " in bytes per second"}, V: float64(c.WriteBytes)})
	}
	for _, key := range sortedKeys(st.NICs) {
		c := st.NICs[key]
		vals = append(vals,
			rrd.Value{Source: rrd.Source{Name: "vif_" + key + "_rx", Kind: rrd.Derive, Min: 0, Max: math.Inf(1),
				Units: "B/s", Description: "Bytes per second received on VIF " + key}, V: float64(c.ReadBytes)},
			rrd.Value{Source: rrd.Source{Name: "vif_" + key + "_tx", Kind: rrd.Derive, Min: 0, Max: math.Inf(1),
				Units: "B/s", Description: "Bytes per second sent on VIF " + key}, V: float64(c.WriteBytes)})
	}
	return vals
}

func hostValues(smp domain.HostSample, load float64) []rrd.Value {
	return []rrd.Value{
		{Source: rrd.Source{Name: "cpu_avg", Kind: rrd.Gauge, Min: 0, Max: 1, Units: "(fraction)",
			Description: "Average physical CPU usage by the guests"}, V: smp.CPUAvg},
		{Source: rrd.Source{Name: "memory_total_kib", Kind: rrd.Gauge, Min: 0, Max: math.Inf(1), Units: "KiB",
			Description: "Total amount of memory of the host"}, V: kib(smp.MemoryTotal)},
		{Source: rrd.Source{Name: "memory_free_kib", Kind: rrd.Gauge, Min: 0, Max: math.Inf(1), Units: "KiB",
			Description: "Memory of the host free for guests"}, V: kib(smp.MemoryFree)},
		{Source: rrd.Source{Name: "loadavg", Kind: rrd.Gauge, Min: 0, Max: math.Inf(1), Units: "(fraction)",
			Description: "Load average of the control domain"}, V: load},
	}
}

func kib(b int64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return float64(b) / 1024
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// loadAvg reads the one-minute load average of the machine xenithd runs
// on (the control domain); NaN where there is none.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	var v float64
	if _, err := fmt.Sscan(string(b), &v); err != nil {
		return math.NaN()
	}
	return v
}
