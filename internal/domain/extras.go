package domain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// What the manager does with the optional driver capabilities (optional.go):
// console objects while a domain runs, live metrics, CD changes in place.

// consolesFor asks a ConsoleDriver for a domain's consoles; nil for
// drivers without consoles.
func (m *Manager) consolesFor(uuid string) []Console {
	cd, ok := m.drv.(ConsoleDriver)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := cd.Consoles(ctx, uuid)
	if err != nil {
		m.log.Warn("listing a domain's consoles", "uuid", uuid, "err", err)
		return nil
	}
	return cons
}

// replaceConsoles makes the VM's console objects be cons (inside tx).
// Only for ConsoleDrivers: others leave consoles alone.
func (m *Manager) replaceConsoles(tx *store.Tx, ref xenapi.Ref, cons []Console) error {
	if _, ok := m.drv.(ConsoleDriver); !ok {
		return nil
	}
	r, err := tx.Get(api.ClassVM, ref)
	if err != nil {
		return err
	}
	old := r.(*api.VM).Consoles
	if sameConsoles(tx, old, cons) {
		return nil
	}
	for _, c := range old {
		if tx.Exists(api.ClassConsole, c) {
			if err := tx.Delete(api.ClassConsole, c); err != nil {
				return err
			}
		}
	}
	for _, c := range cons {
		rec := api.NewConsole()
		rec.Protocol, rec.Location, rec.VM = api.ConsoleProtocol(c.Protocol), c.Location, ref
		if c.Location == "" {
			rec.UUID = uuid.NewString()
			rec.Location = m.consoleURL(rec.UUID)
		}
		rec.OtherConfig = xenapi.MapOf(c.Other)
		if _, err := tx.Create(rec); err != nil {
			return err
		}
	}
	return nil
}

func sameConsoles(tx *store.Tx, old []xenapi.Ref, cons []Console) bool {
	if len(old) != len(cons) {
		return false
	}
	have := map[[2]string]bool{}
	for _, r := range old {
		rec, err := tx.Get(api.ClassConsole, r)
		if err != nil {
			return false
		}
		c := rec.(*api.Console)
		loc := c.Location
		if strings.Contains(loc, ConsolePath+"?uuid="+c.UUID) {
			loc = "" // served by the proxy: its URL names the console itself
		}
		have[[2]string{string(c.Protocol), loc}] = true
	}
	for _, c := range cons {
		if !have[[2]string{c.Protocol, c.Location}] {
			return false
		}
	}
	return true
}

// syncConsoles records the domain's consoles for a VM adopted after a
// restart (a no-op when they are already right).
func (m *Manager) syncConsoles(ref xenapi.Ref, uuid string) {
	if _, ok := m.drv.(ConsoleDriver); !ok {
		return
	}
	cons := m.consolesFor(uuid)
	err := m.st.Update(context.Background(), func(tx *store.Tx) error { return m.replaceConsoles(tx, ref, cons) })
	if err != nil {
		m.log.Warn("recording consoles", "vm", ref, "err", err)
	}
}

// ConsolePath is the path of xenithd's console proxy, as xapi's: clients
// CONNECT (or GET) ConsolePath?uuid=CONSOLE_UUID with a session.
const ConsolePath = "/console"

// ErrNoConsole: the console cannot be reached (the driver serves none
// itself, or the domain is gone).
var ErrNoConsole = errors.New("console not available")

// AttachConsole connects to a VM's console that the driver serves itself
// (a console recorded with the proxy's URL).
func (m *Manager) AttachConsole(ctx context.Context, vmUUID, protocol string) (io.ReadWriteCloser, error) {
	ca, ok := m.drv.(ConsoleAttacher)
	if !ok {
		return nil, fmt.Errorf("driver %s: %w", m.drv.Name(), ErrNoConsole)
	}
	return ca.AttachConsole(ctx, vmUUID, protocol)
}

// MetricsInterval is how often the manager samples a StatsDriver.
var MetricsInterval = 5 * time.Second

type sample struct {
	st Stats
	at time.Time
}

// metricsLoop samples every running domain and writes VM_metrics
// (memory_actual, VCPUs_utilisation), VBD_metrics and VIF_metrics
// (io_read_kbs, io_write_kbs), all in one transaction per round.
func (m *Manager) metricsLoop(ctx context.Context, sd StatsDriver) {
	prev := map[xenapi.Ref]sample{}
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
		for _, row := range m.st.All(api.ClassVM) {
			vm := row.Rec.(*api.VM)
			if vm.IsControlDomain || (vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused) {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := sd.Stats(sctx, vm.UUID)
			cancel()
			if err != nil {
				continue
			}
			seen[row.Ref] = true
			last, ok := prev[row.Ref]
			cur := sample{st: st, at: st.Time}
			prev[row.Ref] = cur
			ups = append(ups, upd{ref: row.Ref, cur: cur, last: last, hasLast: ok})
		}
		for r := range prev {
			if !seen[r] {
				delete(prev, r)
			}
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

func (m *Manager) writeMetrics(tx *store.Tx, ref xenapi.Ref, cur, last sample, hasLast bool) error {
	r, err := tx.Get(api.ClassVM, ref)
	if err != nil {
		return nil // destroyed meanwhile
	}
	vm := r.(*api.VM)
	secs := cur.at.Sub(last.at).Seconds()
	rate := hasLast && secs > 0
	if tx.Exists(api.ClassVMMetrics, vm.Metrics) {
		if err := tx.Modify(api.ClassVMMetrics, vm.Metrics, func(rec xenapi.Record) error {
			mt := rec.(*api.VMMetrics)
			mt.MemoryActual = cur.st.MemoryActual
			if rate {
				var util xenapi.Map[int64, float64]
				for i, c := range cur.st.VCPUTime {
					u := 0.0
					if i < len(last.st.VCPUTime) {
						u = min(max((c-last.st.VCPUTime[i]).Seconds()/secs, 0), 1)
					}
					util = append(util, xenapi.Pair[int64, float64]{Key: int64(i), Value: u})
				}
				mt.VCPUsUtilisation = util
			}
			mt.LastUpdated = now()
			return nil
		}); err != nil {
			return err
		}
	}
	if !rate {
		return nil
	}
	kbs := func(now, before int64) float64 { return max(float64(now-before), 0) / 1024 / secs }
	for _, vr := range vm.VBDs {
		rec, err := tx.Get(api.ClassVBD, vr)
		if err != nil {
			continue
		}
		vbd := rec.(*api.VBD)
		c, ok1 := cur.st.Disks[vbd.Userdevice]
		l, ok2 := last.st.Disks[vbd.Userdevice]
		if !ok1 || !ok2 || !tx.Exists(api.ClassVBDMetrics, vbd.Metrics) {
			continue
		}
		if err := tx.Modify(api.ClassVBDMetrics, vbd.Metrics, func(rec xenapi.Record) error {
			mt := rec.(*api.VBDMetrics)
			mt.IoReadKbs, mt.IoWriteKbs, mt.LastUpdated = kbs(c.ReadBytes, l.ReadBytes), kbs(c.WriteBytes, l.WriteBytes), now()
			return nil
		}); err != nil {
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
		if !ok1 || !ok2 || !tx.Exists(api.ClassVIFMetrics, vif.Metrics) {
			continue
		}
		if err := tx.Modify(api.ClassVIFMetrics, vif.Metrics, func(rec xenapi.Record) error {
			mt := rec.(*api.VIFMetrics)
			mt.IoReadKbs, mt.IoWriteKbs, mt.LastUpdated = kbs(c.ReadBytes, l.ReadBytes), kbs(c.WriteBytes, l.WriteBytes), now()
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
