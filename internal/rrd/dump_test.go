package rrd

import (
	"bytes"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/golden"
)

// scenario builds a DB in some state, and continue applies further updates
// to it (or to its reloaded copy).
type scenario struct {
	name  string
	build func(t testing.TB) *DB
	more  func(t testing.TB, db *DB)
}

var (
	srcA = Source{Name: "memory", Kind: Gauge, Min: 0, Max: math.Inf(1), Units: "KiB", Description: `free <memory> & "such"` + "\n\tline two\r"}
	srcB = Source{Name: "cpu0", Kind: Derive, Min: 0, Max: 1, Units: "(fraction)"}
	srcC = Source{Name: "vif_0_tx", Kind: Absolute, Min: math.NaN(), Max: math.NaN(), Units: "B/s"}
	abc  = []Source{srcA, srcB, srcC}
)

func scenarios() []scenario {
	every := func(from, to, by float64) func(t testing.TB, db *DB) {
		return func(t testing.TB, db *DB) {
			for sec := from; sec <= to; sec += by {
				v := math.Mod(sec*7, 13)
				mustUpdate(t, db, sec, sample(abc, v, sec/2, v*3))
			}
		}
	}
	mixed := []Archive{{Average, 1, 5}, {Min, 12, 3}, {Max, 12, 3}, {Last, 12, 3}, {Average, 3, 4}}
	return []scenario{
		{"never updated", func(testing.TB) *DB { return New(5*time.Second, DefaultArchives(Average)) }, every(1000, 1100, 5)},
		{"no sources", func(t testing.TB) *DB {
			db := New(5*time.Second, mixed)
			mustUpdate(t, db, 1000, nil)
			return db
		}, every(1003, 1100, 5)},
		{"mid-step and mid-row", func(t testing.TB) *DB {
			db := New(5*time.Second, mixed)
			mustUpdate(t, db, 960.25, sample(abc, 1, 0, 0))
			mustUpdate(t, db, 963, sample(abc, 4, 1, 10))
			mustUpdate(t, db, 969.5, sample(abc, nan, 3, 20)) // memory unknown
			mustUpdate(t, db, 971, sample(abc, 6, 2, 5))      // cpu0 reset
			mustUpdate(t, db, 988, sample(abc, 7, 4, 2))
			mustUpdate(t, db, 993.7, sample(abc, 8, 4.5, nan))
			return db
		}, every(995, 1200, 2.5)},
		{"wrapped rings", func(t testing.TB) *DB {
			db := New(5*time.Second, DefaultArchives(Average, Min, Max))
			every(1000, 1000+3*3600, 5)(t, db)
			return db
		}, every(1000+3*3600+1, 1000+4*3600, 5)},
		{"after a long gap and forget", func(t testing.TB) *DB {
			db := New(5*time.Second, mixed)
			every(1000, 1100, 5)(t, db)
			mustUpdate(t, db, 2000.5, sample(abc, 1, 1000, 1))
			db.Forget(srcB.Name)
			return db
		}, every(2003, 2100, 5)},
		{"infinities", func(t testing.TB) *DB {
			db := New(5*time.Second, mixed)
			g := []Source{src("g", Gauge), src("h", Gauge)}
			mustUpdate(t, db, 1000, sample(g, 0, 0))
			mustUpdate(t, db, 1005, sample(g, math.Inf(1), math.Inf(-1)))
			mustUpdate(t, db, 1007, sample(g, math.MaxFloat64, -math.SmallestNonzeroFloat64))
			return db
		}, func(t testing.TB, db *DB) {
			g := []Source{src("g", Gauge), src("h", Gauge)}
			for sec := 1010.0; sec < 1100; sec += 5 {
				mustUpdate(t, db, sec, sample(g, sec, -sec))
			}
		}},
	}
}

// TestDumpRoundTrip reloads dumps of DBs in various states: the reload
// must dump identically, and behave identically under further updates.
func TestDumpRoundTrip(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			db := sc.build(t)
			d1 := dumpOf(t, db)
			cp, err := ReadDump(bytes.NewReader(d1))
			if err != nil {
				t.Fatalf("ReadDump: %v\n%s", err, d1)
			}
			if d2 := dumpOf(t, cp); !bytes.Equal(d1, d2) {
				t.Fatalf("dump changed by a round trip:\n%s\nthen\n%s", d1, d2)
			}
			if !cp.LastUpdate().Equal(db.LastUpdate()) || cp.Step() != db.Step() {
				t.Errorf("last update %v step %v, want %v %v", cp.LastUpdate(), cp.Step(), db.LastUpdate(), db.Step())
			}
			want, got := db.Sources(), cp.Sources()
			if len(got) != len(want) {
				t.Fatalf("sources %+v, want %+v", got, want)
			}
			for i := range want {
				w, g := want[i], got[i]
				if w.Name != g.Name || w.Kind != g.Kind || !same(w.Min, g.Min) || !same(w.Max, g.Max) ||
					w.Units != g.Units || w.Description != g.Description || !same(w.Last, g.Last) {
					t.Errorf("source %d: %+v, want %+v", i, g, w)
				}
			}
			sc.more(t, db)
			sc.more(t, cp)
			if a, b := dumpOf(t, db), dumpOf(t, cp); !bytes.Equal(a, b) {
				t.Errorf("the reloaded DB diverged after more updates:\n%s\nthen\n%s", a, b)
			}
		})
	}
}

// TestDumpGolden pins the dump format.
func TestDumpGolden(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios() {
		if sc.name == "mid-step and mid-row" {
			golden.Check(t, "dump.golden", dumpOf(t, sc.build(t)))
		}
	}
}

// rrdtoolDump is in the style of `rrdtool dump`: comments, padded names,
// UNKN, rrdtool's number format, no xenith elements.
const rrdtoolDump = `<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE rrd SYSTEM "https://oss.oetiker.ch/rrdtool/rrdtool.dtd">
<!-- Round Robin Database Dump -->
<rrd>
	<version>0003</version>
	<step>5</step> <!-- Seconds -->
	<lastupdate>1007</lastupdate> <!-- 1970-01-01 00:16:47 +0000 -->

	<ds>
		<name> cpu0 </name>
		<type> DERIVE </type>
		<minimal_heartbeat>300</minimal_heartbeat>
		<min>0.0000000000e+00</min>
		<max>NaN</max>

		<!-- PDP Status -->
		<last_ds>UNKN</last_ds>
		<value>0.0000000000e+00</value>
		<unknown_sec> 2 </unknown_sec>
	</ds>

	<!-- Round Robin Archives -->
	<rra>
		<cf>AVERAGE</cf>
		<pdp_per_row>1</pdp_per_row> <!-- 5 seconds -->

		<params>
		<xff>5.0000000000e-01</xff>
		</params>
		<cdp_prep>
			<ds>
			<primary_value>2.5000000000e-01</primary_value>
			<secondary_value>2.5000000000e-01</secondary_value>
			<value>NaN</value>
			<unknown_datapoints>0</unknown_datapoints>
			</ds>
		</cdp_prep>
		<database>
			<!-- 1970-01-01 00:16:40 +0000 / 1000 --> <row><v>NaN</v></row>
			<!-- 1970-01-01 00:16:45 +0000 / 1005 --> <row><v>2.5000000000e-01</v></row>
		</database>
	</rra>
</rrd>
`

func TestReadRRDToolDump(t *testing.T) {
	t.Parallel()
	db, err := ReadDump(strings.NewReader(rrdtoolDump))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := db.Query("cpu0"); !ok || v != 0.25 {
		t.Errorf("Query(cpu0) = %v, %v; want 0.25", v, ok)
	}
	if got := rowAt(t, db, 0, "cpu0", 1005); got != 0.25 {
		t.Errorf("row ending 1005 = %v, want 0.25", got)
	}
	if got := rowAt(t, db, 0, "cpu0", 1000); !math.IsNaN(got) {
		t.Errorf("row ending 1000 = %v, want NaN", got)
	}
	if s := db.Sources()[0]; s.Kind != Derive || s.Min != 0 || !math.IsNaN(s.Max) || s.Units != "" {
		t.Errorf("source %+v", s)
	}
	// It goes on: last_ds was unknown, so the first rate is too.
	mustUpdate(t, db, 1010, sample([]Source{srcB}, 100))
	mustUpdate(t, db, 1015, sample([]Source{srcB}, 101))
	if got := rowAt(t, db, 0, "cpu0", 1010); !math.IsNaN(got) {
		t.Errorf("row ending 1010 = %v, want NaN", got)
	}
	if got := rowAt(t, db, 0, "cpu0", 1015); got != 0.2 {
		t.Errorf("row ending 1015 = %v, want 0.2", got)
	}
}

// baseDump is a small valid dump the bad documents are made from.
func baseDump(t testing.TB) string {
	db := New(5*time.Second, []Archive{{Average, 1, 2}, {Max, 2, 2}})
	s := []Source{src("a", Gauge), src("b", Derive)}
	mustUpdate(t, db, 1000, sample(s, 1, 0))
	mustUpdate(t, db, 1005, sample(s, 2, 10))
	mustUpdate(t, db, 1012.5, sample(s, 3, 20))
	return string(dumpOf(t, db))
}

func TestReadDumpErrors(t *testing.T) {
	t.Parallel()
	base := baseDump(t)
	if _, err := ReadDump(strings.NewReader(base)); err != nil {
		t.Fatalf("the base document is refused: %v", err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("base dump lacks %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	firstDS := base[strings.Index(base, "\t<ds>") : strings.Index(base, "</ds>")+len("</ds>\n")]
	for _, tc := range []struct {
		name, doc, msg string
	}{
		{"empty", "", "EOF"},
		{"not xml", "hello", "unexpected text"},
		{"other root", "<xport></xport>", "want <rrd>"},
		{"truncated", base[:len(base)/2], "EOF"},
		{"mismatched end", edit("</step>", "</stop>"), "element <step> closed by </stop>"},
		{"bad version", edit("0003", "0002"), "unsupported version"},
		{"missing version", edit("<version>0003</version>", ""), "missing <version>"},
		{"missing step", edit("<step>5</step>", ""), "before <step>"},
		{"zero step", edit("<step>5</step>", "<step>0</step>"), "bad integer"},
		{"negative step", edit("<step>5</step>", "<step>-5</step>"), "bad integer"},
		{"word step", edit("<step>5</step>", "<step>five</step>"), "bad integer"},
		{"huge step", edit("<step>5</step>", "<step>1000000000</step>"), "bad integer"},
		{"step twice", edit("<step>5</step>", "<step>5</step><step>5</step>"), "given twice"},
		{"negative lastupdate", edit("<lastupdate>1012", "<lastupdate>-1012"), "bad integer"},
		{"huge lastupdate", edit("<lastupdate>1012", "<lastupdate>99999999999"), "bad integer"},
		{"bad nsec", edit("500000000", "1000000000"), "bad integer"},
		{"unknown element", edit("\t<ds>", "<foo/><ds>"), "unknown element <foo>"},
		{"text in rrd", edit("<step>", "junk<step>"), "unexpected text"},
		{"element in text", edit("<step>5</step>", "<step><b>5</b></step>"), "unexpected element <b>"},
		{"namespace", edit("<rrd>", `<rrd xmlns="urn:x">`), "namespace"},
		{"header after ds", edit("</ds>", "</ds><version>0003</version>"), "after <ds>"},
		{"ds after rra", edit("</rrd>", firstDS+"</rrd>"), "<ds> after <rra>"},
		{"content after root", base + "<rrd/>", "after </rrd>"},
		{"text after root", base + "x", "unexpected text"},
		{"duplicate source", edit("<name>b</name>", "<name>a</name>"), "given twice"},
		{"empty name", edit("<name>b</name>", "<name> </name>"), "want 1 to"},
		{"tab in name", edit("<name>b</name>", "<name>b&#x9;c</name>"), "invalid characters"},
		{"counter type", edit("DERIVE", "COUNTER"), "unknown data source type"},
		{"missing min", edit("<min>-Infinity</min>", ""), "without <min>"},
		{"min above max", edit("<min>-Infinity</min>\n\t\t<max>Infinity</max>", "<min>1</min><max>0</max>"), "above max"},
		{"zero heartbeat", edit("<minimal_heartbeat>300", "<minimal_heartbeat>0"), "zero heartbeat"},
		{"negative heartbeat", edit("<minimal_heartbeat>300", "<minimal_heartbeat>-300"), "bad number of seconds"},
		{"ds element twice", edit("<value>7.5</value>", "<value>7.5</value><value>7.5</value>"), "given twice"},
		{"unknown ds element", edit("<value>7.5</value>", "<value>7.5</value><rpn/>"), "unknown element <rpn>"},
		{"bad number", edit("<value>7.5</value>", "<value>7.5.5</value>"), "bad number"},
		{"number out of range", edit("<value>7.5</value>", "<value>1e999</value>"), "bad number"},
		{"long number", edit("<value>7.5</value>", "<value>"+strings.Repeat("1", 200)+"</value>"), "longer than"},
		{"unknown_sec past the step", edit("<unknown_sec>0</unknown_sec>", "<unknown_sec>3</unknown_sec>"), "unknown_sec beyond"},
		{"unknown_sec bad", edit("<unknown_sec>0</unknown_sec>", "<unknown_sec>1.</unknown_sec>"), "bad number of seconds"},
		{"sources in a DB never updated", edit("<lastupdate>1012</lastupdate>\n\t<lastupdate_nsec>500000000</lastupdate_nsec>", "<lastupdate>0</lastupdate>"), "never updated"},
		{"bad cf", edit("<cf>MAX</cf>", "<cf>HWPREDICT</cf>"), "unknown consolidation function"},
		{"missing cf", edit("<cf>MAX</cf>", ""), "without <cf>"},
		{"zero pdp_per_row", edit("<pdp_per_row>2</pdp_per_row>", "<pdp_per_row>0</pdp_per_row>"), "bad integer"},
		{"huge pdp_per_row", edit("<pdp_per_row>2</pdp_per_row>", "<pdp_per_row>999999999</pdp_per_row>"), "bad integer"},
		{"other xff", edit("<xff>0.5</xff>", "<xff>0.7</xff>"), "only 0.5"},
		{"missing cdp_prep ds", edit("<ds><primary_value>3</primary_value><secondary_value>3</secondary_value><value>0</value><unknown_datapoints>0</unknown_datapoints></ds>", ""), "2 sources"},
		{"extra cdp_prep ds", edit("</cdp_prep>", "<ds><value>0</value><unknown_datapoints>0</unknown_datapoints></ds></cdp_prep>"), "more than 2 <ds>"},
		{"cdp without value", edit("<value>0</value><unknown_datapoints>0", "<unknown_datapoints>0"), "without <value>"},
		{"unknown datapoints past the row", edit("<value>-Infinity</value><unknown_datapoints>0", "<value>-Infinity</value><unknown_datapoints>1"), "unknown datapoints"},
		{"unknown datapoints in a 1-step row", edit("<unknown_datapoints>0", "<unknown_datapoints>1"), "unknown datapoints"},
		{"row short", edit("<row><v>2</v><v>2</v></row>", "<row><v>2</v></row>"), "1 values for 2"},
		{"row long", edit("<row><v>2</v><v>2</v></row>", "<row><v>2</v><v>2</v><v>2</v></row>"), "more than 2 values"},
		{"row element", edit("<row><v>2</v><v>2</v></row>", "<row><v>2</v><w>2</w></row>"), "unknown element <w>"},
		{"no rows", edit("<row><v>NaN</v><v>NaN</v></row>\n\t\t\t<row><v>3</v><v>2</v></row>", ""), "without rows"},
		{"missing database", base[:strings.LastIndex(base, "<database>")] + "</rra>\n</rrd>\n", "without <database>"},
		{"utf-16", strings.Replace(base, `encoding="utf-8"`, `encoding="utf-16"`, 1), "utf-16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, err := ReadDump(strings.NewReader(tc.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s\nas\n%s", tc.doc, dumpOf(t, db))
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to mention %q", err, tc.msg)
			}
		})
	}
}

// TestReadDumpLimits feeds documents past the limits on rows and sources.
func TestReadDumpLimits(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("reads 11 MB")
	}
	head := "<rrd><version>0003</version><step>5</step><lastupdate>1000</lastupdate>" +
		"<rra><cf>AVERAGE</cf><pdp_per_row>1</pdp_per_row><cdp_prep></cdp_prep><database>"
	rows := io.MultiReader(strings.NewReader(head),
		&repeatReader{s: "<row></row>", n: maxTotalRows + 1},
		strings.NewReader("</database></rra></rrd>"))
	if _, err := ReadDump(rows); err == nil || !strings.Contains(err.Error(), "rows") {
		t.Errorf("%d rows: %v", maxTotalRows+1, err)
	}

	var b strings.Builder
	b.WriteString("<rrd><version>0003</version><step>5</step><lastupdate>1000</lastupdate>")
	for i := range maxSources + 1 {
		b.WriteString("<ds><name>s")
		b.WriteString(strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("y", i/26))
		b.WriteString("</name><type>GAUGE</type><minimal_heartbeat>300</minimal_heartbeat><min>0</min><max>1</max><last_ds>U</last_ds><value>0</value><unknown_sec>0</unknown_sec></ds>")
	}
	b.WriteString("</rrd>")
	if _, err := ReadDump(strings.NewReader(b.String())); err == nil || !strings.Contains(err.Error(), "sources") {
		t.Errorf("%d sources: %v", maxSources+1, err)
	}
}

// repeatReader yields s n times.
type repeatReader struct {
	s   string
	n   int
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 && r.n > 0 {
		c := copy(p, r.s[r.off:])
		p, total, r.off = p[c:], total+c, r.off+c
		if r.off == len(r.s) {
			r.off, r.n = 0, r.n-1
		}
	}
	if total == 0 && r.n == 0 {
		return 0, io.EOF
	}
	return total, nil
}

func TestSeconds(t *testing.T) {
	t.Parallel()
	for _, ns := range []int64{0, 1, 999999999, 1e9, 2500000000, 300e9, 12345678912345} {
		s := string(appendSeconds(nil, ns))
		got, err := parseSeconds(s, maxRowSpan)
		if err != nil || got != ns {
			t.Errorf("%d ns -> %q -> %d, %v", ns, s, got, err)
		}
	}
	for _, s := range []string{"", ".5", "5.", "-1", "+1", "1e3", "1.0000000001", "0x10", "1 2", "316224001"} {
		if _, err := parseSeconds(s, maxRowSpan); err == nil {
			t.Errorf("parseSeconds(%q) accepted", s)
		}
	}
}
