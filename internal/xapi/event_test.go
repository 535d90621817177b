package xapi

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
)

type batch struct {
	events []wire.Value
	token  string
	counts map[string]string
	// countsAreInts: every valid_ref_counts value arrived as a number (an
	// <i4> in XML-RPC, as xapi sends them), which XO's connector needs.
	countsAreInts bool
}

func eventFrom(t *testing.T, s *client.Session, classes []string, token string, timeout float64) (batch, error) {
	t.Helper()
	cls := make([]wire.Value, len(classes))
	for i, c := range classes {
		cls[i] = wire.String(c)
	}
	v, err := s.Do(context.Background(), "event.from", wire.Array(cls...), wire.String(token), wire.Float(timeout))
	if err != nil {
		return batch{}, err
	}
	evs, _ := v.Field("events")
	tok, _ := v.Field("token")
	counts, _ := v.Field("valid_ref_counts")
	b := batch{events: evs.Array, token: tok.Str, counts: map[string]string{}, countsAreInts: true}
	for _, m := range counts.Struct {
		b.counts[m.Name] = scalarString(m.Value)
		b.countsAreInts = b.countsAreInts && m.Value.Kind == wire.KindInt
	}
	return b, nil
}

func field(v wire.Value, name string) string {
	f, _ := v.Field(name)
	return scalarString(f)
}

func TestEventFrom(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, pc := range protocols {
		s := e.login(t, pc.p, "root", "pw")
		// An empty token returns every object as an add.
		b, err := eventFrom(t, s, []string{"VM", "host"}, "", 1)
		if err != nil {
			t.Fatal(err)
		}
		classes := map[string]int{}
		for _, ev := range b.events {
			if field(ev, "operation") != "add" {
				t.Errorf("%s: initial event op %q", pc.name, field(ev, "operation"))
			}
			classes[field(ev, "class")]++
		}
		if classes["host"] != 1 || classes["vm"] < 1 {
			t.Fatalf("%s: initial events by class %v", pc.name, classes)
		}
		if b.counts["vm"] == "" || b.counts["task"] == "" || b.counts["host"] != "1" || !b.countsAreInts {
			t.Fatalf("%s: valid_ref_counts %v", pc.name, b.counts)
		}
		tok := b.token

		// Nothing happens: the call returns at its timeout, same position.
		start := time.Now()
		b, err = eventFrom(t, s, []string{"vm"}, tok, 0.2)
		if err != nil || len(b.events) != 0 || b.token < tok {
			t.Fatalf("%s: idle event.from = %d events, token %q, %v", pc.name, len(b.events), b.token, err)
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
			t.Fatalf("%s: idle event.from took %v for a 0.2 s timeout", pc.name, d)
		}
		tok = b.token

		// Three changes to one VM coalesce into one event with the newest
		// record; a network born and destroyed in between never shows.
		vm, err := s.Do(ctx, "VM.create", vmRecord("ev"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := s.Do(ctx, "VM.set_name_label", vm, wire.String("ev"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		net, _ := s.Do(ctx, "network.create", wire.Struct(wire.Member{Name: "name_label", Value: wire.String("tmp")}))
		if _, err := s.Do(ctx, "network.destroy", net); err != nil {
			t.Fatal(err)
		}
		b, err = eventFrom(t, s, []string{"vm", "network"}, tok, 5)
		if err != nil {
			t.Fatal(err)
		}
		var vmEvents []wire.Value
		for _, ev := range b.events {
			if field(ev, "ref") == net.Str {
				t.Errorf("%s: transient network reported: %s", pc.name, field(ev, "operation"))
			}
			if field(ev, "ref") == vm.Str {
				vmEvents = append(vmEvents, ev)
			}
		}
		if len(vmEvents) != 1 {
			t.Fatalf("%s: %d events for one VM, want 1 (coalesced)", pc.name, len(vmEvents))
		}
		snap, _ := vmEvents[0].Field("snapshot")
		if op := field(vmEvents[0], "operation"); op != "add" || field(snap, "name_label") != "ev2" {
			t.Fatalf("%s: coalesced event op=%s name=%s, want add ev2", pc.name, op, field(snap, "name_label"))
		}
		if b.token <= tok {
			t.Fatalf("%s: token did not advance: %q -> %q", pc.name, tok, b.token)
		}
		tok = b.token

		// A del carries the last record; events come in order.
		if _, err := s.Do(ctx, "VM.set_name_description", vm, wire.String("bye")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Do(ctx, "VM.destroy", vm); err != nil {
			t.Fatal(err)
		}
		b, err = eventFrom(t, s, []string{"*"}, tok, 5)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, 0, len(b.events))
		var del wire.Value
		for _, ev := range b.events {
			id, _ := strconv.Atoi(field(ev, "id"))
			ids = append(ids, id)
			if field(ev, "ref") == vm.Str {
				del = ev
			}
		}
		if !sort.IntsAreSorted(ids) {
			t.Errorf("%s: event ids out of order: %v", pc.name, ids)
		}
		snap, _ = del.Field("snapshot")
		if field(del, "operation") != "del" || field(snap, "name_description") != "bye" {
			t.Fatalf("%s: del event %+v", pc.name, del)
		}
	}
}

func TestEventSubscriptionsInjectAndWake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	s := e.login(t, client.JSONRPC, "root", "pw")
	a, _ := s.Do(ctx, "VM.create", vmRecord("a"))
	b, _ := s.Do(ctx, "VM.create", vmRecord("b"))
	init, _ := eventFrom(t, s, []string{"vm"}, "", 0)

	// A class/ref subscription sees only that object.
	_, _ = s.Do(ctx, "VM.set_name_label", a, wire.String("a2"))
	_, _ = s.Do(ctx, "VM.set_name_label", b, wire.String("b2"))
	got, err := eventFrom(t, s, []string{"vm/" + b.Str}, init.token, 5)
	if err != nil || len(got.events) != 1 || field(got.events[0], "ref") != b.Str {
		t.Fatalf("vm/ref subscription: %d events, %v", len(got.events), err)
	}

	// event.inject makes a mod the next event.from sees.
	pools, _ := s.Do(ctx, "pool.get_all")
	tok, err := s.Do(ctx, "event.inject", wire.String("pool"), pools.Array[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err = eventFrom(t, s, []string{"pool"}, tok.Str, 5)
	if err != nil || len(got.events) != 1 || field(got.events[0], "operation") != "mod" {
		t.Fatalf("after inject: %+v, %v", got.events, err)
	}
	_, err = s.Do(ctx, "event.inject", wire.String("pool"), wire.String("OpaqueRef:nope"))
	wantErr(t, err, api.ErrHandleInvalid)

	// A waiter wakes within moments of a change...
	done := make(chan time.Time, 1)
	go func() {
		if _, err := eventFrom(t, s, []string{"vm"}, got.token, 30); err == nil {
			done <- time.Now()
		}
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	changed := time.Now()
	_, _ = s.Do(ctx, "VM.set_name_label", a, wire.String("a3"))
	select {
	case at, ok := <-done:
		if !ok || at.Sub(changed) > 2*time.Second {
			t.Fatalf("waiter woke late or failed (ok=%v)", ok)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not wake on a change")
	}

	// ... and when its session dies, with SESSION_INVALID.
	s2 := e.login(t, client.XMLRPC, "root", "pw")
	cur, _ := eventFrom(t, s2, []string{"vm"}, "", 0)
	errc := make(chan error, 1)
	go func() { _, err := eventFrom(t, s2, []string{"vm"}, cur.token, 30); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	if _, err := s2.Do(ctx, "session.logout"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		wantErr(t, err, api.ErrSessionInvalid)
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by its session's death")
	}
}

func TestEventNextAndLost(t *testing.T) {
	t.Parallel()
	e := openEnv(t, t.TempDir(), Config{EventQueue: 64}, store.Options{LogSize: 64})
	defer e.close()
	ctx := context.Background()
	s := e.login(t, client.XMLRPC, "root", "pw")
	var err error
	_, err = s.Do(ctx, "event.next")
	wantErr(t, err, api.ErrSessionNotRegistered)
	if _, err := s.Do(ctx, "event.register", wire.Array(wire.String("vm"))); err != nil {
		t.Fatal(err)
	}
	vm, _ := s.Do(ctx, "VM.create", vmRecord("n"))
	_, _ = s.Do(ctx, "VM.set_name_label", vm, wire.String("n2"))
	evs, err := s.Do(ctx, "event.next")
	if err != nil {
		t.Fatal(err)
	}
	// event.next does not coalesce: the add and the mod both arrive, each
	// with the record as it was then.
	var ops, names []string
	for _, ev := range evs.Array {
		if field(ev, "ref") == vm.Str {
			ops = append(ops, field(ev, "operation"))
			snap, _ := ev.Field("snapshot")
			names = append(names, field(snap, "name_label"))
		}
	}
	if len(ops) != 2 || ops[0] != "add" || ops[1] != "mod" || names[0] != "n" || names[1] != "n2" {
		t.Fatalf("event.next ops = %v, names %v", ops, names)
	}
	// Falling further behind than the log holds loses events.
	for i := 0; i < 100; i++ {
		_, _ = s.Do(ctx, "VM.set_name_label", vm, wire.String("x"+strconv.Itoa(i)))
	}
	_, err = s.Do(ctx, "event.next")
	wantErr(t, err, api.ErrEventsLost)
	_, err = eventFrom(t, s, []string{"vm"}, "1", 1)
	wantErr(t, err, api.ErrEventsLost)
	if _, err := s.Do(ctx, "event.unregister", wire.Array(wire.String("vm"))); err != nil {
		t.Fatal(err)
	}
}

func TestEventTokenAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := openEnv(t, dir, Config{}, store.Options{})
	s := e.login(t, client.JSONRPC, "root", "pw")
	b, _ := eventFrom(t, s, []string{"vm"}, "", 0)
	old := b.token
	_, _ = s.Do(context.Background(), "VM.create", vmRecord("r"))
	b, _ = eventFrom(t, s, []string{"vm"}, old, 1)
	cur := b.token
	e.close()

	e2 := openEnv(t, dir, Config{}, store.Options{})
	defer e2.close()
	s2 := e2.login(t, client.JSONRPC, "root", "pw")
	// Generations continue across the restart, so tokens stay ordered; a
	// token older than the restart cannot be served incrementally.
	_, err := eventFrom(t, s2, []string{"vm"}, old, 0)
	wantErr(t, err, api.ErrEventsLost)
	_, _ = s2.Do(context.Background(), "VM.create", vmRecord("after"))
	b, err = eventFrom(t, s2, []string{"vm"}, cur, 5)
	if err != nil {
		t.Fatal(err)
	}
	if b.token <= cur {
		t.Fatalf("token after restart %q is not after %q", b.token, cur)
	}
}

// Waiters woken by one commit share one encoded answer per codec; each must
// still get a complete, correct answer in its own protocol, and waiters on
// other filters or tokens must not get theirs.
func TestEventFromSharedAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	w := e.login(t, client.JSONRPC, "root", "pw")
	vm, _ := w.Do(ctx, "VM.create", vmRecord("shared"))
	start, _ := eventFrom(t, w, []string{"vm"}, "", 0)

	type result struct {
		name string
		b    batch
		err  error
	}
	results := make(chan result, 64)
	var waiters []func()
	for _, pc := range protocols {
		s := e.login(t, pc.p, "root", "pw")
		for i := range 10 {
			classes := []string{"vm"}
			if i%5 == 4 {
				classes = []string{"VM"} // same subscription, other spelling
			}
			name := pc.name + "/vm"
			waiters = append(waiters, func() {
				b, err := eventFrom(t, s, classes, start.token, 30)
				results <- result{name, b, err}
			})
		}
		waiters = append(waiters, func() {
			b, err := eventFrom(t, s, []string{"vm", "network"}, start.token, 0.5)
			results <- result{pc.name + "/vm+network", b, err}
		})
		waiters = append(waiters, func() {
			b, err := eventFrom(t, s, []string{"pool"}, start.token, 0.5)
			results <- result{pc.name + "/pool", b, err}
		})
	}
	for _, f := range waiters {
		go f()
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := w.Do(ctx, "VM.set_name_label", vm, wire.String("renamed")); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
		if r.b.token <= start.token || !r.b.countsAreInts || r.b.counts["vm"] == "" {
			t.Fatalf("%s: token %q after %q, counts %v", r.name, r.b.token, start.token, r.b.counts)
		}
		if strings.HasSuffix(r.name, "/pool") {
			if len(r.b.events) != 0 {
				t.Fatalf("%s: got %d events of another class", r.name, len(r.b.events))
			}
			continue
		}
		if len(r.b.events) != 1 {
			t.Fatalf("%s: %d events", r.name, len(r.b.events))
		}
		ev := r.b.events[0]
		snap, _ := ev.Field("snapshot")
		if field(ev, "ref") != vm.Str || field(ev, "class") != "vm" || field(snap, "name_label") != "renamed" {
			t.Fatalf("%s: wrong event %v", r.name, ev)
		}
	}
}
