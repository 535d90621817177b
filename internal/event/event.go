// Package event turns the object store's change log into XenAPI events:
// the filtered, coalesced batches of event.from and the per-registration
// streams of event.next. Waiters sleep on the store's commit broadcast; an
// idle waiter costs one blocked goroutine (its own request's) and nothing
// else: no polling, no goroutine per class.
package event

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Event is one change as a client sees it.
type Event struct {
	Gen   uint64
	Time  time.Time
	Class *xenapi.Class
	Op    store.Op
	Ref   xenapi.Ref
	Rec   xenapi.Record // after the change; for del, the last record
}

// Filter selects the events a client subscribed to: whole classes, or
// single objects ("vm/OpaqueRef:...").
type Filter struct {
	all     bool
	classes map[*xenapi.Class]bool
	objects map[xenapi.Ref]*xenapi.Class
}

// Hub serves events from one store.
type Hub struct {
	st      *store.Store
	byLower map[string]*xenapi.Class

	mu       sync.Mutex
	cache    map[batchKey]*Batch // batches of generation cacheGen
	cacheGen uint64
}

// NewHub returns a hub over st; classes are the stored classes clients may
// subscribe to.
func NewHub(st *store.Store, classes []*xenapi.Class) *Hub {
	h := &Hub{st: st, byLower: make(map[string]*xenapi.Class), cache: make(map[batchKey]*Batch)}
	for _, c := range classes {
		if c.Stored {
			h.byLower[strings.ToLower(c.Name)] = c
		}
	}
	return h
}

// Classes returns the stored classes by lower-case name.
func (h *Hub) Classes() map[string]*xenapi.Class { return h.byLower }

// NewFilter parses subscription names as event.from and event.register take
// them: "*", class names in any case, and "class/ref". Unknown names match
// nothing, as in xapi.
func (h *Hub) NewFilter(names []string) Filter {
	f := Filter{classes: map[*xenapi.Class]bool{}, objects: map[xenapi.Ref]*xenapi.Class{}}
	for _, n := range names {
		if n == "*" {
			f.all = true
			continue
		}
		cls, ref, hasRef := strings.Cut(n, "/")
		c := h.byLower[strings.ToLower(cls)]
		if c == nil {
			continue
		}
		if hasRef {
			f.objects[xenapi.Ref(ref)] = c
		} else {
			f.classes[c] = true
		}
	}
	return f
}

// Add merges another filter into f (event.register adds classes).
func (f *Filter) Add(g Filter) {
	f.all = f.all || g.all
	for c := range g.classes {
		f.classes[c] = true
	}
	for r, c := range g.objects {
		f.objects[r] = c
	}
}

// Remove drops the classes and objects of g from f (event.unregister).
func (f *Filter) Remove(g Filter) {
	if g.all {
		f.all = false
	}
	for c := range g.classes {
		delete(f.classes, c)
	}
	for r := range g.objects {
		delete(f.objects, r)
	}
}

// Empty reports whether f matches nothing.
func (f Filter) Empty() bool { return !f.all && len(f.classes) == 0 && len(f.objects) == 0 }

// Match reports whether an object's changes pass the filter.
func (f Filter) Match(c *xenapi.Class, ref xenapi.Ref) bool {
	if f.all || f.classes[c] {
		return true
	}
	oc, ok := f.objects[ref]
	return ok && oc == c
}

// ErrLost means the change log no longer reaches back to the client's
// position; the client must reread everything (EVENTS_LOST).
var ErrLost = errors.New("events lost")

// ErrClosed means the waiting session ended.
var ErrClosed = errors.New("session closed")

// FormatToken renders a generation as an event token. Zero-padding makes
// tokens compare in order as plain strings.
func FormatToken(gen uint64) string {
	s := strconv.FormatUint(gen, 10)
	if len(s) < 20 {
		s = strings.Repeat("0", 20-len(s)) + s
	}
	return s
}

// ParseToken reads a token; "" means "from the beginning" (ok=false). xapi's
// own "gen,msggen" form is accepted too.
func ParseToken(tok string) (gen uint64, fromStart bool, err error) {
	if tok == "" {
		return 0, true, nil
	}
	head, _, _ := strings.Cut(tok, ",")
	gen, err = strconv.ParseUint(head, 10, 64)
	return gen, false, err
}

// Snapshot returns every object the filter matches, as "add" events, and
// the generation they are consistent with. event.from with an empty token
// starts here.
func (h *Hub) Snapshot(f Filter) ([]Event, uint64) {
	gen := h.st.Generation()
	var out []Event
	seen := map[*xenapi.Class]bool{}
	add := func(c *xenapi.Class) {
		if seen[c] {
			return
		}
		seen[c] = true
		for _, r := range h.st.All(c) {
			if f.Match(c, r.Ref) {
				out = append(out, Event{Gen: r.Modified, Time: time.Now().UTC(), Class: c, Op: store.OpAdd, Ref: r.Ref, Rec: r.Rec})
			}
		}
	}
	if f.all {
		for _, c := range h.byLower {
			add(c)
		}
	}
	for c := range f.classes {
		add(c)
	}
	for _, c := range f.objects {
		add(c)
	}
	return out, gen
}

// Batch is what event.from answers: the changes a filter selects after a
// token, up to Gen. Waiters woken by the same commit with the same token and
// filter share one Batch, so a thousand of them cost one read of the change
// log and, through Memo, one encoding of the answer.
type Batch struct {
	Events []Event
	Gen    uint64
	Lost   bool

	once   sync.Once
	memoMu sync.Mutex
	memo   any
}

// Memo returns the value make produced for this batch, calling it once.
func (b *Batch) Memo(make func(*Batch) any) any {
	b.memoMu.Lock()
	defer b.memoMu.Unlock()
	if b.memo == nil {
		b.memo = make(b)
	}
	return b.memo
}

type batchKey struct {
	since, gen uint64
	filter     string
	coalesce   bool
}

// maxBatches bounds the batch cache between two commits; past it the cache
// starts over (only sharing is lost).
const maxBatches = 1024

// key renders the filter canonically, so equal subscriptions share batches.
func (f Filter) key() string {
	if f.all {
		return "*"
	}
	parts := make([]string, 0, len(f.classes)+len(f.objects))
	for c := range f.classes {
		parts = append(parts, c.Lower)
	}
	for r, c := range f.objects {
		parts = append(parts, c.Lower+"/"+string(r))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// batch returns the shared batch for (since, the current generation, f).
func (h *Hub) batch(f Filter, fkey string, since, gen uint64, coalesce bool) *Batch {
	k := batchKey{since: since, gen: gen, filter: fkey, coalesce: coalesce}
	h.mu.Lock()
	if gen > h.cacheGen || len(h.cache) >= maxBatches {
		// Answers of older generations are no longer asked for by waiters
		// that were woken; start over.
		clear(h.cache)
		h.cacheGen = max(h.cacheGen, gen)
	}
	b := h.cache[k]
	if b == nil {
		b = &Batch{}
		if gen == h.cacheGen {
			h.cache[k] = b
		}
	}
	h.mu.Unlock()
	b.once.Do(func() {
		changes, g, ok := h.st.Changes(since)
		b.Gen = g
		if !ok {
			b.Lost = true
			return
		}
		b.Events = collect(f, changes, coalesce)
	})
	return b
}

// Wait blocks until the filter has changes after since, the timeout passes,
// ctx ends or done closes. It returns the changes (coalesced per object when
// coalesce is set: the newest record wins, an add followed by a del
// disappears) and the generation the caller has now seen. On timeout the
// batch is empty.
func (h *Hub) Wait(ctx context.Context, f Filter, since uint64, timeout time.Duration, done <-chan struct{}, coalesce bool) (*Batch, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	fkey := f.key()
	for {
		// Take the wake-up channel before reading, so a commit between the
		// read and the wait is not missed.
		wake := h.st.Wait()
		if gen := h.st.Generation(); gen != since {
			b := h.batch(f, fkey, since, gen, coalesce)
			if b.Lost {
				return b, ErrLost
			}
			if len(b.Events) > 0 {
				return b, nil
			}
			since = b.Gen
		}
		select {
		case <-wake:
		case <-timer.C:
			return &Batch{Gen: since}, nil
		case <-ctx.Done():
			return &Batch{Gen: since}, ctx.Err()
		case <-done:
			return &Batch{Gen: since}, ErrClosed
		}
	}
}

func collect(f Filter, changes []store.Change, coalesce bool) []Event {
	var out []Event
	var index map[xenapi.Ref]int
	var born map[xenapi.Ref]bool
	if coalesce {
		index = make(map[xenapi.Ref]int)
		born = make(map[xenapi.Ref]bool)
	}
	for _, ch := range changes {
		if !f.Match(ch.Class, ch.Ref) {
			continue
		}
		ev := Event{Gen: ch.Gen, Time: ch.Time, Class: ch.Class, Op: ch.Op, Ref: ch.Ref, Rec: ch.Rec}
		if !coalesce {
			out = append(out, ev)
			continue
		}
		if ev.Rec == nil {
			// Deleted since: its del entry follows and stands for it,
			// unless the object was also born in this window.
			if ev.Op == store.OpAdd {
				born[ch.Ref] = true
			}
			continue
		}
		if ev.Op == store.OpDel && born[ch.Ref] {
			continue
		}
		i, seen := index[ch.Ref]
		if !seen {
			index[ch.Ref] = len(out)
			out = append(out, ev)
			continue
		}
		prev := out[i]
		switch {
		case prev.Op == store.OpAdd && ev.Op == store.OpDel:
			// Born and gone between two calls: the client never needs it.
			out[i].Rec = nil
			delete(index, ch.Ref)
		case prev.Op == store.OpAdd:
			ev.Op = store.OpAdd
			out[i] = ev
		default:
			out[i] = ev
		}
	}
	if coalesce {
		kept := out[:0]
		for _, ev := range out {
			if ev.Rec != nil {
				kept = append(kept, ev)
			}
		}
		out = kept
		// A coalesced event takes the place of its newest change.
		sort.Slice(out, func(i, j int) bool { return out[i].Gen < out[j].Gen })
	}
	return out
}
