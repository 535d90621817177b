package jsonrpc

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/xenith/xenith/internal/wire"
)

// Encoder implements wire.Encoder by appending JSON text to a byte slice.
// It never reflects and never allocates except to grow the slice, so
// generated record encoders can stream thousands of records through it.
//
// The zero Encoder is ready to use and appends to a nil slice.
type Encoder struct {
	buf []byte
	// comma is set once a value has been written at the current level, so
	// the next value (or member) must be preceded by a separator.
	comma bool
}

var _ wire.Encoder = (*Encoder)(nil)

// Reset makes the Encoder append to dst, forgetting any state.
func (e *Encoder) Reset(dst []byte) { e.buf, e.comma = dst, false }

// Bytes returns the slice with everything appended so far.
func (e *Encoder) Bytes() []byte { return e.buf }

// sep writes the separator owed by the previous sibling, if any.
func (e *Encoder) sep() {
	if e.comma {
		e.buf = append(e.buf, ',')
	}
	e.comma = true
}

func (e *Encoder) String(s string) {
	e.sep()
	e.buf = appendString(e.buf, s)
}

func (e *Encoder) Int(i int64) {
	e.sep()
	e.buf = strconv.AppendInt(e.buf, i, 10)
}

// Int32 writes a number, like Int.
func (e *Encoder) Int32(i int32) { e.Int(int64(i)) }

func (e *Encoder) Float(f float64) {
	e.sep()
	e.buf = appendFloat(e.buf, f)
}

func (e *Encoder) Bool(b bool) {
	e.sep()
	if b {
		e.buf = append(e.buf, "true"...)
	} else {
		e.buf = append(e.buf, "false"...)
	}
}

// DateTime writes a JSON string in XenAPI's basic ISO 8601 form, always UTC,
// which is what xapi sends (its Date.to_rfc3339 omits the hyphens on purpose).
func (e *Encoder) DateTime(t time.Time) {
	e.sep()
	e.buf = appendDateTime(e.buf, t)
}

// appendDateTime writes t as a quoted wire.DateTimeLayout string. Done by
// hand because time.AppendFormat interprets the layout on every call, which
// showed up in profiles of large answers.
func appendDateTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, wire.DateTimeLayout)
		return append(dst, '"')
	}
	h, mi, s := t.Clock()
	return append(dst, '"',
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10),
		byte('0'+mo/10), byte('0'+mo%10), byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), 'Z', '"')
}

func (e *Encoder) BeginArray() {
	e.sep()
	e.buf = append(e.buf, '[')
	e.comma = false
}

func (e *Encoder) EndArray() {
	e.buf = append(e.buf, ']')
	e.comma = true
}

func (e *Encoder) BeginStruct() {
	e.sep()
	e.buf = append(e.buf, '{')
	e.comma = false
}

// Member writes the key; the value that follows must not get a separator,
// hence comma is cleared again.
func (e *Encoder) Member(name string) {
	e.sep()
	e.buf = appendString(e.buf, name)
	e.buf = append(e.buf, ':')
	e.comma = false
}

// Name writes a prepared key.
func (e *Encoder) Name(n *wire.Name) {
	e.sep()
	e.buf = append(e.buf, n.JSON...)
	e.comma = false
}

func (e *Encoder) EndStruct() {
	e.buf = append(e.buf, '}')
	e.comma = true
}

// appendFloat writes f so that decoding it yields the same float64 and the
// same Kind: integral values get a ".0" so they do not come back as ints.
// JSON has no NaN or infinities; like JavaScript's JSON.stringify we send
// null rather than produce a document no client can parse.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	n := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
	for _, c := range dst[n:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

// safe[c] reports whether byte c may appear in a JSON string as is: ASCII
// other than controls, '"' and '\\'. '<', '>' and '&' are left alone:
// nobody embeds these answers in HTML. Bytes from 0x80 need a UTF-8 check.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString writes s as a quoted JSON string; invalid UTF-8 becomes
// U+FFFD so the output is always valid JSON and valid UTF-8. Most strings
// (refs, uuids, names, field names) need no escaping at all: they are
// recognised eight bytes at a time and copied in one go.
func appendString(dst []byte, s string) []byte {
	n := safePrefix(s)
	dst = append(dst, '"')
	if n == len(s) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	dst = append(dst, s[:n]...)
	return appendEscaped(dst, s[n:])
}

// safePrefix returns the length of the longest prefix of s made of safe
// bytes. Kept small so the compiler keeps its loop in registers.
func safePrefix(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if special8(load64(s, i)) {
			break
		}
	}
	// A short tail is checked with one more word overlapping bytes already
	// seen (all safe, or we would have stopped before them).
	if i+8 > len(s) && len(s) >= 8 && !special8(load64(s, len(s)-8)) {
		return len(s)
	}
	for i < len(s) && safe[s[i]] {
		i++
	}
	return i
}

// appendEscaped writes the rest of a string that needs escaping, and the
// closing quote, copying runs of safe bytes in one go.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if safe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// load64 reads s[i:i+8] as a little-endian word; the compiler turns this
// into a single load.
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special8 reports whether any of the eight bytes in x is a control
// character, '"', '\\' or not ASCII, with the usual SWAR tricks: a byte
// below n borrows when n is subtracted, and a byte equal to c becomes zero
// when xored with c.
func special8(x uint64) bool {
	lt := (x - ones*0x20) &^ x
	q := x ^ (ones * '"')
	q = (q - ones) &^ q
	b := x ^ (ones * '\\')
	b = (b - ones) &^ b
	return (lt|q|b|x)&highs != 0
}

// Codec, Scratch and Splice make the Encoder a wire.Splicer.
func (e *Encoder) Codec() string { return "jsonrpc" }

func (e *Encoder) Scratch() interface {
	wire.Encoder
	Bytes() []byte
} {
	return &Encoder{}
}

func (e *Encoder) Splice(encoded []byte) {
	e.sep()
	e.buf = append(e.buf, encoded...)
}
