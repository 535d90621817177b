package main

// In-process fan-out, for a CPU profile of where one event's delivery to
// many waiters goes (server and client share the process):
//
//	go test -run XXX -bench Fanout -benchtime 5x -cpuprofile /tmp/ev.prof ./bench/events
//	go tool pprof -top /tmp/ev.prof

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/xenith/xenith/bench"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/wire"
)

func BenchmarkFanout1000(b *testing.B) {
	ctx := context.Background()
	env, err := bench.NewEnv(ctx, bench.EnvOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	refs, err := bench.AddVMs(ctx, env.Store, env.Infra, 0, 10, 10)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := bench.Serve(env.Server.Handler())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	writer, err := client.New(ln.URL, client.JSONRPC, &http.Client{Transport: &http.Transport{}}).Login(ctx, "root", bench.Password)
	if err != nil {
		b.Fatal(err)
	}
	wcl := client.New(ln.URL, client.JSONRPC, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1100}})
	var sess []*client.Session
	for range 10 {
		s, err := wcl.Login(ctx, "root", bench.Password)
		if err != nil {
			b.Fatal(err)
		}
		sess = append(sess, s)
	}
	classes := wire.Array(wire.String("vm"))
	v, err := writer.Do(ctx, "event.from", classes, wire.String(""), wire.Float(0))
	if err != nil {
		b.Fatal(err)
	}
	t, _ := v.Field("token")
	tok := t.Str
	for i := 0; i < b.N; i++ {
		var wg, parked sync.WaitGroup
		var next string
		var once sync.Once
		for w := range 1000 {
			wg.Add(1)
			parked.Add(1)
			go func(s *client.Session) {
				defer wg.Done()
				parked.Done()
				v, err := s.Do(ctx, "event.from", classes, wire.String(tok), wire.Float(60))
				if err != nil {
					b.Error(err)
					return
				}
				t, _ := v.Field("token")
				once.Do(func() { next = t.Str })
			}(sess[w%10])
		}
		parked.Wait()
		b.StopTimer()
		// crude: let the requests reach the server
		for range 50 {
			wire.String("")
		}
		b.StartTimer()
		if _, err := writer.Do(ctx, "VM.set_name_label", wire.String(string(refs[0])), wire.String("r"+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		tok = next
	}
}
