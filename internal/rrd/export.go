package rrd

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
)

// Prefixed is a DB to export, with the prefix of its legend entries.
type Prefixed struct {
	Prefix string // put before each source name in the legend, e.g. "vm:<uuid>:" or "host:<uuid>:"
	DB     *DB
}

// Updates is an rrdtool xport result: the body of xapi's /rrd_updates.
type Updates struct {
	Start, End, Step int64    // Unix seconds; Step in seconds
	Legend           []string // "<CF>:<prefix><source>", e.g. "AVERAGE:vm:0f0e...:cpu0"
	Rows             []Row    // newest first, as xapi sends them
}

// Row is one consolidated time of an export.
type Row struct {
	T      int64     // end of the row's consolidation interval, Unix seconds
	Values []float64 // one per legend entry; NaN = unknown
}

// ErrNoArchive is returned by Export when there is nothing to export from.
var ErrNoArchive = errors.New("rrd: no archive matches")

// Export reads the rows of several DBs at one timescale, as xapi's
// /rrd_updates does.
//
// The timescale (a row step of Steps*step) comes from the first DB's
// archives, restricted to cf when it is not nil: the finest whose row step
// is at least interval seconds and whose rows still reach back to start;
// if none does, the coarsest. A negative start counts back from the latest
// update of the DBs; start is clamped to ±2^33 (year 2242). DBs with another base step than the first's are
// skipped, and a DB without an archive of that timescale and CF gives no
// columns for it.
//
// Columns run DB by DB, then archive by archive (CFs in the first DB's
// archive order), then source by source. Rows run newest first from the
// last complete row back to the first row ending after start (xapi's
// meta start: the row boundary at or before start plus one row step),
// and never further back than the archive's Rows.
func Export(dbs []Prefixed, start, interval int64, cf *CF) (Updates, error) {
	if len(dbs) == 0 || dbs[0].DB == nil {
		return Updates{}, ErrNoArchive
	}
	first := dbs[0].DB
	stepNs := first.stepNs
	first.mu.RLock()
	specs := make([]Archive, 0, len(first.archives))
	for _, a := range first.archives {
		if cf == nil || a.cf == *cf {
			specs = append(specs, Archive{CF: a.cf, Steps: a.steps, Rows: a.rows})
		}
	}
	first.mu.RUnlock()

	var lastNs int64 // the latest update of the DBs exported
	nsrc := 0        // their sources, to size the result
	for _, p := range dbs {
		if p.DB != nil && p.DB.stepNs == stepNs {
			p.DB.mu.RLock()
			lastNs = max(lastNs, p.DB.last)
			nsrc += len(p.DB.sources)
			p.DB.mu.RUnlock()
		}
	}
	now := lastNs / int64(time.Second)
	start = min(max(start, -maxUnix), maxUnix) // a query parameter: keep the arithmetic below from overflowing
	if start < 0 {
		start += now
	}
	stepSec := stepNs / int64(time.Second)
	scale := chooseScale(specs, stepSec, now-start, interval)
	if len(scale) == 0 {
		return Updates{}, ErrNoArchive
	}

	k := int64(scale[0].Steps)
	rowStep := k * stepSec
	maxRows := 0
	for _, a := range scale {
		maxRows = max(maxRows, a.Rows)
	}
	u := Updates{
		Start: floorDiv(start, rowStep)*rowStep + rowStep,
		End:   lastNs / (rowStep * int64(time.Second)) * rowStep,
		Step:  rowStep,
	}
	nrows := 0
	if oldest := max(u.Start, rowStep); u.End >= oldest { // no row ends at or before the epoch
		nrows = int(min((u.End-oldest)/rowStep+1, int64(maxRows)))
	}

	// Columns are gathered one after another, then turned into rows.
	cols := make([]float64, 0, nrows*nsrc*len(scale)) // a hint: sources may come and go meanwhile
	u.Legend = make([]string, 0, nsrc*len(scale))
	slots := make([]int, nrows)
	for _, p := range dbs {
		if p.DB == nil || p.DB.stepNs != stepNs {
			continue
		}
		cols = p.DB.exportColumns(cols, &u.Legend, p.Prefix, scale, u.End, nrows, slots)
	}
	ncols := len(u.Legend)
	flat := make([]float64, nrows*ncols)
	u.Rows = make([]Row, nrows)
	for j := range u.Rows {
		vals := flat[j*ncols : (j+1)*ncols : (j+1)*ncols]
		for c := range vals {
			vals[c] = cols[c*nrows+j]
		}
		u.Rows[j] = Row{T: u.End - int64(j)*rowStep, Values: vals}
	}
	return u, nil
}

// chooseScale returns the archives of the timescale Export reads: the
// finest with a row step of at least interval seconds whose rows cover age
// seconds back from now; failing that the coarsest.
func chooseScale(specs []Archive, stepSec, age, interval int64) []Archive {
	if len(specs) == 0 {
		return nil
	}
	steps := make([]int, 0, len(specs))
	for _, a := range specs {
		if !slices.Contains(steps, a.Steps) {
			steps = append(steps, a.Steps)
		}
	}
	slices.Sort(steps)
	pick := steps[len(steps)-1]
	for _, k := range steps {
		rowStep := int64(k) * stepSec
		if rowStep < interval {
			continue
		}
		rows := 0
		for _, a := range specs {
			if a.Steps == k {
				rows = max(rows, a.Rows)
			}
		}
		if age <= rowStep*int64(rows) {
			pick = k
			break
		}
	}
	var out []Archive
	for _, a := range specs {
		if a.Steps == pick {
			out = append(out, a)
		}
	}
	return out
}

// exportColumns appends to cols, for each archive of scale the DB has and
// each source, the nrows values of the rows ending at end, end-rowStep...,
// and names them in legend. slots is scratch space.
func (db *DB) exportColumns(cols []float64, legend *[]string, prefix string, scale []Archive, end int64, nrows int, slots []int) []float64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	k := int64(scale[0].Steps)
	newest := int64(-1) // the DB's last complete row
	if db.last != 0 {
		newest = db.last/db.stepNs/k - 1
	}
	rowStep := k * (db.stepNs / int64(time.Second))
	for _, spec := range scale {
		a := db.findArchive(spec.CF, spec.Steps)
		if a == nil {
			continue
		}
		// Where each row is in the ring (the same for every source), or -1
		// if the ring does not hold it.
		rows := int64(a.rows)
		for j := range slots {
			m := end/rowStep - 1 - int64(j)
			slots[j] = -1
			if m >= 0 && m <= newest && m > newest-rows {
				slots[j] = int(m % rows)
			}
		}
		for s := range db.sources {
			*legend = append(*legend, spec.CF.String()+":"+prefix+db.sources[s].Name)
			block := a.data[s*a.rows : (s+1)*a.rows]
			for _, slot := range slots {
				v := math.NaN()
				if slot >= 0 {
					v = block[slot]
				}
				cols = append(cols, v)
			}
		}
	}
	return cols
}

func (db *DB) findArchive(cf CF, steps int) *archive {
	for i := range db.archives {
		if a := &db.archives[i]; a.cf == cf && a.steps == steps {
			return a
		}
	}
	return nil
}

// WriteXML writes u as rrdtool xport XML, all on one line as xapi sends it.
// Numbers are in Go's shortest 'g' form; unknown values are NaN, infinities
// Infinity and -Infinity.
func (u Updates) WriteXML(w io.Writer) error {
	bw := bufio.NewWriter(w)
	b := make([]byte, 0, 64)
	b = append(b, `<?xml version="1.0" encoding="UTF-8"?><xport><meta><start>`...)
	b = strconv.AppendInt(b, u.Start, 10)
	b = append(b, "</start><step>"...)
	b = strconv.AppendInt(b, u.Step, 10)
	b = append(b, "</step><end>"...)
	b = strconv.AppendInt(b, u.End, 10)
	b = append(b, "</end><rows>"...)
	b = strconv.AppendInt(b, int64(len(u.Rows)), 10)
	b = append(b, "</rows><columns>"...)
	b = strconv.AppendInt(b, int64(len(u.Legend)), 10)
	b = append(b, "</columns><legend>"...)
	bw.Write(b)
	for _, e := range u.Legend {
		bw.WriteString("<entry>")
		if err := xml.EscapeText(bw, []byte(e)); err != nil {
			return err
		}
		bw.WriteString("</entry>")
	}
	bw.WriteString("</legend></meta><data>")
	for _, r := range u.Rows {
		b = append(b[:0], "<row><t>"...)
		b = strconv.AppendInt(b, r.T, 10)
		b = append(b, "</t>"...)
		for _, v := range r.Values {
			b = append(b, "<v>"...)
			b = appendFloat(b, v)
			b = append(b, "</v>"...)
		}
		b = append(b, "</row>"...)
		bw.Write(b) // bufio keeps the first error for Flush
	}
	bw.WriteString("</data></xport>")
	return bw.Flush()
}

// WriteJSON writes u in the JSON form of xapi's /rrd_updates?json=true.
// Unknown and infinite values, which JSON cannot carry, are null.
func (u Updates) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	b := make([]byte, 0, 64)
	b = append(b, `{"meta":{"start":`...)
	b = strconv.AppendInt(b, u.Start, 10)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, u.Step, 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, u.End, 10)
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, int64(len(u.Rows)), 10)
	b = append(b, `,"columns":`...)
	b = strconv.AppendInt(b, int64(len(u.Legend)), 10)
	b = append(b, `,"legend":[`...)
	bw.Write(b)
	for i, e := range u.Legend {
		if i > 0 {
			bw.WriteByte(',')
		}
		q, err := json.Marshal(e) // JSON's escaping rules, not Go's
		if err != nil {
			return err
		}
		bw.Write(q)
	}
	bw.WriteString(`]},"data":[`)
	for i, r := range u.Rows {
		b = b[:0]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"t":`...)
		b = strconv.AppendInt(b, r.T, 10)
		b = append(b, `,"values":[`...)
		for j, v := range r.Values {
			if j > 0 {
				b = append(b, ',')
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
		}
		b = append(b, "]}"...)
		bw.Write(b)
	}
	bw.WriteString("]}")
	return bw.Flush()
}

// appendFloat writes v in the shortest form that reads back exactly, with
// the spellings of unknown and infinite values that xapi and rrdtool use.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "Infinity"...)
	case math.IsInf(v, -1):
		return append(b, "-Infinity"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
