package xmlrpc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xenith/xenith/internal/wire"
)

func addSeeds(f *testing.F, dirs ...string) {
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.xml"))
		for _, path := range files {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// FuzzParseCall checks that no input panics, and that whatever is accepted
// survives re-encoding: AppendCall then ParseCall gives the same call.
func FuzzParseCall(f *testing.F) {
	addSeeds(f, "call")
	f.Add([]byte(wrap("<value>&#x1F600;<![CDATA[<x>]]><!-- c --></value>")))
	f.Fuzz(func(t *testing.T, data []byte) {
		call, err := ParseCall(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			return
		}
		out := AppendCall(nil, call.Method, call.Params)
		again, err := ParseCall(out)
		if err != nil {
			t.Fatalf("re-encoded call does not parse: %v\n%s", err, out)
		}
		// Our encoding of the method name is exact only once trimmed.
		if again.Method != call.Method || len(again.Params) != len(call.Params) {
			t.Fatalf("method/params changed: %q %d -> %q %d", call.Method, len(call.Params), again.Method, len(again.Params))
		}
		for i := range call.Params {
			if want := sent(call.Params[i]); !equal(again.Params[i], want) {
				t.Fatalf("param %d changed:\n got %s\nwant %s", i, show(again.Params[i]), show(want))
			}
		}
	})
}

// FuzzParseResponse checks that no input panics, and that accepted values
// survive AppendSuccess then ParseResponse.
func FuzzParseResponse(f *testing.F) {
	addSeeds(f, "response", "encode")
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseResponse(data)
		if err != nil {
			var se *SyntaxError
			var fault *Fault
			if !errors.As(err, &se) && !errors.As(err, &fault) {
				t.Fatalf("error %v is neither a *SyntaxError nor a *Fault", err)
			}
			return
		}
		out := AppendSuccess(nil, func(e wire.Encoder) { e.(*Encoder).value(v) })
		again, err := ParseResponse(out)
		if err != nil {
			t.Fatalf("re-encoded response does not parse: %v\n%s", err, out)
		}
		got, _ := again.Field("Value")
		if want := sent(v); !equal(got, want) {
			t.Fatalf("value changed:\n got %s\nwant %s", show(got), show(want))
		}
	})
}
