package rrd

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// WriteDump writes the whole DB as `rrdtool dump` XML (format version
// 0003), the form xapi serves at /host_rrd and /vm_rrd and stores RRDs in.
//
// Besides rrdtool's elements a <ds> may carry <units> and <description>,
// and <rrd> carries <lastupdate_nsec> when the last update was not on a
// whole second, so that ReadDump restores the DB exactly. A number is
// written in its shortest exact form, NaN for unknown (U for an unknown
// last_ds, as rrdtool does), Infinity and -Infinity. Rows are oldest
// first; <cdp_prep> holds each archive's row in progress.
func (db *DB) WriteDump(w io.Writer) error {
	c := db.snapshot() // format outside the lock: w may be a slow client
	d := dumper{w: bufio.NewWriter(w)}
	stepSec := c.stepNs / int64(time.Second)

	d.str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rrd>\n\t<version>0003</version>\n\t<step>")
	d.int(stepSec)
	d.str("</step>\n\t<lastupdate>")
	d.int(c.last / int64(time.Second))
	d.str("</lastupdate>\n")
	if ns := c.last % int64(time.Second); ns != 0 {
		d.str("\t<lastupdate_nsec>")
		d.int(ns)
		d.str("</lastupdate_nsec>\n")
	}

	for i := range c.sources {
		s := &c.sources[i]
		d.str("\t<ds>\n\t\t<name>")
		d.text(s.Name)
		d.str("</name>\n\t\t<type>")
		d.str(s.Kind.String())
		d.str("</type>\n\t\t<minimal_heartbeat>")
		d.seconds(s.heartbeat)
		d.str("</minimal_heartbeat>\n\t\t<min>")
		d.float(s.Min)
		d.str("</min>\n\t\t<max>")
		d.float(s.Max)
		d.str("</max>\n\t\t<last_ds>")
		if math.IsNaN(s.lastDS) {
			d.str("U")
		} else {
			d.float(s.lastDS)
		}
		d.str("</last_ds>\n\t\t<value>")
		d.float(s.pdpSum)
		d.str("</value>\n\t\t<unknown_sec>")
		d.seconds(s.unknownNs)
		d.str("</unknown_sec>\n")
		if s.Units != "" {
			d.str("\t\t<units>")
			d.text(s.Units)
			d.str("</units>\n")
		}
		if s.Description != "" {
			d.str("\t\t<description>")
			d.text(s.Description)
			d.str("</description>\n")
		}
		d.str("\t</ds>\n")
	}

	for k := range c.archives {
		a := &c.archives[k]
		newest := c.last/c.stepNs/int64(a.steps) - 1 // the last complete row
		newestSlot := int(floorMod(newest, int64(a.rows)))
		d.str("\t<rra>\n\t\t<cf>")
		d.str(a.cf.String())
		d.str("</cf>\n\t\t<pdp_per_row>")
		d.int(int64(a.steps))
		d.str("</pdp_per_row>\n\t\t<params><xff>0.5</xff></params>\n\t\t<cdp_prep>\n")
		for s := range c.sources {
			d.str("\t\t\t<ds><primary_value>")
			d.float(c.sources[s].last)
			d.str("</primary_value><secondary_value>")
			d.float(a.data[s*a.rows+newestSlot])
			d.str("</secondary_value><value>")
			d.float(a.acc[s])
			d.str("</value><unknown_datapoints>")
			d.int(int64(a.unk[s]))
			d.str("</unknown_datapoints></ds>\n")
		}
		d.str("\t\t</cdp_prep>\n\t\t<database>\n")
		for i := range a.rows {
			slot := int(floorMod(newest-int64(a.rows)+1+int64(i), int64(a.rows)))
			d.str("\t\t\t<row>")
			for s := range c.sources {
				d.str("<v>")
				d.float(a.data[s*a.rows+slot])
				d.str("</v>")
			}
			d.str("</row>\n")
		}
		d.str("\t\t</database>\n\t</rra>\n")
	}
	d.str("</rrd>\n")
	return d.w.Flush()
}

// snapshot copies the DB's state, without its scratch space.
func (db *DB) snapshot() *DB {
	db.mu.RLock()
	defer db.mu.RUnlock()
	c := &DB{stepNs: db.stepNs, heartbeat: db.heartbeat, last: db.last}
	c.sources = append([]source(nil), db.sources...)
	c.archives = make([]archive, len(db.archives))
	for i, a := range db.archives {
		a.data = append([]float64(nil), a.data...)
		a.acc = append([]float64(nil), a.acc...)
		a.unk = append([]int32(nil), a.unk...)
		c.archives[i] = a
	}
	return c
}

// dumper writes through a bufio.Writer, which keeps the first error for
// Flush to report.
type dumper struct {
	w   *bufio.Writer
	buf []byte
}

func (d *dumper) str(s string)  { d.w.WriteString(s) }
func (d *dumper) text(s string) { xml.EscapeText(d.w, []byte(s)) } // error kept by d.w (its only source)
func (d *dumper) int(n int64)   { d.buf = strconv.AppendInt(d.buf[:0], n, 10); d.w.Write(d.buf) }
func (d *dumper) float(v float64) {
	d.buf = appendFloat(d.buf[:0], v)
	d.w.Write(d.buf)
}
func (d *dumper) seconds(ns int64) { d.buf = appendSeconds(d.buf[:0], ns); d.w.Write(d.buf) }

// appendSeconds writes a non-negative duration as decimal seconds, exactly:
// "300", "2.5", "0.000000001".
func appendSeconds(b []byte, ns int64) []byte {
	b = strconv.AppendInt(b, ns/int64(time.Second), 10)
	frac := ns % int64(time.Second)
	if frac == 0 {
		return b
	}
	digits := strconv.AppendInt(nil, frac+int64(time.Second), 10)[1:] // zero-padded to 9 digits
	return append(append(b, '.'), bytes.TrimRight(digits, "0")...)
}

// parseSeconds reads what appendSeconds writes (surrounding spaces
// allowed), up to maxSec seconds.
func parseSeconds(s string, maxSec int64) (int64, error) {
	s = strings.TrimSpace(s)
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 12 || strings.Trim(whole, "0123456789") != "" ||
		dot && (frac == "" || len(frac) > 9 || strings.Trim(frac, "0123456789") != "") {
		return 0, fmt.Errorf("bad number of seconds %q", s)
	}
	sec, _ := strconv.ParseInt(whole, 10, 64) // at most 12 digits: cannot fail
	if sec > maxSec {
		return 0, fmt.Errorf("%q seconds: more than %d", s, maxSec)
	}
	var ns int64
	if dot {
		ns, _ = strconv.ParseInt((frac + "00000000")[:9], 10, 64)
	}
	if sec == maxSec && ns > 0 {
		return 0, fmt.Errorf("%q seconds: more than %d", s, maxSec)
	}
	return sec*int64(time.Second) + ns, nil
}

// parseFloat reads a dump number: anything strconv accepts in range, and
// rrdtool's U and UNKN for unknown.
func parseFloat(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "U" || s == "UNKN" {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return v, nil
}

func parseInt(s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("bad integer %q: want %d to %d", s, lo, hi)
	}
	return n, nil
}

// ReadDump reads what WriteDump writes, and dumps of rrdtool and xapi in
// the same format. It is strict: unknown or repeated elements, text out of
// place, inconsistent counts or state, and anything past the limits (4096
// sources, 64 archives, a million rows in all) are errors. Memory use is
// bounded by the input's size.
func ReadDump(r io.Reader) (*DB, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	p := &parser{dec: dec}
	db, err := p.rrd()
	if err != nil {
		line, _ := dec.InputPos()
		return nil, fmt.Errorf("rrd: dump line %d: %w", line, err)
	}
	return db, nil
}

// parser reads a dump with encoding/xml's tokenizer, element by element, so
// that limits apply before anything is stored.
type parser struct {
	dec *xml.Decoder
}

// next returns the next start or end element, skipping whitespace,
// comments (rrdtool annotates rows with them), processing instructions and
// directives. Other text between elements is an error.
func (p *parser) next() (xml.Token, error) {
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != "" {
				return nil, fmt.Errorf("unexpected namespace %q", t.Name.Space)
			}
			return t, nil
		case xml.EndElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("unexpected text %q", truncate(string(t)))
			}
		}
	}
}

// child returns the name of the next child element, or "" at the end of
// the current one.
func (p *parser) child() (string, error) {
	tok, err := p.next()
	if err != nil {
		return "", noEOF(err)
	}
	if st, ok := tok.(xml.StartElement); ok {
		return st.Name.Local, nil
	}
	return "", nil
}

// text reads the content of the element just opened, up to its end, at
// most limit bytes of it.
func (p *parser) text(limit int) (string, error) {
	var buf []byte
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return "", noEOF(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(buf)+len(t) > limit {
				return "", fmt.Errorf("text longer than %d bytes", limit)
			}
			buf = append(buf, t...)
		case xml.StartElement:
			return "", fmt.Errorf("unexpected element <%s> in text", t.Name.Local)
		case xml.EndElement:
			return string(buf), nil
		}
	}
}

const numLen = 128 // longest number text read, spaces included

func (p *parser) float() (float64, error) {
	s, err := p.text(numLen)
	if err != nil {
		return 0, err
	}
	return parseFloat(s)
}

func (p *parser) int(lo, hi int64) (int64, error) {
	s, err := p.text(numLen)
	if err != nil {
		return 0, err
	}
	return parseInt(s, lo, hi)
}

func (p *parser) seconds(maxSec int64) (int64, error) {
	s, err := p.text(numLen)
	if err != nil {
		return 0, err
	}
	return parseSeconds(s, maxSec)
}

// once records that element name was read, refusing it a second time.
func once(seen map[string]bool, name string) error {
	if seen[name] {
		return fmt.Errorf("<%s> given twice", name)
	}
	seen[name] = true
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// budget is what is left of the limits on rows and values across archives.
type budget struct{ rows, values int }

func (p *parser) rrd() (*DB, error) {
	tok, err := p.next()
	if err != nil {
		return nil, noEOF(err)
	}
	if st, ok := tok.(xml.StartElement); !ok || st.Name.Local != "rrd" {
		return nil, errors.New("want <rrd>")
	}
	db := &DB{heartbeat: int64(Heartbeat), index: make(map[string]int)}
	if db.heartbeat <= 0 {
		return nil, errors.New("Heartbeat must be positive")
	}
	seen := map[string]bool{}
	var lastSec, lastNsec int64
	var primary []float64 // the first archive's primary values
	left := budget{rows: maxTotalRows, values: maxValues}
	for {
		name, err := p.child()
		if err != nil {
			return nil, err
		}
		if name == "" {
			break
		}
		header := name == "version" || name == "step" || name == "lastupdate" || name == "lastupdate_nsec"
		if header && (seen["ds"] || seen["rra"]) {
			return nil, fmt.Errorf("<%s> after <ds> or <rra>", name)
		}
		if !header {
			if !seen["step"] || !seen["lastupdate"] {
				return nil, fmt.Errorf("<%s> before <step> and <lastupdate>", name)
			}
			db.last = lastSec*int64(time.Second) + lastNsec // final: <ds> and <rra> check against it
		}
		switch name {
		case "version":
			if err := once(seen, name); err != nil {
				return nil, err
			}
			v, err := p.text(numLen)
			if err != nil {
				return nil, err
			}
			if strings.TrimSpace(v) != "0003" {
				return nil, fmt.Errorf("unsupported version %q", truncate(v))
			}
		case "step":
			if err := once(seen, name); err != nil {
				return nil, err
			}
			n, err := p.int(1, maxRowSpan)
			if err != nil {
				return nil, err
			}
			db.stepNs = n * int64(time.Second)
		case "lastupdate":
			if err := once(seen, name); err != nil {
				return nil, err
			}
			if lastSec, err = p.int(0, maxUnix-1); err != nil {
				return nil, err
			}
		case "lastupdate_nsec":
			if err := once(seen, name); err != nil {
				return nil, err
			}
			if lastNsec, err = p.int(0, int64(time.Second)-1); err != nil {
				return nil, err
			}
		case "ds":
			seen[name] = true
			if seen["rra"] {
				return nil, errors.New("<ds> after <rra>")
			}
			if len(db.sources) == maxSources {
				return nil, fmt.Errorf("more than %d sources", maxSources)
			}
			s, err := p.ds(db)
			if err != nil {
				return nil, err
			}
			if _, dup := db.index[s.Name]; dup {
				return nil, fmt.Errorf("source %q given twice", s.Name)
			}
			db.index[s.Name] = len(db.sources)
			db.sources = append(db.sources, s)
		case "rra":
			seen[name] = true
			if len(db.archives) == maxArchives {
				return nil, fmt.Errorf("more than %d archives", maxArchives)
			}
			a, prim, err := p.rra(db, &left)
			if err != nil {
				return nil, err
			}
			if len(db.archives) == 0 {
				primary = prim
			}
			db.archives = append(db.archives, a)
		default:
			return nil, fmt.Errorf("unknown element <%s>", name)
		}
	}
	for _, name := range []string{"version", "step", "lastupdate"} {
		if !seen[name] {
			return nil, fmt.Errorf("missing <%s>", name)
		}
	}
	if _, err := p.next(); err != io.EOF {
		if err == nil {
			err = errors.New("content after </rrd>")
		}
		return nil, err
	}
	db.last = lastSec*int64(time.Second) + lastNsec
	if len(db.sources) > 0 && db.last == 0 {
		return nil, errors.New("sources in a DB never updated")
	}
	specs := make([]Archive, len(db.archives))
	for i, a := range db.archives {
		specs[i] = Archive{CF: a.cf, Steps: a.steps, Rows: a.rows}
	}
	if err := checkLayout(db.stepNs, specs); err != nil {
		return nil, err
	}
	// rrdtool keeps the last PDP in every archive's cdp_prep; the first
	// archive's is taken (WriteDump writes the same in all).
	for i := range db.sources {
		db.sources[i].last = math.NaN()
		if len(primary) > 0 {
			db.sources[i].last = primary[i]
		}
	}
	return db, nil
}

// ds reads a <ds> of the DB being read, whose step and last update are set.
func (p *parser) ds(db *DB) (source, error) {
	if db.last == 0 {
		return source{}, errors.New("<ds> in a DB never updated")
	}
	var s source
	seen := map[string]bool{}
	for {
		name, err := p.child()
		if err != nil {
			return s, err
		}
		if name == "" {
			break
		}
		if err := once(seen, name); err != nil {
			return s, err
		}
		var text string
		switch name {
		case "name":
			text, err = p.text(4 * maxNameLen) // rrdtool pads names with spaces
			s.Name = strings.TrimSpace(text)
		case "type":
			if text, err = p.text(numLen); err == nil {
				s.Kind, err = parseKind(strings.TrimSpace(text))
			}
		case "minimal_heartbeat":
			s.heartbeat, err = p.seconds(maxRowSpan)
			if err == nil && s.heartbeat == 0 {
				err = errors.New("zero heartbeat")
			}
		case "min":
			s.Min, err = p.float()
		case "max":
			s.Max, err = p.float()
		case "last_ds":
			s.lastDS, err = p.float()
		case "value":
			s.pdpSum, err = p.float()
		case "unknown_sec":
			s.unknownNs, err = p.seconds(maxRowSpan)
			if elapsed := db.last % db.stepNs; err == nil && s.unknownNs > elapsed {
				err = fmt.Errorf("unknown_sec beyond the %v of the step gone", time.Duration(elapsed))
			}
		case "units":
			s.Units, err = p.text(maxUnitsLen)
		case "description":
			s.Description, err = p.text(maxDescLen)
		default:
			err = fmt.Errorf("unknown element <%s> in <ds>", name)
		}
		if err != nil {
			return s, err
		}
	}
	for _, name := range []string{"name", "type", "minimal_heartbeat", "min", "max", "last_ds", "value", "unknown_sec"} {
		if !seen[name] {
			return s, fmt.Errorf("<ds> without <%s>", name)
		}
	}
	if err := checkSource(&s.Source); err != nil {
		return s, err
	}
	return s, nil
}

// rra reads an <rra> of the DB being read, whose sources are all read. It
// returns the archive and its primary values (one per source).
func (p *parser) rra(db *DB, left *budget) (archive, []float64, error) {
	a := archive{cf: -1}
	nsrc := len(db.sources)
	var primary []float64
	var rows []float64 // row-major, as in the dump
	seen := map[string]bool{}
	for {
		name, err := p.child()
		if err != nil {
			return a, nil, err
		}
		if name == "" {
			break
		}
		if err := once(seen, name); err != nil {
			return a, nil, err
		}
		switch name {
		case "cf":
			var text string
			if text, err = p.text(numLen); err == nil {
				a.cf, err = parseCFName(strings.TrimSpace(text))
			}
		case "pdp_per_row":
			var n int64
			n, err = p.int(1, maxRowSpan/(db.stepNs/int64(time.Second)))
			a.steps = int(n)
		case "params":
			err = p.params()
		case "cdp_prep":
			primary, a.acc, a.unk, err = p.cdpPrep(nsrc)
		case "database":
			rows, a.rows, err = p.database(nsrc, left)
		default:
			err = fmt.Errorf("unknown element <%s> in <rra>", name)
		}
		if err != nil {
			return a, nil, err
		}
	}
	for _, name := range []string{"cf", "pdp_per_row", "cdp_prep", "database"} {
		if !seen[name] {
			return a, nil, fmt.Errorf("<rra> without <%s>", name)
		}
	}
	// The row in progress holds the PDPs completed since its start; only
	// those can be unknown.
	done := db.last / db.stepNs % int64(a.steps)
	for s, u := range a.unk {
		if int64(u) > done {
			return a, nil, fmt.Errorf("source %q: %d unknown datapoints in a row of %d so far", db.sources[s].Name, u, done)
		}
	}
	// Rows are oldest first, the last being the last complete row.
	newest := db.last/db.stepNs/int64(a.steps) - 1
	a.data = make([]float64, nsrc*a.rows)
	for i := range a.rows {
		slot := int(floorMod(newest-int64(a.rows)+1+int64(i), int64(a.rows)))
		for s := range nsrc {
			a.data[s*a.rows+slot] = rows[i*nsrc+s]
		}
	}
	return a, primary, nil
}

// parseCFName reads the CF names WriteDump writes; ParseCF's aliases are
// for HTTP queries.
func parseCFName(s string) (CF, error) {
	for cf := Average; cf <= Last; cf++ {
		if s == cf.String() {
			return cf, nil
		}
	}
	return 0, fmt.Errorf("unknown consolidation function %q", truncate(s))
}

// params reads <params>: only rrdtool's default xff of 0.5 is supported.
func (p *parser) params() error {
	seen := map[string]bool{}
	for {
		name, err := p.child()
		if err != nil || name == "" {
			return err
		}
		if name != "xff" {
			return fmt.Errorf("unknown element <%s> in <params>", name)
		}
		if err := once(seen, name); err != nil {
			return err
		}
		xff, err := p.float()
		if err != nil {
			return err
		}
		if xff != 0.5 {
			return fmt.Errorf("xff %g: only 0.5 is supported", xff)
		}
	}
}

// cdpPrep reads <cdp_prep>: one <ds> per source.
func (p *parser) cdpPrep(nsrc int) (primary, acc []float64, unk []int32, err error) {
	for {
		name, err := p.child()
		if err != nil {
			return nil, nil, nil, err
		}
		if name == "" {
			break
		}
		if name != "ds" {
			return nil, nil, nil, fmt.Errorf("unknown element <%s> in <cdp_prep>", name)
		}
		if len(acc) == nsrc {
			return nil, nil, nil, fmt.Errorf("more than %d <ds> in <cdp_prep>", nsrc)
		}
		prim, v, u, err := p.cdpDS()
		if err != nil {
			return nil, nil, nil, err
		}
		primary = append(primary, prim)
		acc = append(acc, v)
		unk = append(unk, u)
	}
	if len(acc) != nsrc {
		return nil, nil, nil, fmt.Errorf("%d <ds> in <cdp_prep> for %d sources", len(acc), nsrc)
	}
	return primary, acc, unk, nil
}

// cdpDS reads one source's row in progress. secondary_value (the last row)
// is checked for form only: the rows hold it.
func (p *parser) cdpDS() (primary, acc float64, unk int32, err error) {
	primary = math.NaN()
	seen := map[string]bool{}
	for {
		name, err := p.child()
		if err != nil {
			return 0, 0, 0, err
		}
		if name == "" {
			break
		}
		if err := once(seen, name); err != nil {
			return 0, 0, 0, err
		}
		switch name {
		case "primary_value":
			primary, err = p.float()
		case "secondary_value":
			_, err = p.float()
		case "value":
			acc, err = p.float()
		case "unknown_datapoints":
			var n int64
			n, err = p.int(0, maxRowSpan)
			unk = int32(n)
		default:
			err = fmt.Errorf("unknown element <%s> in <cdp_prep><ds>", name)
		}
		if err != nil {
			return 0, 0, 0, err
		}
	}
	if !seen["value"] || !seen["unknown_datapoints"] {
		return 0, 0, 0, errors.New("<cdp_prep><ds> without <value> and <unknown_datapoints>")
	}
	return primary, acc, unk, nil
}

// database reads <database>: rows of one <v> per source, oldest first.
func (p *parser) database(nsrc int, left *budget) (rows []float64, n int, err error) {
	for {
		name, err := p.child()
		if err != nil {
			return nil, 0, err
		}
		if name == "" {
			break
		}
		if name != "row" {
			return nil, 0, fmt.Errorf("unknown element <%s> in <database>", name)
		}
		if left.rows == 0 || left.values < nsrc {
			return nil, 0, fmt.Errorf("more than %d rows or %d values in all", maxTotalRows, maxValues)
		}
		left.rows--
		left.values -= nsrc
		n++
		got := 0
		for {
			name, err := p.child()
			if err != nil {
				return nil, 0, err
			}
			if name == "" {
				break
			}
			if name != "v" {
				return nil, 0, fmt.Errorf("unknown element <%s> in <row>", name)
			}
			if got == nsrc {
				return nil, 0, fmt.Errorf("row %d: more than %d values", n, nsrc)
			}
			v, err := p.float()
			if err != nil {
				return nil, 0, err
			}
			rows = append(rows, v)
			got++
		}
		if got != nsrc {
			return nil, 0, fmt.Errorf("row %d: %d values for %d sources", n, got, nsrc)
		}
	}
	if n == 0 {
		return nil, 0, errors.New("<database> without rows")
	}
	return rows, n, nil
}
