package sim

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// Guest load and live statistics: the simulator's domain.StatsDriver.
//
// Each guest runs a Load: how busy each online vCPU is and how many bytes
// per second each disk and NIC moves. The counters grow at those rates on
// Options.Now while the guest runs (the domain is Running and not in ACPI
// S3), and stand still otherwise. Like CPUTime they are kept as what had
// accrued at record.CPUSince plus the rates times the time since; whatever
// changes a rate (the load, the state, the online vCPUs, the devices) first
// folds the accrual up to now, so no change rewrites history and a sample
// depends only on the clock, never on how often Stats is called.

var _ domain.StatsDriver = (*Driver)(nil)

// Load is what a simulated guest keeps busy. The byte rates apply to each
// device: every disk and every NIC moves that much. Empty CD drives move
// nothing, and read-only disks and CD drives write nothing.
type Load struct {
	// CPU is the busy fraction of each online vCPU, 0..1.
	CPU float64 `json:"cpu"`
	// DiskReadBps and DiskWriteBps are bytes per second each disk reads
	// (into the guest) and writes.
	DiskReadBps  float64 `json:"disk_read_bps"`
	DiskWriteBps float64 `json:"disk_write_bps"`
	// NetRxBps and NetTxBps are bytes per second each NIC receives (into
	// the guest) and sends.
	NetRxBps float64 `json:"net_rx_bps"`
	NetTxBps float64 `json:"net_tx_bps"`
}

// DefaultCPULoad is the CPU fraction of a guest nobody set a load for: an
// idle guest, whose timer ticks and daemons keep each vCPU about 2% busy.
// Graphs show a live guest rather than a flat zero, and nothing looks like
// a runaway VM. Its disks and NICs are quiet.
const DefaultCPULoad = 0.02

// MaxRate bounds the byte rates of a Load (16 GiB/s, beyond any disk or
// 100 Gb/s NIC), so a counter takes 17 years to reach the int64 limit
// (where it then stays).
const MaxRate = 1 << 34

// maxVCPUs bounds per-vCPU accounting: beyond any Xen guest, and it keeps a
// hand-edited state file from making the driver allocate without bound.
const maxVCPUs = 4096

// ioCount is a device's cumulative bytes, as persisted.
type ioCount struct {
	Read  int64 `json:"read"`
	Write int64 `json:"write"`
}

// check reports the first field out of range (NaN and infinities too).
func (l Load) check() error {
	if !(l.CPU >= 0 && l.CPU <= 1) {
		return fmt.Errorf("cpu %g not within 0..1", l.CPU)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"disk read rate", l.DiskReadBps}, {"disk write rate", l.DiskWriteBps},
		{"network receive rate", l.NetRxBps}, {"network send rate", l.NetTxBps},
	} {
		if !(r.v >= 0 && r.v <= MaxRate) {
			return fmt.Errorf("%s %g not within 0..%d bytes/s", r.name, r.v, int64(MaxRate))
		}
	}
	return nil
}

func loadOf(rec *record) Load {
	if rec.Load == nil {
		return Load{CPU: DefaultCPULoad}
	}
	return *rec.Load
}

// Load returns the load a domain's guest runs (a simulator extra).
func (d *Driver) Load(uuid string) (Load, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Load{}, ErrClosed
	}
	x, ok := d.doms[uuid]
	if !ok {
		return Load{}, noDomain(uuid)
	}
	return loadOf(&x.rec), nil
}

// SetLoad sets the load of a running or paused domain's guest (a
// simulator extra, like Hang). Counters keep what they accrued at the old
// load. The load is kept across reboots, restarts of the driver and
// suspend/resume. A field out of range is ErrInvalid.
func (d *Driver) SetLoad(uuid string, l Load) error {
	return d.ChangeLoad(uuid, func(cur *Load) { *cur = l })
}

// ChangeLoad applies edit to the current load of a running or paused
// domain's guest, under the driver's lock: callers changing different
// fields at once all take effect.
func (d *Driver) ChangeLoad(uuid string, edit func(*Load)) error {
	return d.change(context.Background(), "set the load of", uuid, func(x *dom) error {
		if err := wantState(x, "set the load of", domain.Running, domain.Paused); err != nil {
			return err
		}
		l := loadOf(&x.rec)
		edit(&l)
		if err := l.check(); err != nil {
			return fmt.Errorf("sim: load of %s: %v: %w", uuid, err, ErrInvalid)
		}
		d.foldClocks(x)
		x.rec.Load = &l // replaced, never changed in place: suspend images share it
		return nil
	})
}

// Stats reports a domain's counters at Options.Now: CPU time (as Info's)
// and that of each online vCPU, its memory target, and the bytes moved by
// each disk (by Disk.Device, the VBD userdevice; empty CD drives are left
// out) and each NIC (by NIC.Device). A device plugged later starts from
// zero. Counters are cumulative: they carry on through reboots and restart
// from zero only in a new domain (Create, Resume). A vCPU taken offline
// keeps its time in CPUTime, as in Xen, but is not listed in VCPUTime.
func (d *Driver) Stats(ctx context.Context, uuid string) (domain.Stats, error) {
	if err := ctx.Err(); err != nil {
		return domain.Stats{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	x, err := d.getLocked(opStats, uuid)
	if err != nil {
		return domain.Stats{}, err
	}
	now := d.now()
	n := onlineVCPUs(&x.rec)
	st := domain.Stats{
		Time:         now,
		CPUTime:      d.cpuTimeAt(x, now),
		VCPUTime:     d.vcpuTimesAt(x, now)[:n:n],
		MemoryActual: x.rec.Spec.MemoryTarget,
		Disks:        map[string]domain.IOCounters{},
		NICs:         map[string]domain.IOCounters{},
	}
	for dev, c := range d.diskIOAt(x, now) {
		st.Disks[dev] = domain.IOCounters{ReadBytes: c.Read, WriteBytes: c.Write}
	}
	for dev, c := range d.nicIOAt(x, now) {
		st.NICs[dev] = domain.IOCounters{ReadBytes: c.Read, WriteBytes: c.Write}
	}
	return st, nil
}

// ---- Accrual (called under d.mu) ----

func onlineVCPUs(rec *record) int { return min(max(rec.Spec.VCPUs, 0), maxVCPUs) }

// sinceFold is how long the load has run since the counters were folded.
func sinceFold(x *dom, now time.Time) time.Duration {
	if x.rec.CPUSince.IsZero() {
		return 0
	}
	return max(now.Sub(x.rec.CPUSince), 0)
}

// busy is the CPU time one vCPU spends in el at fraction f, rounded to the
// nanosecond (exact for the fractions 0 and 1).
func busy(el time.Duration, f float64) time.Duration {
	switch f {
	case 0:
		return 0
	case 1:
		return el
	}
	return time.Duration(math.Round(float64(el) * f))
}

// moved is the bytes a device moves in el at rate bytes per second.
func moved(el time.Duration, rate float64) int64 {
	b := math.Round(el.Seconds() * rate)
	if b >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(b)
}

// addSat adds without wrapping: a counter that reached the limit stays there.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (d *Driver) cpuTimeAt(x *dom, now time.Time) time.Duration {
	per := busy(sinceFold(x, now), loadOf(&x.rec).CPU)
	return x.rec.CPUTime + per*time.Duration(onlineVCPUs(&x.rec))
}

// vcpuTimesAt is the time of every vCPU that has been online (a fresh
// slice).
func (d *Driver) vcpuTimesAt(x *dom, now time.Time) []time.Duration {
	n := onlineVCPUs(&x.rec)
	v := make([]time.Duration, max(len(x.rec.VCPUTime), n))
	copy(v, x.rec.VCPUTime)
	per := busy(sinceFold(x, now), loadOf(&x.rec).CPU)
	for i := range n {
		v[i] += per
	}
	return v
}

// readOnly: the guest cannot write the disk.
func readOnly(dk domain.Disk) bool { return dk.ReadOnly || dk.CD }

// emptyCD: a CD drive without a medium moves nothing and is not reported.
func emptyCD(dk domain.Disk) bool { return dk.CD && dk.Path == "" }

func (d *Driver) diskIOAt(x *dom, now time.Time) map[string]ioCount {
	el, l := sinceFold(x, now), loadOf(&x.rec)
	out := map[string]ioCount{}
	for _, dk := range x.rec.Spec.Disks {
		if emptyCD(dk) {
			continue
		}
		c := x.rec.DiskIO[dk.Device]
		c.Read = addSat(c.Read, moved(el, l.DiskReadBps))
		if !readOnly(dk) {
			c.Write = addSat(c.Write, moved(el, l.DiskWriteBps))
		}
		out[dk.Device] = c
	}
	return out
}

func (d *Driver) nicIOAt(x *dom, now time.Time) map[string]ioCount {
	el, l := sinceFold(x, now), loadOf(&x.rec)
	out := map[string]ioCount{}
	for _, n := range x.rec.Spec.NICs {
		c := x.rec.NICIO[n.Device]
		c.Read = addSat(c.Read, moved(el, l.NetRxBps))
		c.Write = addSat(c.Write, moved(el, l.NetTxBps))
		out[n.Device] = c
	}
	return out
}

// foldCounters accumulates the load's counters up to now and restarts
// their accrual from now (for foldClocks: the guest runs).
func (d *Driver) foldCounters(x *dom, now time.Time) {
	x.rec.VCPUTime = d.vcpuTimesAt(x, now)
	x.rec.CPUTime = d.cpuTimeAt(x, now)
	x.rec.DiskIO = d.diskIOAt(x, now)
	x.rec.NICIO = d.nicIOAt(x, now)
	x.rec.CPUSince = now
}

// dropGoneDevices forgets the counters of devices the domain no longer has
// (or CD drives emptied), so one plugged again starts from zero. Call it
// after a change of devices, which foldClocks preceded.
func dropGoneDevices(x *dom) {
	maps.DeleteFunc(x.rec.DiskIO, func(dev string, _ ioCount) bool {
		return !slices.ContainsFunc(x.rec.Spec.Disks, func(dk domain.Disk) bool { return dk.Device == dev && !emptyCD(dk) })
	})
	maps.DeleteFunc(x.rec.NICIO, func(dev string, _ ioCount) bool {
		return !slices.ContainsFunc(x.rec.Spec.NICs, func(n domain.NIC) bool { return n.Device == dev })
	})
}

// spreadCPUTime gives a record from before per-vCPU accounting (CPU time
// but no vCPU times) vCPU times summing to its CPU time.
func spreadCPUTime(rec *record) {
	n := onlineVCPUs(rec)
	if len(rec.VCPUTime) > 0 || rec.CPUTime <= 0 || n == 0 {
		return
	}
	rec.VCPUTime = make([]time.Duration, n)
	each, rest := rec.CPUTime/time.Duration(n), rec.CPUTime%time.Duration(n)
	for i := range rec.VCPUTime {
		rec.VCPUTime[i] = each
		if time.Duration(i) < rest {
			rec.VCPUTime[i]++
		}
	}
}
