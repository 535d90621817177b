package sim

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// Pending clean shutdown requests (record.Pending).
const (
	pendingHalt   = "halt"
	pendingReboot = "reboot"
)

// record is a domain as persisted (state file and suspend image).
type record struct {
	// Spec holds the domain's current configuration: MemoryTarget, VCPUs,
	// Disks and NICs follow the setters and hotplugs.
	Spec      domain.Spec `json:"spec"`
	Domid     int         `json:"domid"`
	State     jsonState   `json:"state"`
	StartTime time.Time   `json:"start_time"`

	// CPU time: CPUTime accumulated, plus (Now - CPUSince) * the load's
	// CPU fraction * VCPUs while the guest runs (CPUSince is zero
	// otherwise). Measured on Options.Now. CPUSince is also where the
	// other counters of the load (stats.go) accrue from.
	CPUTime  time.Duration `json:"cpu_time_ns"`
	CPUSince time.Time     `json:"cpu_since,omitzero"`
	// Load is what the guest runs; nil means the default (stats.go).
	Load *Load `json:"load,omitempty"`
	// The counters of the load accumulated up to CPUSince: per vCPU (every
	// vCPU that has been online; they sum to CPUTime) and per disk and NIC
	// device present.
	VCPUTime []time.Duration    `json:"vcpu_time_ns,omitempty"`
	DiskIO   map[string]ioCount `json:"disk_io,omitempty"`
	NICIO    map[string]ioCount `json:"nic_io,omitempty"`

	// Guest clock ("uptime" since the last boot): Uptime accumulated, plus
	// real time since UpSince while running. Boot, the agent report and
	// clean shutdowns are thresholds on this clock, so a paused guest does
	// not progress.
	Uptime  time.Duration `json:"uptime_ns"`
	UpSince time.Time     `json:"up_since,omitzero"`

	// AgentDone: the guest agent has reported since the last boot (or
	// since the NICs last changed).
	AgentDone bool `json:"agent_reported"`
	// AgentAt is the uptime at which the agent is due; 0 means
	// BootTime+AgentDelay (a fresh boot). A resumed guest's agent reports
	// AgentDelay after it runs again.
	AgentAt time.Duration `json:"agent_at_ns,omitempty"`
	// Hung guests ignore clean shutdown and reboot requests.
	Hung bool `json:"hung,omitempty"`
	// Pending is a clean shutdown request the guest has not yet obeyed:
	// "halt" or "reboot"; PendingAt is the uptime at which the guest saw
	// it (the request, or the end of a hang).
	Pending   string        `json:"pending,omitempty"`
	PendingAt time.Duration `json:"pending_at_ns,omitempty"`

	// S3: the guest is in ACPI S3 (suspended to RAM). The domain keeps
	// its state (running or paused) and its memory, but its clocks stand
	// still: no CPU time, no boot progress, no agent reports, no obeying
	// of clean shutdown requests until it wakes. See s3.go.
	S3 bool `json:"s3,omitempty"`
	// Shadow is the HVM shadow memory multiplier; 0 means 1 (the
	// default, already counted in Overhead). See s3.go.
	Shadow float64 `json:"shadow_multiplier,omitempty"`
	// Addrs are the addresses the guest gave its NICs ("eth0" ->
	// "10.0.0.1/24"), from xenith.ip= at boot or "xcmd ifup".
	Addrs map[string]string `json:"addrs,omitempty"`
}

// jsonState stores a domain.State by name.
type jsonState domain.State

func (s jsonState) MarshalText() ([]byte, error) { return []byte(domain.State(s).String()), nil }

func (s *jsonState) UnmarshalText(b []byte) error {
	for _, st := range []domain.State{domain.Running, domain.Paused, domain.Halted, domain.Crashed} {
		if string(b) == st.String() {
			*s = jsonState(st)
			return nil
		}
	}
	return fmt.Errorf("unknown domain state %q", b)
}

// request is a clean Shutdown call waiting for the guest.
type request struct {
	reboot  bool
	done    chan struct{}
	err     error
	waiters int
}

// dom is a live domain.
type dom struct {
	rec   record
	timer *time.Timer
	seq   uint64   // identifies the current timer
	req   *request // waiters of rec.Pending, nil if nobody waits

	// The serial console (console.go) and what the guest has printed in
	// this life; not persisted (guestResumed rebuilds it).
	con                  *serial
	life                 int // counts the guest's boots (reboots in place)
	upLogged, bootLogged bool
	nextTick             int
	devs                 string            // the last XENITH-DEVS
	blk                  map[string]string // disk device -> guest name
	probed               map[string]bool   // guest disk names read this life
}

func (x *dom) state() domain.State { return domain.State(x.rec.State) }

// awake: the guest runs (its clocks tick): the domain is running and the
// guest is not in ACPI S3.
func (x *dom) awake() bool             { return x.state() == domain.Running && !x.rec.S3 }
func (x *dom) setState(s domain.State) { x.rec.State = jsonState(s) }

func (x *dom) stopTimer() {
	if x.timer != nil {
		x.timer.Stop()
		x.timer = nil
	}
	x.seq++
}

// uptime reads the guest clock.
func (x *dom) uptime() time.Duration {
	u := x.rec.Uptime
	if !x.rec.UpSince.IsZero() {
		u += max(time.Since(x.rec.UpSince), 0)
	}
	return u
}

func (d *Driver) cpuTime(x *dom) time.Duration { return d.cpuTimeAt(x, d.now()) }

// startRunning sets the domain running and starts its clocks (unless the
// guest sleeps in ACPI S3: they start when it wakes).
func (d *Driver) startRunning(x *dom) {
	x.setState(domain.Running)
	if x.rec.S3 {
		return
	}
	x.rec.UpSince = time.Now()
	x.rec.CPUSince = d.now()
}

// stopRunning folds the clocks and moves the domain to state s.
func (d *Driver) stopRunning(x *dom, s domain.State) {
	d.foldClocks(x)
	x.rec.UpSince = time.Time{}
	x.rec.CPUSince = time.Time{}
	x.setState(s)
	if s == domain.Halted || s == domain.Crashed {
		x.rec.S3 = false // the guest is dead, not asleep
	}
	x.stopTimer()
}

// foldClocks accumulates the running clocks (uptime, CPU time and the
// load's other counters), restarting them from now.
func (d *Driver) foldClocks(x *dom) {
	if !x.awake() {
		return
	}
	x.rec.Uptime = x.uptime()
	x.rec.UpSince = time.Now()
	d.foldCounters(x, d.now())
}

// rebootInPlace restarts the guest with the same domid: the guest clock
// restarts, the agent reports anew, a hang ends. Start and CPU time are
// the domain's and carry on. The domain ends up running (and awake: a
// reset ends ACPI S3).
func (d *Driver) rebootInPlace(x *dom) {
	wasAwake := x.awake()
	x.rec.S3 = false
	if wasAwake {
		d.foldClocks(x)
	} else {
		d.startRunning(x)
	}
	x.rec.Uptime = 0
	x.rec.UpSince = time.Now()
	x.rec.AgentDone = false
	x.rec.AgentAt = 0
	x.rec.Hung = false
	x.guestBooting()
}

// finishRequest ends a pending clean shutdown, telling its waiters err.
func finishRequest(x *dom, err error) {
	if x.req != nil {
		x.req.err = err
		close(x.req.done)
		x.req = nil
	}
	x.rec.Pending = ""
	x.rec.PendingAt = 0
}

// interrupt fails a pending request because of what happened instead.
func interrupt(x *dom, what string) {
	if x.rec.Pending == "" {
		return
	}
	finishRequest(x, fmt.Errorf("sim: domain %s: %s during a clean %s: %w", x.rec.Spec.UUID, what, x.rec.Pending, ErrInterrupted))
}

func (d *Driver) remove(x *dom) {
	x.stopTimer()
	if x.con != nil {
		x.con.close()
	}
	delete(d.doms, x.rec.Spec.UUID)
}

func (d *Driver) agentDue(x *dom) time.Duration {
	if x.rec.AgentAt > 0 {
		return x.rec.AgentAt
	}
	return d.opts.BootTime + d.opts.AgentDelay
}

func (d *Driver) shutdownDue(x *dom) time.Duration {
	return max(d.opts.BootTime, x.rec.PendingAt) + d.opts.ShutdownTime
}

// advance lets a running guest act on whatever its clock has reached (the
// agent report, a pending clean shutdown) and schedules the next step. The
// domain may be gone afterwards.
func (d *Driver) advance(x *dom) {
	for x.awake() {
		d.guestProgress(x)
		up := x.uptime()
		if !x.rec.AgentDone && up >= d.agentDue(x) {
			x.rec.AgentDone = true
			d.emit(domain.Event{UUID: x.rec.Spec.UUID, Kind: domain.GuestAgent, Agent: d.agentReport(x)})
			continue
		}
		if x.rec.Pending != "" && !x.rec.Hung && up >= d.shutdownDue(x) {
			if x.rec.Pending == pendingHalt {
				d.say(x, "XENITH-ACPI-POWEROFF") // the test guest's ACPI handler
				finishRequest(x, nil)
				d.remove(x)
				return
			}
			d.say(x, "XENITH-CTRL-ALT-DEL")
			finishRequest(x, nil)
			d.rebootInPlace(x)
			continue
		}
		break
	}
	d.reschedule(x)
}

// reschedule arms the timer for the guest's next step, if any.
func (d *Driver) reschedule(x *dom) {
	x.stopTimer()
	if d.closed || !x.awake() {
		return
	}
	next, ok := time.Duration(0), false
	if !x.rec.AgentDone {
		next, ok = d.agentDue(x), true
	}
	if !x.bootLogged {
		if due := d.opts.BootTime; !ok || due < next {
			next, ok = due, true
		}
	}
	if x.rec.Pending != "" && !x.rec.Hung {
		if due := d.shutdownDue(x); !ok || due < next {
			next, ok = due, true
		}
	}
	if !ok {
		return
	}
	wait := max(next-x.uptime(), 0)
	seq := x.seq
	x.timer = time.AfterFunc(wait, func() { d.fire(x, seq) })
}

func (d *Driver) fire(x *dom, seq uint64) {
	d.mu.Lock()
	if d.closed || x.seq != seq || d.doms[x.rec.Spec.UUID] != x {
		d.mu.Unlock()
		return
	}
	x.timer = nil
	d.advance(x)
	gen := d.markLocked()
	d.mu.Unlock()
	// A failed write is retried by the next change (or Close), which
	// writes every change made so far.
	_ = d.flush(gen)
}

// ---- The guest agent ----

// pvDrivers is the version the simulated PV drivers report (9.4.0).
var pvDrivers = map[string]string{"major": "9", "minor": "4", "micro": "0", "build": "sim"}

type osInfo struct {
	key                           string // matched in the lower-cased name
	name, distro, major, minor, k string // k: uname -r, empty for Windows
}

var knownOS = []osInfo{
	{"debian", "Debian GNU/Linux 12 (bookworm)", "debian", "12", "5", "6.1.0-18-amd64"},
	{"ubuntu", "Ubuntu 22.04.4 LTS", "ubuntu", "22", "04", "5.15.0-105-generic"},
	{"centos", "CentOS Stream 9", "centos", "9", "0", "5.14.0-427.el9.x86_64"},
	{"rocky", "Rocky Linux 9.3 (Blue Onyx)", "rocky", "9", "3", "5.14.0-362.8.1.el9_3.x86_64"},
	{"windows", "Microsoft Windows Server 2022 Datacenter|C:\\Windows|\\Device\\Harddisk0\\Partition2", "windows", "10", "0", ""},
}

// OSVersion is what the guest agent of a VM with that name and platform
// reports as os_version: Platform["sim-os"] if set is the OS name, else the
// OS is guessed from the VM name (debian, ubuntu, centos, rocky, windows or
// a "win" prefix), else generic "Linux".
func OSVersion(name string, platform map[string]string) map[string]string {
	simOS := platform["sim-os"]
	probe := strings.ToLower(simOS)
	if simOS == "" {
		probe = strings.ToLower(name)
	}
	var hit *osInfo
	for i := range knownOS {
		if strings.Contains(probe, knownOS[i].key) {
			hit = &knownOS[i]
			break
		}
	}
	if hit == nil && strings.HasPrefix(probe, "win") {
		hit = &knownOS[len(knownOS)-1]
	}
	var v map[string]string
	switch {
	case hit != nil && hit.distro == "windows":
		v = map[string]string{"name": hit.name, "distro": hit.distro, "major": hit.major, "minor": hit.minor, "spmajor": "0", "spminor": "0"}
	case hit != nil:
		v = map[string]string{"name": hit.name, "distro": hit.distro, "major": hit.major, "minor": hit.minor, "uname": hit.k}
	default:
		v = map[string]string{"name": "Linux", "distro": "linux", "uname": "6.1.0"}
		if simOS != "" {
			first, _, _ := strings.Cut(probe, " ")
			v["distro"] = strings.TrimFunc(first, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') })
		}
	}
	if simOS != "" {
		v["name"] = simOS
	}
	return v
}

// GuestIPv4 is the address the simulated guest gives a NIC with that MAC:
// 10.B3.B4.B5 from the MAC's last three bytes (B5 kept within 1..254). A
// MAC that does not parse is hashed instead.
func GuestIPv4(mac string) string {
	var b [3]byte
	if hw, err := net.ParseMAC(mac); err == nil && len(hw) >= 3 {
		copy(b[:], hw[len(hw)-3:])
	} else {
		h := fnv.New32a()
		h.Write([]byte(strings.ToLower(mac)))
		s := h.Sum32()
		b = [3]byte{byte(s >> 16), byte(s >> 8), byte(s)}
	}
	last := min(max(b[2], 1), 254)
	return fmt.Sprintf("10.%d.%d.%d", b[0], b[1], last)
}

// GuestIPv6 is the link-local (EUI-64) address of a NIC with that MAC, ""
// if the MAC is not a 6-byte MAC.
func GuestIPv6(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return ""
	}
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = hw[0]^0x02, hw[1], hw[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = hw[3], hw[4], hw[5]
	return netip.AddrFrom16(a).String()
}

// agentReport is what the guest agent of x says now.
func (d *Driver) agentReport(x *dom) *domain.AgentReport {
	s := &x.rec.Spec
	nets := map[string]string{}
	nics := slices.Clone(s.NICs)
	slices.SortFunc(nics, func(a, b domain.NIC) int { return cmpDevice(a.Device, b.Device) })
	for _, n := range nics {
		ip := GuestIPv4(n.MAC)
		nets[n.Device+"/ip"] = ip
		nets[n.Device+"/ipv4/0"] = ip
		if ip6 := GuestIPv6(n.MAC); ip6 != "" {
			nets[n.Device+"/ipv6/0"] = ip6
		}
	}
	return &domain.AgentReport{
		OSVersion: OSVersion(s.Name, s.Platform),
		Networks:  nets,
		PVDrivers: copyMap(pvDrivers),
		Disks:     map[string]string{},
		Other: map[string]string{
			"feature-shutdown": "1", "feature-poweroff": "1", "feature-reboot": "1",
			"feature-suspend": "1", "feature-balloon": "1", "feature-vcpu-hotplug": "1",
			"has-vendor-device": "0", "platform-feature-multiprocessor-suspend": "1",
		},
		MemoryFree:    s.MemoryTarget / 2,
		Live:          true,
		CanUseHotplug: true,
	}
}

// cmpDevice orders device names numerically when both are numbers.
func cmpDevice(a, b string) int {
	ai, ea := strconv.Atoi(a)
	bi, eb := strconv.Atoi(b)
	if ea == nil && eb == nil {
		return ai - bi
	}
	return strings.Compare(a, b)
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
