package xmlrpc

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/xenith/xenith/internal/wire"
)

// sent is what v decodes to after one trip through our encoder: ints travel
// as strings of digits (the XenAPI rule); everything else is unchanged.
func sent(v wire.Value) wire.Value {
	switch v.Kind {
	case wire.KindInt:
		return wire.String(strconv.FormatInt(v.Int, 10))
	case wire.KindArray:
		out := wire.Value{Kind: wire.KindArray}
		for _, x := range v.Array {
			out.Array = append(out.Array, sent(x))
		}
		return out
	case wire.KindStruct:
		out := wire.Value{Kind: wire.KindStruct}
		for _, m := range v.Struct {
			out.Struct = append(out.Struct, wire.Member{Name: m.Name, Value: sent(m.Value)})
		}
		return out
	}
	return v
}

// equal compares Values, treating NaN as equal to itself and nil slices as
// empty ones.
func equal(a, b wire.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case wire.KindString, wire.KindDateTime:
		return a.Str == b.Str
	case wire.KindInt:
		return a.Int == b.Int
	case wire.KindFloat:
		return a.Float == b.Float || math.IsNaN(a.Float) && math.IsNaN(b.Float)
	case wire.KindBool:
		return a.Bool == b.Bool
	case wire.KindNil:
		return true
	case wire.KindArray:
		if len(a.Array) != len(b.Array) {
			return false
		}
		for i := range a.Array {
			if !equal(a.Array[i], b.Array[i]) {
				return false
			}
		}
		return true
	case wire.KindStruct:
		if len(a.Struct) != len(b.Struct) {
			return false
		}
		for i := range a.Struct {
			if a.Struct[i].Name != b.Struct[i].Name || !equal(a.Struct[i].Value, b.Struct[i].Value) {
				return false
			}
		}
		return true
	}
	return false
}

func show(v wire.Value) string {
	var b strings.Builder
	dump(&b, v, "")
	return b.String()
}

var roundTripValues = []wire.Value{
	wire.String(""),
	wire.String("plain"),
	wire.String("  spaces  \n\ttabs\r\nCRLF "),
	wire.String(`<>&"' ]]> &amp; &#65;`),
	wire.String("日本語 ✓ 🚀 \u00a0nbsp"),
	wire.Int(0),
	wire.Int(math.MaxInt64),
	wire.Int(math.MinInt64),
	wire.Float(0),
	wire.Float(math.Copysign(0, -1)),
	wire.Float(0.1),
	wire.Float(1.0 / 3),
	wire.Float(1e300),
	wire.Float(5e-324),
	wire.Float(math.MaxFloat64),
	wire.Float(123456789012345678),
	wire.Float(math.NaN()),
	wire.Float(math.Inf(1)),
	wire.Float(math.Inf(-1)),
	wire.Bool(true),
	wire.Bool(false),
	{Kind: wire.KindDateTime, Str: "20240506T07:08:09Z"},
	{Kind: wire.KindNil},
	wire.Array(),
	wire.Struct(),
	wire.Array(wire.String("a"), wire.Array(wire.Array(wire.Bool(true))), wire.Struct()),
	wire.Struct(
		wire.Member{Name: "", Value: wire.String("empty name")},
		wire.Member{Name: "<&>", Value: wire.Int(1)},
		wire.Member{Name: "s", Value: wire.Struct(wire.Member{Name: "t", Value: wire.Array()})},
		wire.Member{Name: "after", Value: wire.String("x")},
	),
}

func TestRoundTripCall(t *testing.T) {
	t.Parallel()
	for i, v := range roundTripValues {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			params := []wire.Value{wire.String("OpaqueRef:session"), v}
			data := AppendCall(nil, "VM.do_something", params)
			call, err := ParseCall(data)
			if err != nil {
				t.Fatalf("ParseCall(%s): %v", data, err)
			}
			if call.Method != "VM.do_something" || len(call.Params) != 2 {
				t.Fatalf("got %q with %d params", call.Method, len(call.Params))
			}
			if want := sent(v); !equal(call.Params[1], want) {
				t.Errorf("round trip of %s\n got %s\nwant %s", data, show(call.Params[1]), show(want))
			}
		})
	}
}

func TestRoundTripResponse(t *testing.T) {
	t.Parallel()
	for i, v := range roundTripValues {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			data := AppendSuccess(nil, func(e wire.Encoder) { e.(*Encoder).value(v) })
			got, err := ParseResponse(data)
			if err != nil {
				t.Fatalf("ParseResponse(%s): %v", data, err)
			}
			want := wire.Struct(
				wire.Member{Name: "Status", Value: wire.String("Success")},
				wire.Member{Name: "Value", Value: sent(v)},
			)
			if !equal(got, want) {
				t.Errorf("round trip of %s\n got %s\nwant %s", data, show(got), show(want))
			}
		})
	}
}

// TestEncoderBuilder checks the streaming encoder against wire.Builder, the
// reference implementation of the event protocol.
func TestEncoderBuilder(t *testing.T) {
	t.Parallel()
	var b wire.Builder
	record(&b, 7)
	var e Encoder
	record(&e, 7)
	data := AppendCall(nil, "m", nil)
	data = append(data[:len(data)-len(callTail)], "<param>"...)
	data = append(data, e.Bytes()...)
	data = append(data, "</param>"+callTail...)
	call, err := ParseCall(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := sent(b.Value()); !equal(call.Params[0], want) {
		t.Errorf("got %s\nwant %s", show(call.Params[0]), show(want))
	}
}

func TestEncoderReset(t *testing.T) {
	t.Parallel()
	var e Encoder
	e.Reset([]byte("prefix:"))
	e.Bool(true)
	if got, want := string(e.Bytes()), "prefix:<value><boolean>1</boolean></value>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e.Reset(e.Bytes()[:0])
	e.Int(-5)
	if got, want := string(e.Bytes()), "<value>-5</value>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAppendText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, out string }{
		{"", ""},
		{"abc", "abc"},
		{"a<b>c&d", "a&lt;b&gt;c&amp;d"},
		{`"quotes' stay`, `"quotes' stay`},
		{"tab\tnl\ncr\r", "tab\tnl\ncr&#13;"},
		{"nul\x00bel\x07esc\x1b", "nulbelesc"},
		{"del\x7f is allowed", "del\x7f is allowed"},
		{"bad\xffutf8\xc3", "bad\uFFFDutf8\uFFFD"},
		{"non\uFFFEchar\uFFFF", "non\uFFFDchar\uFFFD"},
		{"é€😀", "é€😀"},
	}
	for _, tt := range tests {
		if got := string(appendText(nil, tt.in)); got != tt.out {
			t.Errorf("appendText(%q) = %q, want %q", tt.in, got, tt.out)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in  float64
		out string
	}{
		{0, "0"},
		{1, "1"},
		{-2.5, "-2.5"},
		{0.1, "0.1"},
		{1e-6, "0.000001"},
		{1e-7, "1e-07"},
		{4294967296, "4294967296"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
	}
	for _, tt := range tests {
		got := string(appendFloat(nil, tt.in))
		if got != tt.out {
			t.Errorf("appendFloat(%v) = %q, want %q", tt.in, got, tt.out)
		}
		back, err := strconv.ParseFloat(got, 64)
		if err != nil || !(back == tt.in || math.IsNaN(back) && math.IsNaN(tt.in)) {
			t.Errorf("%q does not parse back to %v: %v, %v", got, tt.in, back, err)
		}
	}
}

func TestDateTimeUTC(t *testing.T) {
	t.Parallel()
	var e Encoder
	e.DateTime(time.Date(2024, 1, 1, 1, 0, 0, 999, time.FixedZone("CET", 3600)))
	if got, want := string(e.Bytes()), "<value><dateTime.iso8601>20240101T00:00:00Z</dateTime.iso8601></value>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		bits uint
		out  int64
		ok   bool
	}{
		{"0", 32, 0, true},
		{"-0", 32, 0, true},
		{"+17", 32, 17, true},
		{"2147483647", 32, math.MaxInt32, true},
		{"2147483648", 32, 0, false},
		{"-2147483648", 32, math.MinInt32, true},
		{"-2147483649", 32, 0, false},
		{"9223372036854775807", 64, math.MaxInt64, true},
		{"9223372036854775808", 64, 0, false},
		{"-9223372036854775808", 64, math.MinInt64, true},
		{"-9223372036854775809", 64, 0, false},
		{"99999999999999999999999", 64, 0, false},
		{"", 64, 0, false},
		{"-", 64, 0, false},
		{"1.0", 64, 0, false},
		{"1e3", 64, 0, false},
		{"0x10", 64, 0, false},
		{"١", 64, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseInt([]byte(tt.in), tt.bits)
		if got != tt.out || ok != tt.ok {
			t.Errorf("parseInt(%q, %d) = %d, %v; want %d, %v", tt.in, tt.bits, got, ok, tt.out, tt.ok)
		}
	}
}

func TestParseResponseFault(t *testing.T) {
	t.Parallel()
	_, err := ParseResponse(AppendFault(nil, 42, "bad & worse"))
	var f *Fault
	if !errors.As(err, &f) || f.Code != 42 || f.String != "bad & worse" {
		t.Fatalf("got %v, want Fault 42", err)
	}
}

const call1 = "<methodCall><methodName>m</methodName><params><param>"
const call2 = "</param></params></methodCall>"

// wrap puts v as the only param of a call.
func wrap(v string) string { return call1 + v + call2 }

// TestMalformed feeds hostile and broken input; each must be refused with an
// error, never a panic or a silent success.
func TestMalformed(t *testing.T) {
	t.Parallel()
	deep := wrap(strings.Repeat("<value><array><data>", 10000) + strings.Repeat("</data></array></value>", 10000))
	deepStruct := wrap(strings.Repeat("<value><struct><member><name>a</name>", 10000) + strings.Repeat("</member></struct></value>", 10000))
	tooDeep := wrap(strings.Repeat("<value><array><data>", wire.MaxDepth+1) + strings.Repeat("</data></array></value>", wire.MaxDepth+1))
	bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>` + wrap("<value>&lol2;</value>")
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"whitespace only", " \n\t "},
		{"declaration only", `<?xml version="1.0"?>`},
		{"not xml", "GET / HTTP/1.1\r\n"},
		{"json", `{"method":"VM.get_all","params":[]}`},
		{"binary junk", "\x00\x01\x02\xff\xfe\x89PNG\r\n\x1a\n"},
		{"doctype", `<!DOCTYPE methodCall>` + wrap("<value>x</value>")},
		{"doctype after decl", `<?xml version="1.0"?><!DOCTYPE methodCall SYSTEM "http://evil/x.dtd">` + wrap("<value>x</value>")},
		{"entity bomb", bomb},
		{"entity declaration", wrap(`<!ENTITY x "y"><value>x</value>`)},
		{"doctype in value", wrap(`<value><!DOCTYPE x></value>`)},
		{"unknown entity", wrap("<value>&nbsp;</value>")},
		{"external entity ref", wrap("<value>&xxe;</value>")},
		{"unterminated entity", wrap("<value>a &amp b</value>")},
		{"bare ampersand", wrap("<value>a & b</value>")},
		{"char ref nul", wrap("<value>&#0;</value>")},
		{"char ref control", wrap("<value>&#x1;</value>")},
		{"char ref surrogate", wrap("<value>&#xD800;</value>")},
		{"char ref too big", wrap("<value>&#x110000;</value>")},
		{"char ref huge", wrap("<value>&#99999999999;</value>")},
		{"char ref empty", wrap("<value>&#;</value>")},
		{"char ref hex empty", wrap("<value>&#x;</value>")},
		{"char ref uppercase X", wrap("<value>&#X41;</value>")},
		{"char ref bad digit", wrap("<value>&#12a;</value>")},
		{"unclosed value", call1 + "<value>abc" + call2},
		{"unclosed string", wrap("<value><string>abc</value>")},
		{"unclosed root", "<methodCall><methodName>m</methodName><params>"},
		{"unclosed comment", wrap("<value><!-- x</value>")},
		{"unclosed comment between", call1 + "<!-- <value>x</value>" + call2},
		{"unclosed cdata", wrap("<value><![CDATA[x</value>")},
		{"unclosed decl", `<?xml version="1.0"` + wrap("<value>x</value>")},
		{"truncated tag", "<methodCall><methodName>m</methodName><params><param><value"},
		{"truncated close", wrap("<value>x</value") + ""},
		{"wrong nesting", wrap("<value><string>x</value></string>")},
		{"wrong close", wrap("<value>x</valu>")},
		{"close prefix", wrap("<value>x</valuex>")},
		{"unknown type", wrap("<value><integer>1</integer></value>")},
		{"element in string", wrap("<value><string>a<b/>c</string></value>")},
		{"text around typed", wrap("<value>x<string>y</string></value>")},
		{"text after typed", wrap("<value><string>y</string>x</value>")},
		{"two typed", wrap("<value><string>y</string><string>z</string></value>")},
		{"param without value", call1 + call2},
		{"empty param", "<methodCall><methodName>m</methodName><params><param/></params></methodCall>"},
		{"text in params", "<methodCall><methodName>m</methodName><params>x</params></methodCall>"},
		{"text in array", wrap("<value><array><data>x</data></array></value>")},
		{"array without data", wrap("<value><array><value>x</value></array></value>")},
		{"struct without member", wrap("<value><struct><name>a</name><value>x</value></struct></value>")},
		{"member without value", wrap("<value><struct><member><name>a</name></member></struct></value>")},
		{"member without name", wrap("<value><struct><member><value>x</value></member></struct></value>")},
		{"member value before name", wrap("<value><struct><member><value>x</value><name>a</name></member></struct></value>")},
		{"empty member", wrap("<value><struct><member/></struct></value>")},
		{"element in name", wrap("<value><struct><member><name><b/></name><value>x</value></member></struct></value>")},
		{"deep nesting", deep},
		{"deep struct nesting", deepStruct},
		{"nesting over limit", tooDeep},
		{"i4 too big", wrap("<value><i4>2147483648</i4></value>")},
		{"i4 huge", wrap("<value><i4>" + strings.Repeat("9", 1000) + "</i4></value>")},
		{"int huge", wrap("<value><int>99999999999999999999</int></value>")},
		{"i8 too small", wrap("<value><i8>-9223372036854775809</i8></value>")},
		{"int empty", wrap("<value><int></int></value>")},
		{"int self-closed", wrap("<value><int/></value>")},
		{"int float", wrap("<value><int>1.5</int></value>")},
		{"int spaced sign", wrap("<value><int>- 1</int></value>")},
		{"double junk", wrap("<value><double>one</double></value>")},
		{"double empty", wrap("<value><double/></value>")},
		{"double overflow", wrap("<value><double>1e999</double></value>")},
		{"boolean 2", wrap("<value><boolean>2</boolean></value>")},
		{"boolean yes", wrap("<value><boolean>yes</boolean></value>")},
		{"base64 junk", wrap("<value><base64>!!!</base64></value>")},
		{"base64 binary", wrap("<value><base64>AAEC</base64></value>")},
		{"base64 invalid utf8", wrap("<value><base64>/w==</base64></value>")},
		{"base64 unpadded control", wrap("<value><base64>AA</base64></value>")},
		{"nil with text", wrap("<value><nil>x</nil></value>")},
		{"invalid utf8", wrap("<value>\xff\xfe</value>")},
		{"invalid utf8 in name", "<methodCall><methodName>m\xc3</methodName></methodCall>"},
		{"overlong utf8", wrap("<value>\xc0\xbc</value>")},
		{"surrogate utf8", wrap("<value>\xed\xa0\x80</value>")},
		{"nul byte", wrap("<value>a\x00b</value>")},
		{"control char", wrap("<value>a\x1bb</value>")},
		{"non-character", wrap("<value>\uFFFF</value>")},
		{"utf16 body", "\xff\xfe<\x00m\x00"},
		{"trailing garbage", wrap("<value>x</value>") + "garbage"},
		{"trailing element", wrap("<value>x</value>") + "<methodCall/>"},
		{"second document", wrap("<value>x</value>") + wrap("<value>y</value>")},
		{"trailing pi", wrap("<value>x</value>") + "<?pi?>"},
		{"leading text", "x" + wrap("<value>x</value>")},
		{"processing instruction", `<?xml version="1.0"?><?evil?>` + wrap("<value>x</value>")},
		{"xml decl not first", wrap("<value>x</value>") + `<?xml version="1.0"?>`},
		{"attributes", `<methodCall xmlns="x"><methodName>m</methodName></methodCall>`},
		{"attribute on value", wrap(`<value type="string">x</value>`)},
		{"wrong root", "<methodResponse><params/></methodResponse>"},
		{"empty root", "<methodCall/>"},
		{"missing method name", "<methodCall><params/></methodCall>"},
		{"empty method name", "<methodCall><methodName></methodName></methodCall>"},
		{"blank method name", "<methodCall><methodName> </methodName></methodCall>"},
		{"self-closed method name", "<methodCall><methodName/></methodCall>"},
		{"method name with element", "<methodCall><methodName>a<b/></methodName></methodCall>"},
		{"two params elements", "<methodCall><methodName>m</methodName><params/><params/></methodCall>"},
		{"stray close", "</methodCall>"},
		{"lone lt", "<"},
		{"lt in text", wrap("<value>a < b</value>")},
		{"bang tag", wrap("<value><!x></value>")},
		{"cdata outside text", call1 + "<![CDATA[x]]><value>x</value>" + call2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			call, err := ParseCall([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseCall accepted it: %+v", call)
			}
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(tt.in) {
				t.Errorf("error %v (%T) is not a SyntaxError with a valid offset", err, err)
			}
			// The same body as a response must fail too.
			if _, err := ParseResponse([]byte(tt.in)); err == nil {
				t.Errorf("ParseResponse accepted it")
			}
		})
	}
}

func TestMalformedResponse(t *testing.T) {
	t.Parallel()
	const r1 = "<methodResponse><params><param>"
	const r2 = "</param></params></methodResponse>"
	tests := []struct{ name, in string }{
		{"no params", "<methodResponse><params></params></methodResponse>"},
		{"empty params", "<methodResponse><params/></methodResponse>"},
		{"empty response", "<methodResponse/>"},
		{"two params", "<methodResponse><params><param><value>a</value></param><param><value>b</value></param></params></methodResponse>"},
		{"unknown child", "<methodResponse><result/></methodResponse>"},
		{"fault not struct", "<methodResponse><fault><value>x</value></fault></methodResponse>"},
		{"fault missing code", "<methodResponse><fault><value><struct><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>"},
		{"fault bad code", "<methodResponse><fault><value><struct><member><name>faultCode</name><value>x</value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>"},
		{"fault trailing", string(AppendFault(nil, 1, "x")) + "x"},
		{"call instead", wrap("<value>x</value>")},
		{"trailing", r1 + "<value>x</value>" + r2 + "<x/>"},
		{"deep", r1 + strings.Repeat("<value><array><data>", 10000) + r2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := ParseResponse([]byte(tt.in))
			var f *Fault
			if err == nil || errors.As(err, &f) {
				t.Fatalf("ParseResponse = %s, %v; want a syntax error", show(v), err)
			}
		})
	}
}

// TestLargeResponse streams 10,000 records of 100 members, the size of a
// big VM.get_all_records (~97 MB), through a 64 KiB buffer as the server
// should, then checks a 1,000-record answer decodes in full. The benchmarks
// track speed.
func TestLargeResponse(t *testing.T) {
	t.Parallel()
	start := time.Now()
	var total int
	rest := AppendSuccess(make([]byte, 0, 80<<10), func(w wire.Encoder) {
		e := w.(*Encoder)
		e.BeginStruct()
		for i := range 10000 {
			e.Member(refNames[i])
			wideRecord(e, i)
			if len(e.Bytes()) > 64<<10 {
				total += len(e.Bytes()) // a server writes them to the connection here
				e.Reset(e.Bytes()[:0])
			}
		}
		e.EndStruct()
	})
	total += len(rest)
	t.Logf("streamed 10000 records, %d bytes, in %v", total, time.Since(start))
	if total < 90e6 {
		t.Errorf("only %d bytes", total)
	}

	data := AppendSuccess(nil, func(e wire.Encoder) { bigRecords(e, 1000) })
	v, err := ParseResponse(data)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := v.Field("Value")
	if len(recs.Struct) != 1000 || len(recs.Struct[999].Value.Struct) != 100 {
		t.Fatalf("got %d records", len(recs.Struct))
	}
}

// wideRecord writes a struct of 100 members of mixed kinds.
func wideRecord(e wire.Encoder, i int) {
	t := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	e.BeginStruct()
	for j := range 100 {
		e.Member(fieldNames[j])
		switch j % 10 {
		case 0, 1, 2, 3:
			e.String("OpaqueRef:0f4d9e3c-6b3a-4c1e-9a55-1d2e3f4a5b6c")
		case 4, 5:
			e.Int(int64(i*j) << 20)
		case 6:
			e.Bool(j%3 == 0)
		case 7:
			e.Float(float64(i) * 0.25)
		case 8:
			e.DateTime(t)
		case 9:
			e.BeginStruct()
			e.Member("key")
			e.String("value & more")
			e.EndStruct()
		}
	}
	e.EndStruct()
}

var fieldNames = func() []string {
	names := make([]string, 100)
	for i := range names {
		names[i] = "field_name_" + strconv.Itoa(i)
	}
	return names
}()

var refNames = func() []string {
	names := make([]string, 10000)
	for i := range names {
		names[i] = "OpaqueRef:" + strconv.Itoa(1000000+i)
	}
	return names
}()

// bigRecords writes a ref -> record map, the shape of get_all_records.
func bigRecords(e wire.Encoder, n int) {
	e.BeginStruct()
	for i := range n {
		e.Member(refNames[i])
		wideRecord(e, i)
	}
	e.EndStruct()
}

// TestPlain8 checks the word-at-a-time scan against the byte table for every
// byte value in every position.
func TestPlain8(t *testing.T) {
	t.Parallel()
	for pos := range 8 {
		for c := range 256 {
			w := uint64('a')*ones&^(0xFF<<(8*pos)) | uint64(c)<<(8*pos)
			want := c < utf8.RuneSelf && textSafe[c] && c != '\t' && c != '\n'
			if got := plain8(w); got != want {
				t.Errorf("plain8 with byte %#x at %d = %v, want %v", c, pos, got, want)
			}
		}
	}
}

// TestEncoderStreaming flushes the buffer between every pair of events, as a
// server streaming a large answer would, and expects the same bytes.
func TestEncoderStreaming(t *testing.T) {
	t.Parallel()
	var whole Encoder
	record(&whole, 3)
	var out []byte
	var e Encoder
	s := &flusher{e: &e, out: &out}
	record(s, 3)
	out = append(out, e.Bytes()...)
	if string(out) != string(whole.Bytes()) {
		t.Errorf("streamed output differs:\n got %s\nwant %s", out, whole.Bytes())
	}
}

// flusher forwards events to an Encoder and drains it after each one.
type flusher struct {
	e   *Encoder
	out *[]byte
}

func (f *flusher) flush() {
	*f.out = append(*f.out, f.e.Bytes()...)
	f.e.Reset(f.e.Bytes()[:0])
}
func (f *flusher) String(s string)      { f.e.String(s); f.flush() }
func (f *flusher) Int(i int64)          { f.e.Int(i); f.flush() }
func (f *flusher) Int32(i int32)        { f.e.Int32(i); f.flush() }
func (f *flusher) Float(x float64)      { f.e.Float(x); f.flush() }
func (f *flusher) Bool(b bool)          { f.e.Bool(b); f.flush() }
func (f *flusher) DateTime(t time.Time) { f.e.DateTime(t); f.flush() }
func (f *flusher) BeginArray()          { f.e.BeginArray(); f.flush() }
func (f *flusher) EndArray()            { f.e.EndArray(); f.flush() }
func (f *flusher) BeginStruct()         { f.e.BeginStruct(); f.flush() }
func (f *flusher) Member(name string)   { f.e.Member(name); f.flush() }
func (f *flusher) Name(n *wire.Name)    { f.e.Name(n); f.flush() }
func (f *flusher) EndStruct()           { f.e.EndStruct(); f.flush() }

// TestEncoderDeep nests past the 64 levels the encoder tracks in a word.
func TestEncoderDeep(t *testing.T) {
	t.Parallel()
	const n = 200
	var e Encoder
	for i := range n {
		if i%2 == 0 {
			e.BeginStruct()
			e.Member("s")
		} else {
			e.BeginArray()
		}
	}
	e.String("leaf")
	for i := n - 1; i >= 0; i-- {
		if i%2 == 0 {
			e.Member("after")
			e.Int(int64(i))
			e.EndStruct()
		} else {
			e.String("tail")
			e.EndArray()
		}
	}
	got := string(e.Bytes())
	if strings.Count(got, "<member>") != strings.Count(got, "</member>") || strings.Count(got, "<member>") != n {
		t.Fatalf("unbalanced members in %s", got)
	}
	if e.depth != 0 {
		t.Fatalf("depth %d after balanced events", e.depth)
	}
	// Nest exactly to the decoder's limit and read it back.
	var b strings.Builder
	var want wire.Value = wire.String("x")
	for range wire.MaxDepth - 2 {
		want = wire.Array(want)
	}
	data := AppendSuccess(nil, func(e wire.Encoder) { wire.Encode(e, want) })
	v, err := ParseResponse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := v.Field("Value"); !equal(got, want) {
		dump(&b, got, "")
		t.Errorf("got %s", b.String())
	}
}

// TestAppendSuccessStreaming flushes from inside write, as the server does
// for large answers, and expects the same document.
func TestAppendSuccessStreaming(t *testing.T) {
	t.Parallel()
	whole := AppendSuccess(nil, func(e wire.Encoder) { record(e, 9) })
	var out []byte
	rest := AppendSuccess(nil, func(e wire.Encoder) {
		x := e.(*Encoder)
		record(&flusher{e: x, out: &out}, 9)
	})
	out = append(out, rest...)
	if string(out) != string(whole) {
		t.Errorf("streamed response differs:\n got %s\nwant %s", out, whole)
	}
}

// TestScratchReuse interleaves failed and good parses, which share pooled
// scratch stacks, and expects no state to leak from one to the next.
func TestScratchReuse(t *testing.T) {
	t.Parallel()
	bad := []byte(wrap("<value><array><data><value>a</value><value><struct><member><name>m</name><value>b</value></member><member>"))
	good := wrap("<value><array><data><value>x</value><value><struct><member><name>k</name><value>y</value></member></struct></value></data></array></value>")
	want := wire.Array(wire.String("x"), wire.Struct(wire.Member{Name: "k", Value: wire.String("y")}))
	for range 100 {
		if _, err := ParseCall(bad); err == nil {
			t.Fatal("bad input accepted")
		}
		call, err := ParseCall([]byte(good))
		if err != nil {
			t.Fatal(err)
		}
		if !equal(call.Params[0], want) {
			t.Fatalf("got %s", show(call.Params[0]))
		}
	}
}
