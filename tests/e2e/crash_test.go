package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/wire"
)

// TestCrashSafety kills xenithd with SIGKILL while clients write, restarts
// it on the same data directory and checks that every write the server
// acknowledged is there.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	ctx := context.Background()

	type ack struct {
		ref, name, desc string // desc is empty until set_name_description was acknowledged
	}
	const writers = 8
	var (
		mu    sync.Mutex
		acked []ack
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			proto := client.JSONRPC
			if w%2 == 1 {
				proto = client.XMLRPC
			}
			s, err := client.New(d.URL, proto, nil).Login(ctx, "root", d.Password)
			if err != nil {
				t.Errorf("writer %d login: %v", w, err)
				return
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("crash-%d-%d", w, i)
				ref, err := s.Do(ctx, "VM.create", wire.Struct(wire.Member{Name: "name_label", Value: wire.String(name)}))
				if err != nil {
					return // the server died: this write was never acknowledged
				}
				mu.Lock()
				acked = append(acked, ack{ref: ref.Str, name: name})
				idx := len(acked) - 1
				mu.Unlock()
				desc := "described " + name
				if _, err := s.Do(ctx, "VM.set_name_description", ref, wire.String(desc)); err != nil {
					return
				}
				mu.Lock()
				acked[idx].desc = desc
				mu.Unlock()
			}
		}(w)
	}
	// Let the writers get going, then pull the plug mid-flight.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Kill()
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged before the kill; the test proves little", len(acked))
	}

	d2 := startDaemon(t, "--data", d.DataDir, "--root-password", d.Password)
	s, err := client.New(d2.URL, client.JSONRPC, nil).Login(ctx, "root", d2.Password)
	if err != nil {
		t.Fatalf("login after restart: %v\n%s", err, d2.Log(30))
	}
	all, err := s.Do(ctx, "VM.get_all_records")
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]wire.Value{}
	for _, m := range all.Struct {
		byRef[m.Name] = m.Value
	}
	lost := 0
	for _, a := range acked {
		rec, ok := byRef[a.ref]
		if !ok {
			lost++
			t.Errorf("acknowledged VM.create %s (%s) lost", a.ref, a.name)
			continue
		}
		if v, _ := rec.Field("name_label"); v.Str != a.name {
			t.Errorf("%s: name_label %q, want %q", a.ref, v.Str, a.name)
		}
		if a.desc != "" {
			if v, _ := rec.Field("name_description"); v.Str != a.desc {
				t.Errorf("%s: acknowledged name_description %q lost (have %q)", a.ref, a.desc, v.Str)
			}
		}
	}
	t.Logf("%d acknowledged creates checked after SIGKILL, %d lost", len(acked), lost)
}
