package lifecycle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Run with:
//
//	go test -run='^$' -bench=. -benchtime=1s ./bench/lifecycle/
//
// No Test functions: under go test ./... nothing runs.

// setups are the storage configurations of bar 1, from production-like to
// pure CPU.
var setups = []struct {
	name string
	o    Options
}{
	{"durable+simstate", Options{}},                                 // as cmd/xenithd: fsync in bbolt and in sim-domains.json
	{"nosync+simstate", Options{NoSync: true}},                      // bbolt without fsync; sim still fsyncs
	{"nosync+simmem", Options{NoSync: true, SimMemoryOnly: true}},   // no fsync anywhere
	{"memstore+simmem", Options{Memory: true, SimMemoryOnly: true}}, // no disk at all
}

// ring is how many halted VMs a start benchmark cycles through; when all
// are running they are hard-shut-down with the timer stopped, so the host
// never has more than ring domains.
const ring = 100

func newEnv(b *testing.B, o Options, vms int) (*Env, []xenapi.Ref) {
	b.Helper()
	o.TotalMemory = 64 << 40
	e, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	refs, err := AddHalted(context.Background(), e.Store, 0, vms, 250)
	if err != nil {
		b.Fatal(err)
	}
	return e, refs
}

func haltAll(b *testing.B, e *Env, refs []xenapi.Ref) {
	b.Helper()
	for _, r := range refs {
		if err := e.Mgr.HardShutdown(context.Background(), r); err != nil {
			b.Fatalf("hard_shutdown: %v", err)
		}
	}
}

// BenchmarkStart is bar 1: one VM.start at a time (boot time 0), through
// the XenAPI (JSON-RPC over loopback HTTP with internal/client) and
// directly through domain.Manager.Start.
func BenchmarkStart(b *testing.B) {
	for _, path := range []string{"api-jsonrpc", "manager"} {
		for _, s := range setups {
			b.Run(path+"/"+s.name, func(b *testing.B) {
				e, refs := newEnv(b, s.o, ring)
				ctx := context.Background()
				var sess *client.Session
				if path == "api-jsonrpc" {
					var err error
					if sess, err = e.Login(ctx, client.JSONRPC, 1); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					k := i % ring
					if k == 0 && i > 0 {
						b.StopTimer()
						haltAll(b, e, refs)
						b.StartTimer()
					}
					var err error
					if sess != nil {
						_, err = sess.Do(ctx, "VM.start", wire.String(string(refs[k])), wire.Bool(false), wire.Bool(false))
					} else {
						err = e.Mgr.Start(ctx, refs[k], false)
					}
					if err != nil {
						b.Fatalf("start: %v", err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/VM")
				if n := (b.N-1)%ring + 1; PowerStates(e.Store, refs[:n])[api.VMPowerStateRunning] != n {
					b.Fatalf("power states %v", PowerStates(e.Store, refs[:n]))
				}
			})
		}
	}
}

// BenchmarkBaseline is what bar 1 is compared with, in the same run: one
// store transaction modifying one VM (what a trivial durable write costs),
// a trivial JSON-RPC call (VM.get_power_state) over the same kind of
// connection, and a bare sim Create+Unpause+Destroy (with a StateDir each
// of them rewrites and fsyncs sim-domains.json).
func BenchmarkBaseline(b *testing.B) {
	for _, s := range setups {
		b.Run("store-modify/"+s.name, func(b *testing.B) {
			e, refs := newEnv(b, s.o, 1)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := e.Store.Update(ctx, func(tx *store.Tx) error {
					return tx.Modify(api.ClassVM, refs[0], func(r xenapi.Record) error {
						r.(*api.VM).UserVersion = int64(i)
						return nil
					})
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
	b.Run("rpc-get_power_state/memstore+simmem", func(b *testing.B) {
		e, refs := newEnv(b, Options{Memory: true, SimMemoryOnly: true}, 1)
		ctx := context.Background()
		sess, err := e.Login(ctx, client.JSONRPC, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := sess.Do(ctx, "VM.get_power_state", wire.String(string(refs[0]))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	for _, state := range []bool{true, false} {
		name := "sim-create-unpause-destroy/simstate"
		if !state {
			name = "sim-create-unpause-destroy/simmem"
		}
		b.Run(name, func(b *testing.B) {
			e, _ := newEnv(b, Options{Memory: true, SimMemoryOnly: !state}, 0)
			ctx := context.Background()
			vm, _ := NewHaltedVM(0, time.Now())
			spec := domain.Spec{UUID: vm.UUID, Name: vm.NameLabel, MemoryStaticMax: VMMemory, MemoryTarget: VMMemory, VCPUsMax: 2, VCPUs: 1, HVM: true}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Driver.Create(ctx, spec); err != nil {
					b.Fatal(err)
				}
				if err := e.Driver.Unpause(ctx, spec.UUID); err != nil {
					b.Fatal(err)
				}
				if err := e.Driver.Destroy(ctx, spec.UUID); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}

// stormVMs is the size of the boot storm of bar 2.
const stormVMs = 1000

// storm starts refs concurrently: over JSON-RPC with clients goroutines
// sharing the VMs (each with its own keep-alive connection), or, with
// clients == 0, one goroutine per VM on Manager.Start. It returns the
// number of starts that failed with HOST_NOT_ENOUGH_FREE_MEMORY; any
// other error is fatal.
func storm(b *testing.B, e *Env, refs []xenapi.Ref, clients int) int {
	ctx := context.Background()
	var noMem atomic.Int64
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		var xe *xenapi.Error
		if errors.As(err, &xe) && xe.Code == api.ErrHostNotEnoughFreeMemory {
			noMem.Add(1)
			return
		}
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	if clients == 0 {
		b.StartTimer()
		for _, r := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.Mgr.Start(ctx, r, false); err != nil {
					fail(err)
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
	} else {
		sessions := make([]*client.Session, clients)
		for i := range sessions {
			s, err := e.Login(ctx, client.JSONRPC, 1)
			if err != nil {
				b.Fatal(err)
			}
			// Open the connection before the clock starts.
			if _, err := s.Do(ctx, "VM.get_power_state", wire.String(string(refs[0]))); err != nil {
				b.Fatal(err)
			}
			sessions[i] = s
		}
		var next atomic.Int64
		b.StartTimer()
		for _, s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= len(refs) {
						return
					}
					if _, err := s.Do(ctx, "VM.start", wire.String(string(refs[i])), wire.Bool(false), wire.Bool(false)); err != nil {
						fail(err)
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
	}
	if firstErr != nil {
		b.Fatalf("start: %v", firstErr)
	}
	return int(noMem.Load())
}

// BenchmarkBootStorm is bar 2: 1,000 halted VMs of 256 MiB started at
// once on a 1 TiB simulated host; one iteration is one storm (use
// -benchtime=Nx). The oversubscribed variant gives the host room for 500
// VMs only and checks that exactly 500 start and the rest are refused
// with HOST_NOT_ENOUGH_FREE_MEMORY.
func BenchmarkBootStorm(b *testing.B) {
	type variant struct {
		name    string
		o       Options
		clients int
		fit     int // how many VMs the host has memory for (0: all)
	}
	var vs []variant
	for _, s := range setups[:3:3] {
		vs = append(vs, variant{"api-jsonrpc-64clients/" + s.name, s.o, 64, 0})
		vs = append(vs, variant{"manager-1000goroutines/" + s.name, s.o, 0, 0})
	}
	vs = append(vs,
		variant{"oversubscribed-fit500/api-jsonrpc-64clients/durable+simstate", Options{}, 64, 500},
		variant{"oversubscribed-fit500/manager-1000goroutines/durable+simstate", Options{}, 0, 500})
	for _, v := range vs {
		b.Run(v.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				o := v.o
				o.TotalMemory = 1 << 40
				if v.fit > 0 {
					// Room for fit VMs and half of another.
					o.TotalMemory = sim.DefaultDom0Memory + int64(v.fit)*sim.Footprint(VMMemory) + sim.Footprint(VMMemory)/2
				}
				e, err := New(o)
				if err != nil {
					b.Fatal(err)
				}
				refs, err := AddHalted(context.Background(), e.Store, 0, stormVMs, 250)
				if err != nil {
					b.Fatal(err)
				}
				refused := storm(b, e, refs, v.clients) // times only the storm (after logins)
				ps := PowerStates(e.Store, refs)
				hi, err := e.Driver.Host(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				want := stormVMs
				if v.fit > 0 {
					want = v.fit
				}
				wantFree := o.TotalMemory - sim.DefaultDom0Memory - int64(want)*sim.Footprint(VMMemory)
				if ps[api.VMPowerStateRunning] != want || refused != stormVMs-want || hi.FreeMemory != wantFree {
					b.Fatalf("running %d (want %d), refused %d, states %v, free %d (want %d)",
						ps[api.VMPowerStateRunning], want, refused, ps, hi.FreeMemory, wantFree)
				}
				if i == 0 {
					b.Logf("running %d, refused %d, host free %d MiB of %d MiB (= total - dom0 - %d x footprint %d MiB)",
						ps[api.VMPowerStateRunning], refused, hi.FreeMemory>>20, o.TotalMemory>>20, want, sim.Footprint(VMMemory)>>20)
				}
				b.ReportMetric(float64(refused), "refused")
				e.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms-wall")
		})
	}
}
