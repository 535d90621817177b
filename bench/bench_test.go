package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/xenapi"
)

// Run with:
//
//	go test -run='^$' -bench=. ./bench/
//
// Each protocol sub-benchmark follows its bare net/http baseline and
// reports its throughput (or median latency) as a percentage of that
// baseline from the same process and run. bench/run.sh and cmd/rpcbench
// repeat the comparison in interleaved rounds with the server in its own
// process; BENCHMARKS.md has the figures.

// Fixtures are built once per process and shared by -count repetitions.
var (
	fixtures   = map[Call]*RPC{}
	fixtureErr = map[Call]error{}
	fixtureMu  sync.Mutex
)

func fixture(b *testing.B, call Call, vms int) *RPC {
	b.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if f, ok := fixtures[call]; ok || fixtureErr[call] != nil {
		if fixtureErr[call] != nil {
			b.Fatal(fixtureErr[call])
		}
		return f
	}
	f, err := StartRPC(context.Background(), vms, call)
	if err != nil {
		fixtureErr[call] = err
		b.Fatal(err)
	}
	fixtures[call] = f
	return f
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range fixtures {
		f.Close()
	}
	os.Exit(code)
}

// loadConns is the number of concurrent keep-alive connections of the
// throughput benchmarks: enough to keep 2 cores busy.
const loadConns = 16

// lastRate keeps each target's last measured throughput (req/s) or median
// latency (s) so a protocol can report itself against its baseline.
var lastRate = map[string]float64{}

func baselineOf(name string) string {
	switch name {
	case XMLRPC:
		return BareXML
	case JSONRPC:
		return BareJSON
	}
	return ""
}

// BenchmarkGetRecordKeepAlive is bar 1: VM.get_record of one realistic VM,
// hammered over loadConns keep-alive connections on TCP loopback, against a
// bare net/http handler moving the same bytes. ns/op is wall time per
// request (the inverse of throughput); "%bare" is the throughput as a
// percentage of the bare handler's (bar: XML-RPC >= 50, JSON-RPC >= 60).
func BenchmarkGetRecordKeepAlive(b *testing.B) {
	f := fixture(b, GetRecord, 1)
	procs := runtime.GOMAXPROCS(0)
	par := (loadConns + procs - 1) / procs
	clients := make(chan *http.Client, par*procs)
	for range par * procs {
		clients <- NewClient()
	}
	for _, name := range Names {
		t := f.Targets[name]
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(par)
			b.SetBytes(int64(t.WantLen))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := <-clients
				defer func() { clients <- c }()
				var buf []byte
				for pb.Next() {
					var err error
					if buf, err = t.Do(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "req/s")
			lastRate[name] = rate
			if base, ok := lastRate[baselineOf(name)]; ok {
				b.ReportMetric(100*rate/base, "%bare")
			}
		})
	}
}

// BenchmarkGetAllRecords10k is bar 2: one VM.get_all_records call with
// 10,000 VMs in the store, over a keep-alive connection, the answer read
// whole by the client; the baseline serves the same bytes pre-encoded.
// "ms-median" is the median call time (bar: XML-RPC < 300 ms, JSON-RPC
// < 150 ms); "x-bare" is that median over the baseline's.
func BenchmarkGetAllRecords10k(b *testing.B) {
	f := fixture(b, GetAllRecords, 10000)
	c := NewClient()
	defer c.CloseIdleConnections()
	for _, name := range Names {
		t := f.Targets[name]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, t.WantLen+4096)
			var err error
			if buf, err = t.Do(c, buf); err != nil { // warm the connection
				b.Fatal(err)
			}
			b.SetBytes(int64(t.WantLen))
			times := make([]time.Duration, 0, 16)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if buf, err = t.Do(c, buf); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(start))
			}
			slices.Sort(times)
			med := times[len(times)/2].Seconds()
			b.ReportMetric(med*1000, "ms-median")
			b.ReportMetric(float64(t.WantLen)/(1<<20), "MiB/answer")
			lastRate[name+"/all"] = med
			if base, ok := lastRate[baselineOf(name)+"/all"]; ok {
				b.ReportMetric(med/base, "x-bare")
			}
		})
	}
}

// discardWriter is the cheapest http.ResponseWriter: it keeps the headers
// and counts the body.
type discardWriter struct {
	h    http.Header
	n    int
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkHandlerGetRecord runs the XenAPI handler for VM.get_record with
// no network at all: the server's own cost per call (parse, dispatch,
// session check, encode), the part of bar 1 xenithd controls. Use it with
// -cpuprofile to see where a call's time goes.
func BenchmarkHandlerGetRecord(b *testing.B) {
	handlerBench(b, fixture(b, GetRecord, 1))
}

// BenchmarkHandlerGetAllRecords10k is the same for VM.get_all_records with
// 10,000 VMs: bar 2 without the network and the client.
func BenchmarkHandlerGetAllRecords10k(b *testing.B) {
	handlerBench(b, fixture(b, GetAllRecords, 10000))
}

func handlerBench(b *testing.B, f *RPC) {
	h := f.Env.Server.Handler()
	for _, name := range []string{XMLRPC, JSONRPC} {
		t := f.Targets[name]
		b.Run(name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodPost, t.URL, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Content-Type", t.ContentType)
			req.RemoteAddr = "127.0.0.1:40000"
			rd := bytes.NewReader(t.Body)
			req.Body = io.NopCloser(rd)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.SetBytes(int64(t.WantLen))
			for b.Loop() {
				rd.Reset(t.Body)
				w.n, w.code = 0, 0
				h.ServeHTTP(w, req)
			}
			if w.n == 0 || w.code > 200 {
				b.Fatalf("answer of %d bytes, status %d", w.n, w.code)
			}
		})
	}
}

// BenchmarkRecordFootprint decodes the records of a realistic VM the way
// the store loads them from disk (JSON, jsonrpc.ParseValue, Record.Decode):
// ns/op and B/op are the load path's cost per record, "B-retained" the heap
// a decoded record keeps (measured once over 2,000 records), the unit of
// bar 3. Store indexes (rows, uuid index, refs) come on top.
func BenchmarkRecordFootprint(b *testing.B) {
	ref := func() xenapi.Ref { return xenapi.Ref("OpaqueRef:" + uuid.NewString()) }
	in := Infra{Host: ref(), SR: ref(), Network: ref()}
	const n = 2000
	sets := make([]vmSet, n)
	for i := range sets {
		s := newVMSet(i, in, time.Now())
		s.vm.Metrics = ref()
		s.vm.VBDs, s.vm.VIFs = []xenapi.Ref{ref(), ref()}, []xenapi.Ref{ref()}
		for d := range 2 {
			s.vbds[d].VM, s.vbds[d].VDI = ref(), ref()
			s.vdis[d].VBDs = []xenapi.Ref{ref()}
		}
		s.vif.VM = ref()
		sets[i] = s
	}
	kinds := []struct {
		name string
		rec  func(s vmSet) xenapi.Record
	}{
		{"VM", func(s vmSet) xenapi.Record { return s.vm }},
		{"VM_metrics", func(s vmSet) xenapi.Record { return s.metrics }},
		{"VDI", func(s vmSet) xenapi.Record { return s.vdis[0] }},
		{"VBD", func(s vmSet) xenapi.Record { return s.vbds[0] }},
		{"VIF", func(s vmSet) xenapi.Record { return s.vif }},
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			encs := make([][]byte, n)
			for i, s := range sets {
				var e jsonrpc.Encoder
				k.rec(s).Encode(&e)
				encs[i] = e.Bytes()
			}
			c := k.rec(sets[0]).XenClass()
			decode := func(data []byte) xenapi.Record {
				v, err := jsonrpc.ParseValue(data)
				if err != nil {
					b.Fatal(err)
				}
				r := c.New()
				if err := r.Decode(v); err != nil {
					b.Fatal(err)
				}
				return r
			}
			before := heap()
			kept := make([]xenapi.Record, n)
			for i, data := range encs {
				kept[i] = decode(data)
			}
			retained := float64(heap()-before-uint64(n*16)) / n // minus the kept slice
			runtime.KeepAlive(kept)
			kept = nil
			b.ReportAllocs()
			b.SetBytes(int64(len(encs[0])))
			i := 0
			for b.Loop() {
				decode(encs[i%n])
				i++
			}
			b.ReportMetric(retained, "B-retained")
		})
	}
}
