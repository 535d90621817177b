package jsonrpc

import (
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/xenith/xenith/internal/wire"
)

// decoder is a small recursive-descent JSON parser that builds wire.Values
// directly. It is strict where leniency would let two parsers disagree on
// what a request means (duplicate keys, invalid UTF-8, trailing data) and
// bounded so hostile bodies cannot exhaust the stack (wire.MaxDepth).
type decoder struct {
	data  []byte
	pos   int
	depth int

	// Elements of the arrays and objects being parsed are collected on these
	// shared stacks and copied out into one exactly sized slice per
	// container, instead of growing a fresh slice per container. Entries
	// above the current length are always zero, so a pooled decoder keeps
	// no decoded strings alive.
	vals []wire.Value
	mems []wire.Member

	scratch []byte // unescaped string text

	// dup records the first duplicate key. It is reported only once the
	// whole body has parsed, so a syntax error anywhere still wins and a
	// truncated body is always a parse error.
	dup *Error
}

// Decoders are pooled so their stacks and scratch space are reused: a
// request then costs only the allocations of the values it holds.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

// maxPooled bounds, in elements, the stacks a pooled decoder may keep, so
// one huge request does not pin its buffers for the life of the process.
const maxPooled = 1 << 12

func newDecoder(data []byte) *decoder {
	d := decoders.Get().(*decoder)
	d.data, d.pos, d.depth, d.dup = data, 0, 0, nil
	// A UTF-8 byte order mark is not JSON, but some Windows tools add one;
	// RFC 8259 lets a parser ignore it.
	if len(data) >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf {
		d.pos = 3
	}
	return d
}

func (d *decoder) release() {
	d.data = nil // the caller may reuse its buffer
	if cap(d.vals) > maxPooled || cap(d.mems) > maxPooled || cap(d.scratch) > 16*maxPooled {
		return
	}
	// Unescaped text may be a password; do not leave it lying around.
	clear(d.scratch[:cap(d.scratch)])
	d.vals, d.mems, d.scratch = d.vals[:0], d.mems[:0], d.scratch[:0]
	decoders.Put(d)
}

func (d *decoder) syntaxError(what string) *Error {
	return &Error{Code: CodeParseError, Message: what + " at offset " + strconv.Itoa(d.pos)}
}

func (d *decoder) unexpected() *Error {
	if d.pos >= len(d.data) {
		return d.syntaxError("unexpected end of JSON input")
	}
	c := d.data[d.pos]
	if c < 0x20 || c >= utf8.RuneSelf {
		return d.syntaxError("invalid byte 0x" + strconv.FormatUint(uint64(c), 16))
	}
	return d.syntaxError("invalid character " + strconv.QuoteRune(rune(c)))
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

func (d *decoder) expect(c byte) *Error {
	if d.peek() != c {
		return d.unexpected()
	}
	d.pos++
	return nil
}

// end checks that nothing but whitespace follows the top-level value, then
// reports a duplicate key met on the way.
func (d *decoder) end() *Error {
	if d.peek() != 0 || d.pos < len(d.data) {
		return d.syntaxError("unexpected data after top-level value")
	}
	return d.dup
}

// value parses any JSON value.
func (d *decoder) value() (wire.Value, *Error) {
	switch c := d.peek(); {
	case c == '"':
		s, err := d.str()
		if err != nil {
			return wire.Value{}, err
		}
		return wire.Value{Kind: wire.KindString, Str: string(s)}, nil
	case c == '{':
		return d.object()
	case c == '[':
		a, err := d.array()
		if err != nil {
			return wire.Value{}, err
		}
		return wire.Value{Kind: wire.KindArray, Array: a}, nil
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return wire.Bool(true), d.literal("true")
	case c == 'f':
		return wire.Bool(false), d.literal("false")
	case c == 'n':
		return wire.Value{Kind: wire.KindNil}, d.literal("null")
	}
	return wire.Value{}, d.unexpected()
}

func (d *decoder) literal(word string) *Error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return d.unexpected()
	}
	d.pos += len(word)
	return nil
}

func (d *decoder) enter() *Error {
	d.depth++
	if d.depth > wire.MaxDepth {
		return d.syntaxError("nesting deeper than " + strconv.Itoa(wire.MaxDepth))
	}
	d.pos++ // the opening bracket
	return nil
}

// array parses an array; d.pos is at '['. An empty array decodes as nil.
func (d *decoder) array() ([]wire.Value, *Error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	base := len(d.vals)
	defer d.popVals(base)
	if d.peek() == ']' {
		d.pos++
		d.depth--
		return nil, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.vals = append(d.vals, v)
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			return append([]wire.Value(nil), d.vals[base:]...), nil
		default:
			return nil, d.unexpected()
		}
	}
}

// popVals and popMems drop the elements of a finished (or failed)
// container, zeroing them to keep the invariant documented on decoder.
func (d *decoder) popVals(base int) {
	clear(d.vals[base:])
	d.vals = d.vals[:base]
}

func (d *decoder) popMems(base int) {
	clear(d.mems[base:])
	d.mems = d.mems[:base]
}

// dupScan is the member count above which duplicate keys are found with a
// map rather than by comparing with every earlier key, so a hostile object
// with many members costs linear, not quadratic, time.
const dupScan = 16

// object parses an object; d.pos is at '{'. Member order is kept and a
// repeated key is an error: "last wins" would let a front end that checks
// the first occurrence disagree with us about what was sent.
func (d *decoder) object() (wire.Value, *Error) {
	if err := d.enter(); err != nil {
		return wire.Value{}, err
	}
	base := len(d.mems)
	defer d.popMems(base)
	if d.peek() == '}' {
		d.pos++
		d.depth--
		return wire.Value{Kind: wire.KindStruct}, nil
	}
	var seen map[string]struct{}
	for {
		if d.peek() != '"' {
			return wire.Value{}, d.unexpected()
		}
		at := d.pos
		k, err := d.str()
		if err != nil {
			return wire.Value{}, err
		}
		name := string(k)
		prev := d.mems[base:]
		repeated := false
		if len(prev) < dupScan {
			for i := range prev {
				if prev[i].Name == name {
					repeated = true
					break
				}
			}
		} else {
			if seen == nil {
				seen = make(map[string]struct{}, 2*len(prev))
				for i := range prev {
					seen[prev[i].Name] = struct{}{}
				}
			}
			_, repeated = seen[name]
			seen[name] = struct{}{}
		}
		if repeated && d.dup == nil {
			d.dup = &Error{Code: CodeInvalidRequest,
				Message: "duplicate key " + strconv.Quote(name) + " at offset " + strconv.Itoa(at)}
		}
		if err := d.expect(':'); err != nil {
			return wire.Value{}, err
		}
		v, err := d.value()
		if err != nil {
			return wire.Value{}, err
		}
		d.mems = append(d.mems, wire.Member{Name: name, Value: v})
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return wire.Value{Kind: wire.KindStruct, Struct: append([]wire.Member(nil), d.mems[base:]...)}, nil
		default:
			return wire.Value{}, d.unexpected()
		}
	}
}

// str parses a string; d.pos is at '"'. The result aliases either the input
// (no escapes: the common case) or d.scratch, and is valid until the next
// call. Invalid UTF-8 is rejected, as RFC 8259 requires UTF-8 text; escaped
// lone surrogates, which are valid JSON, become U+FFFD.
func (d *decoder) str() ([]byte, *Error) {
	d.pos++
	start := d.pos
	data := d.data
	i := start
	// Fast path: no escapes.
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return data[start:i], nil
		case c == '\\':
			d.scratch = append(d.scratch[:0], data[start:i]...)
			return d.strSlow(i)
		case c < 0x20:
			d.pos = i
			return nil, d.syntaxError("control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				d.pos = i
				return nil, d.syntaxError("invalid UTF-8 in string")
			}
			i += size
		}
	}
	d.pos = i
	return nil, d.syntaxError("unterminated string")
}

// strSlow continues str from the first backslash at i, unescaping into
// d.scratch.
func (d *decoder) strSlow(i int) ([]byte, *Error) {
	data := d.data
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return d.scratch, nil
		case c == '\\':
			if i+1 >= len(data) {
				d.pos = i
				return nil, d.syntaxError("unterminated string")
			}
			i += 2
			switch data[i-1] {
			case '"', '\\', '/':
				d.scratch = append(d.scratch, data[i-1])
			case 'b':
				d.scratch = append(d.scratch, '\b')
			case 'f':
				d.scratch = append(d.scratch, '\f')
			case 'n':
				d.scratch = append(d.scratch, '\n')
			case 'r':
				d.scratch = append(d.scratch, '\r')
			case 't':
				d.scratch = append(d.scratch, '\t')
			case 'u':
				r, ok := hex4(data[i:])
				if !ok {
					d.pos = i
					return nil, d.syntaxError("invalid \\u escape")
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// Only a high surrogate followed by an escaped low one
					// makes a character; anything else is U+FFFD.
					r2, ok := rune(0), false
					if len(data)-i >= 6 && data[i] == '\\' && data[i+1] == 'u' {
						r2, ok = hex4(data[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				d.scratch = utf8.AppendRune(d.scratch, r)
			default:
				d.pos = i - 1
				return nil, d.syntaxError("invalid escape")
			}
		case c < 0x20:
			d.pos = i
			return nil, d.syntaxError("control character in string")
		case c < utf8.RuneSelf:
			d.scratch = append(d.scratch, c)
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				d.pos = i
				return nil, d.syntaxError("invalid UTF-8 in string")
			}
			d.scratch = append(d.scratch, data[i:i+size]...)
			i += size
		}
	}
	d.pos = i
	return nil, d.syntaxError("unterminated string")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number parses a JSON number. Integer literals become KindInt and must fit
// int64 (xapi's ints are 64-bit; silently rounding a huge one to a float
// would change its meaning). Anything with a fraction or exponent is a
// KindFloat and must be finite.
func (d *decoder) number() (wire.Value, *Error) {
	data := d.data
	start := d.pos
	i := start
	neg := data[i] == '-'
	if neg {
		i++
	}
	digits := i
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return wire.Value{}, d.syntaxError("invalid number")
	}
	intEnd := i
	isInt := true
	if i < len(data) && data[i] == '.' {
		isInt = false
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return wire.Value{}, d.syntaxError("invalid number")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		isInt = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return wire.Value{}, d.syntaxError("invalid number")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	if isInt {
		// Accumulate the magnitude as uint64; the limit is 2^63 for
		// negative numbers and 2^63-1 for positive ones.
		limit := uint64(1<<63 - 1)
		if neg {
			limit++
		}
		var u uint64
		for _, c := range data[digits:intEnd] {
			dgt := uint64(c - '0')
			if u > (limit-dgt)/10 {
				d.pos = start
				return wire.Value{}, d.syntaxError("integer out of int64 range")
			}
			u = u*10 + dgt
		}
		if neg {
			return wire.Int(int64(-u)), nil
		}
		return wire.Int(int64(u)), nil
	}
	f, err := strconv.ParseFloat(string(data[start:i]), 64)
	if err != nil {
		// The syntax was checked above, so this is overflow to ±Inf.
		d.pos = start
		return wire.Value{}, d.syntaxError("number out of float64 range")
	}
	return wire.Float(f), nil
}
