package jsonrpc

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/xenith/xenith/internal/wire"
)

// addSeeds feeds every file in testdata, plus extra, to the fuzzer.
func addSeeds(f *testing.F, extra ...string) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// stdValid is encoding/json's verdict, ignoring the BOM we tolerate.
func stdValid(data []byte) bool {
	return json.Valid(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
}

func FuzzParseRequest(f *testing.F) {
	addSeeds(f,
		``, `[]`, `{}`, `{"method":"a","params":[1,-0,1.5e3,"\ud83d\ude00",{"k":null}],"id":"x"}`,
		`{"jsonrpc":"2.0","method":"m","params":[{"a":1,"a":2}],"id":1}`,
		`{"method":"m","params":[9223372036854775808],"id":1}`, "\xef\xbb\xbf{}",
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseRequest(data)
		if err != nil {
			e := protoErr(t, err)
			if e.Code != CodeParseError && e.Code != CodeInvalidRequest {
				t.Fatalf("unexpected code %d", e.Code)
			}
			if e.Code == CodeInvalidRequest && !stdValid(data) {
				t.Fatalf("invalid JSON reported as invalid request: %v", err)
			}
			mustValidJSON(t, AppendProtocolError(nil, &req, e.Code, e.Message))
			return
		}
		if !stdValid(data) {
			t.Fatalf("accepted JSON that encoding/json rejects")
		}
		if req.Version != 1 && req.Version != 2 || req.Method == "" || req.ID == nil || !json.Valid(req.ID) {
			t.Fatalf("bad request %+v", req)
		}
		// Whatever we accept, we can send back and read again unchanged.
		out := AppendCall(nil, req.Version, 1, req.Method, req.Params)
		mustValidJSON(t, out)
		again, err := ParseRequest(out)
		if err != nil {
			t.Fatalf("re-encoded request rejected: %v\n%s", err, out)
		}
		if again.Version != req.Version || again.Method != req.Method ||
			!reflect.DeepEqual(normAll(again.Params), normAll(req.Params)) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
		}
		mustValidJSON(t, AppendResult(nil, &req, encodeValue(wire.Array(req.Params...))))
		mustValidJSON(t, AppendError(nil, &req, []string{req.Method}))
	})
}

func FuzzParseResponse(f *testing.F) {
	addSeeds(f,
		`{"result":null,"error":["X",1],"id":1}`,
		`{"jsonrpc":"2.0","error":{"code":-32000,"message":"m","data":["a"]},"id":null}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		res, desc, err := ParseResponse(data)
		if err != nil {
			protoErr(t, err)
			if desc != nil {
				t.Fatalf("error and description both set")
			}
			return
		}
		if !stdValid(data) {
			t.Fatalf("accepted JSON that encoding/json rejects")
		}
		for _, req := range []*Request{reqV1, reqV2} {
			if desc != nil {
				out := AppendError(nil, req, desc)
				mustValidJSON(t, out)
				_, back, err := ParseResponse(out)
				if err != nil || !reflect.DeepEqual(back, desc) {
					t.Fatalf("error round trip: %q -> %s -> %q, %v", desc, out, back, err)
				}
				continue
			}
			out := AppendResult(nil, req, encodeValue(res))
			mustValidJSON(t, out)
			back, _, err := ParseResponse(out)
			if err != nil || !equalValues(back, res) {
				t.Fatalf("result round trip: %+v -> %s -> %+v, %v", res, out, back, err)
			}
		}
	})
}

// FuzzAppendString checks the word-at-a-time string encoder against
// encoding/json's reading of its output.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text", "a\"b\\c\x00\x1f\x7f", "é😀\u2028", "\xff\xfe", "12345678\n", "1234567\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString([]byte("x"), s)[1:]
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encodes as invalid JSON %q: %v", s, out, err)
		}
		if want := perByteReplace(s); back != want {
			t.Fatalf("%q came back as %q, want %q", s, back, want)
		}
	})
}
