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
}

// NewHub returns a hub over st; classes are the stored classes clients may
// subscribe to.
func NewHub(st *store.Store, classes []*xenapi.Class) *Hub {
	h := &Hub{st: st, byLower: make(map[string]*xenapi.Class)}
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

// Wait blocks until the filter has changes after since, the timeout passes,
// ctx ends or done closes. It returns the changes (coalesced per object when
// coalesce is set: the newest record wins, an add followed by a del
// disappears) and the generation the caller has now seen.
func (h *Hub) Wait(ctx context.Context, f Filter, since uint64, timeout time.Duration, done <-chan struct{}, coalesce bool) ([]Event, uint64, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		// Take the wake-up channel before reading, so a commit between the
		// read and the wait is not missed.
		wake := h.st.Wait()
		changes, gen, ok := h.st.Changes(since)
		if !ok {
			return nil, gen, ErrLost
		}
		if evs := collect(f, changes, coalesce); len(evs) > 0 {
			return evs, gen, nil
		}
		since = gen
		select {
		case <-wake:
		case <-timer.C:
			return nil, since, nil
		case <-ctx.Done():
			return nil, since, ctx.Err()
		case <-done:
			return nil, since, ErrClosed
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
