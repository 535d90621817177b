package jsonrpc

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/wire"
)

// norm maps a Value to what survives a trip through JSON: JSON has no
// datetime and wire.Encode sends nil as "", so both come back as strings.
func norm(v wire.Value) wire.Value {
	switch v.Kind {
	case wire.KindNil:
		return wire.String("")
	case wire.KindDateTime:
		if t, err := wire.ParseDateTime(v.Str); err == nil {
			return wire.String(t.Format(wire.DateTimeLayout))
		}
		return wire.String(v.Str)
	case wire.KindArray:
		if len(v.Array) == 0 {
			return wire.Value{Kind: wire.KindArray}
		}
		out := make([]wire.Value, len(v.Array))
		for i, x := range v.Array {
			out[i] = norm(x)
		}
		return wire.Value{Kind: wire.KindArray, Array: out}
	case wire.KindStruct:
		if len(v.Struct) == 0 {
			return wire.Value{Kind: wire.KindStruct}
		}
		out := make([]wire.Member, len(v.Struct))
		for i, m := range v.Struct {
			out[i] = wire.Member{Name: m.Name, Value: norm(m.Value)}
		}
		return wire.Value{Kind: wire.KindStruct, Struct: out}
	}
	return v
}

func normAll(vs []wire.Value) []wire.Value {
	if len(vs) == 0 {
		return nil
	}
	out := make([]wire.Value, len(vs))
	for i, v := range vs {
		out[i] = norm(v)
	}
	return out
}

func equalValues(a, b wire.Value) bool { return reflect.DeepEqual(norm(a), norm(b)) }

func m(name string, v wire.Value) wire.Member { return wire.Member{Name: name, Value: v} }

var testTime = time.Date(2025, 3, 19, 4, 16, 24, 0, time.UTC)

// sampleRecord is a VM-like record with every kind of value.
func sampleRecord() wire.Value {
	return wire.Struct(
		m("uuid", wire.String("5b3a4c8e-9d0f-4e6a-8c3b-2a1d0e9f8b7c")),
		m("name_label", wire.String("web-01 <prod> & \"blue\"")),
		m("name_description", wire.String("line1\nline2\ttab\x01\x1f é 😀")),
		m("power_state", wire.String("Running")),
		m("memory_static_max", wire.Int(8589934592)),
		m("VCPUs_max", wire.Int(4)),
		m("min", wire.Int(-9223372036854775808)),
		m("is_a_template", wire.Bool(false)),
		m("HVM_shadow_multiplier", wire.Float(1)),
		m("ratio", wire.Float(0.1)),
		m("tiny", wire.Float(1e-9)),
		m("huge", wire.Float(1e300)),
		m("negzero", wire.Float(-0.5)),
		m("start_time", wire.Value{Kind: wire.KindDateTime, Str: "20250319T04:16:24Z"}),
		m("VBDs", wire.Array(wire.String("OpaqueRef:a"), wire.String("OpaqueRef:b"))),
		m("tags", wire.Array()),
		m("other_config", wire.Struct(m("folder", wire.String("/x")), m("", wire.String("empty key")))),
		m("blocked_operations", wire.Struct()),
		m("nested", wire.Array(wire.Array(wire.Struct(m("k", wire.Array(wire.Int(1), wire.Float(2.5))))))),
	)
}

// protoErr extracts the *Error of err, failing the test if there is none.
func protoErr(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *jsonrpc.Error", err, err)
	}
	return e
}

func mustValidJSON(t testing.TB, b []byte) {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %q", b)
	}
}
