package where

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type kind uint8

const (
	tEOF    kind = iota
	tEq          // =
	tLParen      // (
	tRParen      // )
	tTrue        // true
	tFalse       // false
	tField       // field
	tAnd         // and
	tOr          // or
	tNot         // not
	tString      // "..."
	tName        // bare field name before "=" (extension)
)

// keywords in lexing order. None is a prefix of another, so taking the first
// that matches is xapi's longest-match rule.
var keywords = []struct {
	word string
	kind kind
}{
	{"true", tTrue}, {"false", tFalse}, {"field", tField},
	{"and", tAnd}, {"or", tOr}, {"not", tNot},
}

type token struct {
	kind kind
	off  int
	text string // tString: contents without quotes; tName: the name
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tEq:
		return `"="`
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tString:
		return "string " + shorten(t.text)
	case tName:
		return "field name " + shorten(t.text)
	}
	for _, k := range keywords {
		if k.kind == t.kind {
			return strconv.Quote(k.word)
		}
	}
	return "?"
}

// shorten quotes s for an error message, cutting long literals.
func shorten(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

type parser struct {
	src  string
	pos  int     // next byte to lex
	pend []token // keywords split out of one word, not yet consumed
	tok  token   // current token
	ext  bool    // a bare field name (the extension) was used
}

// Parse parses a get_all_records_where expression. Errors are *SyntaxError.
func Parse(s string) (Expr, error) {
	e, _, err := parse(s)
	return e, err
}

// parse also reports whether the input needed the bare-field extension,
// i.e. whether xapi would have rejected it.
func parse(s string) (Expr, bool, error) {
	if len(s) > MaxLen {
		return nil, false, &SyntaxError{Line: 1, Col: 1, Msg: fmt.Sprintf("expression is %d bytes, over the limit of %d", len(s), MaxLen)}
	}
	p := &parser{src: s}
	if err := p.next(); err != nil {
		return nil, false, err
	}
	e, err := p.expr(0)
	if err != nil {
		return nil, false, err
	}
	if p.tok.kind != tEOF {
		return nil, false, p.errorf(p.tok.off, "unexpected %s after complete expression", p.tok.describe())
	}
	return e, p.ext, nil
}

func (p *parser) errorf(off int, format string, args ...any) error {
	return newError(p.src, off, format, args...)
}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// next advances p.tok, lexing lazily so that the first error in the input is
// the one reported.
func (p *parser) next() error {
	if len(p.pend) > 0 {
		p.tok, p.pend = p.pend[0], p.pend[1:]
		return nil
	}
	s := p.src
	for p.pos < len(s) && (s[p.pos] == ' ' || s[p.pos] == '\t' || s[p.pos] == '\n') {
		p.pos++
	}
	start := p.pos
	if start == len(s) {
		p.tok = token{kind: tEOF, off: start}
		return nil
	}
	switch c := s[start]; {
	case c == '=':
		p.pos++
		p.tok = token{kind: tEq, off: start}
	case c == '(':
		p.pos++
		p.tok = token{kind: tLParen, off: start}
	case c == ')':
		p.pos++
		p.tok = token{kind: tRParen, off: start}
	case c == '"':
		end := strings.IndexByte(s[start+1:], '"')
		if end < 0 {
			return p.errorf(start, "unterminated string literal")
		}
		p.pos = start + 1 + end + 1
		p.tok = token{kind: tString, off: start, text: s[start+1 : start+1+end]}
	case isWordByte(c):
		return p.word()
	default:
		r, _ := utf8.DecodeRuneInString(s[start:])
		if r == utf8.RuneError {
			return p.errorf(start, "unexpected byte 0x%02x", c)
		}
		return p.errorf(start, "unexpected character %q", r)
	}
	return nil
}

// word lexes a run of letters, digits and underscores. Followed by "=" it is
// a bare field name (the extension); otherwise it must be a sequence of
// keywords, exactly as xapi's lexer would split it.
func (p *parser) word() error {
	s, start := p.src, p.pos
	end := start
	for end < len(s) && isWordByte(s[end]) {
		end++
	}
	w := s[start:end]
	p.pos = end

	after := end
	for after < len(s) && (s[after] == ' ' || s[after] == '\t' || s[after] == '\n') {
		after++
	}
	if after < len(s) && s[after] == '=' && !('0' <= w[0] && w[0] <= '9') {
		p.tok = token{kind: tName, off: start, text: w}
		return nil
	}

	var toks []token
	for i := 0; i < len(w); {
		matched := false
		for _, k := range keywords {
			if strings.HasPrefix(w[i:], k.word) {
				toks = append(toks, token{kind: k.kind, off: start + i})
				i += len(k.word)
				matched = true
				break
			}
		}
		if !matched {
			return p.errorf(start, "unexpected word %s (want a keyword true, false, field, and, or, not; a \"string\"; or a field name before \"=\")", shorten(w))
		}
	}
	p.tok, p.pend = toks[0], toks[1:]
	return nil
}

// expr parses unary { (and|or) unary }. The loop builds the left-deep tree
// of xapi's "%left LAND LOR".
func (p *parser) expr(depth int) (Expr, error) {
	left, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tAnd || p.tok.kind == tOr {
		op := p.tok.kind
		if err := p.next(); err != nil {
			return nil, err
		}
		right, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		if op == tAnd {
			left = And{left, right}
		} else {
			left = Or{left, right}
		}
	}
	return left, nil
}

func (p *parser) unary(depth int) (Expr, error) {
	t := p.tok
	if (t.kind == tNot || t.kind == tLParen) && depth >= MaxDepth {
		return nil, p.errorf(t.off, "expression nested more than %d deep", MaxDepth)
	}
	switch t.kind {
	case tNot:
		// xapi declares "%right LNOT" before "%left LAND LOR", giving
		// "not" the lowest precedence: its operand is a whole chain.
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		return Not{x}, nil
	case tTrue, tFalse:
		if err := p.next(); err != nil {
			return nil, err
		}
		return Const(t.kind == tTrue), nil
	case tLParen:
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			open := newError(p.src, t.off, "")
			return nil, p.errorf(p.tok.off, "expected \")\" to close \"(\" at %d:%d, found %s", open.Line, open.Col, p.tok.describe())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		return x, nil
	case tString, tField, tName:
		l, err := p.value(true)
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tEq {
			return nil, p.errorf(p.tok.off, "expected \"=\" after %s, found %s", l, p.tok.describe())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		r, err := p.value(false)
		if err != nil {
			return nil, err
		}
		return Eq{l, r}, nil
	default:
		return nil, p.errorf(t.off, "expected an expression (true, false, not, \"(\" or a comparison), found %s", t.describe())
	}
}

// value parses STRING | field STRING, or a bare name when on the left.
func (p *parser) value(left bool) (Value, error) {
	t := p.tok
	var v Value
	switch {
	case t.kind == tString:
		v = Value{Text: t.text}
	case t.kind == tName && left:
		v = Value{Field: true, Text: t.text}
		p.ext = true
	case t.kind == tField:
		if err := p.next(); err != nil {
			return Value{}, err
		}
		if p.tok.kind != tString {
			return Value{}, p.errorf(p.tok.off, "expected a quoted field name after \"field\", found %s", p.tok.describe())
		}
		v = Value{Field: true, Text: p.tok.text}
	default:
		return Value{}, p.errorf(t.off, "expected a \"string\" or field \"name\", found %s", t.describe())
	}
	return v, p.next()
}
