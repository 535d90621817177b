package rrd

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind says how a source's samples become values.
type Kind int

const (
	Gauge    Kind = iota // the sample is the value (memory in use)
	Derive               // a cumulative counter: the value is its rate per second; a counter that goes down gives an unknown value for that step
	Absolute             // the sample is an amount since the previous sample: value = sample / seconds elapsed
)

func (k Kind) String() string {
	switch k {
	case Gauge:
		return "GAUGE"
	case Derive:
		return "DERIVE"
	case Absolute:
		return "ABSOLUTE"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

func parseKind(s string) (Kind, error) {
	for k := Gauge; k <= Absolute; k++ {
		if s == k.String() {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown data source type %q", s)
}

// CF is a consolidation function: how an archive row sums up its PDPs.
type CF int

const (
	Average CF = iota
	Min
	Max
	Last
)

func (c CF) String() string {
	switch c {
	case Average:
		return "AVERAGE"
	case Min:
		return "MIN"
	case Max:
		return "MAX"
	case Last:
		return "LAST"
	}
	return "CF(" + strconv.Itoa(int(c)) + ")"
}

// ParseCF reads a consolidation function name, case-insensitively; AVE is
// accepted for AVERAGE because xapi's clients send it.
func ParseCF(s string) (CF, error) {
	switch {
	case strings.EqualFold(s, "AVERAGE"), strings.EqualFold(s, "AVE"):
		return Average, nil
	case strings.EqualFold(s, "MIN"):
		return Min, nil
	case strings.EqualFold(s, "MAX"):
		return Max, nil
	case strings.EqualFold(s, "LAST"):
		return Last, nil
	}
	return 0, fmt.Errorf("rrd: unknown consolidation function %q", s)
}

// Source describes a data source.
type Source struct {
	Name        string // e.g. "cpu0", "memory", "vbd_xvda_read"
	Kind        Kind
	Min, Max    float64 // values outside [Min, Max] are recorded as unknown; NaN or an infinity means no bound
	Units       string  // "(fraction)", "B", "B/s", "KiB"...
	Description string
}

// Archive describes one consolidated series kept for every source.
type Archive struct {
	CF    CF
	Steps int // primary data points (one per base step) per row
	Rows  int
}

// DefaultArchives gives xapi's timescales for the given CFs: with a 5 s
// step, 120 rows of 5 s (10 min), 120 rows of 1 min (2 h), 168 rows of 1 h
// (1 week) and 366 rows of 1 day (1 year); for each timescale one archive
// per cf, in the order given. No cfs gives no archives.
func DefaultArchives(cfs ...CF) []Archive {
	scales := [...]struct{ steps, rows int }{{1, 120}, {12, 120}, {720, 168}, {17280, 366}}
	out := make([]Archive, 0, len(scales)*len(cfs))
	for _, sc := range scales {
		for _, cf := range cfs {
			out = append(out, Archive{CF: cf, Steps: sc.steps, Rows: sc.rows})
		}
	}
	return out
}

// Heartbeat is the longest interval between two updates over which a
// source's value is still trusted; a longer gap makes the steps it covers
// unknown. New and ReadDump read it: sources take the value current when
// their DB was made.
var Heartbeat = 300 * time.Second

// ErrNotAfter is returned by Update for a time at or before the last update.
var ErrNotAfter = errors.New("rrd: update not after the last one")

// Limits keep a DB (and so a dump ReadDump accepts) within sane memory:
// 1<<25 stored values are 256 MiB.
const (
	maxSources   = 4096
	maxArchives  = 64
	maxTotalRows = 1_000_000
	maxValues    = 1 << 25
	maxRowSpan   = 10 * 366 * 86400 // seconds in one archive row: keeps every time product far from int64 overflow
	maxUnix      = 1 << 33          // seconds (year 2242): Unix nanoseconds stay representable
	maxNameLen   = 255
	maxUnitsLen  = 255
	maxDescLen   = 4096
)

// DB is one object's RRD (a host's or a VM's). Safe for concurrent use.
type DB struct {
	mu        sync.RWMutex
	stepNs    int64 // base step, whole seconds
	heartbeat int64 // ns, given to sources added later
	last      int64 // Unix ns of the last update; 0 before the first
	sources   []source
	index     map[string]int // name -> position in sources
	archives  []archive

	gen uint64    // Update's call counter, to spot a name given twice
	vec []float64 // Update's scratch: one PDP per source
}

// source is a Source with its update state. The pdp fields describe the
// base step in progress, the one containing DB.last.
type source struct {
	Source
	heartbeat int64   // ns
	lastDS    float64 // the raw sample of the last update (Derive needs it), NaN if unknown
	pdpSum    float64 // sum of value*seconds over the known part of the step in progress
	unknownNs int64   // unknown part of the step in progress
	last      float64 // the most recent completed PDP

	raw  float64 // Update's scratch: this call's sample
	rate float64 // Update's scratch: this call's value
	seen uint64  // Update's scratch: DB.gen when last given
}

// archive keeps one Archive's rows for every source. Row m (the row ending
// at (m+1)*Steps*step in Unix time) of source s is data[s*rows+m%rows]: the
// ring position follows from the time, so no head index is stored.
type archive struct {
	cf    CF
	steps int
	rows  int
	data  []float64
	acc   []float64 // per source: the row in progress so far (sum, min, max or last of its known PDPs)
	unk   []int32   // per source: unknown PDPs in the row in progress
}

// New makes an empty DB. step must be a whole number of seconds and
// archives valid (Steps and Rows at least 1, rows at most a million in
// all); New panics otherwise, as these are fixed by the caller's code.
func New(step time.Duration, archives []Archive) *DB {
	if err := checkLayout(int64(step), archives); err != nil {
		panic("rrd.New: " + err.Error())
	}
	hb := Heartbeat
	if hb <= 0 {
		panic("rrd.New: Heartbeat must be positive")
	}
	db := &DB{stepNs: int64(step), heartbeat: int64(hb), index: make(map[string]int)}
	for _, a := range archives {
		db.archives = append(db.archives, archive{cf: a.CF, steps: a.Steps, rows: a.Rows})
	}
	return db
}

func checkLayout(stepNs int64, archives []Archive) error {
	if stepNs < int64(time.Second) || stepNs%int64(time.Second) != 0 || stepNs/int64(time.Second) > maxRowSpan {
		return fmt.Errorf("step %v is not a whole number of seconds in [1s, %ds]", time.Duration(stepNs), maxRowSpan)
	}
	if len(archives) > maxArchives {
		return fmt.Errorf("%d archives, more than %d", len(archives), maxArchives)
	}
	stepSec := stepNs / int64(time.Second)
	total := 0
	for _, a := range archives {
		switch {
		case a.CF < Average || a.CF > Last:
			return fmt.Errorf("unknown consolidation function %d", a.CF)
		case a.Steps < 1 || int64(a.Steps) > maxRowSpan/stepSec:
			return fmt.Errorf("archive of %d steps per row: want 1 to %d", a.Steps, maxRowSpan/stepSec)
		case a.Rows < 1 || a.Rows > maxTotalRows-total:
			return fmt.Errorf("archive of %d rows: want at least 1 and at most %d rows in all", a.Rows, maxTotalRows)
		}
		total += a.Rows
	}
	return nil
}

// checkSource says whether s can be stored and dumped faithfully: the name
// is a legend and dump element, so it must be printable, trimmed text.
func checkSource(s *Source) error {
	n := s.Name
	switch {
	case n == "" || len(n) > maxNameLen:
		return fmt.Errorf("source name %q: want 1 to %d bytes", n, maxNameLen)
	case !utf8.ValidString(n) || strings.IndexFunc(n, unicode.IsControl) >= 0 || !xmlChars(n):
		return fmt.Errorf("source name %q has invalid characters", n)
	case strings.TrimSpace(n) != n:
		return fmt.Errorf("source name %q has surrounding spaces", n)
	case s.Kind < Gauge || s.Kind > Absolute:
		return fmt.Errorf("source %q: unknown kind %d", n, s.Kind)
	case s.Min > s.Max:
		return fmt.Errorf("source %q: min %g above max %g", n, s.Min, s.Max)
	case len(s.Units) > maxUnitsLen || !xmlChars(s.Units):
		return fmt.Errorf("source %q: units: want at most %d bytes of valid text", n, maxUnitsLen)
	case len(s.Description) > maxDescLen || !xmlChars(s.Description):
		return fmt.Errorf("source %q: description: want at most %d bytes of valid text", n, maxDescLen)
	}
	return nil
}

// xmlChars reports whether s is UTF-8 made only of characters XML 1.0 can
// carry, so that a dump reads back to the same string.
func xmlChars(s string) bool {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return false // invalid UTF-8 (a literal U+FFFD is refused too; harmless)
		case r == '\t' || r == '\n' || r == '\r':
		case r < 0x20, r >= 0xD800 && r < 0xE000, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}

// Step returns the base step.
func (db *DB) Step() time.Duration { return time.Duration(db.stepNs) } // fixed at creation: no lock

// LastUpdate returns the time of the last update, the zero Time before the
// first.
func (db *DB) LastUpdate() time.Time {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.last == 0 {
		return time.Time{}
	}
	return time.Unix(0, db.last)
}

// SourceInfo is a source and its latest value.
type SourceInfo struct {
	Source
	Last float64 // the most recent primary value (a rate for Derive), NaN if unknown
}

// Sources lists the sources in the order they were added.
func (db *DB) Sources() []SourceInfo {
	db.mu.RLock()
	defer db.mu.RUnlock()
	out := make([]SourceInfo, len(db.sources))
	for i := range db.sources {
		out[i] = SourceInfo{Source: db.sources[i].Source, Last: db.sources[i].last}
	}
	return out
}

// Query returns the most recent primary value of a source (NaN if
// unknown), and false if there is no such source.
func (db *DB) Query(name string) (float64, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	i, ok := db.index[name]
	if !ok {
		return 0, false
	}
	return db.sources[i].last, true
}

// Forget drops a source and its history (XenAPI forget_data_source_archives)
// and reports whether it existed. A later update naming it adds it afresh.
func (db *DB) Forget(name string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	i, ok := db.index[name]
	if !ok {
		return false
	}
	db.sources = slices.Delete(db.sources, i, i+1) // clears the freed element: no stale strings
	delete(db.index, name)
	for j := i; j < len(db.sources); j++ {
		db.index[db.sources[j].Name] = j
	}
	for k := range db.archives {
		a := &db.archives[k]
		a.data = slices.Delete(a.data, i*a.rows, (i+1)*a.rows)
		a.acc = slices.Delete(a.acc, i, i+1)
		a.unk = slices.Delete(a.unk, i, i+1)
	}
	return true
}

// totalRows is the number of rows of all archives: each source stores that
// many values.
func (db *DB) totalRows() int {
	n := 0
	for i := range db.archives {
		n += db.archives[i].rows
	}
	return n
}

// accInit is the consolidation of no known PDP.
func accInit(cf CF) float64 {
	switch cf {
	case Min:
		return math.Inf(1)
	case Max:
		return math.Inf(-1)
	case Last:
		return math.NaN()
	}
	return 0
}

// floorMod is the non-negative remainder of a by positive b.
func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// floorDiv divides rounding towards minus infinity, for times before an
// arbitrary origin (a negative export start).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
