package xapi

import (
	"context"
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/event"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// event.* messages: event.from (token based), the older
// register/next/unregister stream, get_current_id and inject.

// registration is a session's event.register state: what it subscribed to
// and a bounded queue of matching changes, each with its own snapshot. A
// registration whose queue overflows gets EVENTS_LOST.
type registration struct {
	mu     sync.Mutex   // one event.next at a time
	fmu    sync.RWMutex // guards filter, read inside commits
	filter event.Filter
	sub    *store.Subscription
}

// defaultEventQueue bounds a registration's pending changes.
const defaultEventQueue = 1 << 14

// maxEventWait bounds one event.from wait, whatever the client asks.
const maxEventWait = 24 * time.Hour

func (s *Server) registerEventHandlers() {
	s.events = event.NewHub(s.store, api.Classes)
	s.regs = make(map[xenapi.Ref]*registration)
	s.handle("event.from", s.eventFrom, -1)
	s.handle("event.register", s.eventRegister, -1)
	s.handle("event.unregister", s.eventUnregister, -1)
	s.handle("event.next", s.eventNext, -1)
	s.handle("event.get_current_id", s.eventCurrentID, -1)
	s.handle("event.inject", s.eventInject, -1)
	s.onSessionClose = append(s.onSessionClose, func(ref xenapi.Ref) {
		s.regsMu.Lock()
		r := s.regs[ref]
		delete(s.regs, ref)
		s.regsMu.Unlock()
		if r != nil {
			r.sub.Close()
		}
	})
}

func stringSet(v wire.Value) []string {
	out := make([]string, 0, len(v.Array))
	for _, x := range v.Array {
		out = append(out, x.Str)
	}
	return out
}

func waitDuration(seconds float64) time.Duration {
	if math.IsNaN(seconds) || seconds <= 0 {
		return 0
	}
	if seconds > maxEventWait.Seconds() {
		return maxEventWait
	}
	return time.Duration(seconds * float64(time.Second))
}

func (s *Server) eventFrom(ctx context.Context, c *Call) (Result, error) {
	filter := s.events.NewFilter(stringSet(c.Arg(0)))
	since, fromStart, err := event.ParseToken(c.Str(1))
	if err != nil {
		return nil, xenapi.NewError(api.ErrInvalidValue, "token", c.Str(1))
	}
	if fromStart {
		evs, gen := s.events.Snapshot(filter)
		return fromAnswer(evs, gen, s.store.Counts()), nil
	}
	b, err := s.events.Wait(ctx, filter, since, waitDuration(c.Float(2)), c.Session.done, true)
	switch {
	case errors.Is(err, event.ErrLost):
		return nil, xenapi.NewError(api.ErrEventsLost)
	case errors.Is(err, event.ErrClosed):
		return nil, xenapi.NewError(api.ErrSessionInvalid, string(c.Session.Ref))
	case err != nil:
		return nil, err
	}
	if len(b.Events) == 0 {
		return fromAnswer(nil, b.Gen, s.store.Counts()), nil
	}
	// Every waiter woken by this commit with this token and filter gets
	// the same answer: encode it once per codec and splice the bytes.
	shared := b.Memo(func(b *event.Batch) any {
		return wire.NewShared(fromAnswer(b.Events, b.Gen, s.store.Counts()))
	}).(*wire.Shared)
	return shared.Encode, nil
}

// fromAnswer writes event.from's result struct.
func fromAnswer(evs []event.Event, gen uint64, counts map[*xenapi.Class]int) Result {
	token := event.FormatToken(gen)
	return func(e wire.Encoder) {
		e.BeginStruct()
		e.Member("events")
		encodeEvents(e, evs)
		e.Member("valid_ref_counts")
		encodeCounts(e, counts)
		e.Member("token")
		e.String(token)
		e.EndStruct()
	}
}

func encodeEvents(e wire.Encoder, evs []event.Event) {
	e.BeginArray()
	for _, ev := range evs {
		e.BeginStruct()
		e.Member("id")
		e.String(strconv.FormatUint(ev.Gen, 10))
		e.Member("timestamp")
		e.String(strconv.FormatFloat(float64(ev.Time.UnixMicro())/1e6, 'f', 6, 64))
		e.Member("class")
		e.String(ev.Class.Lower)
		e.Member("operation")
		e.String(ev.Op.String())
		e.Member("ref")
		e.String(string(ev.Ref))
		if ev.Rec != nil {
			e.Member("snapshot")
			ev.Rec.Encode(e)
		}
		e.EndStruct()
	}
	e.EndArray()
}

func encodeCounts(e wire.Encoder, counts map[*xenapi.Class]int) {
	names := make([]string, 0, len(counts))
	byName := make(map[string]int, len(counts))
	for c, n := range counts {
		names = append(names, c.Lower)
		byName[c.Lower] = n
	}
	sort.Strings(names)
	e.BeginStruct()
	for _, n := range names {
		e.Member(n)
		e.Int32(int32(min(byName[n], 1<<31-1)))
	}
	e.EndStruct()
}

func (s *Server) registrationOf(sess *Session, create bool) *registration {
	s.regsMu.Lock()
	defer s.regsMu.Unlock()
	r := s.regs[sess.Ref]
	if r == nil && create {
		r = &registration{filter: s.events.NewFilter(nil)}
		r.sub = s.store.Subscribe(func(c *xenapi.Class, ref xenapi.Ref) bool {
			r.fmu.RLock()
			defer r.fmu.RUnlock()
			return r.filter.Match(c, ref)
		}, s.eventQueue)
		s.regs[sess.Ref] = r
	}
	return r
}

func (s *Server) eventRegister(ctx context.Context, c *Call) (Result, error) {
	r := s.registrationOf(c.Session, true)
	r.fmu.Lock()
	r.filter.Add(s.events.NewFilter(stringSet(c.Arg(0))))
	r.fmu.Unlock()
	return nil, nil
}

func (s *Server) eventUnregister(ctx context.Context, c *Call) (Result, error) {
	r := s.registrationOf(c.Session, false)
	if r == nil {
		return nil, nil
	}
	r.fmu.Lock()
	r.filter.Remove(s.events.NewFilter(stringSet(c.Arg(0))))
	r.fmu.Unlock()
	return nil, nil
}

// eventNext blocks until the registered classes change, then returns every
// change since the last call, uncoalesced, as xapi's event.next does.
func (s *Server) eventNext(ctx context.Context, c *Call) (Result, error) {
	r := s.registrationOf(c.Session, false)
	if r == nil {
		return nil, xenapi.NewError(api.ErrSessionNotRegistered, string(c.Session.Ref))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	timer := time.NewTimer(maxEventWait)
	defer timer.Stop()
	for {
		wake := s.store.Wait()
		changes, lost := r.sub.Take()
		if lost {
			return nil, xenapi.NewError(api.ErrEventsLost)
		}
		if len(changes) > 0 {
			evs := make([]event.Event, len(changes))
			for i, ch := range changes {
				evs[i] = event.Event{Gen: ch.Gen, Time: ch.Time, Class: ch.Class, Op: ch.Op, Ref: ch.Ref, Rec: ch.Rec}
			}
			return func(e wire.Encoder) { encodeEvents(e, evs) }, nil
		}
		select {
		case <-wake:
		case <-timer.C:
			return func(e wire.Encoder) { encodeEvents(e, nil) }, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.Session.done:
			return nil, xenapi.NewError(api.ErrSessionInvalid, string(c.Session.Ref))
		}
	}
}

func (s *Server) eventCurrentID(ctx context.Context, c *Call) (Result, error) {
	gen := s.store.Generation()
	return func(e wire.Encoder) { e.Int(int64(gen)) }, nil
}

// eventInject publishes a "mod" event of an object without changing it and
// returns a token from just before it, so the caller's next event.from sees
// the injected event.
func (s *Server) eventInject(ctx context.Context, c *Call) (Result, error) {
	cls := s.events.Classes()[strings.ToLower(c.Str(0))]
	if cls == nil {
		return nil, xenapi.NewError(api.ErrHandleInvalid, c.Str(0), c.Str(1))
	}
	ref := xenapi.Ref(c.Str(1))
	var before uint64
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		before = tx.Generation()
		return tx.Touch(cls, ref)
	})
	if err != nil {
		return nil, err
	}
	return stringResult(event.FormatToken(before)), nil
}
