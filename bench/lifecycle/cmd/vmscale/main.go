// Command vmscale measures bar 3 of issue 5: 64 hosts' worth of halted VMs
// (64,000 by default, each with a VM_metrics, no devices) in one bbolt
// store: heap and VmRSS per VM after runtime.GC and debug.FreeOSMemory,
// both with the store built in this process and reopened in a fresh one
// (as after a xenithd restart), and the time of VM.get_all_records over
// JSON-RPC and XML-RPC on a loopback TCP port (median of -rounds).
//
//	go run ./bench/lifecycle/cmd/vmscale
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/bench/lifecycle"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xmlrpc"
)

type mem struct{ heap, rss uint64 }

func measure() mem {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{heap: ms.HeapAlloc, rss: vmRSS()}
}

func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

func perVM(a, b mem, n int) string {
	return fmt.Sprintf("heap %.2f KiB/VM (%.0f MiB), VmRSS %.2f KiB/VM (%.0f MiB; process %.0f MiB)",
		float64(b.heap-a.heap)/1024/float64(n), float64(b.heap-a.heap)/(1<<20),
		float64(int64(b.rss)-int64(a.rss))/1024/float64(n), float64(int64(b.rss)-int64(a.rss))/(1<<20), float64(b.rss)/(1<<20))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vmscale:", err)
	os.Exit(1)
}

func main() {
	vms := flag.Int("vms", 64000, "halted VMs")
	batch := flag.Int("batch", 500, "VMs per store transaction")
	rounds := flag.Int("rounds", 3, "get_all_records calls per protocol")
	reopen := flag.String("reopen", "", "(internal) reopen the store in this directory and measure")
	flag.Parse()
	ctx := context.Background()

	if *reopen != "" {
		base := measure()
		e, err := lifecycle.New(lifecycle.Options{Dir: *reopen, SimMemoryOnly: true, NoServer: true})
		if err != nil {
			fatal(err)
		}
		after := measure()
		fmt.Printf("reopened in a fresh process: %d VMs, %s\n", e.Store.Count(e.Store.Class("VM")), perVM(base, after, *vms))
		e.Close()
		return
	}

	dir, err := os.MkdirTemp("", "xenith-vmscale-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	// Empty store, inventory and server: the baseline of the memory figures.
	e, err := lifecycle.New(lifecycle.Options{Dir: dir, NoSync: true, SimMemoryOnly: true})
	if err != nil {
		fatal(err)
	}
	sess, err := e.Login(ctx, client.XMLRPC, 1)
	if err != nil {
		fatal(err)
	}
	base := measure()
	t0 := time.Now()
	if _, err := lifecycle.AddHalted(ctx, e.Store, 0, *vms, *batch); err != nil {
		fatal(err)
	}
	load := time.Since(t0)
	after := measure()
	fmt.Printf("built in this process: %d VMs + %d VM_metrics in %v (batches of %d, bbolt NoSync), %s\n",
		*vms, *vms, load.Round(time.Millisecond), *batch, perVM(base, after, *vms))

	// VM.get_all_records, raw HTTP, each protocol on its own keep-alive
	// connection; the answer is read whole and checked, not decoded.
	hc := lifecycle.HTTPClient(1)
	for _, p := range []struct {
		name, path, ctype string
		body              []byte
	}{
		{"JSON-RPC", "/jsonrpc", "application/json", jsonrpc.AppendCall(nil, 2, 1, "VM.get_all_records", []wire.Value{wire.String(sess.Ref)})},
		{"XML-RPC", "/", "text/xml", xmlrpc.AppendCall(nil, "VM.get_all_records", []wire.Value{wire.String(sess.Ref)})},
	} {
		var times []time.Duration
		var size, labels int
		for range *rounds {
			t := time.Now()
			resp, err := hc.Post(e.URL+p.path, p.ctype, bytes.NewReader(p.body))
			if err != nil {
				fatal(err)
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				fatal(fmt.Errorf("%s: %v %s", p.name, err, resp.Status))
			}
			times = append(times, time.Since(t))
			size = len(data)
			labels = bytes.Count(data, []byte("name_label"))
		}
		sorted := slices.Clone(times)
		slices.Sort(sorted)
		fmt.Printf("VM.get_all_records %-8s median %v of %v; %.1f MiB, %d records\n",
			p.name, sorted[len(sorted)/2].Round(time.Millisecond), times, float64(size)/(1<<20), labels)
	}
	e.Close()

	cmd := exec.Command(os.Args[0], "-reopen", dir, "-vms", strconv.Itoa(*vms))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fatal(err)
	}
}
