package domain

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// MetricsInterval is how often the manager samples the running domains
// (a StatsDriver) and the host.
var MetricsInterval = 5 * time.Second

// StatsSink keeps the samples the manager takes (rrdd records them in
// round-robin databases). Calls come from one goroutine.
type StatsSink interface {
	RecordVM(VMSample)
	RecordHost(HostSample)
	// VMStopped: the VM no longer runs here.
	VMStopped(uuid string)
}

// VMSample is one sample of a running VM.
type VMSample struct {
	UUID         string
	Stats        Stats
	MemoryTarget int64
	// DiskNames names Stats.Disks' keys (VBD userdevice) by the VBD's
	// device ("xvda"), as statistics are named.
	DiskNames map[string]string
}

// HostSample is one sample of the host.
type HostSample struct {
	Time time.Time
	// CPUAvg is the share of the host's CPUs the guests used since the
	// last sample (NaN when unknown).
	CPUAvg                  float64
	MemoryTotal, MemoryFree int64
}

type sample struct {
	st Stats
	at time.Time
}

// metricsLoop samples every running domain and writes VM_metrics
// (memory_actual, VCPUs_utilisation), VBD_metrics and VIF_metrics
// (io_read_kbs, io_write_kbs), all in one transaction per round, and
// hands the samples, with one of the host, to the StatsSink.
func (m *Manager) metricsLoop(ctx context.Context) {
	sd, _ := m.drv.(StatsDriver)
	prev := map[xenapi.Ref]sample{}
	uuids := map[xenapi.Ref]string{}
	t := time.NewTicker(MetricsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		type upd struct {
			ref       xenapi.Ref
			cur, last sample
			hasLast   bool
		}
		var ups []upd
		seen := map[xenapi.Ref]bool{}
		var cpuBusy time.Duration // guests' CPU time since the last round
		var cpuSpan time.Duration
		for _, row := range m.st.All(api.ClassVM) {
			vm := row.Rec.(*api.VM)
			if sd == nil || vm.IsControlDomain || (vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused) {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := sd.Stats(sctx, vm.UUID)
			cancel()
			if err != nil {
				continue
			}
			seen[row.Ref] = true
			uuids[row.Ref] = vm.UUID
			last, ok := prev[row.Ref]
			cur := sample{st: st, at: st.Time}
			prev[row.Ref] = cur
			ups = append(ups, upd{ref: row.Ref, cur: cur, last: last, hasLast: ok})
			if ok && cur.at.After(last.at) && st.CPUTime >= last.st.CPUTime {
				cpuBusy += st.CPUTime - last.st.CPUTime
				cpuSpan = max(cpuSpan, cur.at.Sub(last.at))
			}
			if m.samples != nil {
				m.samples.RecordVM(VMSample{UUID: vm.UUID, Stats: st, MemoryTarget: vm.MemoryTarget, DiskNames: m.diskNames(vm)})
			}
		}
		for r := range prev {
			if !seen[r] {
				delete(prev, r)
				if m.samples != nil {
					m.samples.VMStopped(uuids[r])
				}
				delete(uuids, r)
			}
		}
		if m.samples != nil {
			m.sampleHost(cpuBusy, cpuSpan)
		}
		if len(ups) == 0 {
			continue
		}
		err := m.st.Update(ctx, func(tx *store.Tx) error {
			for _, u := range ups {
				if err := m.writeMetrics(tx, u.ref, u.cur, u.last, u.hasLast); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			m.log.Warn("recording metrics", "err", err)
		}
	}
}

// sampleHost hands the sink the host's memory, as host_metrics holds it
// (refreshed by hostMetricsLoop: asking the hypervisor every few seconds
// costs a process on Xen), and the guests' CPU use.
func (m *Manager) sampleHost(busy, span time.Duration) {
	smp := HostSample{Time: time.Now(), CPUAvg: math.NaN()}
	if cpus := m.hostCPUs.Load(); span > 0 && cpus > 0 {
		smp.CPUAvg = min(busy.Seconds()/span.Seconds()/float64(cpus), 1)
	}
	if row, err := m.st.Get(api.ClassHost, m.host); err == nil {
		if hm, err := m.st.Get(api.ClassHostMetrics, row.Rec.(*api.Host).Metrics); err == nil {
			smp.MemoryTotal, smp.MemoryFree = hm.Rec.(*api.HostMetrics).MemoryTotal, hm.Rec.(*api.HostMetrics).MemoryFree
		}
	}
	m.samples.RecordHost(smp)
}

func (m *Manager) diskNames(vm *api.VM) map[string]string {
	names := make(map[string]string, len(vm.VBDs))
	for _, r := range vm.VBDs {
		row, err := m.st.Get(api.ClassVBD, r)
		if err != nil {
			continue
		}
		vbd := row.Rec.(*api.VBD)
		if vbd.Device != "" {
			names[vbd.Userdevice] = vbd.Device
		}
	}
	return names
}

// writeMetrics records one VM's sample in its metrics objects, leaving
// alone those whose values did not move: a steady guest causes no events.
func (m *Manager) writeMetrics(tx *store.Tx, ref xenapi.Ref, cur, last sample, hasLast bool) error {
	r, err := tx.Get(api.ClassVM, ref)
	if err != nil {
		return nil // destroyed meanwhile
	}
	vm := r.(*api.VM)
	secs := cur.at.Sub(last.at).Seconds()
	rate := hasLast && secs > 0
	if row, err := tx.Get(api.ClassVMMetrics, vm.Metrics); err == nil {
		old := row.(*api.VMMetrics)
		var util xenapi.Map[int64, float64]
		if rate {
			for i, c := range cur.st.VCPUTime {
				u := 0.0
				if i < len(last.st.VCPUTime) {
					u = min(max((c-last.st.VCPUTime[i]).Seconds()/secs, 0), 1)
				}
				util = append(util, xenapi.Pair[int64, float64]{Key: int64(i), Value: round3(u)})
			}
		}
		if old.MemoryActual != cur.st.MemoryActual || (rate && !slices.Equal(old.VCPUsUtilisation, util)) {
			if err := tx.Modify(api.ClassVMMetrics, vm.Metrics, func(rec xenapi.Record) error {
				mt := rec.(*api.VMMetrics)
				mt.MemoryActual = cur.st.MemoryActual
				if rate {
					mt.VCPUsUtilisation = util
				}
				mt.LastUpdated = now()
				return nil
			}); err != nil {
				return err
			}
		}
	}
	if !rate {
		return nil
	}
	kbs := func(now, before int64) float64 { return round3(max(float64(now-before), 0) / 1024 / secs) }
	for _, vr := range vm.VBDs {
		rec, err := tx.Get(api.ClassVBD, vr)
		if err != nil {
			continue
		}
		vbd := rec.(*api.VBD)
		c, ok1 := cur.st.Disks[vbd.Userdevice]
		l, ok2 := last.st.Disks[vbd.Userdevice]
		if !ok1 || !ok2 {
			continue
		}
		if err := setIO(tx, api.ClassVBDMetrics, vbd.Metrics, kbs(c.ReadBytes, l.ReadBytes), kbs(c.WriteBytes, l.WriteBytes)); err != nil {
			return err
		}
	}
	for _, vr := range vm.VIFs {
		rec, err := tx.Get(api.ClassVIF, vr)
		if err != nil {
			continue
		}
		vif := rec.(*api.VIF)
		c, ok1 := cur.st.NICs[vif.Device]
		l, ok2 := last.st.NICs[vif.Device]
		if !ok1 || !ok2 {
			continue
		}
		if err := setIO(tx, api.ClassVIFMetrics, vif.Metrics, kbs(c.ReadBytes, l.ReadBytes), kbs(c.WriteBytes, l.WriteBytes)); err != nil {
			return err
		}
	}
	return nil
}

// setIO writes a VBD_metrics or VIF_metrics object's rates if they moved.
func setIO(tx *store.Tx, class *xenapi.Class, ref xenapi.Ref, read, write float64) error {
	row, err := tx.Get(class, ref)
	if err != nil {
		return nil
	}
	switch mt := row.(type) {
	case *api.VBDMetrics:
		if mt.IoReadKbs == read && mt.IoWriteKbs == write {
			return nil
		}
	case *api.VIFMetrics:
		if mt.IoReadKbs == read && mt.IoWriteKbs == write {
			return nil
		}
	}
	return tx.Modify(class, ref, func(rec xenapi.Record) error {
		switch mt := rec.(type) {
		case *api.VBDMetrics:
			mt.IoReadKbs, mt.IoWriteKbs, mt.LastUpdated = read, write, now()
		case *api.VIFMetrics:
			mt.IoReadKbs, mt.IoWriteKbs, mt.LastUpdated = read, write, now()
		}
		return nil
	})
}

// round3 keeps three decimals: jitter below that is not worth an event.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
