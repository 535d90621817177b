package jsonrpc

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/xenith/xenith/internal/wire"
)

func TestEncoder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(e wire.Encoder)
		want  string
	}{
		{"int", func(e wire.Encoder) { e.Int(-1 << 63) }, `-9223372036854775808`},
		{"max int", func(e wire.Encoder) { e.Int(1<<63 - 1) }, `9223372036854775807`},
		{"bools", func(e wire.Encoder) { e.BeginArray(); e.Bool(true); e.Bool(false); e.EndArray() }, `[true,false]`},
		{"float integral", func(e wire.Encoder) { e.Float(1) }, `1.0`},
		{"float zero", func(e wire.Encoder) { e.Float(0) }, `0.0`},
		{"float negative zero", func(e wire.Encoder) { e.Float(math.Copysign(0, -1)) }, `-0.0`},
		{"float fraction", func(e wire.Encoder) { e.Float(60.1) }, `60.1`},
		{"float shortest", func(e wire.Encoder) { a, b := 0.1, 0.2; e.Float(a + b) }, `0.30000000000000004`},
		{"float large", func(e wire.Encoder) { e.Float(1e21) }, `1e+21`},
		{"float below 1e21", func(e wire.Encoder) { e.Float(1e20) }, `100000000000000000000.0`},
		{"float small", func(e wire.Encoder) { e.Float(1e-7) }, `1e-07`},
		{"float max", func(e wire.Encoder) { e.Float(math.MaxFloat64) }, `1.7976931348623157e+308`},
		{"float denormal", func(e wire.Encoder) { e.Float(5e-324) }, `5e-324`},
		{"NaN", func(e wire.Encoder) { e.Float(math.NaN()) }, `null`},
		{"+Inf", func(e wire.Encoder) { e.Float(math.Inf(1)) }, `null`},
		{"-Inf in array", func(e wire.Encoder) { e.BeginArray(); e.Float(math.Inf(-1)); e.Int(1); e.EndArray() }, `[null,1]`},
		{"datetime", func(e wire.Encoder) { e.DateTime(testTime) }, `"20250319T04:16:24Z"`},
		{"datetime zone", func(e wire.Encoder) {
			e.DateTime(time.Date(2025, 3, 19, 6, 16, 24, 999, time.FixedZone("x", 7200)))
		}, `"20250319T04:16:24Z"`},
		{"empty string", func(e wire.Encoder) { e.String("") }, `""`},
		{"html chars stay", func(e wire.Encoder) { e.String("<a href='x'>&amp;</a>") }, `"<a href='x'>&amp;</a>"`},
		{"quotes", func(e wire.Encoder) { e.String(`a"b\c/d`) }, `"a\"b\\c/d"`},
		{"named controls", func(e wire.Encoder) { e.String("\b\f\n\r\t") }, `"\b\f\n\r\t"`},
		{"other controls", func(e wire.Encoder) { e.String("\x00\x01\x1f\x7f") }, `"\u0000\u0001\u001f` + "\x7f\""},
		{"unicode kept", func(e wire.Encoder) { e.String("é😀\u2028") }, "\"é😀\u2028\""},
		{"invalid UTF-8", func(e wire.Encoder) { e.String("a\xffb\xc3") }, "\"a\uFFFDb\uFFFD\""},
		{"UTF-8 surrogate", func(e wire.Encoder) { e.String("\xed\xa0\x80") }, "\"\uFFFD\uFFFD\uFFFD\""},
		{"empty array", func(e wire.Encoder) { e.BeginArray(); e.EndArray() }, `[]`},
		{"empty struct", func(e wire.Encoder) { e.BeginStruct(); e.EndStruct() }, `{}`},
		{"struct", func(e wire.Encoder) {
			e.BeginStruct()
			e.Member("a")
			e.Int(1)
			e.Member("b\n")
			e.BeginArray()
			e.String("x")
			e.BeginStruct()
			e.EndStruct()
			e.BeginArray()
			e.EndArray()
			e.EndArray()
			e.Member("c")
			e.BeginStruct()
			e.Member("")
			e.Bool(true)
			e.EndStruct()
			e.EndStruct()
		}, `{"a":1,"b\n":["x",{},[]],"c":{"":true}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var e Encoder
			e.Reset([]byte("prefix:"))
			tc.write(&e)
			got := string(e.Bytes())
			if got != "prefix:"+tc.want {
				t.Fatalf("got %s, want prefix:%s", got, tc.want)
			}
			mustValidJSON(t, e.Bytes()[len("prefix:"):])
		})
	}
}

// TestEncodeMatchesStdlib checks strings against encoding/json's reading
// of our output, for every byte value and some awkward sequences.
func TestEncodeMatchesStdlib(t *testing.T) {
	t.Parallel()
	inputs := []string{"", "plain", "\u2029", "\xe2\x82", "a\xe2\x82\xacb", "\xf4\x90\x80\x80", strings.Repeat("ab\"c", 100)}
	for b := range 256 {
		inputs = append(inputs, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	for _, s := range inputs {
		out := appendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encodes as invalid JSON %s: %v", s, out, err)
		}
		if want := perByteReplace(s); back != want {
			t.Fatalf("%q came back as %q, want %q", s, back, want)
		}
	}
}

// perByteReplace replaces each byte that is not part of valid UTF-8 with
// U+FFFD, which is what appendString promises.
func perByteReplace(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError is U+FFFD
		i += n
	}
	return b.String()
}

func TestFloatRoundTrip(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, 1, -1, 0.1, 1.5, 60.1, 1e-6, 9.99e-7, 1e20, 1e21, 123456789.125, math.MaxFloat64,
		math.SmallestNonzeroFloat64, -math.MaxFloat64, 1 << 53, 1<<53 + 2, math.Pi} {
		out := appendFloat(nil, f)
		res, _, err := ParseResponse([]byte(`{"jsonrpc":"2.0","result":` + string(out) + `,"id":0}`))
		if err != nil {
			t.Fatalf("%v -> %s: %v", f, out, err)
		}
		if res.Kind != wire.KindFloat || res.Float != f {
			t.Fatalf("%v -> %s -> %+v", f, out, res)
		}
	}
}

func TestAppendResultVoid(t *testing.T) {
	t.Parallel()
	// A nil write, or one that writes nothing, is a void result: "".
	for _, req := range []*Request{nil, reqV1, reqV2} {
		a := AppendResult(nil, req, nil)
		b := AppendResult(nil, req, func(wire.Encoder) {})
		if string(a) != string(b) || !strings.Contains(string(a), `"result":""`) {
			t.Fatalf("void: %s / %s", a, b)
		}
		mustValidJSON(t, a)
	}
	if got := string(AppendResult(nil, nil, nil)); got != `{"jsonrpc":"2.0","result":"","id":null}` {
		t.Fatalf("nil request: %s", got)
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	t.Parallel()
	dst := []byte("HTTP-ish prefix ")
	out := AppendResult(dst, reqV2, encodeValue(wire.Int(1)))
	out = AppendError(out, reqV2, []string{"X"})
	out = AppendProtocolError(out, nil, CodeParseError, "p")
	out = AppendCall(out, 1, 2, "m", nil)
	want := `HTTP-ish prefix {"jsonrpc":"2.0","result":1,"id":3}` +
		`{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":[]},"id":3}` +
		`{"jsonrpc":"2.0","error":{"code":-32700,"message":"p"},"id":null}` +
		`{"method":"m","params":[],"id":2}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
}

// TestEncoderNoAllocs guards the hot path: once the buffer is big enough,
// encoding a record allocates nothing.
func TestEncoderNoAllocs(t *testing.T) {
	rec := sampleRecord()
	var e Encoder
	buf := make([]byte, 0, 1<<16)
	allocs := testing.AllocsPerRun(100, func() {
		e.Reset(buf)
		writeRecord(&e, rec)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per record", allocs)
	}
}

// writeRecord encodes v the way a generated encoder would: straight calls,
// no wire.Encode (whose datetime path parses strings).
func writeRecord(e *Encoder, v wire.Value) {
	switch v.Kind {
	case wire.KindString:
		e.String(v.Str)
	case wire.KindInt:
		e.Int(v.Int)
	case wire.KindFloat:
		e.Float(v.Float)
	case wire.KindBool:
		e.Bool(v.Bool)
	case wire.KindDateTime:
		e.DateTime(testTime)
	case wire.KindArray:
		e.BeginArray()
		for _, x := range v.Array {
			writeRecord(e, x)
		}
		e.EndArray()
	case wire.KindStruct:
		e.BeginStruct()
		for _, m := range v.Struct {
			e.Member(m.Name)
			writeRecord(e, m.Value)
		}
		e.EndStruct()
	}
}
