package jsonrpc

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/wire"
)

// call wraps one JSON param text in a v2 request.
func call(param string) string {
	return `{"jsonrpc":"2.0","method":"m","params":[` + param + `],"id":1}`
}

func TestDecodeValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want wire.Value
	}{
		{`0`, wire.Int(0)},
		{`-0`, wire.Int(0)},
		{`42`, wire.Int(42)},
		{`-9223372036854775808`, wire.Int(-1 << 63)},
		{`9223372036854775807`, wire.Int(1<<63 - 1)},
		{`1.0`, wire.Float(1)},
		{`-0.0`, wire.Float(0)},
		{`1e2`, wire.Float(100)},
		{`1E+2`, wire.Float(100)},
		{`2.5e-3`, wire.Float(0.0025)},
		{`1e-400`, wire.Float(0)}, // underflow is harmless rounding
		{`60.1`, wire.Float(60.1)},
		{`true`, wire.Bool(true)},
		{`false`, wire.Bool(false)},
		{`null`, wire.Value{Kind: wire.KindNil}},
		{`""`, wire.String("")},
		{`"<a & b>"`, wire.String("<a & b>")},
		{`"\"\\\/\b\f\n\r\t"`, wire.String("\"\\/\b\f\n\r\t")},
		{`"\u00e9\u00E9é"`, wire.String("ééé")},
		{`"\ud83d\ude00😀"`, wire.String("😀😀")},
		{`"\ud83d"`, wire.String("\uFFFD")},
		{`"\ud83dx"`, wire.String("\uFFFDx")},
		{`"\ud83d\u0041"`, wire.String("\uFFFDA")},
		{`"\ude00\ud83d"`, wire.String("\uFFFD\uFFFD")},
		{`"\u0000"`, wire.String("\x00")},
		{"\"\u2028\u2029\x7f\"", wire.String("\u2028\u2029\x7f")},
		{`[]`, wire.Array()},
		{`[ 1 , "a" , [ ] ]`, wire.Array(wire.Int(1), wire.String("a"), wire.Array())},
		{`{}`, wire.Struct()},
		{`{"b":1,"a":2,"c":{"z":[],"y":null}}`, wire.Struct(m("b", wire.Int(1)), m("a", wire.Int(2)),
			m("c", wire.Struct(m("z", wire.Array()), m("y", wire.Value{Kind: wire.KindNil}))))},
		{`{"\u0061":1,"a\u0000":2}`, wire.Struct(m("a", wire.Int(1)), m("a\x00", wire.Int(2)))},
		{strings.Repeat("[", wire.MaxDepth-2) + strings.Repeat("]", wire.MaxDepth-2), nested(wire.MaxDepth - 2)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			req, err := ParseRequest([]byte(call(tc.in)))
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Params) != 1 || !reflect.DeepEqual(req.Params[0], tc.want) {
				t.Fatalf("got %+v, want %+v", req.Params, tc.want)
			}
			// The same value must come back out of a response.
			res, _, err := ParseResponse([]byte(`{"jsonrpc":"2.0","result":` + tc.in + `,"id":1}`))
			if err != nil || !reflect.DeepEqual(res, tc.want) {
				t.Fatalf("ParseResponse: %+v, %v", res, err)
			}
		})
	}
}

// nested returns n empty arrays inside each other.
func nested(n int) wire.Value {
	v := wire.Array()
	for i := 1; i < n; i++ {
		v = wire.Array(v)
	}
	return v
}

func TestParseRequestShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Request
	}{
		{"v1", `{"method":"a.b","params":[1],"id":5}`, Request{Version: 1, Method: "a.b", Params: []wire.Value{wire.Int(1)}, ID: []byte("5")}},
		{"v2 no params", `{"jsonrpc":"2.0","method":"a.b","id":"q"}`, Request{Version: 2, Method: "a.b", ID: []byte(`"q"`)}},
		{"v2 null params", `{"jsonrpc":"2.0","method":"a.b","params":null,"id":"q"}`, Request{Version: 2, Method: "a.b", ID: []byte(`"q"`)}},
		{"id escapes kept raw", `{"method":"a","params":[],"id":"\u0041\"b"}`, Request{Version: 1, Method: "a", ID: []byte(`"\u0041\"b"`)}},
		{"negative id", `{"method":"a","params":[],"id":-3}`, Request{Version: 1, Method: "a", ID: []byte(`-3`)}},
		{"member order free", ` {"id":0 , "params":[] ,"method":"a" ,"jsonrpc":"2.0"} ` + "\n", Request{Version: 2, Method: "a", ID: []byte("0")}},
		{"unknown members", `{"method":"a","params":[],"id":1,"x":{"y":[1,2]},"x2":null}`, Request{Version: 1, Method: "a", ID: []byte("1")}},
		{"BOM", "\xef\xbb\xbf" + `{"method":"a","params":[],"id":1}`, Request{Version: 1, Method: "a", ID: []byte("1")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRequest([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseRequestMalformed(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	deepObj := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	tests := []struct {
		name   string
		in     string
		code   int
		wantID string // echoed id, "" for none
	}{
		{"empty body", ``, CodeParseError, ""},
		{"only whitespace", " \n\t ", CodeParseError, ""},
		{"NUL", "\x00", CodeParseError, ""},
		{"not JSON", `hello`, CodeParseError, ""},
		{"XML-RPC body", `<?xml version="1.0"?><methodCall/>`, CodeParseError, ""},
		{"truncated", `{"method":"a","params":[`, CodeParseError, ""},
		{"unterminated string", `{"method":"a`, CodeParseError, ""},
		{"trailing garbage", `{"method":"a","params":[],"id":1}x`, CodeParseError, ""},
		{"two objects", `{"method":"a","params":[],"id":1}{}`, CodeParseError, ""},
		{"trailing comma", `{"method":"a","params":[1,],"id":1}`, CodeParseError, ""},
		{"trailing comma object", `{"method":"a","params":[],"id":1,}`, CodeParseError, ""},
		{"single quotes", `{'method':'a'}`, CodeParseError, ""},
		{"unquoted key", `{method:"a"}`, CodeParseError, ""},
		{"missing colon", `{"method" "a"}`, CodeParseError, ""},
		{"comment", `{"method":"a"/*x*/,"params":[],"id":1}`, CodeParseError, ""},
		{"NaN literal", call(`NaN`), CodeParseError, ""},
		{"Infinity literal", call(`Infinity`), CodeParseError, ""},
		{"bad literal", call(`tru`), CodeParseError, ""},
		{"leading zero", call(`01`), CodeParseError, ""},
		{"plus sign", call(`+1`), CodeParseError, ""},
		{"bare minus", call(`-`), CodeParseError, ""},
		{"dot without digits", call(`1.`), CodeParseError, ""},
		{"exponent without digits", call(`1e`), CodeParseError, ""},
		{"hex", call(`0x10`), CodeParseError, ""},
		{"huge integer", call(`9223372036854775808`), CodeParseError, ""},
		{"huge negative integer", call(`-9223372036854775809`), CodeParseError, ""},
		{"very long integer", call(strings.Repeat("9", 5000)), CodeParseError, ""},
		{"huge float", call(`1e400`), CodeParseError, ""},
		{"huge negative float", call(`-1.5e309`), CodeParseError, ""},
		{"invalid UTF-8", call("\"\xff\""), CodeParseError, ""},
		{"invalid UTF-8 after escape", call("\"\\n\xc3\""), CodeParseError, ""},
		{"UTF-8 surrogate", call("\"\xed\xa0\x80\""), CodeParseError, ""},
		{"overlong UTF-8", call("\"\xc0\xaf\""), CodeParseError, ""},
		{"raw control char", call("\"a\nb\""), CodeParseError, ""},
		{"bad escape", call(`"\x"`), CodeParseError, ""},
		{"short unicode escape", call(`"\u12"`), CodeParseError, ""},
		{"bad unicode escape", call(`"\u12g4"`), CodeParseError, ""},
		{"10000-deep arrays", call(deep), CodeParseError, ""},
		{"10000-deep objects", call(deepObj), CodeParseError, ""},
		{"depth just over limit", strings.Repeat("[", wire.MaxDepth+1) + strings.Repeat("]", wire.MaxDepth+1), CodeParseError, ""},
		{"deep unknown member", `{"x":` + deep + `,"method":"a","params":[],"id":1}`, CodeParseError, ""},
		{"batch", `[{"method":"a","params":[],"id":1}]`, CodeInvalidRequest, ""},
		{"empty batch", `[]`, CodeInvalidRequest, ""},
		{"broken batch", `[{"method":`, CodeParseError, ""},
		{"string body", `"x"`, CodeInvalidRequest, ""},
		{"null body", `null`, CodeInvalidRequest, ""},
		{"empty object", `{}`, CodeInvalidRequest, ""},
		{"method missing", `{"params":[],"id":1}`, CodeInvalidRequest, "1"},
		{"method not a string", `{"method":1,"params":[],"id":1}`, CodeInvalidRequest, "1"},
		{"method empty", `{"method":"","params":[],"id":1}`, CodeInvalidRequest, "1"},
		{"method null", `{"method":null,"params":[],"id":1}`, CodeInvalidRequest, "1"},
		{"params string", `{"method":"a","params":"x","id":1}`, CodeInvalidRequest, "1"},
		{"params object", `{"jsonrpc":"2.0","method":"a","params":{"a":1},"id":1}`, CodeInvalidRequest, "1"},
		{"params number", `{"method":"a","params":1,"id":"z"}`, CodeInvalidRequest, `"z"`},
		{"v1 params missing", `{"method":"a","id":1}`, CodeInvalidRequest, "1"},
		{"v1 params null", `{"method":"a","params":null,"id":1}`, CodeInvalidRequest, "1"},
		{"id missing", `{"method":"a","params":[]}`, CodeInvalidRequest, ""},
		{"id null", `{"jsonrpc":"2.0","method":"a","params":[],"id":null}`, CodeInvalidRequest, ""},
		{"id float", `{"method":"a","params":[],"id":1.5}`, CodeInvalidRequest, ""},
		{"id array", `{"method":"a","params":[],"id":[1]}`, CodeInvalidRequest, ""},
		{"id bool", `{"method":"a","params":[],"id":true}`, CodeInvalidRequest, ""},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","method":"a","params":[],"id":1}`, CodeInvalidRequest, "1"},
		{"jsonrpc number", `{"jsonrpc":2,"method":"a","params":[],"id":1}`, CodeInvalidRequest, "1"},
		{"duplicate method", `{"method":"a","method":"b","params":[],"id":1}`, CodeInvalidRequest, "1"},
		{"duplicate params", `{"method":"a","params":[],"params":[1],"id":1}`, CodeInvalidRequest, "1"},
		{"duplicate id", `{"method":"a","params":[],"id":1,"id":2}`, CodeInvalidRequest, ""},
		{"duplicate key in param", call(`{"a":1,"b":2,"a":3}`), CodeInvalidRequest, "1"},
		{"duplicate key in big param", call(`{` + manyKeys(100) + `,"k7":0}`), CodeInvalidRequest, "1"},
		{"duplicate key, then truncated", `{"":{"":0,""0`, CodeParseError, ""},
		{"duplicate escaped key", call(`{"a":1,"\u0061":2}`), CodeInvalidRequest, "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := ParseRequest([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			e := protoErr(t, err)
			if e.Code != tc.code {
				t.Fatalf("code %d (%v), want %d", e.Code, err, tc.code)
			}
			if string(req.ID) != tc.wantID {
				t.Fatalf("ID %q, want %q", req.ID, tc.wantID)
			}
			if req.Params != nil {
				t.Fatalf("Params set on error: %+v", req.Params)
			}
			out := AppendProtocolError(nil, &req, e.Code, e.Message)
			mustValidJSON(t, out)
		})
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
	}
	return b.String()
}

func TestWideObject(t *testing.T) {
	t.Parallel()
	// Past dupScan members duplicates are found through a map; the order
	// must still be kept.
	req, err := ParseRequest([]byte(call(`{` + manyKeys(1000) + `}`)))
	if err != nil {
		t.Fatal(err)
	}
	s := req.Params[0].Struct
	if len(s) != 1000 || s[0].Name != "k0" || s[999].Name != "k999" || s[500].Value.Int != 500 {
		t.Fatalf("bad wide object: %d members", len(s))
	}
}
