package rrd

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/golden"
)

// exportArchives are three timescales of two CFs: 5 s rows over 1 min,
// 30 s rows over 5 min and 5 min rows over 25 min.
var exportArchives = []Archive{
	{Average, 1, 12}, {Max, 1, 12},
	{Average, 6, 10}, {Max, 6, 10},
	{Average, 60, 5}, {Max, 60, 5},
}

// exportDB updates gauges a (value: the update time) and b (twice that)
// every 5 s from 3000 to last, then once at last+extra.
func exportDB(t testing.TB, archives []Archive, last, extra float64) *DB {
	db := New(5*time.Second, archives)
	srcs := []Source{src("a", Gauge), src("b", Gauge)}
	for sec := 3000.0; sec <= last; sec += 5 {
		mustUpdate(t, db, sec, sample(srcs, sec, 2*sec))
	}
	if extra > 0 {
		mustUpdate(t, db, last+extra, sample(srcs, last+extra, 2*(last+extra)))
	}
	return db
}

func TestExportChoice(t *testing.T) {
	t.Parallel()
	db := exportDB(t, exportArchives, 5000, 2) // latest update 5002
	avg, maxCF, minCF := Average, Max, Min
	for _, tc := range []struct {
		name            string
		start, interval int64
		cf              *CF
		step            int64
		first, end      int64 // Start, End
		rows            int
		legend          string
	}{
		{"5 s rows for the last minute", -60, 5, nil, 5, 4945, 5000, 12, "AVERAGE:h:a,AVERAGE:h:b,MAX:h:a,MAX:h:b"},
		{"absolute start", 4942, 5, nil, 5, 4945, 5000, 12, ""},
		{"interval 0 means the finest", -20, 0, nil, 5, 4985, 5000, 4, ""},
		{"older start needs 30 s rows", -61, 5, nil, 30, 4950, 4980, 2, ""},
		{"interval picks 30 s rows", -30, 30, nil, 30, 4980, 4980, 1, ""},
		{"interval picks 5 min rows", -600, 31, nil, 300, 4500, 4800, 2, ""},
		{"interval beyond every archive", -600, 1000, nil, 300, 4500, 4800, 2, ""},
		{"start older than every archive", -100000, 5, nil, 300, -94800, 4800, 5, ""},
		{"start on a row boundary excludes that row", 4990, 5, nil, 5, 4995, 5000, 2, ""},
		{"start in the future", 6000, 5, nil, 5, 6005, 5000, 0, ""},
		{"start at the far past", math.MinInt64, 5, nil, 300, -8589929400, 4800, 5, ""},
		{"start at the far future", math.MaxInt64, 5, nil, 5, 8589934595, 5000, 0, ""},
		{"cf MAX", -60, 5, &maxCF, 5, 4945, 5000, 12, "MAX:h:a,MAX:h:b"},
		{"cf AVERAGE", -60, 5, &avg, 5, 4945, 5000, 12, "AVERAGE:h:a,AVERAGE:h:b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, err := Export([]Prefixed{{"h:", db}}, tc.start, tc.interval, tc.cf)
			if err != nil {
				t.Fatal(err)
			}
			if u.Step != tc.step || u.Start != tc.first || u.End != tc.end || len(u.Rows) != tc.rows {
				t.Fatalf("step %d start %d end %d rows %d; want %d %d %d %d",
					u.Step, u.Start, u.End, len(u.Rows), tc.step, tc.first, tc.end, tc.rows)
			}
			if tc.legend != "" && strings.Join(u.Legend, ",") != tc.legend {
				t.Errorf("legend %v, want %s", u.Legend, tc.legend)
			}
			for j, r := range u.Rows {
				if want := tc.end - int64(j)*tc.step; r.T != want {
					t.Errorf("row %d: T %d, want %d", j, r.T, want)
				}
				if r.T < u.Start {
					t.Errorf("row %d: T %d before start %d", j, r.T, u.Start)
				}
				if len(r.Values) != len(u.Legend) {
					t.Fatalf("row %d: %d values for %d columns", j, len(r.Values), len(u.Legend))
				}
				// a's PDP ending at T is T: the row's mean is T minus half
				// its span between PDP ends, its max T.
				for c, name := range u.Legend {
					want := float64(r.T) - float64(tc.step-5)/2
					if strings.HasPrefix(name, "MAX:") {
						want = float64(r.T)
					}
					if strings.HasSuffix(name, ":b") {
						want *= 2
					}
					if r.Values[c] != want {
						t.Errorf("row %d (T %d) %s = %v, want %v", j, r.T, name, r.Values[c], want)
					}
				}
			}
		})
	}

	if _, err := Export([]Prefixed{{"h:", db}}, -60, 5, &minCF); !errors.Is(err, ErrNoArchive) {
		t.Errorf("Export of a missing CF: %v, want ErrNoArchive", err)
	}
	if _, err := Export(nil, -60, 5, nil); !errors.Is(err, ErrNoArchive) {
		t.Errorf("Export of no DBs: %v, want ErrNoArchive", err)
	}
	if _, err := Export([]Prefixed{{"h:", New(5*time.Second, nil)}}, -60, 5, nil); !errors.Is(err, ErrNoArchive) {
		t.Errorf("Export of a DB without archives: %v, want ErrNoArchive", err)
	}
}

// TestExportOldRows checks rows from before the first update and the ring's
// bound on how far back rows go.
func TestExportOldRows(t *testing.T) {
	t.Parallel()
	db := exportDB(t, exportArchives, 3020, 0) // 3000 to 3020
	u, err := Export([]Prefixed{{"", db}}, 2990, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.Step != 5 || u.End != 3020 || len(u.Rows) != 6 {
		t.Fatalf("step %d end %d rows %d; want 5, 3020, 6", u.Step, u.End, len(u.Rows))
	}
	for j, r := range u.Rows {
		// Rows ending after the first update hold values, earlier ones NaN.
		if known := r.T > 3000; known == math.IsNaN(r.Values[0]) {
			t.Errorf("row T %d: %v", r.T, r.Values[0])
		}
		if want := int64(3020 - 5*j); r.T != want {
			t.Errorf("row %d: T %d, want %d", j, r.T, want)
		}
	}

	// A DB never updated exports no rows.
	u, err = Export([]Prefixed{{"", New(5*time.Second, exportArchives)}}, -60, 5, nil)
	if err != nil || len(u.Rows) != 0 || len(u.Legend) != 0 {
		t.Errorf("empty DB: %+v, %v", u, err)
	}
}

func TestExportMany(t *testing.T) {
	t.Parallel()
	host := exportDB(t, exportArchives, 5000, 0)
	vm1 := exportDB(t, exportArchives, 5000, 3)
	vm2 := exportDB(t, []Archive{{Average, 1, 12}, {Average, 6, 10}}, 4990, 0) // lags behind, no MAX
	other := New(10*time.Second, []Archive{{Average, 1, 100}})                 // other step: skipped
	mustUpdate(t, other, 4990, sample([]Source{src("z", Gauge)}, 1))
	mustUpdate(t, other, 5000, sample([]Source{src("z", Gauge)}, 1))

	u, err := Export([]Prefixed{
		{"host:H:", host}, {"vm:1:", vm1}, {"", nil}, {"vm:X:", other}, {"vm:2:", vm2},
	}, -30, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "AVERAGE:host:H:a,AVERAGE:host:H:b,MAX:host:H:a,MAX:host:H:b," +
		"AVERAGE:vm:1:a,AVERAGE:vm:1:b,MAX:vm:1:a,MAX:vm:1:b," +
		"AVERAGE:vm:2:a,AVERAGE:vm:2:b"
	if got := strings.Join(u.Legend, ","); got != want {
		t.Errorf("legend\n got %s\nwant %s", got, want)
	}
	if u.Start != 4975 || u.End != 5000 || len(u.Rows) != 6 {
		t.Fatalf("start %d end %d rows %d; want 4975, 5000, 6", u.Start, u.End, len(u.Rows))
	}
	for _, r := range u.Rows {
		for c, name := range u.Legend {
			want := float64(r.T)
			if strings.HasSuffix(name, ":b") {
				want *= 2
			}
			if strings.Contains(name, "vm:2:") && r.T > 4990 {
				want = math.NaN() // not consolidated yet in vm2
			}
			if !same(r.Values[c], want) {
				t.Errorf("T %d %s = %v, want %v", r.T, name, r.Values[c], want)
			}
		}
	}

	// Relative start counts from the latest update among the DBs (vm1: 5003).
	u, err = Export([]Prefixed{{"2:", vm2}, {"1:", vm1}}, -13, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.Start != 4995 || u.End != 5000 || len(u.Rows) != 2 {
		t.Errorf("start %d end %d rows %d; want 4995, 5000, 2", u.Start, u.End, len(u.Rows))
	}
}

// fixedUpdates covers every kind of value and a legend needing escapes.
var fixedUpdates = Updates{
	Start: 1700000005, End: 1700000010, Step: 5,
	Legend: []string{"AVERAGE:host:7a1b:cpu0", `AVERAGE:vm:<&"'>:memory`, "MAX:vm:é:x"},
	Rows: []Row{
		{T: 1700000010, Values: []float64{0.25, math.NaN(), 123456789}},
		{T: 1700000005, Values: []float64{math.Inf(1), math.Inf(-1), 1e-7}},
		{T: 1700000000, Values: []float64{-0.5, 1e21, 0}},
	},
}

func TestWriteXML(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := fixedUpdates.WriteXML(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "updates.xml.golden", b.Bytes())

	var doc struct {
		Meta struct {
			Start   int64    `xml:"start"`
			Step    int64    `xml:"step"`
			End     int64    `xml:"end"`
			Rows    int64    `xml:"rows"`
			Columns int64    `xml:"columns"`
			Legend  []string `xml:"legend>entry"`
		} `xml:"meta"`
		Rows []struct {
			T int64    `xml:"t"`
			V []string `xml:"v"`
		} `xml:"data>row"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("output is not XML: %v", err)
	}
	if strings.Join(doc.Meta.Legend, "|") != strings.Join(fixedUpdates.Legend, "|") ||
		doc.Meta.Start != fixedUpdates.Start || doc.Meta.Step != 5 || doc.Meta.End != fixedUpdates.End ||
		doc.Meta.Rows != 3 || doc.Meta.Columns != 3 || len(doc.Rows) != 3 || doc.Rows[1].V[1] != "-Infinity" {
		t.Errorf("read back %+v", doc)
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := fixedUpdates.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "updates.json.golden", b.Bytes())

	var doc struct {
		Meta struct {
			Start, Step, End, Rows, Columns int64
			Legend                          []string
		}
		Data []struct {
			T      int64
			Values []*float64
		}
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	m := doc.Meta
	if m.Start != fixedUpdates.Start || m.Step != 5 || m.End != fixedUpdates.End || m.Rows != 3 || m.Columns != 3 ||
		strings.Join(m.Legend, "|") != strings.Join(fixedUpdates.Legend, "|") || len(doc.Data) != 3 {
		t.Fatalf("read back %+v", doc)
	}
	for i, r := range fixedUpdates.Rows {
		if doc.Data[i].T != r.T {
			t.Errorf("row %d: t %d", i, doc.Data[i].T)
		}
		for j, v := range r.Values {
			got := doc.Data[i].Values[j]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				if got != nil {
					t.Errorf("row %d value %d: %v, want null", i, j, *got)
				}
			} else if got == nil || *got != v {
				t.Errorf("row %d value %d: %v, want %v", i, j, got, v)
			}
		}
	}

	// No rows and no legend are still valid JSON with empty arrays.
	b.Reset()
	if err := (Updates{Step: 5}).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if want := `{"meta":{"start":0,"step":5,"end":0,"rows":0,"columns":0,"legend":[]},"data":[]}`; b.String() != want {
		t.Errorf("empty updates: %s, want %s", b.String(), want)
	}
}

// failWriter fails every write, to check errors come back.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	db := exportDB(t, exportArchives, 3100, 0)
	for name, write := range map[string]func() error{
		"xml":  func() error { return fixedUpdates.WriteXML(failWriter{}) },
		"json": func() error { return fixedUpdates.WriteJSON(failWriter{}) },
		"dump": func() error { return db.WriteDump(failWriter{}) },
	} {
		if err := write(); err == nil {
			t.Errorf("%s: no error from a failing writer", name)
		}
	}
}
