package store

import (
	"sync"

	"github.com/xenith/xenith/internal/xenapi"
)

// Subscription is a bounded queue of the changes one reader asked for, each
// with the record as it was right after that change (event.next's
// semantics). A reader that lets more than max changes pile up loses them
// and is told so.
type Subscription struct {
	s      *Store
	filter func(*xenapi.Class, xenapi.Ref) bool
	max    int

	mu   sync.Mutex
	q    []Change
	lost bool
}

// Subscribe starts queueing the changes for which filter returns true.
// filter runs inside commits: it must be quick and must not call the store.
func (s *Store) Subscribe(filter func(*xenapi.Class, xenapi.Ref) bool, max int) *Subscription {
	sub := &Subscription{s: s, filter: filter, max: max}
	s.mu.Lock()
	if s.subs == nil {
		s.subs = make(map[*Subscription]struct{})
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub
}

// Close stops the subscription.
func (sub *Subscription) Close() {
	sub.s.mu.Lock()
	delete(sub.s.subs, sub)
	sub.s.mu.Unlock()
}

// Take returns the queued changes and empties the queue; lost reports that
// changes were dropped since the last Take.
func (sub *Subscription) Take() (changes []Change, lost bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	changes, lost = sub.q, sub.lost
	sub.q, sub.lost = nil, false
	return changes, lost
}

// push is called by apply with the store's write lock held.
func (sub *Subscription) push(changes []Change) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, ch := range changes {
		if !sub.filter(ch.Class, ch.Ref) {
			continue
		}
		if len(sub.q) >= sub.max {
			sub.q, sub.lost = nil, true
			continue
		}
		sub.q = append(sub.q, ch)
	}
}
