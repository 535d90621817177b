package sim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/ext4"
)

// The serial console of a simulated guest.
//
// Every simulated guest has one serial console (vt100) that speaks the
// protocol of Xenith's test guest (scripts/guest/init.sh), so that one
// scenario drives sim, qemu and xen guests alike: the guest prints
// XENITH-* lines as it boots, finds disks (it reads the MARKER file of
// ext4 disks), changes devices, ticks and powers off, and obeys "xcmd ..."
// lines typed into it. The console has no socket of its own: xenithd
// proxies it (the console's location is xenithd's /console URL, reached
// with HTTP CONNECT as xapi's consoles are) through AttachConsole. So a
// host of thousands of simulated guests holds no listener or goroutine
// per guest: output is kept (up to consoleUnread bytes) until a client
// comes, and the once-a-second ticks are only produced while a client
// watches (those of an unwatched guest would be lost in a full console
// ring on real hardware anyway).

const (
	// consoleUnread bounds the output kept for the first client; older
	// lines are dropped.
	consoleUnread = 64 << 10
	// consoleLag bounds what a client may fall behind; a client further
	// behind loses the oldest output.
	consoleLag = 1 << 20
	// consoleLine bounds a typed line; consoleQueue the lines the guest
	// has not read yet.
	consoleLine  = 4 << 10
	consoleQueue = 64
	// consolePoll is how often a watched guest that does not run is
	// looked at again (paused, asleep, not booted yet).
	consolePoll = 200 * time.Millisecond
	// maxTickBurst bounds the ticks printed at once.
	maxTickBurst = 10
	// pingTries is how many one-second tries "xcmd ping" makes.
	pingTries = 20
)

var (
	_ domain.ConsoleDriver   = (*Driver)(nil)
	_ domain.ConsoleAttacher = (*Driver)(nil)
)

// Consoles returns the guest's serial console. Its Location is empty: the
// manager records xenithd's console URL, and clients reach it through
// AttachConsole.
func (d *Driver) Consoles(ctx context.Context, uuid string) ([]domain.Console, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.getLocked(opConsole, uuid); err != nil {
		return nil, err
	}
	return []domain.Console{{Protocol: "vt100", Other: map[string]string{"sim": "serial"}}}, nil
}

// AttachConsole connects a client to the domain's serial console: reads
// return what the guest prints (first whatever it printed while nobody
// watched), writes are typed into it. Reads end with io.EOF when the
// domain is gone (after its last output); Close detaches.
func (d *Driver) AttachConsole(ctx context.Context, uuid, protocol string) (io.ReadWriteCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if protocol != "vt100" {
		return nil, fmt.Errorf("sim: domain %s has no %q console: %w", uuid, protocol, ErrInvalid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	x, err := d.getLocked(opConsole, uuid)
	if err != nil {
		return nil, err
	}
	s := d.serialOf(x)
	c := &consoleConn{s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.out, s.unread = s.unread, nil
	s.clients[c] = struct{}{}
	if !s.running {
		// Ticks nobody watched are not printed: the first is the next.
		x.nextTick = max(x.nextTick, d.ticksDue(x))
		s.running = true
		go s.run()
	}
	return c, nil
}

// serial is one domain's console. Its mutex is a leaf: taken under d.mu,
// never the other way round.
type serial struct {
	d    *Driver
	uuid string

	mu      sync.Mutex
	cond    *sync.Cond
	unread  []byte // output no client has seen (no client attached)
	clients map[*consoleConn]struct{}
	input   []string // typed lines the guest has not read
	closed  bool     // the domain is gone
	running bool     // run's goroutine is live
	wake    chan struct{}
}

func (d *Driver) serialOf(x *dom) *serial {
	if x.con == nil {
		s := &serial{d: d, uuid: x.rec.Spec.UUID, clients: map[*consoleConn]struct{}{}, wake: make(chan struct{}, 1)}
		s.cond = sync.NewCond(&s.mu)
		x.con = s
	}
	return x.con
}

// say prints a line on the domain's console.
func (d *Driver) say(x *dom, format string, a ...any) {
	line := fmt.Appendf(nil, format, a...)
	d.serialOf(x).write(append(line, '\r', '\n'))
}

func (s *serial) write(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.clients) == 0 {
		s.unread = appendBounded(s.unread, b, consoleUnread)
		return
	}
	for c := range s.clients {
		c.out = appendBounded(c.out, b, consoleLag)
	}
	s.cond.Broadcast()
}

// appendBounded appends b, then drops whole lines from the front while
// buf is longer than limit.
func appendBounded(buf, b []byte, limit int) []byte {
	buf = append(buf, b...)
	for len(buf) > limit {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 || i+1 >= len(buf) {
			return buf[len(buf)-limit:]
		}
		buf = buf[i+1:]
	}
	return buf
}

// close ends the console: clients read what is left, then io.EOF.
func (s *serial) close() {
	s.mu.Lock()
	s.closed = true
	s.unread = nil
	s.cond.Broadcast()
	s.mu.Unlock()
	s.poke()
}

func (s *serial) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// consoleConn is one attached client.
type consoleConn struct {
	s       *serial
	out     []byte // printed, not yet read by this client (s.mu)
	partial []byte // typed, no newline yet
	gone    bool   // closed by the client (s.mu)
}

func (c *consoleConn) Read(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(c.out) == 0 && !c.gone && !s.closed {
		s.cond.Wait()
	}
	if len(c.out) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil // let a large backlog go
	}
	return n, nil
}

// Write types p into the console. Complete lines wait for the guest to
// read them (it reads once it has booted and while it runs).
func (c *consoleConn) Write(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone || s.closed {
		return 0, io.ErrClosedPipe
	}
	for _, b := range p {
		switch b {
		case '\n', '\r':
			if len(c.partial) > 0 && len(s.input) < consoleQueue {
				s.input = append(s.input, string(c.partial))
			}
			c.partial = c.partial[:0]
		default:
			if len(c.partial) < consoleLine {
				c.partial = append(c.partial, b)
			}
		}
	}
	if len(s.input) > 0 {
		defer s.poke()
	}
	return len(p), nil
}

func (c *consoleConn) Close() error {
	s := c.s
	s.mu.Lock()
	c.gone = true
	delete(s.clients, c)
	s.cond.Broadcast()
	s.mu.Unlock()
	s.poke()
	return nil
}

// run is the guest's side of a watched console: it ticks and reads typed
// lines. It ends when the last client leaves or the domain is gone.
func (s *serial) run() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.wake:
		case <-s.d.closedCh:
			s.mu.Lock()
			s.running = false
			s.mu.Unlock()
			return
		}
		cmds, wait, ok := s.d.consoleStep(s)
		for _, c := range cmds {
			s.d.command(s.uuid, c)
		}
		if !ok {
			return
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// consoleStep prints the tick that is due and takes the typed lines a
// running, booted guest reads (echoing them, as its tty does). It says
// when to look again, or !ok when nobody watches any more.
func (d *Driver) consoleStep(s *serial) (cmds []string, wait time.Duration, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := d.doms[s.uuid]
	s.mu.Lock()
	if x == nil || x.con != s || s.closed || len(s.clients) == 0 || d.closed {
		s.running = false
		s.mu.Unlock()
		return nil, 0, false
	}
	var typed []string
	if x.awake() && x.bootLogged {
		typed, s.input = s.input, nil
	}
	s.mu.Unlock()
	if !x.awake() {
		return nil, consolePoll, true
	}
	if !x.bootLogged { // advance prints the boot lines at BootTime
		return nil, max(d.opts.BootTime-x.uptime(), time.Millisecond), true
	}
	for _, line := range typed {
		d.say(x, "%s", line)
		if f := strings.Fields(line); len(f) > 1 && f[0] == "xcmd" {
			cmds = append(cmds, line)
		}
	}
	// Every tick since the last one printed (a watched guest's are all
	// seen; a few at once after the goroutine was late).
	up := x.uptime()
	for i := 0; i < maxTickBurst && x.nextTick < d.ticksDue(x); i++ {
		d.say(x, "XENITH-TICK %d up=%s", x.nextTick, seconds(d.tickAt(x.nextTick)))
		x.nextTick++
	}
	x.nextTick = max(x.nextTick, d.ticksDue(x)) // a longer backlog is skipped
	return cmds, max(d.tickAt(x.nextTick)-up, time.Millisecond), true
}

// tickAt is the guest uptime at which tick n is due.
func (d *Driver) tickAt(n int) time.Duration {
	return d.opts.BootTime + time.Duration(n)*d.opts.TickInterval
}

// ticksDue counts the ticks a booted guest has come to since it booted.
func (d *Driver) ticksDue(x *dom) int {
	up := x.uptime()
	if !x.bootLogged || up < d.opts.BootTime {
		return 0
	}
	return int((up-d.opts.BootTime)/d.opts.TickInterval) + 1
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }

// ---- What the guest prints on its own (called under d.mu) ----

// guestProgress prints the boot lines the guest's clock has reached:
// XENITH-GUEST-UP when it starts, the rest once it has booted.
func (d *Driver) guestProgress(x *dom) {
	if !x.upLogged {
		x.upLogged = true
		d.say(x, "XENITH-GUEST-UP uptime=%s", seconds(x.uptime()))
	}
	if x.bootLogged || x.uptime() < d.opts.BootTime {
		return
	}
	x.bootLogged = true
	d.say(x, "XENITH-MODULES uptime=%s", seconds(x.uptime()))
	for _, arg := range strings.Fields(x.rec.Spec.Args) {
		if addr, ok := strings.CutPrefix(arg, "xenith.ip="); ok {
			d.ifup(x, "eth0", addr)
		}
	}
	d.devicesChanged(x)
}

// guestBooting forgets what the guest printed in its last life.
func (x *dom) guestBooting() {
	x.life++
	x.upLogged, x.bootLogged, x.nextTick = false, false, 0
	x.devs, x.blk, x.probed = "", nil, nil
	x.rec.Addrs = nil
}

// guestResumed sets what a guest that already ran has printed (after a
// resume or a restart of xenithd): it does not boot again.
func (d *Driver) guestResumed(x *dom) {
	up := x.uptime()
	x.upLogged = up > 0
	x.bootLogged = up >= d.opts.BootTime && x.upLogged
	if x.bootLogged {
		x.devs = d.devsLine(x)
		x.probed = map[string]bool{}
		for dev, name := range x.blk {
			if !isCD(x, dev) {
				x.probed[name] = true
			}
		}
	}
}

// devicesChanged prints XENITH-DEVS when the devices the booted guest
// sees changed, and XENITH-DISK for each new ext4 disk.
func (d *Driver) devicesChanged(x *dom) {
	if !x.bootLogged {
		return
	}
	line := d.devsLine(x)
	if line == x.devs {
		return
	}
	x.devs = line
	d.say(x, "XENITH-DEVS %s", line)
	if x.probed == nil {
		x.probed = map[string]bool{}
	}
	var disks []domain.Disk
	names := map[string]string{}
	for _, dk := range sortedDisks(x.rec.Spec.Disks) {
		name := x.blk[dk.Device]
		if dk.CD || x.probed[name] {
			continue
		}
		x.probed[name] = true
		disks = append(disks, dk)
		names[dk.Device] = name
	}
	if len(disks) == 0 {
		return
	}
	// The disks are read without the driver's lock (a slow file system
	// must not stall every domain); the lines follow if the guest still
	// runs the same life.
	life := x.life
	go func() {
		var lines []string
		for _, dk := range disks {
			if marker, ok := probeDisk(dk); ok {
				lines = append(lines, "XENITH-DISK "+names[dk.Device]+" "+marker)
			}
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.doms[x.rec.Spec.UUID] == x && x.life == life {
			for _, l := range lines {
				d.say(x, "%s", l)
			}
		}
	}()
}

// devsLine is the guest's view of its devices, as the test guest prints
// it: "blk=[vda sr0 ] net=[eth0 lo ] cpu=[0-1]". It names new disks
// (vda, vdb... the lowest free letter, as Linux does; CD drives sr0...).
func (d *Driver) devsLine(x *dom) string {
	if x.blk == nil {
		x.blk = map[string]string{}
	}
	present := map[string]bool{}
	for _, dk := range x.rec.Spec.Disks {
		present[dk.Device] = true
	}
	for dev, name := range x.blk {
		if !present[dev] {
			delete(x.blk, dev)
			delete(x.probed, name)
		}
	}
	used := map[string]bool{}
	for _, n := range x.blk {
		used[n] = true
	}
	for _, dk := range sortedDisks(x.rec.Spec.Disks) {
		if _, ok := x.blk[dk.Device]; ok {
			continue
		}
		prefix := "vd"
		if dk.CD {
			prefix = "sr"
		}
		for i := 0; ; i++ {
			name := prefix + strconv.Itoa(i)
			if !dk.CD {
				name = prefix + diskLetters(i)
			}
			if !used[name] {
				x.blk[dk.Device], used[name] = name, true
				break
			}
		}
	}
	blk := slices.Sorted(func(yield func(string) bool) {
		for _, n := range x.blk {
			if !yield(n) {
				return
			}
		}
	})
	net := append(nicNames(x), "lo")
	slices.Sort(net)
	cpu := "0"
	if n := x.rec.Spec.VCPUs; n > 1 {
		cpu = "0-" + strconv.Itoa(n-1)
	}
	var b strings.Builder
	b.WriteString("blk=[")
	for _, n := range blk {
		b.WriteString(n + " ")
	}
	b.WriteString("] net=[")
	for _, n := range net {
		b.WriteString(n + " ")
	}
	b.WriteString("] cpu=[" + cpu + "]")
	return b.String()
}

// diskLetters is Linux's disk suffix for index i: a..z, aa...
func diskLetters(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return s
}

func sortedDisks(disks []domain.Disk) []domain.Disk {
	s := slices.Clone(disks)
	slices.SortStableFunc(s, func(a, b domain.Disk) int { return cmpDevice(a.Device, b.Device) })
	return s
}

func isCD(x *dom, dev string) bool {
	return slices.ContainsFunc(x.rec.Spec.Disks, func(d domain.Disk) bool { return d.Device == dev && d.CD })
}

// nicNames are the guest's names of its NICs: eth0... in VIF device order.
func nicNames(x *dom) []string {
	names := make([]string, len(x.rec.Spec.NICs))
	for i := range names {
		names[i] = "eth" + strconv.Itoa(i)
	}
	return names
}

// nicByName is the NIC the guest calls name.
func nicByName(x *dom, name string) (domain.NIC, bool) {
	nics := slices.Clone(x.rec.Spec.NICs)
	slices.SortFunc(nics, func(a, b domain.NIC) int { return cmpDevice(a.Device, b.Device) })
	i, err := strconv.Atoi(strings.TrimPrefix(name, "eth"))
	if !strings.HasPrefix(name, "eth") || err != nil || i < 0 || i >= len(nics) {
		return domain.NIC{}, false
	}
	return nics[i], true
}

// probeDisk does what the test guest does with a disk: mount it as ext4
// and read its MARKER file. Only raw images can be read this way.
func probeDisk(dk domain.Disk) (string, bool) {
	if dk.Path == "" || (dk.Format != "" && dk.Format != "raw") {
		return "", false
	}
	f, err := os.Open(dk.Path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if _, err := ext4.Label(f); err != nil {
		return "", false // not ext4: the guest's mount fails, it says nothing
	}
	b, err := ext4.ReadRootFile(f, "MARKER", 4096)
	if err != nil {
		return "", true // mounted, no MARKER: cat prints nothing
	}
	return strings.TrimRight(string(b), "\n"), true
}

// ifup gives the guest's NIC an address, as "xcmd ifup" does.
func (d *Driver) ifup(x *dom, dev, addr string) {
	if _, ok := nicByName(x, dev); !ok {
		d.say(x, "XENITH-NET-FAIL %s %s", dev, addr)
		return
	}
	if _, err := netip.ParsePrefix(addr); err != nil {
		d.say(x, "XENITH-NET-FAIL %s %s", dev, addr)
		return
	}
	if x.rec.Addrs == nil {
		x.rec.Addrs = map[string]string{}
	}
	x.rec.Addrs[dev] = addr
	d.say(x, "XENITH-NET %s %s", dev, addr)
}

// ---- Typed commands (not under d.mu) ----

// command carries out one "xcmd" line the guest read.
func (d *Driver) command(uuid, line string) {
	f := strings.Fields(line)
	what, args := f[1], f[2:]
	say := func(format string, a ...any) {
		d.mu.Lock()
		if x := d.doms[uuid]; x != nil {
			d.say(x, format, a...)
		}
		d.mu.Unlock()
	}
	switch what {
	case "hang":
		if d.Hang(uuid, true) == nil {
			say("XENITH-HUNG")
		}
	case "reboot":
		say("XENITH-REBOOTING")
		_ = d.GuestReboot(uuid)
	case "poweroff":
		say("XENITH-POWEROFF")
		_ = d.GuestShutdown(uuid)
	case "panic":
		say("XENITH-PANIC")
		_ = d.Crash(uuid)
	case "ifup":
		if len(args) < 2 {
			say("XENITH-NET-FAIL %s", strings.Join(args, " "))
			return
		}
		_ = d.change(context.Background(), "ifup", uuid, func(x *dom) error {
			d.ifup(x, args[0], args[1])
			return nil
		})
	case "ping":
		if len(args) < 1 {
			say("XENITH-PING-FAIL")
			return
		}
		go d.ping(uuid, args[0])
	case "readcd":
		say("XENITH-CD %s", d.readCD(uuid))
	default:
		say("XENITH-UNKNOWN %s", what)
	}
}

// ping succeeds when a running guest on the same bridge has the address,
// and the pinging guest has an address in its subnet on that bridge.
func (d *Driver) ping(uuid, target string) {
	ip, err := netip.ParseAddr(target)
	for try := 0; try < pingTries; try++ {
		d.mu.Lock()
		x := d.doms[uuid]
		if x == nil || d.closed {
			d.mu.Unlock()
			return
		}
		if err == nil && d.reachableLocked(x, ip) {
			d.say(x, "XENITH-PING-OK %s", target)
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		select {
		case <-time.After(time.Second):
		case <-d.closedCh:
			return
		}
	}
	d.mu.Lock()
	if x := d.doms[uuid]; x != nil {
		d.say(x, "XENITH-PING-FAIL %s", target)
	}
	d.mu.Unlock()
}

func (d *Driver) reachableLocked(from *dom, ip netip.Addr) bool {
	if !from.awake() {
		return false
	}
	for dev, addr := range from.rec.Addrs {
		src, _ := netip.ParsePrefix(addr)
		nic, ok := nicByName(from, dev)
		if !ok || !src.Contains(ip) {
			continue
		}
		for _, y := range d.doms {
			if !y.awake() {
				continue
			}
			for ydev, yaddr := range y.rec.Addrs {
				p, _ := netip.ParsePrefix(yaddr)
				ynic, ok := nicByName(y, ydev)
				if ok && p.Addr() == ip && ynic.Bridge == nic.Bridge {
					return true
				}
			}
		}
	}
	return false
}

// readCD is what "xcmd readcd" prints: the first bytes of the first CD
// drive's medium (letters, digits and dashes), or "none".
func (d *Driver) readCD(uuid string) string {
	d.mu.Lock()
	var path string
	if x := d.doms[uuid]; x != nil {
		for _, dk := range sortedDisks(x.rec.Spec.Disks) {
			if dk.CD {
				path = dk.Path
				break
			}
		}
	}
	d.mu.Unlock()
	if path == "" {
		return "none"
	}
	f, err := os.Open(path)
	if err != nil {
		return "none"
	}
	defer f.Close()
	buf := make([]byte, 24)
	n, _ := io.ReadFull(f, buf)
	out := bytes.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, buf[:n])
	if len(out) == 0 {
		return "none"
	}
	return string(out)
}
