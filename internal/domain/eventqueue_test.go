package domain

import "testing"

func TestEventQueueDropsOldest(t *testing.T) {
	t.Parallel()
	q := NewEventQueue(3)
	for i := range 5 {
		q.Emit(Event{UUID: string(rune('a' + i))})
	}
	if got := q.Dropped(); got != 2 {
		t.Fatalf("dropped %d, want 2", got)
	}
	var got string
	for range 3 {
		got += (<-q.Events()).UUID
	}
	if got != "cde" {
		t.Fatalf("kept %q, want the newest three in order, cde", got)
	}
}
