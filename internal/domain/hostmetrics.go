package domain

import (
	"context"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// HostMetricsInterval is how often the manager reads the host's memory from
// the hypervisor when no domain operation prompted it sooner.
var HostMetricsInterval = 30 * time.Second

// hostMetricsDelay gathers the prompts of a burst of operations (a
// hundred VMs started at once) into one read.
const hostMetricsDelay = time.Second

// hostChanged says a domain came, went or changed size: host_metrics
// memory_free is read again shortly.
func (m *Manager) hostChanged() {
	select {
	case m.hostPoke <- struct{}{}:
	default:
	}
}

// hostMetricsLoop keeps host_metrics memory_total and memory_free in step
// with the hypervisor (xapi refreshes them the same way), writing only
// when they moved, so an idle host writes nothing.
func (m *Manager) hostMetricsLoop(ctx context.Context) {
	t := time.NewTicker(HostMetricsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.hostPoke:
			select {
			case <-time.After(hostMetricsDelay):
			case <-ctx.Done():
				return
			}
		}
		if err := m.refreshHostMetrics(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reading the host's memory", "err", err)
		}
	}
}

func (m *Manager) refreshHostMetrics(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	h, err := m.drv.Host(hctx)
	cancel()
	if err != nil || h.TotalMemory <= 0 {
		return err
	}
	m.hostCPUs.Store(int64(h.CPUs))
	row, err := m.st.Get(api.ClassHost, m.host)
	if err != nil {
		return nil // no host record (tests without inventory)
	}
	ref := row.Rec.(*api.Host).Metrics
	if cur, err := m.st.Get(api.ClassHostMetrics, ref); err != nil {
		return nil
	} else if hm := cur.Rec.(*api.HostMetrics); hm.MemoryTotal == h.TotalMemory && hm.MemoryFree == h.FreeMemory {
		return nil
	}
	return m.st.Update(ctx, func(tx *store.Tx) error {
		if !tx.Exists(api.ClassHostMetrics, ref) {
			return nil
		}
		return tx.Modify(api.ClassHostMetrics, ref, func(r xenapi.Record) error {
			hm := r.(*api.HostMetrics)
			hm.MemoryTotal, hm.MemoryFree = h.TotalMemory, h.FreeMemory
			hm.Live, hm.LastUpdated = true, now()
			return nil
		})
	})
}
