package auth

import (
	"sync"
	"time"
)

// Throttle slows password guessing: after Free failures from one source,
// each further attempt must wait a delay that doubles per failure, up to
// Max. A success clears the source.
type Throttle struct {
	Free int
	Base time.Duration
	Max  time.Duration
	Now  func() time.Time

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	count int
	until time.Time
	last  time.Time
}

// NewThrottle returns a throttle with xenithd's defaults.
func NewThrottle() *Throttle {
	return &Throttle{Free: 5, Base: time.Second, Max: time.Minute, Now: time.Now, sources: map[string]*failures{}}
}

// Allow reports whether source may try a password now; if not it returns
// how long it must wait.
func (t *Throttle) Allow(source string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.sources[source]
	if f == nil {
		return true, 0
	}
	now := t.Now()
	if now.Before(f.until) {
		return false, f.until.Sub(now)
	}
	return true, 0
}

// Fail records a failed attempt.
func (t *Throttle) Fail(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	f := t.sources[source]
	if f == nil || now.Sub(f.last) > t.Max*10 {
		f = &failures{}
		t.sources[source] = f
	}
	f.count++
	f.last = now
	if f.count > t.Free {
		d := t.Base << min(f.count-t.Free-1, 16)
		if d > t.Max || d <= 0 {
			d = t.Max
		}
		f.until = now.Add(d)
	}
	if len(t.sources) > 100000 {
		t.gcLocked(now)
	}
}

// Succeed clears the record of source.
func (t *Throttle) Succeed(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sources, source)
}

func (t *Throttle) gcLocked(now time.Time) {
	for k, f := range t.sources {
		if now.Sub(f.last) > t.Max*10 {
			delete(t.sources, k)
		}
	}
}
