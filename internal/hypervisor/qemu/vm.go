package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hypervisor/qemu/qmp"
)

// record is a domain as kept in <dir>/domain.json.
type record struct {
	UUID      string            `json:"uuid"`
	Domid     int               `json:"domid"`
	Pid       int               `json:"pid"`
	StartTime time.Time         `json:"start_time"`
	Accel     string            `json:"accel"`
	Spec      domain.Spec       `json:"spec"` // the devices it has now
	Taps      map[string]string `json:"taps,omitempty"`
	Args      []string          `json:"args"`
}

// vm is one domain: a QEMU process and its QMP connection.
type vm struct {
	d    *Driver
	uuid string
	dir  string

	mu       sync.Mutex
	rec      record
	mon      *qmp.Monitor
	status   string // QMP run state ("running", "paused", "shutdown", ...); "dead"
	dead     bool   // the process is gone
	stopping bool   // xenithd is making it exit (destroy, suspend)
	released bool   // the driver closed: not watching any more
	waiters  []*waiter
	// lastReset is when the guest last reset itself: Linux tries several
	// reset methods in a row and QEMU reports each one.
	lastReset time.Time
}

// resetCoalesce is how close guest resets must be to count as one reboot.
const resetCoalesce = time.Second

// waiter waits for a QMP event (or the process's death: a nil event).
type waiter struct {
	match   func(qmp.Event) bool
	consume bool // the event is not turned into a domain event
	ch      chan *qmp.Event
}

func (x *vm) path(name string) string { return filepath.Join(x.dir, name) }

// wait registers a waiter; call it before the command that causes the event.
func (x *vm) wait(consume bool, match func(qmp.Event) bool) *waiter {
	w := &waiter{match: match, consume: consume, ch: make(chan *qmp.Event, 1)}
	x.mu.Lock()
	x.waiters = append(x.waiters, w)
	x.mu.Unlock()
	return w
}

func (x *vm) unwait(w *waiter) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, o := range x.waiters {
		if o == w {
			x.waiters = append(x.waiters[:i], x.waiters[i+1:]...)
			return
		}
	}
}

// await blocks until w fires, the process dies (ErrDead) or ctx ends.
func (x *vm) await(ctx context.Context, w *waiter) (*qmp.Event, error) {
	defer x.unwait(w)
	select {
	case ev := <-w.ch:
		if ev == nil {
			return nil, ErrDead
		}
		return ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type eventData struct {
	Guest  bool   `json:"guest"`
	Reason string `json:"reason"`
	Device string `json:"device"`
	Path   string `json:"path"`
	Status string `json:"status"`
}

func (e eventData) of(ev qmp.Event) eventData {
	_ = json.Unmarshal(ev.Data, &e)
	return e
}

// onEvent runs on the QMP reader goroutine: it must not block.
func (x *vm) onEvent(ev qmp.Event) {
	data := eventData{}.of(ev)
	x.mu.Lock()
	defer x.mu.Unlock()
	switch ev.Name {
	case "STOP":
		if x.status == "running" {
			x.status = "paused"
		}
	case "RESUME":
		x.status = "running"
	case "SHUTDOWN":
		if data.Guest {
			x.status = "shutdown"
		}
	case "GUEST_PANICKED":
		x.status = "guest-panicked"
	}
	if ev.Name == "RESET" && data.Guest && ev.Time().Sub(x.lastReset) < resetCoalesce {
		return // the same reboot again
	}
	if ev.Name == "RESET" && data.Guest {
		x.lastReset = ev.Time()
	}
	consumed := false
	kept := x.waiters[:0]
	for _, w := range x.waiters {
		if w.match(ev) {
			e := ev
			w.ch <- &e
			consumed = consumed || w.consume
			continue
		}
		kept = append(kept, w)
	}
	x.waiters = kept
	if consumed || x.stopping || x.released {
		return
	}
	switch {
	case ev.Name == "SHUTDOWN" && data.Guest:
		x.d.log.Info("guest powered off", "uuid", x.uuid, "reason", data.Reason)
		x.d.emit(domain.Event{UUID: x.uuid, Kind: domain.GuestShutdown})
	case ev.Name == "RESET" && data.Guest:
		x.d.log.Info("guest rebooted", "uuid", x.uuid, "reason", data.Reason)
		x.d.emit(domain.Event{UUID: x.uuid, Kind: domain.GuestReboot})
	case ev.Name == "GUEST_PANICKED":
		x.d.log.Warn("guest panicked", "uuid", x.uuid)
		x.d.emit(domain.Event{UUID: x.uuid, Kind: domain.GuestCrash})
	}
}

// supervise notices the end of the QMP connection: QEMU exited.
func (x *vm) supervise(mon *qmp.Monitor) {
	<-mon.Done()
	x.mu.Lock()
	if x.mon != mon || x.released {
		x.mu.Unlock()
		return
	}
	x.mon = nil
	if alive(x.rec.Pid, x.uuid) && !x.stopping {
		// The connection broke but QEMU lives on: connect again.
		x.mu.Unlock()
		x.d.log.Warn("QMP connection lost; reconnecting", "uuid", x.uuid, "err", mon.Err())
		go x.reconnect()
		return
	}
	x.dead, x.status = true, "dead"
	for _, w := range x.waiters {
		w.ch <- nil
	}
	x.waiters = nil
	stopping := x.stopping
	x.mu.Unlock()
	if stopping {
		return
	}
	x.d.log.Warn("QEMU exited on its own: domain crashed", "uuid", x.uuid, "pid", x.rec.Pid)
	x.d.emit(domain.Event{UUID: x.uuid, Kind: domain.GuestCrash})
}

// connect dials QEMU's QMP socket and starts supervising it.
func (x *vm) connect(ctx context.Context) error {
	mon, err := qmp.Dial(ctx, x.path(qmpSock), x.onEvent)
	if err != nil {
		return err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := mon.Execute(ctx, "query-status", nil, &st); err != nil {
		mon.Close()
		return err
	}
	x.mu.Lock()
	if x.released {
		x.mu.Unlock()
		mon.Close()
		return ErrClosed
	}
	x.mon, x.status, x.dead = mon, st.Status, false
	x.mu.Unlock()
	go x.supervise(mon)
	return nil
}

// reconnect retries connect while the process lives.
func (x *vm) reconnect() {
	for {
		x.mu.Lock()
		done := x.released || x.mon != nil || x.stopping
		x.mu.Unlock()
		if done {
			return
		}
		if !alive(x.rec.Pid, x.uuid) {
			x.mu.Lock()
			x.dead, x.status = true, "dead"
			x.mu.Unlock()
			x.d.emit(domain.Event{UUID: x.uuid, Kind: domain.GuestCrash})
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := x.connect(ctx)
		cancel()
		if err == nil {
			x.d.log.Info("QMP reconnected", "uuid", x.uuid)
			return
		}
		time.Sleep(time.Second)
	}
}

// monitor returns the live QMP connection.
func (x *vm) monitor() (*qmp.Monitor, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dead {
		return nil, fmt.Errorf("domain %s: %w", x.uuid, ErrDead)
	}
	if x.mon == nil {
		return nil, fmt.Errorf("domain %s: not connected to QEMU's QMP socket", x.uuid)
	}
	return x.mon, nil
}

func (x *vm) exec(ctx context.Context, cmd string, args, out any) error {
	mon, err := x.monitor()
	if err != nil {
		return err
	}
	return mon.Execute(ctx, cmd, args, out)
}

func (x *vm) release() {
	x.mu.Lock()
	x.released = true
	mon := x.mon
	x.mu.Unlock()
	if mon != nil {
		mon.Close()
	}
}

func (x *vm) save() error {
	x.mu.Lock()
	b, err := json.MarshalIndent(x.rec, "", "  ")
	x.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := x.path(recordFile + ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, x.path(recordFile))
}

// alive tells whether pid is a live QEMU of this domain (not a zombie, not
// a recycled pid).
func alive(pid int, uuid string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) {
		if s := stat[i+2]; s == 'Z' || s == 'X' {
			return false
		}
	}
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && bytes.Contains(cmd, []byte("-uuid\x00"+uuid+"\x00"))
}

// terminate makes QEMU exit (quit over QMP, else SIGKILL) and waits until
// the process is gone; then the domain's runtime files are removed (the
// serial log stays).
func (x *vm) terminate(ctx context.Context) error {
	x.mu.Lock()
	x.stopping = true
	mon, pid := x.mon, x.rec.Pid
	x.mu.Unlock()
	if mon != nil && alive(pid, x.uuid) {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_ = mon.Execute(qctx, "quit", nil, nil)
		select {
		case <-mon.Done():
		case <-qctx.Done():
		}
		cancel()
	}
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid, x.uuid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid, x.uuid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		deadline = time.Now().Add(5 * time.Second)
		for alive(pid, x.uuid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("qemu: pid %d of domain %s survives SIGKILL", pid, x.uuid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if mon != nil {
		mon.Close()
	}
	x.mu.Lock()
	x.dead, x.status = true, "dead"
	x.mu.Unlock()
	for _, f := range []string{recordFile, qmpSock, serialSock, vncSock, pidFile} {
		_ = os.Remove(x.path(f))
	}
	return nil
}

// start launches QEMU for spec (paused, -S) and connects to it. extra are
// files passed to QEMU from fd 3 on; incoming says the first is a suspend
// image to load.
func (d *Driver) start(ctx context.Context, spec domain.Spec, domid int, incoming *os.File) (*vm, error) {
	x := &vm{d: d, uuid: spec.UUID, dir: d.domDir(spec.UUID)}
	if err := os.MkdirAll(x.dir, 0o700); err != nil {
		return nil, err
	}
	if len(x.path(vncSock)) > 100 {
		return nil, fmt.Errorf("qemu: state directory %s too long for unix sockets", x.dir)
	}
	for _, f := range []string{recordFile, qmpSock, serialSock, vncSock, pidFile} {
		_ = os.Remove(x.path(f))
	}
	if fi, err := os.Stat(x.path(serialLog)); err == nil && fi.Size() > 1<<20 {
		_ = os.Truncate(x.path(serialLog), 0)
	}
	l := launch{Binary: d.opts.Binary, Accel: d.accel, Dir: x.dir, Spec: spec, TapFDs: map[string]int{}}
	var files []*os.File
	if incoming != nil {
		l.Incoming = true
		files = append(files, incoming)
	}
	taps := map[string]string{}
	defer func() {
		for _, f := range files[min(len(files), btoi(incoming != nil)):] {
			f.Close()
		}
	}()
	for _, n := range spec.NICs {
		if !bridgeUsable(n.Bridge) {
			continue
		}
		name := tapName(domid, n.Device)
		f, err := openTap(name, n.Bridge, n.MTU)
		if err != nil {
			d.log.Warn("tap on bridge failed; user-mode networking instead", "uuid", spec.UUID, "bridge", n.Bridge, "err", err)
			continue
		}
		files = append(files, f)
		l.TapFDs[n.Device] = 2 + len(files)
		taps[n.Device] = name
	}
	args, err := l.args()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, d.opts.Binary, args...)
	cmd.ExtraFiles = files
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		// A daemon forked before the failure must not be left behind.
		if pid, perr := readPid(x.path(pidFile)); perr == nil && alive(pid, spec.UUID) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil, fmt.Errorf("starting QEMU: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	pid, err := readPid(x.path(pidFile))
	if err != nil {
		return nil, fmt.Errorf("QEMU started but left no pidfile: %w", err)
	}
	x.rec = record{UUID: spec.UUID, Domid: domid, Pid: pid, StartTime: time.Now().UTC(), Accel: d.accel, Spec: spec, Taps: taps, Args: args}
	if err := x.connect(ctx); err != nil {
		_ = x.terminate(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("connecting to QEMU's QMP socket: %w", err)
	}
	if err := x.save(); err != nil {
		_ = x.terminate(context.WithoutCancel(ctx))
		return nil, err
	}
	return x, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// adoptAll re-adopts the domains of StateDir after a restart.
func (d *Driver) adoptAll(ctx context.Context) error {
	entries, err := os.ReadDir(d.opts.StateDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(d.opts.StateDir, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, recordFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var rec record
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil || rec.UUID != e.Name() {
			d.log.Error("unreadable domain record; ignored", "dir", dir, "err", err)
			continue
		}
		x := &vm{d: d, uuid: rec.UUID, dir: dir, rec: rec}
		d.doms[rec.UUID] = x
		if !alive(rec.Pid, rec.UUID) {
			x.dead, x.status = true, "dead"
			d.log.Warn("QEMU of a domain died while xenithd was away", "uuid", rec.UUID, "pid", rec.Pid)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = x.connect(cctx)
		cancel()
		if err != nil {
			d.log.Warn("cannot connect to a running QEMU yet; retrying", "uuid", rec.UUID, "err", err)
			x.status = "running"
			go x.reconnect()
			continue
		}
		d.log.Info("adopted QEMU", "uuid", rec.UUID, "pid", rec.Pid, "domid", rec.Domid, "status", x.status)
	}
	return nil
}

// nextDomid hands out domain ids, persisted in StateDir/next-domid.
func (d *Driver) nextDomid() (int, error) {
	p := filepath.Join(d.opts.StateDir, "next-domid")
	n := 1
	if b, err := os.ReadFile(p); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > 0 {
			n = v
		}
	}
	for _, x := range d.doms {
		n = max(n, x.rec.Domid+1)
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(n+1)), 0o600); err != nil {
		return 0, err
	}
	return n, nil
}
