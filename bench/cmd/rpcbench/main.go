// Command rpcbench measures bars 1 and 2 of BENCHMARKS.md with the server in
// its own process, in interleaved rounds, so that the noise of a shared
// machine hits the baseline and the server alike.
//
// It starts itself with -serve as a child process (a XenAPI server on a
// memory store with a session logged in, and the two bare net/http
// baselines), then:
//
//   - bar 1: in each round, loads each target (bare-xml, xmlrpc, bare-json,
//     jsonrpc) with -conns keep-alive connections for -round, the pairs in
//     alternating order; the ratio of a round is the protocol's req/s over
//     its baseline's in that round. Load comes from Go http.Clients (one
//     Transport each) or, with -wrk, from wrk and bench/wrk/post.lua.
//   - bar 2: with 10,000 VMs, times single VM.get_all_records calls,
//     alternating protocol and baseline, one call of each per round.
//
// Lines starting with "SUMMARY|" are for bench/run.sh.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/bench"
)

type config struct {
	Targets map[string]*bench.Target
}

func main() {
	var (
		serve   = flag.Bool("serve", false, "child mode: serve and print the targets as JSON, until stdin closes")
		call    = flag.String("call", "get_record", "with -serve: get_record or get_all_records")
		vms     = flag.Int("vms", 1, "with -serve: VMs in the store")
		bars    = flag.String("bars", "1,2", "which bars to measure")
		rounds  = flag.Int("rounds", 8, "bar 1: interleaved rounds")
		round   = flag.Duration("round", 2*time.Second, "bar 1: load time per target per round")
		warm    = flag.Duration("warm", 300*time.Millisecond, "bar 1: unmeasured load before each measurement")
		conns   = flag.Int("conns", 16, "bar 1: keep-alive connections")
		calls   = flag.Int("calls", 9, "bar 2: timed calls per target")
		bigVMs  = flag.Int("bigvms", 10000, "bar 2: VMs in the store")
		useWrk  = flag.Bool("wrk", false, "bar 1: generate load with wrk instead of Go clients")
		wrkPath = flag.String("wrk-script", "bench/wrk/post.lua", "bar 1: the wrk Lua script")
		wrkThr  = flag.Int("wrk-threads", 1, "bar 1: wrk threads")
	)
	flag.Parse()
	if *serve {
		if err := runServer(*call, *vms); err != nil {
			fmt.Fprintln(os.Stderr, "rpcbench -serve:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version())
	if strings.Contains(*bars, "1") {
		gen := fmt.Sprintf("Go http.Client x%d", *conns)
		if *useWrk {
			gen = fmt.Sprintf("wrk -t%d -c%d", *wrkThr, *conns)
		}
		if err := bar1(*rounds, *round, *warm, *conns, gen, *useWrk, *wrkPath, *wrkThr); err != nil {
			fmt.Fprintln(os.Stderr, "bar 1:", err)
			os.Exit(1)
		}
	}
	if strings.Contains(*bars, "2") {
		if err := bar2(*bigVMs, *calls); err != nil {
			fmt.Fprintln(os.Stderr, "bar 2:", err)
			os.Exit(1)
		}
	}
}

// runServer is the child: it serves until its stdin is closed.
func runServer(call string, vms int) error {
	c := bench.GetRecord
	if call == "get_all_records" {
		c = bench.GetAllRecords
	}
	r, err := bench.StartRPC(context.Background(), vms, c)
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := json.Marshal(config{Targets: r.Targets})
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", out)
	io.Copy(io.Discard, os.Stdin)
	return nil
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	cfg   config
}

func startChild(call string, vms int) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", "-call", call, "-vms", strconv.Itoa(vms))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := &child{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReaderSize(stdout, 1<<20).ReadBytes('\n')
	if err != nil {
		ch.stop()
		return nil, fmt.Errorf("server did not start: %w", err)
	}
	if err := json.Unmarshal(line, &ch.cfg); err != nil {
		ch.stop()
		return nil, err
	}
	return ch, nil
}

func (c *child) stop() {
	c.stdin.Close()
	c.cmd.Wait()
}

// pairs are (baseline, protocol, bar as a fraction of the baseline).
var pairs = []struct {
	base, proto string
	bar         float64
}{{bench.BareXML, bench.XMLRPC, 0.50}, {bench.BareJSON, bench.JSONRPC, 0.60}}

func bar1(rounds int, round, warm time.Duration, conns int, gen string, useWrk bool, script string, threads int) error {
	ch, err := startChild("get_record", 1)
	if err != nil {
		return err
	}
	defer ch.stop()
	clients := bench.Clients(conns)
	defer bench.CloseClients(clients)
	measure := func(t *bench.Target, d time.Duration) (float64, error) {
		return bench.Load(t, clients, d)
	}
	if useWrk {
		dir, err := os.MkdirTemp("", "rpcbench-wrk-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		measure = func(t *bench.Target, d time.Duration) (float64, error) {
			return wrkLoad(t, dir, script, threads, conns, d)
		}
	}
	fmt.Printf("\nbar 1: VM.get_record, %s, %d rounds of %v per target (after %v warm-up)\n", gen, rounds, round, warm)
	fmt.Printf("  answer sizes: xml %d B, json %d B\n", ch.cfg.Targets[bench.XMLRPC].WantLen, ch.cfg.Targets[bench.JSONRPC].WantLen)
	rates := map[string][]float64{}
	ratios := map[string][]float64{}
	for r := range rounds {
		fmt.Printf("  round %d:", r+1)
		for _, p := range pairs {
			order := []string{p.base, p.proto}
			if r%2 == 1 {
				order = []string{p.proto, p.base}
			}
			got := map[string]float64{}
			for _, name := range order {
				t := ch.cfg.Targets[name]
				// A correctness check with the Go client, then warm-up.
				if _, err := t.Do(clients[0], nil); err != nil {
					return err
				}
				if warm > 0 {
					if _, err := measure(t, warm); err != nil {
						return err
					}
				}
				rate, err := measure(t, round)
				if err != nil {
					return err
				}
				got[name] = rate
				rates[name] = append(rates[name], rate)
				fmt.Printf(" %s %.0f/s", name, rate)
			}
			ratios[p.proto] = append(ratios[p.proto], got[p.proto]/got[p.base])
		}
		fmt.Println()
	}
	fmt.Printf("  %-10s %12s %12s %12s\n", "target", "median/s", "min/s", "max/s")
	for _, name := range bench.Names {
		fmt.Printf("  %-10s %12.0f %12.0f %12.0f\n", name, median(rates[name]), slices.Min(rates[name]), slices.Max(rates[name]))
	}
	for _, p := range pairs {
		rs := ratios[p.proto]
		med := median(rs)
		fmt.Printf("  %s / %s: median of per-round ratios %.1f%% (min %.1f%%, max %.1f%%), ratio of medians %.1f%%; bar >= %.0f%%: %s\n",
			p.proto, p.base, 100*med, 100*slices.Min(rs), 100*slices.Max(rs),
			100*median(rates[p.proto])/median(rates[p.base]), 100*p.bar, pass(med >= p.bar))
		fmt.Printf("SUMMARY|1 get_record req/s (%s)|%s|%.0f/s|%.0f/s|%.1f%%|>= %.0f%%|%s\n", gen, p.proto,
			median(rates[p.proto]), median(rates[p.base]), 100*med, 100*p.bar, pass(med >= p.bar))
	}
	return nil
}

var wrkResult = regexp.MustCompile(`RESULT requests=(\d+) duration_us=(\d+) bytes=(\d+) status_errors=(\d+) socket_errors=(\d+)`)

func wrkLoad(t *bench.Target, dir, script string, threads, conns int, d time.Duration) (float64, error) {
	body := filepath.Join(dir, t.Name+".body")
	if err := os.WriteFile(body, t.Body, 0o600); err != nil {
		return 0, err
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", strconv.Itoa(secs)+"s",
		"-s", script, t.URL)
	cmd.Env = append(os.Environ(), "BENCH_BODY="+body, "BENCH_CTYPE="+t.ContentType)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %v: %s", err, out)
	}
	m := wrkResult.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk: no RESULT line in: %s", out)
	}
	n, _ := strconv.ParseFloat(string(m[1]), 64)
	us, _ := strconv.ParseFloat(string(m[2]), 64)
	bytes, _ := strconv.ParseFloat(string(m[3]), 64)
	if string(m[4]) != "0" || string(m[5]) != "0" {
		return 0, fmt.Errorf("wrk: %s status errors, %s socket errors", m[4], m[5])
	}
	// wrk counts header bytes too; the body length must be about right.
	if per := bytes / n; t.WantLen > 0 && (per < float64(t.WantLen) || per > float64(t.WantLen)+400) {
		return 0, fmt.Errorf("wrk: %.0f bytes per answer, want about %d", per, t.WantLen)
	}
	return n / (us / 1e6), nil
}

func bar2(vms, calls int) error {
	start := time.Now()
	ch, err := startChild("get_all_records", vms)
	if err != nil {
		return err
	}
	defer ch.stop()
	fmt.Printf("\nbar 2: VM.get_all_records with %d VMs (server ready in %v), %d calls per target, alternating\n",
		vms, time.Since(start).Round(time.Millisecond), calls)
	fmt.Printf("  answer sizes: xml %.1f MiB, json %.1f MiB\n",
		float64(ch.cfg.Targets[bench.XMLRPC].WantLen)/(1<<20), float64(ch.cfg.Targets[bench.JSONRPC].WantLen)/(1<<20))
	c := bench.NewClient()
	defer c.CloseIdleConnections()
	bufs := map[string][]byte{}
	times := map[string][]float64{}
	for _, name := range bench.Names { // warm each connection and buffer
		t := ch.cfg.Targets[name]
		if bufs[name], err = t.Do(c, make([]byte, 0, t.WantLen+4096)); err != nil {
			return err
		}
	}
	for r := range calls {
		for _, p := range pairs {
			order := []string{p.base, p.proto}
			if r%2 == 1 {
				order = []string{p.proto, p.base}
			}
			for _, name := range order {
				t := ch.cfg.Targets[name]
				s := time.Now()
				if bufs[name], err = t.Do(c, bufs[name]); err != nil {
					return err
				}
				times[name] = append(times[name], time.Since(s).Seconds()*1000)
			}
		}
	}
	fmt.Printf("  %-10s %10s %10s %10s\n", "target", "median ms", "min ms", "max ms")
	for _, name := range bench.Names {
		fmt.Printf("  %-10s %10.1f %10.1f %10.1f\n", name, median(times[name]), slices.Min(times[name]), slices.Max(times[name]))
	}
	for _, p := range []struct {
		base, proto string
		bar         float64
	}{{bench.BareXML, bench.XMLRPC, 300}, {bench.BareJSON, bench.JSONRPC, 150}} {
		m, b := median(times[p.proto]), median(times[p.base])
		fmt.Printf("  %s: median %.1f ms, baseline %.1f ms (x%.1f); bar < %.0f ms: %s\n", p.proto, m, b, m/b, p.bar, pass(m < p.bar))
		fmt.Printf("SUMMARY|2 get_all_records 10k VMs, median|%s|%.1f ms|%.1f ms|x%.1f|< %.0f ms|%s\n",
			p.proto, m, b, m/b, p.bar, pass(m < p.bar))
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
