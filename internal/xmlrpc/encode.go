package xmlrpc

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/xenith/xenith/internal/wire"
)

// Encoder implements wire.Encoder by appending XML-RPC <value> elements to
// a byte slice. The zero Encoder is ready to use.
//
// Encoding follows xapi: strings and ints are untyped <value>text</value>
// (ints as decimal digits, the XenAPI rule for 64-bit ints), and no
// whitespace separates elements. Text is escaped and characters XML 1.0
// cannot carry are dropped, so output is always well-formed whatever the
// input strings hold.
type Encoder struct {
	buf []byte
	// Open arrays and structs: bit d of kinds (or more[d-64] past 64
	// levels) tells whether the container at depth d is a struct, whose
	// member must be closed after each value.
	depth uint
	kinds uint64
	more  []bool
}

var _ wire.Encoder = (*Encoder)(nil)

// Bytes returns the encoded output.
func (e *Encoder) Bytes() []byte { return e.buf }

// Reset makes the Encoder append to dst from now on. The nesting state is
// kept, so a server can stream a large value: write Bytes() to the
// connection and Reset(buf[:0]) between any two events. Between complete
// values there is no state, so Reset also serves to reuse an Encoder; after
// abandoning a value half-written, start from a zero Encoder instead.
func (e *Encoder) Reset(dst []byte) { e.buf = dst }

func (e *Encoder) String(s string) {
	e.buf = append(e.buf, "<value>"...)
	e.buf = appendText(e.buf, s)
	e.endValue()
}

func (e *Encoder) Int(i int64) {
	e.buf = append(e.buf, "<value>"...)
	e.buf = strconv.AppendInt(e.buf, i, 10)
	e.endValue()
}

// Int32 writes a typed <i4>, which clients decode as a number (Int writes
// XenAPI's 64-bit ints as untyped decimal strings).
func (e *Encoder) Int32(i int32) {
	e.buf = append(e.buf, "<value><i4>"...)
	e.buf = strconv.AppendInt(e.buf, int64(i), 10)
	e.buf = append(e.buf, "</i4>"...)
	e.endValue()
}

func (e *Encoder) Float(f float64) {
	e.buf = append(e.buf, "<value><double>"...)
	e.buf = appendFloat(e.buf, f)
	e.buf = append(e.buf, "</double>"...)
	e.endValue()
}

func (e *Encoder) Bool(b bool) {
	if b {
		e.buf = append(e.buf, "<value><boolean>1</boolean>"...)
	} else {
		e.buf = append(e.buf, "<value><boolean>0</boolean>"...)
	}
	e.endValue()
}

func (e *Encoder) DateTime(t time.Time) {
	e.buf = append(e.buf, "<value><dateTime.iso8601>"...)
	e.buf = appendDateTime(e.buf, t)
	e.buf = append(e.buf, "</dateTime.iso8601>"...)
	e.endValue()
}

func (e *Encoder) BeginArray() {
	e.buf = append(e.buf, "<value><array><data>"...)
	e.push(false)
}

func (e *Encoder) EndArray() {
	e.pop()
	e.buf = append(e.buf, "</data></array>"...)
	e.endValue()
}

func (e *Encoder) BeginStruct() {
	e.buf = append(e.buf, "<value><struct>"...)
	e.push(true)
}

func (e *Encoder) Member(name string) {
	e.buf = append(e.buf, "<member><name>"...)
	e.buf = appendText(e.buf, name)
	e.buf = append(e.buf, "</name>"...)
}

// Name writes a prepared member name.
func (e *Encoder) Name(n *wire.Name) { e.buf = append(e.buf, n.XML...) }

func (e *Encoder) EndStruct() {
	e.pop()
	e.buf = append(e.buf, "</struct>"...)
	e.endValue()
}

// endValue closes a <value>, and the <member> holding it if the enclosing
// container is a struct.
func (e *Encoder) endValue() {
	e.buf = append(e.buf, "</value>"...)
	if e.inStruct() {
		// A separate short append: constants up to 16 bytes are copied
		// inline, longer ones cost a memmove call.
		e.buf = append(e.buf, "</member>"...)
	}
}

func (e *Encoder) push(isStruct bool) {
	if d := e.depth; d < 64 {
		e.kinds = e.kinds&^(1<<d) | b2u(isStruct)<<d
	} else {
		e.more = append(e.more[:d-64], isStruct)
	}
	e.depth++
}

func (e *Encoder) pop() {
	if e.depth > 0 { // tolerate an unbalanced End rather than corrupt state
		e.depth--
	}
}

func (e *Encoder) inStruct() bool {
	if e.depth == 0 {
		return false
	}
	if d := e.depth - 1; d < 64 {
		return e.kinds>>d&1 != 0
	} else {
		return e.more[d-64]
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// value writes a decoded Value. Unlike wire.Encode it keeps <nil/> and sends
// a datetime's text as it was received.
func (e *Encoder) value(v wire.Value) {
	switch v.Kind {
	case wire.KindNil:
		e.buf = append(e.buf, "<value><nil/>"...)
		e.endValue()
	case wire.KindDateTime:
		e.buf = append(e.buf, "<value><dateTime.iso8601>"...)
		e.buf = appendText(e.buf, v.Str)
		e.buf = append(e.buf, "</dateTime.iso8601>"...)
		e.endValue()
	case wire.KindArray:
		e.BeginArray()
		for i := range v.Array {
			e.value(v.Array[i])
		}
		e.EndArray()
	case wire.KindStruct:
		e.BeginStruct()
		for i := range v.Struct {
			e.Member(v.Struct[i].Name)
			e.value(v.Struct[i].Value)
		}
		e.EndStruct()
	default:
		wire.Encode(e, v)
	}
}

const (
	xmlDecl       = `<?xml version="1.0"?>`
	responseHead  = xmlDecl + "<methodResponse><params><param><value><struct><member><name>Status</name>"
	responseTail  = "</member></struct></value></param></params></methodResponse>"
	valueName     = "<name>Value</name>"
	successHead   = responseHead + "<value>Success</value></member><member>" + valueName
	failureHead   = responseHead + "<value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>"
	failureTail   = "</data></array></value>" + responseTail
	faultHead     = xmlDecl + "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>"
	faultMiddle   = "</int></value></member><member><name>faultString</name><value>"
	faultTail     = "</value></member></struct></value></fault></methodResponse>"
	callHead      = xmlDecl + "<methodCall><methodName>"
	callParamHead = "</methodName><params>"
	callTail      = "</params></methodCall>"
)

// AppendSuccess appends a complete XenAPI success response whose Value is
// what write emits. write must emit exactly one value; if it emits none the
// Value is the empty string, XenAPI's encoding of void.
//
// To stream a large answer, write may assert its argument to *Encoder, send
// Bytes() (which starts with dst and the response head) to the connection
// and Reset(buf[:0]) between any two events; the returned slice then holds
// only what follows the last flush.
func AppendSuccess(dst []byte, write func(wire.Encoder)) []byte {
	e := Encoder{buf: append(dst, successHead...)}
	write(&e)
	// Every value ends with "</value>", so this suffix survives only if
	// write emitted nothing (and did not flush).
	if n := len(e.buf); n >= len(valueName) && string(e.buf[n-len(valueName):]) == valueName {
		e.buf = append(e.buf, "<value></value>"...)
	}
	return append(e.buf, responseTail...)
}

// AppendFailure appends a XenAPI failure response: Status "Failure" and an
// ErrorDescription array holding the error code and its parameters.
func AppendFailure(dst []byte, desc []string) []byte {
	b := append(dst, failureHead...)
	for _, s := range desc {
		b = append(b, "<value>"...)
		b = appendText(b, s)
		b = append(b, "</value>"...)
	}
	return append(b, failureTail...)
}

// AppendFault appends a standard XML-RPC fault, for requests that are not
// XML-RPC at all and so cannot get a XenAPI failure.
func AppendFault(dst []byte, code int, msg string) []byte {
	b := append(dst, faultHead...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, faultMiddle...)
	b = appendText(b, msg)
	return append(b, faultTail...)
}

// AppendCall appends a <methodCall>. Params are written with the Encoder's
// rules, so KindInt goes out as a string of digits as XenAPI expects;
// KindNil becomes <nil/> and KindDateTime keeps its text.
func AppendCall(dst []byte, method string, params []wire.Value) []byte {
	e := Encoder{buf: append(dst, callHead...)}
	e.buf = appendText(e.buf, method)
	e.buf = append(e.buf, callParamHead...)
	for i := range params {
		e.buf = append(e.buf, "<param>"...)
		e.value(params[i])
		e.buf = append(e.buf, "</param>"...)
	}
	return append(e.buf, callTail...)
}

// appendFloat writes f so that it parses back to the same float64: plain
// decimals in the range JavaScript prints that way, exponent form outside
// it (both Python's float() and JavaScript's Number() read either).
// XML-RPC has no spelling for non-finite numbers; NaN, Infinity and
// -Infinity are what Python, JavaScript, Go and C's strtod all accept.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'e', -1, 64)
}

// appendDateTime writes t in UTC as wire.DateTimeLayout. Hand-rolled
// because records carry many datetimes and time.AppendFormat interprets the
// layout each call.
func appendDateTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, wire.DateTimeLayout)
	}
	hour, min, sec := t.Clock()
	return append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10),
		byte('0'+month/10), byte('0'+month%10), byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+min/10), byte('0'+min%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), 'Z')
}

// textSafe marks the ASCII bytes that go out unchanged.
var textSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['\t'], t['\n'] = true, true
	t['<'], t['>'], t['&'] = false, false, false
	return t
}()

const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// plain8 reports whether 8 bytes (little-endian in w) can all be copied
// as they are: no byte below 0x20, none of '<' '>' '&', no non-ASCII.
// Tab and newline count as special here; appendTextFrom handles them.
func plain8(w uint64) bool {
	zero := func(v uint64) uint64 { return (v - ones) &^ v & high }
	ctl := (w - 0x20*ones) &^ w & high // some byte < 0x20
	// '<' (0x3C) and '>' (0x3E) differ only in bit 1.
	angle := zero((w ^ '<'*ones) &^ (0x02 * ones))
	amp := zero(w ^ '&'*ones)
	return (w&high | ctl | angle | amp) == 0
}

// appendText appends s as XML character data. Most strings need no
// escaping, so they are scanned 8 bytes at a time and copied whole.
func appendText(b []byte, s string) []byte {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if !plain8(w) {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || !textSafe[c] {
			return appendTextFrom(b, s, i)
		}
	}
	return append(b, s...)
}

// appendTextFrom escapes s from byte i on, copying s[:i] verbatim. '>' is
// escaped too so "]]>" cannot appear. '\r' becomes a character reference
// because parsers turn a literal one into '\n'. Control characters XML 1.0
// cannot represent at all are dropped (as xapi does); invalid UTF-8 and
// U+FFFE/U+FFFF become U+FFFD.
func appendTextFrom(b []byte, s string, i int) []byte {
	last := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if textSafe[c] {
				i++
				continue
			}
			b = append(b, s[last:i]...)
			switch c {
			case '<':
				b = append(b, "&lt;"...)
			case '>':
				b = append(b, "&gt;"...)
			case '&':
				b = append(b, "&amp;"...)
			case '\r':
				b = append(b, "&#13;"...)
			}
			i++
			last = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || r == 0xFFFE || r == 0xFFFF {
			b = append(b, s[last:i]...)
			b = append(b, "\uFFFD"...)
			i += n
			last = i
			continue
		}
		i += n
	}
	return append(b, s[last:]...)
}

// Codec, Scratch and Splice make the Encoder a wire.Splicer.
func (e *Encoder) Codec() string { return "xmlrpc" }

func (e *Encoder) Scratch() interface {
	wire.Encoder
	Bytes() []byte
} {
	return &Encoder{}
}

// Splice inserts a complete <value> element, closing the member around it
// when inside a struct, as endValue does.
func (e *Encoder) Splice(encoded []byte) {
	e.buf = append(e.buf, encoded...)
	if e.inStruct() {
		e.buf = append(e.buf, "</member>"...)
	}
}
