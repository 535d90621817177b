package jsonrpc

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/wire"
)

func TestParseResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		result wire.Value
		desc   []string
		code   int // protocol error expected if non-zero
	}{
		{"v1 result", `{"result":[1,"a"],"error":null,"id":1}`, wire.Array(wire.Int(1), wire.String("a")), nil, 0},
		{"v1 result, error omitted", `{"result":true,"id":1}`, wire.Bool(true), nil, 0},
		{"v1 null result", `{"result":null,"error":null,"id":1}`, wire.Value{Kind: wire.KindNil}, nil, 0},
		{"v2 result", `{"jsonrpc":"2.0","result":{"a":1.5},"id":"x"}`, wire.Struct(m("a", wire.Float(1.5))), nil, 0},
		{"v2 void", `{"jsonrpc":"2.0","result":"","id":0}`, wire.String(""), nil, 0},
		{"v1 failure", `{"result":null,"error":["HANDLE_INVALID","VM","OpaqueRef:x"],"id":1}`, wire.Value{}, []string{"HANDLE_INVALID", "VM", "OpaqueRef:x"}, 0},
		{"v1 failure, no result", `{"error":["X"],"id":1}`, wire.Value{}, []string{"X"}, 0},
		{"v2 failure", `{"jsonrpc":"2.0","error":{"code":1,"message":"HOST_IS_SLAVE","data":["10.0.0.1"]},"id":0}`, wire.Value{}, []string{"HOST_IS_SLAVE", "10.0.0.1"}, 0},
		{"v2 failure without data", `{"jsonrpc":"2.0","error":{"code":1,"message":"X"},"id":0}`, wire.Value{}, []string{"X"}, 0},
		{"v2 failure null data", `{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":null},"id":0}`, wire.Value{}, []string{"X"}, 0},
		{"v2 protocol error", `{"jsonrpc":"2.0","error":{"code":-32601,"message":"method not found"},"id":null}`, wire.Value{}, nil, CodeMethodNotFound},
		{"v1 protocol error", `{"result":null,"error":{"code":-32700,"message":"p"},"id":null}`, wire.Value{}, nil, CodeParseError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, desc, err := ParseResponse([]byte(tc.in))
			if tc.code != 0 {
				if e := protoErr(t, err); e.Code != tc.code || desc != nil {
					t.Fatalf("got (%q, %v), want code %d", desc, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res, tc.result) || !reflect.DeepEqual(desc, tc.desc) {
				t.Fatalf("got (%+v, %q), want (%+v, %q)", res, desc, tc.result, tc.desc)
			}
		})
	}
}

func TestParseResponseMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in string }{
		{"empty", ``},
		{"not JSON", `<methodResponse/>`},
		{"array", `[{"result":1,"error":null,"id":1}]`},
		{"trailing garbage", `{"result":1,"error":null,"id":1} {}`},
		{"neither", `{"id":1}`},
		{"v2 both", `{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"X"},"id":1}`},
		{"v1 both non-null", `{"result":1,"error":["X"],"id":1}`},
		{"bad version", `{"jsonrpc":"1.0","result":1,"id":1}`},
		{"error string", `{"result":null,"error":"X","id":1}`},
		{"error empty array", `{"result":null,"error":[],"id":1}`},
		{"error array of numbers", `{"result":null,"error":[1],"id":1}`},
		{"error object without message", `{"jsonrpc":"2.0","error":{"code":1},"id":1}`},
		{"error object float code", `{"jsonrpc":"2.0","error":{"code":1.5,"message":"X"},"id":1}`},
		{"error data not strings", `{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":[1]},"id":1}`},
		{"error data object", `{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":{}},"id":1}`},
		{"duplicate result", `{"jsonrpc":"2.0","result":1,"result":2,"id":1}`},
		{"deep", `{"jsonrpc":"2.0","result":` + strings.Repeat("[", 10000) + `,"id":1}`},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"result\":\"\xfe\",\"id\":1}"},
		{"huge number", `{"jsonrpc":"2.0","result":1e999,"id":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, desc, err := ParseResponse([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted: %+v %q", res, desc)
			}
			protoErr(t, err)
			if desc != nil || !reflect.DeepEqual(res, wire.Value{}) {
				t.Fatalf("error with result set: %+v %q", res, desc)
			}
		})
	}
}

// TestRoundTrip sends values through AppendResult/ParseResponse and
// AppendError/ParseResponse in both versions.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	values := []wire.Value{
		sampleRecord(),
		wire.String(""),
		wire.Int(0),
		wire.Float(-2.5e-300),
		wire.Array(sampleRecord(), sampleRecord()),
		wire.Struct(m("a\"\\\x00", wire.Value{Kind: wire.KindNil})),
	}
	descs := [][]string{{"SESSION_INVALID", "OpaqueRef:x"}, {"X"}, {"ODD", "", "\x00\n\"", "é😀"}}
	for _, req := range []*Request{reqV1, reqV2} {
		for _, v := range values {
			out := AppendResult(nil, req, encodeValue(v))
			mustValidJSON(t, out)
			res, desc, err := ParseResponse(out)
			if err != nil || desc != nil || !equalValues(res, v) {
				t.Fatalf("v%d: %s -> (%+v, %q, %v)", req.Version, out, res, desc, err)
			}
		}
		for _, d := range descs {
			out := AppendError(nil, req, d)
			mustValidJSON(t, out)
			_, desc, err := ParseResponse(out)
			if err != nil || !reflect.DeepEqual(desc, d) {
				t.Fatalf("v%d: %s -> (%q, %v)", req.Version, out, desc, err)
			}
		}
	}
	for _, version := range []int{1, 2} {
		params := []wire.Value{wire.String("OpaqueRef:s"), sampleRecord(), wire.Array(), wire.Float(math.Pi)}
		out := AppendCall(nil, version, 1<<62, "VM.do", params)
		req, err := ParseRequest(out)
		if err != nil || req.Version != version || req.Method != "VM.do" || string(req.ID) != "4611686018427387904" ||
			!reflect.DeepEqual(normAll(req.Params), normAll(params)) {
			t.Fatalf("v%d call: %s -> %+v, %v", version, out, req, err)
		}
	}
}

// xoView reads a response the way Xen Orchestra's xen-api connector does
// (json-rpc-protocol's parse, then XapiError.wrap): it reports the result,
// or the XapiError code and params, or why the connector would reject the
// response outright. These rules were read from xen-api 4.7.6 and
// json-rpc-protocol 0.13.2.
func xoView(body []byte) (result any, code string, params []string, reject string) {
	var msg map[string]any
	if err := json.Unmarshal(body, &msg); err != nil {
		return nil, "", nil, "invalid JSON"
	}
	ver, hasVer := msg["jsonrpc"]
	v2 := hasVer && ver == "2.0"
	if hasVer && !v2 {
		return nil, "", nil, "invalid version"
	}
	errv, hasErr := msg["error"]
	// v2: any "error" member, even null, makes it an error message;
	// v1: a missing "error" does too, only null means success.
	isErr := hasErr
	if !v2 {
		isErr = !hasErr || errv != nil
	}
	id, hasID := msg["id"]
	validID := func() bool {
		switch id.(type) {
		case float64, string:
			return true
		}
		return false
	}
	if !isErr {
		if !hasID || !validID() {
			return nil, "", nil, "invalid identifier"
		}
		return msg["result"], "", nil, ""
	}
	if id != nil && !validID() {
		return nil, "", nil, "invalid identifier"
	}
	if !v2 {
		if errv == nil {
			return nil, "", nil, "invalid error"
		}
	} else {
		obj, ok := errv.(map[string]any)
		if !ok {
			return nil, "", nil, "invalid error"
		}
		c, okc := obj["code"].(float64)
		_, okm := obj["message"].(string)
		if !okc || c != math.Trunc(c) || !okm {
			return nil, "", nil, "invalid error"
		}
	}
	// XapiError.wrap
	if arr, ok := errv.([]any); ok {
		code, _ = arr[0].(string)
		for _, p := range arr[1:] {
			s, _ := p.(string)
			params = append(params, s)
		}
		return nil, code, params, ""
	}
	obj := errv.(map[string]any)
	code, _ = obj["message"].(string)
	if data, ok := obj["data"].([]any); ok {
		for _, p := range data {
			s, _ := p.(string)
			params = append(params, s)
		}
	}
	return nil, code, params, ""
}

func TestXenOrchestraShapes(t *testing.T) {
	t.Parallel()
	desc := []string{"HOST_IS_SLAVE", "192.0.2.10"}
	for _, req := range []*Request{reqV1, reqV2, {Version: 2, ID: []byte("0")}} {
		res, _, _, rej := xoView(AppendResult(nil, req, encodeValue(refs)))
		if rej != "" || len(res.([]any)) != 2 {
			t.Fatalf("v%d result: %v %q", req.Version, res, rej)
		}
		res, _, _, rej = xoView(AppendResult(nil, req, nil))
		if rej != "" || res != "" {
			t.Fatalf("v%d void: %v %q", req.Version, res, rej)
		}
		_, code, params, rej := xoView(AppendError(nil, req, desc))
		if rej != "" || code != desc[0] || !reflect.DeepEqual(params, desc[1:]) {
			t.Fatalf("v%d error: %q %q %q", req.Version, code, params, rej)
		}
		_, code, _, rej = xoView(AppendProtocolError(nil, req, CodeInvalidRequest, "bad"))
		if rej != "" || code != "bad" {
			t.Fatalf("v%d protocol error: %q %q", req.Version, code, rej)
		}
	}
	// And the pitfalls the connector really has, so xoView stays honest.
	for _, body := range []string{
		`{"jsonrpc":"2.0","result":1,"error":null,"id":0}`,
		`{"result":1,"id":0}`,
		`{"jsonrpc":"2.0","result":1,"id":null}`,
	} {
		if _, _, _, rej := xoView([]byte(body)); rej == "" {
			t.Fatalf("xoView accepts %s", body)
		}
	}
}
