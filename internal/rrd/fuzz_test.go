package rrd

import (
	"bytes"
	"testing"
	"time"
)

// FuzzReadDump: ReadDump never panics, and whatever it accepts dumps to a
// document that reads back and dumps the same; the DB it gives also takes
// further updates and exports.
func FuzzReadDump(f *testing.F) {
	for _, sc := range scenarios() {
		if sc.name != "wrapped rings" { // too big to mutate usefully
			f.Add(dumpOf(f, sc.build(f)))
		}
	}
	small := New(5*time.Second, DefaultArchives(Average))
	mustUpdate(f, small, 1000, sample(abc, 1, 0, 0))
	mustUpdate(f, small, 1007, sample(abc, 2, 3, 4))
	f.Add(dumpOf(f, small))
	f.Add([]byte(baseDump(f)))
	f.Add([]byte(rrdtoolDump))
	f.Add([]byte("<rrd><version>0003</version><step>5</step><lastupdate>0</lastupdate></rrd>"))

	f.Fuzz(func(t *testing.T, doc []byte) {
		db, err := ReadDump(bytes.NewReader(doc))
		if err != nil {
			return
		}
		d1 := dumpOf(t, db)
		again, err := ReadDump(bytes.NewReader(d1))
		if err != nil {
			t.Fatalf("a dump of an accepted document is refused: %v\n%s", err, d1)
		}
		if d2 := dumpOf(t, again); !bytes.Equal(d1, d2) {
			t.Fatalf("dump changed by a round trip:\n%s\nthen\n%s", d1, d2)
		}
		// The state read must be usable.
		next := db.LastUpdate().Add(db.Step())
		if db.LastUpdate().IsZero() {
			next = at(1000)
		}
		var vals []Value
		for _, s := range db.Sources() {
			vals = append(vals, Value{Source: s.Source, V: 1})
		}
		if err := db.Update(next, vals); err == nil {
			db.Update(next.Add(time.Hour), vals)
		}
		Export([]Prefixed{{"x:", db}}, -3600, 0, nil)
	})
}
