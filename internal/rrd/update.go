package rrd

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Value is one sample given to Update.
type Value struct {
	Source Source  // defines the source the first time its Name is seen
	V      float64 // the raw sample (NaN = unknown)
}

// Update records a sample of every source in values, taken at t.
//
// A source seen for the first time is added with an unknown history; its
// first sample only primes it (a Derive needs two counter readings), so its
// values start with the next update. A known source missing from values is
// unknown for this update. t must be after the last update, else Update
// returns an error wrapping ErrNotAfter and records nothing; a time before
// 1970-01-01T00:00:01Z or after 2242, an invalid or repeated source, or
// more than 4096 sources also record nothing.
//
// As in rrdtool, a sample stands for the whole interval since the previous
// update: each base step gets the time-weighted mean of the values covering
// it, and is unknown if more than half of it is. An interval longer than
// the source's heartbeat is unknown throughout.
func (db *DB) Update(t time.Time, values []Value) error {
	if sec := t.Unix(); sec <= 0 || sec >= maxUnix {
		return fmt.Errorf("rrd: update time %v out of range", t)
	}
	now := t.UnixNano()

	db.mu.Lock()
	defer db.mu.Unlock()
	if now <= db.last {
		return fmt.Errorf("%w: %v is not after %v", ErrNotAfter, t, time.Unix(0, db.last))
	}

	// Check everything before changing anything.
	db.gen++
	for i := range db.sources {
		db.sources[i].raw = math.NaN()
	}
	added := 0
	for i := range values {
		v := &values[i]
		if j, ok := db.index[v.Source.Name]; ok {
			s := &db.sources[j]
			if s.seen == db.gen {
				return fmt.Errorf("rrd: source %q given twice", v.Source.Name)
			}
			s.seen = db.gen
			s.raw = v.V
			continue
		}
		if err := checkSource(&v.Source); err != nil {
			return fmt.Errorf("rrd: %w", err)
		}
		for j := range values[:i] { // new names are rare: a scan beats a set
			if values[j].Source.Name == v.Source.Name {
				return fmt.Errorf("rrd: source %q given twice", v.Source.Name)
			}
		}
		added++
	}
	old := len(db.sources)
	if added > 0 {
		if n := old + added; n > maxSources || n*db.totalRows() > maxValues {
			return fmt.Errorf("rrd: %d sources: too many for this DB", n)
		}
		db.addSources(values, added)
	}
	if len(db.vec) < len(db.sources) {
		db.vec = make([]float64, len(db.sources), cap(db.sources))
	}

	if db.last == 0 {
		db.start(now)
		return nil
	}
	db.rates(now, old)
	db.advance(now)
	return nil
}

// addSources appends the added sources of values not yet known, unknown
// so far: their share of the step and the row in progress is unknown.
func (db *DB) addSources(values []Value, added int) {
	elapsed := db.last % db.stepNs // part of the step in progress already gone
	cur := db.last / db.stepNs     // the step in progress
	// Grow each ring once: a DB's sources mostly arrive together, and its
	// rings then take little more memory than they need.
	db.sources = slices.Grow(db.sources, added)
	for k := range db.archives {
		a := &db.archives[k]
		a.data = slices.Grow(a.data, added*a.rows)
		a.acc = slices.Grow(a.acc, added)
		a.unk = slices.Grow(a.unk, added)
	}
	for i := range values {
		v := &values[i]
		if _, ok := db.index[v.Source.Name]; ok {
			continue
		}
		db.index[v.Source.Name] = len(db.sources)
		db.sources = append(db.sources, source{
			Source:    v.Source,
			heartbeat: db.heartbeat,
			lastDS:    math.NaN(),
			unknownNs: elapsed,
			last:      math.NaN(),
			raw:       v.V,
			seen:      db.gen,
		})
		for k := range db.archives {
			a := &db.archives[k]
			for range a.rows {
				a.data = append(a.data, math.NaN())
			}
			a.acc = append(a.acc, accInit(a.cf))
			a.unk = append(a.unk, int32(cur%int64(a.steps)))
		}
	}
}

// start handles the first update: it only fixes the time and the counters'
// starting points. Steps and rows before it stay unknown.
func (db *DB) start(now int64) {
	cur := now / db.stepNs
	for i := range db.sources {
		s := &db.sources[i]
		s.lastDS = s.raw
		s.pdpSum = 0
		s.unknownNs = now % db.stepNs
	}
	for k := range db.archives {
		a := &db.archives[k]
		for s := range a.unk {
			a.acc[s] = accInit(a.cf)
			a.unk[s] = int32(cur % int64(a.steps))
		}
	}
	db.last = now
}

// rates turns each source's raw sample into its value over (db.last, now].
// Sources from index old on are new: their value is unknown.
func (db *DB) rates(now int64, old int) {
	intervalNs := now - db.last
	secs := float64(intervalNs) / 1e9
	for i := range db.sources {
		s := &db.sources[i]
		rate := math.NaN()
		if i < old && intervalNs <= s.heartbeat {
			switch s.Kind {
			case Gauge:
				rate = s.raw
			case Derive:
				if d := s.raw - s.lastDS; d >= 0 { // false for NaN and for a reset
					rate = d / secs
				}
			case Absolute:
				rate = s.raw / secs
			}
			if rate < s.Min || rate > s.Max {
				rate = math.NaN()
			}
		}
		s.lastDS = s.raw
		s.rate = rate
	}
}

// advance moves the DB from db.last to now, completing the steps between
// and feeding their PDPs to the archives.
func (db *DB) advance(now int64) {
	step := db.stepNs
	procStart := db.last - db.last%step // start of the step in progress
	occuStart := now - now%step         // start of the step now falls in
	if occuStart == procStart {
		for i := range db.sources {
			db.sources[i].accumulate(now - db.last)
		}
		db.last = now
		return
	}

	// Complete the step in progress.
	vec := db.vec[:len(db.sources)]
	for i := range db.sources {
		s := &db.sources[i]
		s.accumulate(procStart + step - db.last)
		vec[i] = s.finish(step)
		s.last = vec[i]
	}
	p := procStart / step
	db.push(vec, p, 1)

	// Steps wholly inside the interval take its value.
	if skipped := (occuStart-procStart)/step - 1; skipped > 0 {
		for i := range db.sources {
			s := &db.sources[i]
			vec[i] = s.rate
			s.last = s.rate
		}
		db.push(vec, p+1, skipped)
	}

	for i := range db.sources {
		db.sources[i].accumulate(now - occuStart)
	}
	db.last = now
}

// accumulate adds d ns of the current value to the step in progress.
func (s *source) accumulate(d int64) {
	switch {
	case d == 0: // nothing, and no Inf*0
	case math.IsNaN(s.rate):
		s.unknownNs += d
	default:
		s.pdpSum += s.rate * (float64(d) / 1e9)
	}
}

// finish returns the PDP of the completed step in progress and resets it.
// rrdtool's rule: unknown when more than half the step is unknown, else the
// mean over the known part.
func (s *source) finish(step int64) float64 {
	v := math.NaN()
	if known := step - s.unknownNs; s.unknownNs*2 <= step {
		v = s.pdpSum / (float64(known) / 1e9)
	}
	s.pdpSum, s.unknownNs = 0, 0
	return v
}

// push feeds n consecutive PDPs, all equal to vec (one per source), the
// first being base step p, to every archive.
func (db *DB) push(vec []float64, p, n int64) {
	for k := range db.archives {
		db.archives[k].push(vec, p, n)
	}
}

// push is the archive's part of DB.push. A long run costs at most one
// partial row, Rows whole rows and another partial row, however long the
// gap it stands for.
func (a *archive) push(vec []float64, p, n int64) {
	k := int64(a.steps)
	if pos := p % k; pos != 0 || n < k {
		c := min(n, k-pos)
		a.add(vec, c)
		p, n = p+c, n-c
		if p%k == 0 {
			a.closeRow(p/k - 1)
		}
	}
	if full := n / k; full > 0 {
		// A row of k equal PDPs consolidates, under every CF, to that
		// value (NaN for NaN); rows older than the ring are overwritten
		// anyway, so only the last a.rows are written.
		first := p / k
		for m := first + full - min(full, int64(a.rows)); m < first+full; m++ {
			slot := int(m % int64(a.rows))
			for s, v := range vec {
				a.data[s*a.rows+slot] = v
			}
		}
		p, n = p+full*k, n-full*k
	}
	if n > 0 {
		a.add(vec, n)
	}
}

// add consolidates c copies of vec into the row in progress; c < Steps.
func (a *archive) add(vec []float64, c int64) {
	for s, v := range vec {
		if math.IsNaN(v) {
			a.unk[s] += int32(c)
			continue
		}
		switch a.cf {
		case Average:
			a.acc[s] += v * float64(c)
		case Min:
			a.acc[s] = min(a.acc[s], v)
		case Max:
			a.acc[s] = max(a.acc[s], v)
		case Last:
			a.acc[s] = v
		}
	}
}

// closeRow stores the row in progress as row m and starts the next. The
// row is unknown when more than half its PDPs are (xff 0.5).
func (a *archive) closeRow(m int64) {
	slot := int(m % int64(a.rows))
	for s := range a.acc {
		v := math.NaN()
		if u := int(a.unk[s]); u*2 <= a.steps {
			v = a.acc[s]
			if a.cf == Average {
				v /= float64(a.steps - u)
			}
		}
		a.data[s*a.rows+slot] = v
		a.acc[s] = accInit(a.cf)
		a.unk[s] = 0
	}
}
