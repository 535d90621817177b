package domain

import "sync"

// EventQueue is the buffered channel behind a driver's Events. Guests
// never wait for the manager: when the buffer is full the oldest event is
// dropped (and counted) to make room, as a guest's newest state matters
// more and the manager reconciles states it missed.
type EventQueue struct {
	mu      sync.Mutex // keeps events in order and the count exact
	ch      chan Event
	dropped uint64
}

// NewEventQueue returns a queue holding up to size events.
func NewEventQueue(size int) *EventQueue { return &EventQueue{ch: make(chan Event, size)} }

// Events is the channel a driver's Events method returns.
func (q *EventQueue) Events() <-chan Event { return q.ch }

// Emit queues ev without blocking.
func (q *EventQueue) Emit(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		select {
		case q.ch <- ev:
			return
		default:
		}
		select {
		case <-q.ch:
			q.dropped++
		default:
		}
	}
}

// Dropped counts the events dropped because nobody read them.
func (q *EventQueue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
