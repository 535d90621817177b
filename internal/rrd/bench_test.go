package rrd

import (
	"fmt"
	"io"
	"math"
	"testing"
	"time"
)

// benchSources are ten sources of a typical VM.
func benchSources() []Source {
	var out []Source
	for i := range 4 {
		out = append(out, Source{Name: fmt.Sprintf("cpu%d", i), Kind: Derive, Min: 0, Max: 1, Units: "(fraction)"})
	}
	out = append(out,
		Source{Name: "memory", Kind: Gauge, Min: 0, Max: math.Inf(1), Units: "B"},
		Source{Name: "memory_internal_free", Kind: Gauge, Min: 0, Max: math.Inf(1), Units: "KiB"},
		Source{Name: "vbd_xvda_read", Kind: Derive, Min: 0, Max: math.Inf(1), Units: "B/s"},
		Source{Name: "vbd_xvda_write", Kind: Derive, Min: 0, Max: math.Inf(1), Units: "B/s"},
		Source{Name: "vif_0_rx", Kind: Derive, Min: 0, Max: math.Inf(1), Units: "B/s"},
		Source{Name: "vif_0_tx", Kind: Derive, Min: 0, Max: math.Inf(1), Units: "B/s"},
	)
	return out
}

// feed updates db n times every 5 s from start, with growing counters.
func feed(tb testing.TB, db *DB, start time.Time, n int) time.Time {
	vals := make([]Value, 0, 10)
	for _, s := range benchSources() {
		vals = append(vals, Value{Source: s})
	}
	t := start
	for i := range n {
		for j := range vals {
			vals[j].V = float64(i) * float64(j+1)
		}
		if err := db.Update(t, vals); err != nil {
			tb.Fatal(err)
		}
		t = t.Add(5 * time.Second)
	}
	return t
}

func BenchmarkUpdate(b *testing.B) {
	for _, cfs := range [][]CF{{Average}, {Average, Min, Max}} {
		b.Run(fmt.Sprintf("%dCF", len(cfs)), func(b *testing.B) {
			db := New(5*time.Second, DefaultArchives(cfs...))
			t := feed(b, db, time.Unix(1_700_000_000, 0), 2)
			vals := make([]Value, 0, 10)
			for _, s := range benchSources() {
				vals = append(vals, Value{Source: s})
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				for j := range vals {
					vals[j].V = float64(i) * float64(j+1)
				}
				if err := db.Update(t, vals); err != nil {
					b.Fatal(err)
				}
				t = t.Add(5 * time.Second)
			}
		})
	}
}

// BenchmarkExport exports the last 10 minutes of 10 VMs of 10 sources at
// a 5 s interval, as Xen Orchestra asks.
func BenchmarkExport(b *testing.B) {
	var dbs []Prefixed
	for i := range 10 {
		db := New(5*time.Second, DefaultArchives(Average))
		feed(b, db, time.Unix(1_700_000_000, 0), 200)
		dbs = append(dbs, Prefixed{Prefix: fmt.Sprintf("vm:%08d-0000-0000-0000-000000000000:", i), DB: db})
	}
	b.Run("Export", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Export(dbs, -600, 5, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	u, err := Export(dbs, -600, 5, nil)
	if err != nil || len(u.Rows) != 120 || len(u.Legend) != 100 {
		b.Fatalf("%d rows, %d columns, %v", len(u.Rows), len(u.Legend), err)
	}
	b.Run("WriteJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := u.WriteJSON(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WriteXML", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := u.WriteXML(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
