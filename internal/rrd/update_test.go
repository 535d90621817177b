package rrd

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind]string{Gauge: "GAUGE", Derive: "DERIVE", Absolute: "ABSOLUTE", 9: "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
	for c, want := range map[CF]string{Average: "AVERAGE", Min: "MIN", Max: "MAX", Last: "LAST", 7: "CF(7)"} {
		if got := c.String(); got != want {
			t.Errorf("CF(%d).String() = %q, want %q", int(c), got, want)
		}
	}
	for _, tc := range []struct {
		in   string
		want CF
		ok   bool
	}{
		{"AVERAGE", Average, true}, {"average", Average, true}, {"AVE", Average, true}, {"ave", Average, true},
		{"MIN", Min, true}, {"Max", Max, true}, {"last", Last, true},
		{"", 0, false}, {"AVG", 0, false}, {" MIN", 0, false}, {"MINIMUM", 0, false},
	} {
		got, err := ParseCF(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("ParseCF(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestDefaultArchives(t *testing.T) {
	t.Parallel()
	got := DefaultArchives(Average, Max)
	want := []Archive{
		{Average, 1, 120}, {Max, 1, 120},
		{Average, 12, 120}, {Max, 12, 120},
		{Average, 720, 168}, {Max, 720, 168},
		{Average, 17280, 366}, {Max, 17280, 366},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("archive %d = %v, want %v", i, got[i], want[i])
		}
	}
	if n := len(DefaultArchives()); n != 0 {
		t.Errorf("DefaultArchives() has %d archives", n)
	}
}

func TestNewPanics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		step     time.Duration
		archives []Archive
	}{
		{"zero step", 0, nil},
		{"sub-second step", 1500 * time.Millisecond, nil},
		{"zero steps", 5 * time.Second, []Archive{{Average, 0, 1}}},
		{"zero rows", 5 * time.Second, []Archive{{Average, 1, 0}}},
		{"bad cf", 5 * time.Second, []Archive{{CF(4), 1, 1}}},
		{"too many rows", 5 * time.Second, []Archive{{Average, 1, 600_000}, {Max, 1, 600_000}}},
		{"row too long", 5 * time.Second, []Archive{{Average, 1 << 30, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			New(tc.step, tc.archives)
		})
	}
}

// TestKinds feeds one source samples every 5 s, aligned to the steps, and
// checks the PDP after each update.
func TestKinds(t *testing.T) {
	t.Parallel()
	bounded := func(k Kind, lo, hi float64) Source { return Source{Name: "x", Kind: k, Min: lo, Max: hi} }
	for _, tc := range []struct {
		name    string
		src     Source
		samples []float64 // at 1000, 1005, ...; NaN: not given
		want    []float64 // PDP of [1000,1005), [1005,1010), ...
	}{
		{"gauge", src("x", Gauge), []float64{7, 3, 4.5, nan, 2, -1}, []float64{3, 4.5, nan, 2, -1}},
		{"gauge bounds", bounded(Gauge, 0, 10), []float64{1, 11, -1, 10, 0}, []float64{nan, nan, 10, 0}},
		{"gauge nan bounds", bounded(Gauge, nan, nan), []float64{1, -1e300, 1e300}, []float64{-1e300, 1e300}},
		{"derive", src("x", Derive), []float64{100, 110, 135, 135, 20, 30}, []float64{2, 5, 0, nan, 2}},
		{"derive unknown sample", src("x", Derive), []float64{0, 10, nan, 30, 40}, []float64{2, nan, nan, 2}},
		{"derive max", bounded(Derive, 0, 1), []float64{0, 5, 15, 16}, []float64{1, nan, 0.2}},
		{"absolute", src("x", Absolute), []float64{0, 10, 25, 0, -5}, []float64{2, 5, 0, -1}},
		{"absolute min", bounded(Absolute, 0, math.Inf(1)), []float64{0, -5, 5}, []float64{nan, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := New(5*time.Second, []Archive{{Average, 1, 10}})
			srcs := []Source{tc.src}
			for i, v := range tc.samples {
				sec := 1000 + 5*float64(i)
				mustUpdate(t, db, sec, sample(srcs, v))
				if i == 0 {
					continue
				}
				got, ok := db.Query("x")
				if i == 1 && !ok { // the first sample may have been missing
					continue
				}
				if want := tc.want[i-1]; !same(got, want) {
					t.Errorf("after update %d: Query = %v, want %v", i, got, want)
				}
				if row := rowAt(t, db, 0, "x", int64(sec)); !same(row, got) {
					t.Errorf("after update %d: row %v, Query %v", i, row, got)
				}
			}
		})
	}
}

// TestUnaligned checks time weighting when updates fall inside steps.
func TestUnaligned(t *testing.T) {
	t.Parallel()
	type upd struct{ t, v float64 } // v NaN: not given
	for _, tc := range []struct {
		name string
		upds []upd
		want map[int64]float64 // row end -> PDP
	}{
		{"half steps", []upd{{1000, 0}, {1002.5, 2}, {1007.5, 6}, {1010, 10}},
			map[int64]float64{1005: 4, 1010: 8}}, // (2.5*2+2.5*6)/5, (2.5*6+2.5*10)/5
		{"across two boundaries", []upd{{1000, 0}, {1003, 1}, {1011, 5}, {1015, 0}},
			map[int64]float64{1005: 2.6, 1010: 5, 1015: 1}}, // (3*1+2*5)/5, 5, (1*5+4*0)/5
		{"start inside a step", []upd{{1002, 0}, {1005, 3}, {1010, 1}},
			map[int64]float64{1005: 3, 1010: 1}}, // 2 s unknown of 5: the known 3 s count
		{"start at half a step", []upd{{1002.5, 0}, {1005, 4}}, map[int64]float64{1005: 4}},
		{"start past half a step", []upd{{1003, 0}, {1005, 4}, {1010, 1}}, map[int64]float64{1005: nan, 1010: 1}},
		{"unknown parts", []upd{{1000, 0}, {1002, nan}, {1005, 6}, {1007, nan}, {1010, 3}, {1012, nan}, {1015, nan}, {1020, 1}},
			map[int64]float64{1005: 6, 1010: 3, 1015: nan, 1020: 1}},
		{"many updates in a step", []upd{{1000, 0}, {1001, 1}, {1002, 2}, {1003, 3}, {1004, 4}, {1005, 5}},
			map[int64]float64{1005: 3}}, // (1+2+3+4+5)/5
		{"sub-second", []upd{{1000, 0}, {1000.25, 8}, {1005, 0}}, map[int64]float64{1005: 0.4}}, // 0.25*8/5
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := New(5*time.Second, []Archive{{Average, 1, 10}})
			srcs := []Source{src("g", Gauge)}
			mustUpdate(t, db, tc.upds[0].t, sample(srcs, 0)) // defines g
			for _, u := range tc.upds[1:] {
				mustUpdate(t, db, u.t, sample(srcs, u.v))
			}
			for end, want := range tc.want {
				if got := rowAt(t, db, 0, "g", end); !same(got, want) {
					t.Errorf("step ending %d = %v, want %v", end, got, want)
				}
			}
		})
	}
}

// TestConsolidation feeds one row of a 12-step archive per CF.
func TestConsolidation(t *testing.T) {
	t.Parallel()
	archives := []Archive{{Average, 12, 5}, {Min, 12, 5}, {Max, 12, 5}, {Last, 12, 5}}
	for _, tc := range []struct {
		name  string
		first float64    // time of the first update; rows start at multiples of 60
		pdps  []float64  // PDPs from the first update to 1020; NaN: unknown
		want  [4]float64 // AVERAGE, MIN, MAX, LAST of the row ending 1020
	}{
		{"all known", 960, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, [4]float64{6.5, 1, 12, 12}},
		{"some unknown", 960, []float64{1, 2, nan, 4, 5, 6, nan, 8, 9, 10, 11, nan}, [4]float64{56.0 / 9, 1, 11, 11}},
		{"half unknown", 960, []float64{nan, nan, nan, nan, nan, nan, 1, 2, 3, 4, 5, 6}, [4]float64{3.5, 1, 6, 6}},
		{"over half unknown", 960, []float64{nan, nan, 9, nan, nan, nan, nan, 2, 3, nan, 5, 6}, [4]float64{nan, nan, nan, nan}},
		{"negative", 960, []float64{-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12}, [4]float64{-6.5, -12, -1, -12}},
		{"first update mid-row", 990, []float64{6, 5, 4, 3, 2, 1}, [4]float64{3.5, 1, 6, 1}},
		{"first update late in the row", 995, []float64{5, 4, 3, 2, 1}, [4]float64{nan, nan, nan, nan}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := New(5*time.Second, archives)
			srcs := []Source{src("g", Gauge)}
			mustUpdate(t, db, tc.first, sample(srcs, 0))
			for i, v := range tc.pdps {
				mustUpdate(t, db, tc.first+5*float64(i+1), sample(srcs, v))
			}
			for ai := range archives {
				if got := rowAt(t, db, ai, "g", 1020); !same(got, tc.want[ai]) {
					t.Errorf("%v = %v, want %v", archives[ai].CF, got, tc.want[ai])
				}
				if got := rowAt(t, db, ai, "g", 960); !math.IsNaN(got) {
					t.Errorf("%v: row before the first update = %v", archives[ai].CF, got)
				}
			}
		})
	}
}

func TestGaps(t *testing.T) {
	t.Parallel()
	type upd struct{ t, v float64 }
	for _, tc := range []struct {
		name string
		kind Kind
		upds []upd
		want map[int64]float64
	}{
		{"short gap fills", Gauge, []upd{{1000, 0}, {1005, 1}, {1030, 7}},
			map[int64]float64{1005: 1, 1010: 7, 1015: 7, 1020: 7, 1025: 7, 1030: 7}},
		{"short unaligned gap", Gauge, []upd{{1000, 0}, {1007, 2}, {1023, 4}},
			map[int64]float64{1005: 2, 1010: 3.2, 1015: 4, 1020: 4}}, // [1005,1010): 2 s of 2, 3 s of 4
		{"gap of the heartbeat", Gauge, []upd{{1000, 0}, {1005, 1}, {1305, 3}},
			map[int64]float64{1010: 3, 1305: 3}},
		{"long gap unknown", Gauge, []upd{{1000, 0}, {1005, 1}, {1400, 7}, {1405, 3}},
			map[int64]float64{1005: 1, 1010: nan, 1200: nan, 1400: nan, 1405: 3}},
		{"derive over a gap", Derive, []upd{{1000, 0}, {1025, 100}},
			map[int64]float64{1005: 4, 1010: 4, 1025: 4}},
		{"derive over a long gap", Derive, []upd{{1000, 0}, {1005, 10}, {1400, 20}, {1405, 30}},
			map[int64]float64{1005: 2, 1010: nan, 1400: nan, 1405: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := New(5*time.Second, []Archive{{Average, 1, 100}})
			srcs := []Source{src("g", tc.kind)}
			for _, u := range tc.upds {
				mustUpdate(t, db, u.t, sample(srcs, u.v))
			}
			for end, want := range tc.want {
				if got := rowAt(t, db, 0, "g", end); !same(got, want) {
					t.Errorf("step ending %d = %v, want %v", end, got, want)
				}
			}
		})
	}
}

// TestGapWiderThanRings covers gaps spanning whole rings: every row is
// rewritten with the gap's value, quickly however long the gap.
func TestGapWiderThanRings(t *testing.T) {
	t.Parallel()
	db := New(5*time.Second, []Archive{{Average, 1, 4}, {Max, 12, 3}, {Average, 12, 100}})
	db.heartbeat = int64(10000 * time.Second) // sources take the DB's heartbeat when added
	srcs := []Source{src("g", Gauge)}
	mustUpdate(t, db, 960, sample(srcs, 0))
	mustUpdate(t, db, 965, sample(srcs, 1))
	mustUpdate(t, db, 6000, sample(srcs, 2))
	for end := int64(5985); end <= 6000; end += 5 {
		if got := rowAt(t, db, 0, "g", end); got != 2 {
			t.Errorf("5 s row ending %d = %v, want 2", end, got)
		}
	}
	for end := int64(5880); end <= 6000; end += 60 {
		for ai := 1; ai <= 2; ai++ {
			if got := rowAt(t, db, ai, "g", end); got != 2 {
				t.Errorf("archive %d: row ending %d = %v, want 2", ai, end, got)
			}
		}
	}
	// The first minute [960,1020) had one PDP of 1 and eleven of 2.
	if got, want := rowAt(t, db, 2, "g", 1020), 23.0/12; got != want {
		t.Errorf("first minute = %v, want %v", got, want)
	}

	// Ten years with the default heartbeat: all unknown, and fast.
	db = New(5*time.Second, DefaultArchives(Average, Min, Max))
	mustUpdate(t, db, 1000, sample(srcs, 0))
	mustUpdate(t, db, 1005, sample(srcs, 1))
	begin := time.Now()
	mustUpdate(t, db, 1005+10*366*86400, sample(srcs, 1))
	if d := time.Since(begin); d > time.Second {
		t.Errorf("a ten-year gap took %v", d)
	}
	for _, a := range db.archives {
		for i, v := range a.data {
			if !math.IsNaN(v) {
				t.Fatalf("%v/%d: row slot %d = %v after a ten-year gap", a.cf, a.steps, i, v)
			}
		}
	}
}

// TestPushRun checks the bulk path of archive.push against feeding the
// same PDPs one at a time. Small integers keep sums exact either way.
func TestPushRun(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		cf := CF(r.IntN(4))
		steps, rows, nsrc := 1+r.IntN(13), 1+r.IntN(7), 1+r.IntN(3)
		mk := func() *archive {
			a := &archive{cf: cf, steps: steps, rows: rows}
			for range nsrc {
				for range rows {
					a.data = append(a.data, nan)
				}
				a.acc = append(a.acc, accInit(cf))
				a.unk = append(a.unk, 0)
			}
			return a
		}
		bulk, single := mk(), mk()
		p := int64(r.IntN(100)) * int64(steps) // start on a row boundary
		for range 1 + r.IntN(8) {
			vec := make([]float64, nsrc)
			for s := range vec {
				vec[s] = float64(r.IntN(9) - 4)
				if r.IntN(3) == 0 {
					vec[s] = nan
				}
			}
			n := int64(1 + r.IntN(3*steps*rows))
			bulk.push(vec, p, n)
			for i := range n {
				single.push(vec, p+i, 1)
			}
			p += n
		}
		if !sameSlice(bulk.data, single.data) || !sameSlice(bulk.acc, single.acc) {
			t.Fatalf("iteration %d (%v, %d steps, %d rows): bulk %v %v, single %v %v",
				iter, cf, steps, rows, bulk.data, bulk.acc, single.data, single.acc)
		}
		for s := range bulk.unk {
			if bulk.unk[s] != single.unk[s] {
				t.Fatalf("iteration %d: unknown counts %v, want %v", iter, bulk.unk, single.unk)
			}
		}
	}
}

func TestUpdateErrors(t *testing.T) {
	t.Parallel()
	g := src("g", Gauge)
	for _, tc := range []struct {
		name   string
		sec    float64
		values []Value
		target error
		msg    string
	}{
		{"same time", 1010, sample([]Source{g}, 1), ErrNotAfter, ""},
		{"earlier", 1009.5, sample([]Source{g}, 1), ErrNotAfter, ""},
		{"before the epoch", -5, nil, nil, "out of range"},
		{"far future", 9e9, nil, nil, "out of range"},
		{"twice known", 1015, []Value{{g, 1}, {g, 2}}, nil, "given twice"},
		{"twice new", 1015, []Value{{src("n", Gauge), 1}, {src("n", Gauge), 2}}, nil, "given twice"},
		{"empty name", 1015, []Value{{src("", Gauge), 1}}, nil, "want 1 to"},
		{"long name", 1015, []Value{{src(strings.Repeat("x", 256), Gauge), 1}}, nil, "want 1 to"},
		{"control in name", 1015, []Value{{src("a\nb", Gauge), 1}}, nil, "invalid characters"},
		{"bad utf-8 name", 1015, []Value{{src("a\xffb", Gauge), 1}}, nil, "invalid characters"},
		{"spaced name", 1015, []Value{{src(" a", Gauge), 1}}, nil, "surrounding spaces"},
		{"bad kind", 1015, []Value{{src("k", Kind(3)), 1}}, nil, "unknown kind"},
		{"min above max", 1015, []Value{{Source{Name: "m", Min: 2, Max: 1}, 1}}, nil, "above max"},
		{"bad description", 1015, []Value{{Source{Name: "d", Description: "a\x00b"}, 1}}, nil, "description"},
		{"bad units", 1015, []Value{{Source{Name: "u", Units: strings.Repeat("B", 300)}, 1}}, nil, "units"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := New(5*time.Second, []Archive{{Average, 1, 10}, {Max, 3, 4}})
			mustUpdate(t, db, 1000, sample([]Source{g}, 1))
			mustUpdate(t, db, 1010, sample([]Source{g}, 2))
			before := string(dumpOf(t, db))
			err := db.Update(at(tc.sec), tc.values)
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.target != nil && !errors.Is(err, tc.target):
				t.Errorf("error %v, want %v", err, tc.target)
			case !strings.Contains(err.Error(), tc.msg):
				t.Errorf("error %q, want it to mention %q", err, tc.msg)
			}
			if after := string(dumpOf(t, db)); after != before {
				t.Errorf("a failed update changed the DB:\n%s", after)
			}
		})
	}
}

func TestSources(t *testing.T) {
	t.Parallel()
	db := New(5*time.Second, []Archive{{Average, 1, 10}, {Average, 2, 10}})
	a, b, c := src("a", Gauge), src("b", Derive), src("c", Gauge)
	a.Units, a.Description = "B", "bytes"
	if got := db.LastUpdate(); !got.IsZero() {
		t.Errorf("LastUpdate of a new DB = %v", got)
	}
	if db.Step() != 5*time.Second {
		t.Errorf("Step = %v", db.Step())
	}
	if _, ok := db.Query("a"); ok {
		t.Error("Query found a source in an empty DB")
	}
	mustUpdate(t, db, 1000, sample([]Source{a, b}, 1, 0))
	if v, ok := db.Query("a"); !ok || !math.IsNaN(v) {
		t.Errorf("Query(a) after one update = %v, %v; want NaN, true", v, ok)
	}
	mustUpdate(t, db, 1005, sample([]Source{a, b}, 2, 10))
	// c is new: its first sample only primes it; a is missing: unknown.
	mustUpdate(t, db, 1010, sample([]Source{a, b, c}, nan, 20, 5))
	mustUpdate(t, db, 1015, sample([]Source{a, b, c}, 4, 40, 6))

	if got := db.LastUpdate(); !got.Equal(at(1015)) {
		t.Errorf("LastUpdate = %v", got)
	}
	infos := db.Sources()
	names := []string{}
	for _, s := range infos {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Fatalf("sources %v, want a,b,c", names)
	}
	if infos[0].Units != "B" || infos[0].Description != "bytes" || infos[1].Kind != Derive {
		t.Errorf("source definitions lost: %+v", infos)
	}
	for _, tc := range []struct {
		name string
		want []float64 // rows ending 1005, 1010, 1015
	}{
		{"a", []float64{2, nan, 4}},
		{"b", []float64{2, 2, 4}},
		{"c", []float64{nan, nan, 6}},
	} {
		for i, want := range tc.want {
			if got := rowAt(t, db, 0, tc.name, 1005+5*int64(i)); !same(got, want) {
				t.Errorf("%s: row ending %d = %v, want %v", tc.name, 1005+5*i, got, want)
			}
		}
		if v, _ := db.Query(tc.name); !same(v, tc.want[2]) {
			t.Errorf("Query(%s) = %v, want %v", tc.name, v, tc.want[2])
		}
	}
	// In the 10 s archive c's first row is unknown (it joined within it)
	// and its second the mean of 6 and 8.
	mustUpdate(t, db, 1020, sample([]Source{a, b, c}, 4, 40, 8))
	if got := rowAt(t, db, 1, "c", 1010); !math.IsNaN(got) {
		t.Errorf("c's first 10 s row = %v, want NaN", got)
	}
	if got := rowAt(t, db, 1, "c", 1020); got != 7 {
		t.Errorf("c's second 10 s row = %v, want 7", got)
	}

	if db.Forget("nope") {
		t.Error("Forget of an unknown source returned true")
	}
	if !db.Forget("b") {
		t.Fatal("Forget(b) returned false")
	}
	if _, ok := db.Query("b"); ok {
		t.Error("b still there after Forget")
	}
	if got := rowAt(t, db, 0, "c", 1020); got != 8 {
		t.Errorf("c after forgetting b = %v, want 8", got)
	}
	// b comes back with no history.
	mustUpdate(t, db, 1025, sample([]Source{a, b, c}, 4, 50, 8))
	mustUpdate(t, db, 1030, sample([]Source{a, b, c}, 4, 60, 8))
	if got := db.Sources(); len(got) != 3 || got[2].Name != "b" {
		t.Fatalf("sources after re-adding b: %+v", got)
	}
	for end, want := range map[int64]float64{1020: nan, 1025: nan, 1030: 2} {
		if got := rowAt(t, db, 0, "b", end); !same(got, want) {
			t.Errorf("re-added b: row ending %d = %v, want %v", end, got, want)
		}
	}
}

// TestConcurrent is for the race detector.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	db := New(5*time.Second, DefaultArchives(Average))
	srcs := []Source{src("a", Gauge), src("b", Derive)}
	done := make(chan bool)
	go func() {
		defer close(done)
		for i := range 200 {
			if err := db.Update(at(1000+5*float64(i)), sample(srcs, float64(i), float64(i*i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
			db.Query("a")
			db.Sources()
			db.LastUpdate()
			if _, err := Export([]Prefixed{{"x:", db}}, -600, 5, nil); err != nil && !errors.Is(err, ErrNoArchive) {
				t.Error(err)
			}
			dumpOf(t, db)
		}
	}
}
