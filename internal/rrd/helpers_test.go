package rrd

import (
	"bytes"
	"math"
	"testing"
	"time"
)

var nan = math.NaN()

// at is a time in Unix seconds, fractions allowed.
func at(sec float64) time.Time { return time.Unix(0, int64(math.Round(sec*1e9))) }

func src(name string, kind Kind) Source {
	return Source{Name: name, Kind: kind, Min: math.Inf(-1), Max: math.Inf(1)}
}

// sample builds the values of one update: pairs of sources and samples,
// where a NaN sample leaves the source out (unknown).
func sample(srcs []Source, vs ...float64) []Value {
	var out []Value
	for i, v := range vs {
		if !math.IsNaN(v) {
			out = append(out, Value{Source: srcs[i], V: v})
		}
	}
	return out
}

func mustUpdate(t testing.TB, db *DB, sec float64, values []Value) {
	t.Helper()
	if err := db.Update(at(sec), values); err != nil {
		t.Fatalf("Update(%v): %v", sec, err)
	}
}

// rowAt returns the value stored in archive ai for source name in the row
// ending at end (Unix seconds), failing if the ring does not hold it.
func rowAt(t testing.TB, db *DB, ai int, name string, end int64) float64 {
	t.Helper()
	db.mu.RLock()
	defer db.mu.RUnlock()
	s, ok := db.index[name]
	if !ok {
		t.Fatalf("no source %q", name)
	}
	a := &db.archives[ai]
	rowStep := int64(a.steps) * db.stepNs / int64(time.Second)
	if end%rowStep != 0 {
		t.Fatalf("%d is not a row end of a %d s archive", end, rowStep)
	}
	m := end/rowStep - 1
	newest := db.last/db.stepNs/int64(a.steps) - 1
	if m > newest || m <= newest-int64(a.rows) {
		t.Fatalf("row ending %d not in archive %d (newest row ends %d)", end, ai, (newest+1)*rowStep)
	}
	return a.data[s*a.rows+int(m%int64(a.rows))]
}

// same reports whether two floats are equal, NaN equal to NaN.
func same(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func sameSlice(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !same(a[i], b[i]) {
			return false
		}
	}
	return true
}

func dumpOf(t testing.TB, db *DB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := db.WriteDump(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
