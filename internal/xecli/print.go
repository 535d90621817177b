package xecli

import (
	"io"
	"strings"
)

// kv is one printed line of a record: label and value.
type kv struct{ k, v string }

// printer writes command output the way xe lays it out. In --minimal mode
// everything is collected and printed at the end as one comma-separated
// line: the first value of each record, or the list items.
type printer struct {
	w       io.Writer
	minimal bool
	buf     []string
}

// table prints records: the first label padded on the right, the others on
// the left, so that the colons line up four columns past the longest label;
// each record ends with a blank line.
func (p *printer) table(recs [][]kv) {
	if p.minimal {
		if len(recs) == 0 {
			return
		}
		vals := make([]string, 0, len(recs))
		for _, r := range recs {
			if len(r) == 0 {
				return
			}
			vals = append(vals, escapeCommas(r[0].v))
		}
		p.buf = append(p.buf, strings.Join(vals, ","))
		return
	}
	for _, r := range recs {
		io.WriteString(p.w, formatRecord(r)+"\n")
	}
}

func formatRecord(r []kv) string {
	width := 0
	for _, f := range r {
		width = max(width, len(f.k))
	}
	width += 4
	var b strings.Builder
	for i, f := range r {
		pad := strings.Repeat(" ", width-len(f.k))
		if i == 0 {
			b.WriteString(f.k + pad)
		} else {
			b.WriteString(pad + f.k)
		}
		b.WriteString(": " + f.v + "\n")
	}
	return b.String()
}

// list prints one item per line (minimal: joined with commas).
func (p *printer) list(items ...string) {
	if p.minimal {
		esc := make([]string, len(items))
		for i, s := range items {
			esc[i] = escapeCommas(s)
		}
		p.buf = append(p.buf, strings.Join(esc, ","))
		return
	}
	for _, s := range items {
		io.WriteString(p.w, s+"\n")
	}
}

// msg prints an informational line; --minimal output drops it to stay
// machine-readable.
func (p *printer) msg(s string) {
	if !p.minimal {
		io.WriteString(p.w, s+"\n")
	}
}

// flush ends minimal output.
func (p *printer) flush() {
	if p.minimal {
		io.WriteString(p.w, strings.Join(p.buf, ",")+"\n")
		p.buf = nil
	}
}

// escapeCommas keeps --minimal output splittable on commas.
func escapeCommas(s string) string {
	if !strings.ContainsAny(s, `,\`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(s)
}
