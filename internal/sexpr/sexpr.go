// Package sexpr reads and writes the s-expressions of xend's HTTP interface
// (xm list -l, domain configurations): lists in parentheses whose elements
// are atoms or lists. Atoms are bare words or quoted strings ('...' or
// "..." with backslash escapes); '#' starts a comment to the end of the
// line, outside strings.
//
// The parser is meant for untrusted input: it never panics, bounds nesting
// depth and element count, and reports the byte offset of the first error.
package sexpr

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Value is an atom or a list.
type Value struct {
	IsList bool
	Atom   string
	List   []Value
}

// Atom returns an atom.
func Atom(s string) Value { return Value{Atom: s} }

// List returns a list of vs.
func List(vs ...Value) Value { return Value{IsList: true, List: vs} }

// Pair returns the list (name value), the shape of most xend fields.
func Pair(name, value string) Value { return List(Atom(name), Atom(value)) }

// Int returns the list (name n).
func Int(name string, n int64) Value { return Pair(name, strconv.FormatInt(n, 10)) }

// Name returns the first element of a list when it is an atom ("vm" for
// (vm (name x) ...)), else "".
func (v Value) Name() string {
	if v.IsList && len(v.List) > 0 && !v.List[0].IsList {
		return v.List[0].Atom
	}
	return ""
}

// Children returns the sublists of v named name, in order.
func (v Value) Children(name string) []Value {
	var out []Value
	if !v.IsList {
		return nil
	}
	for _, c := range v.List[min(1, len(v.List)):] {
		if c.Name() == name {
			out = append(out, c)
		}
	}
	return out
}

// Child returns the first sublist of v named name.
func (v Value) Child(name string) (Value, bool) {
	if c := v.Children(name); len(c) > 0 {
		return c[0], true
	}
	return Value{}, false
}

// Get returns the atom x of the first (name x) sublist of v.
func (v Value) Get(name string) (string, bool) {
	c, ok := v.Child(name)
	if !ok || len(c.List) < 2 || c.List[1].IsList {
		return "", false
	}
	return c.List[1].Atom, true
}

// Limits on what Parse accepts.
const (
	MaxDepth = 64
	MaxNodes = 1 << 20
)

// SyntaxError is a parse failure at byte Offset.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("s-expression: %s at offset %d", e.Msg, e.Offset)
}

type parser struct {
	data  []byte
	pos   int
	nodes int
}

// Parse reads exactly one value (surrounded by optional whitespace and
// comments).
func Parse(data []byte) (Value, error) {
	vs, err := ParseAll(data)
	if err != nil {
		return Value{}, err
	}
	switch len(vs) {
	case 0:
		return Value{}, &SyntaxError{Offset: len(data), Msg: "empty input"}
	case 1:
		return vs[0], nil
	}
	return Value{}, &SyntaxError{Offset: len(data), Msg: fmt.Sprintf("%d values where one was expected", len(vs))}
}

// ParseAll reads every top-level value of data.
func ParseAll(data []byte) ([]Value, error) {
	if !utf8.Valid(data) {
		return nil, &SyntaxError{Offset: firstInvalid(data), Msg: "invalid UTF-8"}
	}
	p := &parser{data: data}
	var out []Value
	for {
		p.skip()
		if p.pos >= len(p.data) {
			return out, nil
		}
		v, err := p.value(0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func (p *parser) errf(at int, format string, args ...any) error {
	return &SyntaxError{Offset: at, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// skip passes whitespace and comments.
func (p *parser) skip() {
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case isSpace(c):
			p.pos++
		case c == '#':
			for p.pos < len(p.data) && p.data[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (Value, error) {
	p.nodes++
	if p.nodes > MaxNodes {
		return Value{}, p.errf(p.pos, "more than %d elements", MaxNodes)
	}
	c := p.data[p.pos]
	switch c {
	case '(':
		if depth >= MaxDepth {
			return Value{}, p.errf(p.pos, "nesting deeper than %d", MaxDepth)
		}
		start := p.pos
		p.pos++
		l := Value{IsList: true}
		for {
			p.skip()
			if p.pos >= len(p.data) {
				return Value{}, p.errf(start, "unclosed '('")
			}
			if p.data[p.pos] == ')' {
				p.pos++
				if l.List == nil {
					l.List = []Value{}
				}
				return l, nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return Value{}, err
			}
			l.List = append(l.List, v)
		}
	case ')':
		return Value{}, p.errf(p.pos, "unexpected ')'")
	case '"', '\'':
		s, err := p.quoted(c)
		return Atom(s), err
	}
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if isSpace(c) || c == '(' || c == ')' || c == '#' || c == '"' || c == '\'' {
			break
		}
		p.pos++
	}
	return Atom(string(p.data[start:p.pos])), nil
}

// quoted reads a string in quote q with xend's backslash escapes: \n \t \r
// \b \f \v \a, \\ \' \", \xHH, and octal \NNN.
func (p *parser) quoted(q byte) (string, error) {
	start := p.pos
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(p.data) {
			return "", p.errf(start, "unterminated string")
		}
		c := p.data[p.pos]
		if c == q {
			p.pos++
			return b.String(), nil
		}
		if c != '\\' {
			b.WriteByte(c)
			p.pos++
			continue
		}
		at := p.pos
		p.pos++
		if p.pos >= len(p.data) {
			return "", p.errf(start, "unterminated string")
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'a':
			b.WriteByte('\a')
		case '\\', '\'', '"':
			b.WriteByte(e)
		case '\n':
			// a backslash-newline continues the string
		case 'x':
			if p.pos+2 > len(p.data) {
				return "", p.errf(at, "short \\x escape")
			}
			n, err := strconv.ParseUint(string(p.data[p.pos:p.pos+2]), 16, 8)
			if err != nil {
				return "", p.errf(at, "bad \\x escape")
			}
			b.WriteRune(rune(n))
			p.pos += 2
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := int(e - '0')
			for i := 0; i < 2 && p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '7'; i++ {
				n = n*8 + int(p.data[p.pos]-'0')
				p.pos++
			}
			if n > 0xff {
				return "", p.errf(at, "octal escape out of range")
			}
			b.WriteRune(rune(n))
		default:
			return "", p.errf(at, "unknown escape \\%c", e)
		}
	}
}

// bare reports whether s can be written without quotes: xend's rule
// (letters, digits and . - _ : / ~), plus a lone "@".
func bare(s string) bool {
	if s == "" {
		return false
	}
	if s == "@" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '-' || c == '_' || c == ':' || c == '/' || c == '~':
		default:
			return false
		}
	}
	return true
}

// AppendAtom writes s as an atom: bare when it can be, else single-quoted
// with backslash escapes (as Python's repr does, which xend used).
func AppendAtom(dst []byte, s string) []byte {
	if bare(s) {
		return append(dst, s...)
	}
	dst = append(dst, '\'')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			dst = append(dst, fmt.Sprintf(`\x%02x`, s[i])...)
		case r == '\\' || r == '\'':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r < 0x20 || r == 0x7f:
			dst = append(dst, fmt.Sprintf(`\x%02x`, r)...)
		default:
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '\'')
}

// Append writes v compactly on one line.
func Append(dst []byte, v Value) []byte {
	if !v.IsList {
		return AppendAtom(dst, v.Atom)
	}
	dst = append(dst, '(')
	for i, c := range v.List {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = Append(dst, c)
	}
	return append(dst, ')')
}

// String returns v compactly.
func (v Value) String() string { return string(Append(nil, v)) }

// AppendPretty writes v as xend's pretty printer lays it out: a list of
// atoms on one line; a list holding lists with each element after the first
// on its own line, indented.
func AppendPretty(dst []byte, v Value) []byte { return appendPretty(dst, v, 0) }

func appendPretty(dst []byte, v Value, indent int) []byte {
	if !v.IsList || !hasList(v) {
		return Append(dst, v)
	}
	dst = append(dst, '(')
	for i, c := range v.List {
		if i > 0 {
			dst = append(dst, '\n')
			dst = append(dst, strings.Repeat(" ", indent+4)...)
		}
		dst = appendPretty(dst, c, indent+4)
	}
	return append(dst, ')')
}

func hasList(v Value) bool {
	for _, c := range v.List {
		if c.IsList {
			return true
		}
	}
	return false
}
