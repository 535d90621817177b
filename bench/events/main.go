// Command events measures event.from fan-out on a xenithd process: many
// parked event.from waiters (JSON-RPC, keep-alive HTTP connections, classes
// ["vm"], timeout 60 s), then one VM.set_name_label through another client;
// it reports the delivery latency from that call's acknowledgement to each
// waiter's answer, and the xenithd process's CPU while the waiters are
// parked (from /proc/PID/stat).
//
//	go run ./bench/events [-waiters 1000] [-sessions 10] [-rounds 5] [-idle 10s]
//
// Run it from the repository root: it builds cmd/xenithd into a temporary
// directory (unless -xenithd names a binary), fills a data directory with a
// few VMs through the bench fixture, starts xenithd on a loopback port and
// stops it at the end. Loopback only; bounded by -deadline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xenith/xenith/bench"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/wire"
)

const password = "pw"

func main() {
	waiters := flag.Int("waiters", 1000, "parked event.from calls")
	sessions := flag.Int("sessions", 10, "sessions the waiters share (xenithd keeps at most 500 per originator)")
	rounds := flag.Int("rounds", 5, "field changes, one at a time")
	idle := flag.Duration("idle", 10*time.Second, "CPU measurement window")
	vms := flag.Int("vms", 10, "VMs in the data directory")
	bin := flag.String("xenithd", "", "xenithd binary (default: go build ./cmd/xenithd)")
	deadline := flag.Duration("deadline", 3*time.Minute, "abort after this long")
	flag.Parse()
	if err := run(*waiters, *sessions, *rounds, *idle, *vms, *bin, *deadline); err != nil {
		fmt.Fprintln(os.Stderr, "events:", err)
		os.Exit(1)
	}
}

func run(nWaiters, nSessions, rounds int, idle time.Duration, vms int, bin string, deadline time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	tmp, err := os.MkdirTemp("", "xenith-events-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if bin == "" {
		bin = filepath.Join(tmp, "xenithd")
		b := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/xenithd")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/xenithd (run from the repository root): %w", err)
		}
	}

	// Data directory: inventory plus a few realistic VMs, via the fixture.
	data := filepath.Join(tmp, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	env, err := bench.NewEnv(ctx, bench.EnvOptions{Dir: data, Persistent: true})
	if err != nil {
		return err
	}
	refs, err := bench.AddVMs(ctx, env.Store, env.Infra, 0, vms, 100)
	env.Close()
	if err != nil {
		return err
	}
	vm := string(refs[0])

	port, err := freePort()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(tmp, "xenithd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	srv := exec.Command(bin, "--data", data, "--http", "127.0.0.1:"+port, "--https", "", "--socket", "none",
		"--root-password", password, "--sim-boot-time", "0", "--log-level", "warn")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return err
	}
	pid := srv.Process.Pid
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	url := "http://127.0.0.1:" + port

	// Writer: its own client and connection.
	wc := client.New(url, client.JSONRPC, &http.Client{Transport: &http.Transport{}})
	var writer *client.Session
	for start := time.Now(); ; {
		if writer, err = wc.Login(ctx, "root", password); err == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			return fmt.Errorf("xenithd did not come up: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	v, err := writer.Do(ctx, "event.from", wire.Array(wire.String("vm")), wire.String(""), wire.Float(0))
	if err != nil {
		return err
	}
	tv, _ := v.Field("token")
	token := tv.Str

	fmt.Printf("machine: %d CPUs, %s; %s\n", cpus(), cpuModel(), loadavg())
	fmt.Printf("xenithd pid %d on %s; %d waiters over %d sessions, classes [vm], timeout 60 s, JSON-RPC, keep-alive\n",
		pid, url, nWaiters, nSessions)

	// Baseline: xenithd CPU with nothing parked.
	base, err := cpuOver(pid, idle)
	if err != nil {
		return err
	}
	fmt.Printf("idle CPU, no waiters:      %5.2f%% of one core over %v\n", base, idle)

	// Sessions for the waiters, logged in through the ordinary client.
	wcl := client.New(url, client.JSONRPC, &http.Client{Transport: &http.Transport{}})
	sess := make([]*client.Session, nSessions)
	for i := range sess {
		if sess[i], err = wcl.Login(ctx, "root", password); err != nil {
			return err
		}
	}
	type answer struct {
		at     time.Time
		events int
		err    error
	}
	answers := make(chan answer, nWaiters*2)
	var parked atomic.Int64
	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	addr := strings.TrimPrefix(url, "http://")
	defer wcancel()
	for i := range nWaiters {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func(ref string, conn net.Conn) {
			defer wg.Done()
			defer conn.Close()
			go func() { <-wctx.Done(); conn.Close() }()
			w := newRawWaiter(conn, ref)
			tok := token
			for wctx.Err() == nil {
				parked.Add(1)
				next, events, err := w.eventFrom(tok)
				at := time.Now()
				parked.Add(-1)
				if wctx.Err() != nil {
					return
				}
				if err != nil {
					answers <- answer{at: at, err: err}
					return
				}
				tok = next
				if events {
					answers <- answer{at: at, events: 1}
				}
			}
		}(sess[i%nSessions].Ref, conn)
	}
	defer func() { wcancel(); wg.Wait() }()

	waitParked := func() error {
		for parked.Load() < int64(nWaiters) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The requests are written; give the server time to read them and
		// block in the hub.
		time.Sleep(time.Second)
		return nil
	}
	t0 := time.Now()
	if err := waitParked(); err != nil {
		return err
	}
	fmt.Printf("%d waiters parked in %v (including a 1 s settle)\n", nWaiters, time.Since(t0).Round(time.Millisecond))

	loaded, err := cpuOver(pid, idle)
	if err != nil {
		return err
	}
	verdict := "PASS"
	if loaded >= 2 {
		verdict = "FAIL"
	}
	fmt.Printf("idle CPU, %d waiters:    %5.2f%% of one core over %v (bar < 2%%): %s\n", nWaiters, loaded, idle, verdict)
	select {
	case a := <-answers:
		return fmt.Errorf("a waiter answered while idle (events %d, err %v)", a.events, a.err)
	default:
	}

	var all []time.Duration
	worstP99 := time.Duration(0)
	for r := range rounds {
		if err := waitParked(); err != nil {
			return err
		}
		srvBefore, _ := cpuTicks(pid)
		selfBefore := selfCPU()
		start := time.Now()
		if _, err := writer.Do(ctx, "VM.set_name_label", wire.String(vm), wire.String("round-"+strconv.Itoa(r))); err != nil {
			return err
		}
		ack := time.Now()
		lat := make([]time.Duration, 0, nWaiters)
		timeout := time.After(20 * time.Second)
		for len(lat) < nWaiters {
			select {
			case a := <-answers:
				if a.err != nil {
					return fmt.Errorf("waiter: %w", a.err)
				}
				lat = append(lat, a.at.Sub(start))
			case <-timeout:
				return fmt.Errorf("round %d: only %d of %d waiters answered in 20 s", r+1, len(lat), nWaiters)
			}
		}
		srvAfter, _ := cpuTicks(pid)
		selfUsed := selfCPU() - selfBefore
		slices.Sort(lat)
		p99 := pct(lat, 99)
		worstP99 = max(worstP99, p99)
		all = append(all, lat...)
		fmt.Printf("round %d: set_name_label RTT %v; delivery after the change was sent: min %v p50 %v p99 %v max %v (n=%d); "+
			"CPU in round: xenithd %dms, this client %dms\n",
			r+1, ms(ack.Sub(start)), ms(lat[0]), ms(pct(lat, 50)), ms(p99), ms(lat[len(lat)-1]), len(lat),
			(srvAfter-srvBefore)*10, selfUsed.Milliseconds())
	}
	slices.Sort(all)
	verdict = "PASS"
	if worstP99 >= 50*time.Millisecond {
		verdict = "FAIL"
	}
	fmt.Printf("all rounds: p50 %v p99 %v max %v (n=%d); worst round p99 %v (bar < 50 ms): %s\n",
		ms(pct(all, 50)), ms(pct(all, 99)), ms(all[len(all)-1]), len(all), ms(worstP99), verdict)
	return nil
}

// pct returns the p-th percentile (nearest rank) of sorted d.
func pct(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100
	return d[max(i-1, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// cpuOver returns pid's CPU use over window, in percent of one core.
func cpuOver(pid int, window time.Duration) (float64, error) {
	a, err := cpuTicks(pid)
	if err != nil {
		return 0, err
	}
	t := time.Now()
	time.Sleep(window)
	b, err := cpuTicks(pid)
	if err != nil {
		return 0, err
	}
	const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux
	return float64(b-a) / clkTck / time.Since(t).Seconds() * 100, nil
}

// cpuTicks reads utime+stime from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat fields")
	}
	return u + st, nil
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func cpus() int {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(raw), "processor\t:")
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return "load average " + strings.Join(f[:3], " ")
}
