package xenapi

import (
	"cmp"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/xenith/xenith/internal/wire"
)

// This file converts between wire values and Go values. Generated code
// composes these helpers per field type; they are also what hand-written
// message implementations use to read their arguments.

func typeErr(want string, v wire.Value) error {
	return fmt.Errorf("%w: expected %s, got %s", ErrType, want, v.Kind)
}

// DecString accepts a string (XML-RPC untyped values are strings too).
func DecString(v wire.Value) (string, error) {
	if v.Kind != wire.KindString {
		return "", typeErr("string", v)
	}
	return v.Str, nil
}

// DecInt accepts XenAPI's decimal-string ints (XML-RPC) and native ints
// (JSON-RPC, or XML-RPC i4/int from lax clients).
func DecInt(v wire.Value) (int64, error) {
	switch v.Kind {
	case wire.KindInt:
		return v.Int, nil
	case wire.KindString:
		i, err := strconv.ParseInt(v.Str, 10, 64)
		if err != nil {
			return 0, typeErr("int", v)
		}
		return i, nil
	case wire.KindFloat:
		// JSON clients sometimes send 1.0 for an int.
		if v.Float == math.Trunc(v.Float) && math.Abs(v.Float) < 1<<62 {
			return int64(v.Float), nil
		}
	}
	return 0, typeErr("int", v)
}

// DecFloat accepts doubles, ints and numeric strings.
func DecFloat(v wire.Value) (float64, error) {
	switch v.Kind {
	case wire.KindFloat:
		return v.Float, nil
	case wire.KindInt:
		return float64(v.Int), nil
	case wire.KindString:
		f, err := strconv.ParseFloat(v.Str, 64)
		if err == nil {
			return f, nil
		}
	}
	return 0, typeErr("float", v)
}

// DecBool accepts booleans and the strings "true"/"false" some clients send.
func DecBool(v wire.Value) (bool, error) {
	switch v.Kind {
	case wire.KindBool:
		return v.Bool, nil
	case wire.KindString:
		switch v.Str {
		case "true", "True", "1":
			return true, nil
		case "false", "False", "0":
			return false, nil
		}
	}
	return false, typeErr("bool", v)
}

// DecTime accepts dateTime.iso8601 values and datetime strings.
func DecTime(v wire.Value) (time.Time, error) {
	if v.Kind != wire.KindDateTime && v.Kind != wire.KindString {
		return time.Time{}, typeErr("datetime", v)
	}
	t, err := wire.ParseDateTime(v.Str)
	if err != nil {
		return time.Time{}, typeErr("datetime", v)
	}
	return t, nil
}

// DecRef accepts a reference string. The null reference is interned so
// records loaded in bulk do not each carry a copy.
func DecRef(v wire.Value) (Ref, error) {
	if v.Kind != wire.KindString {
		return "", typeErr("ref", v)
	}
	if v.Str == string(NullRef) || v.Str == "" {
		return NullRef, nil
	}
	return Ref(v.Str), nil
}

// DecEnum returns a decoder for an enum whose values are in valid.
func DecEnum[T ~string](valid map[string]T) func(wire.Value) (T, error) {
	return func(v wire.Value) (T, error) {
		if v.Kind == wire.KindString {
			if e, ok := valid[v.Str]; ok {
				return e, nil
			}
		}
		return "", typeErr("enum value", v)
	}
}

// DecSet returns a decoder for a set of T; an empty set decodes to nil.
func DecSet[T any](dec func(wire.Value) (T, error)) func(wire.Value) ([]T, error) {
	return func(v wire.Value) ([]T, error) {
		if v.Kind != wire.KindArray {
			return nil, typeErr("array", v)
		}
		if len(v.Array) == 0 {
			return nil, nil
		}
		out := make([]T, 0, len(v.Array))
		for _, x := range v.Array {
			e, err := dec(x)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
}

// DecMap returns a decoder for a map; keys arrive as struct member names.
func DecMap[K cmp.Ordered, V any](key func(string) (K, error), val func(wire.Value) (V, error)) func(wire.Value) (Map[K, V], error) {
	return func(v wire.Value) (Map[K, V], error) {
		if v.Kind != wire.KindStruct {
			return nil, typeErr("struct", v)
		}
		if len(v.Struct) == 0 {
			return nil, nil
		}
		out := make(Map[K, V], 0, len(v.Struct))
		for _, m := range v.Struct {
			k, err := key(m.Name)
			if err != nil {
				return nil, err
			}
			x, err := val(m.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Pair[K, V]{k, x})
		}
		return sortMap(out), nil
	}
}

// DecStringMap decodes the common (string -> string) map. Keys and short
// values are interned: they come from a small vocabulary ("platform",
// "true", "0") repeated in every record.
func DecStringMap(v wire.Value) (Map[string, string], error) {
	if v.Kind != wire.KindStruct {
		return nil, typeErr("struct", v)
	}
	if len(v.Struct) == 0 {
		return nil, nil
	}
	out := make(Map[string, string], 0, len(v.Struct))
	for _, m := range v.Struct {
		x, err := DecString(m.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, Pair[string, string]{intern(m.Name), intern(x)})
	}
	return sortMap(out), nil
}

// Map key decoders.
func KeyString(s string) (string, error) { return intern(s), nil }
func KeyRef(s string) (Ref, error)       { return Ref(s), nil }
func KeyInt(s string) (int64, error) {
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: map key %q is not an int", ErrType, s)
	}
	return i, nil
}
func KeyFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: map key %q is not a float", ErrType, s)
	}
	return f, nil
}
func KeyEnum[T ~string](valid map[string]T) func(string) (T, error) {
	return func(s string) (T, error) {
		if e, ok := valid[s]; ok {
			return e, nil
		}
		return "", fmt.Errorf("%w: map key %q is not a valid enum value", ErrType, s)
	}
}

// Encoders.

func EncStr[T ~string](e wire.Encoder, v T) { e.String(string(v)) }
func EncInt(e wire.Encoder, v int64)        { e.Int(v) }
func EncFloat(e wire.Encoder, v float64)    { e.Float(v) }
func EncBool(e wire.Encoder, v bool)        { e.Bool(v) }
func EncTime(e wire.Encoder, v time.Time)   { e.DateTime(v) }

// EncRef writes a reference, mapping the empty Go value to OpaqueRef:NULL.
func EncRef(e wire.Encoder, v Ref) {
	if v == "" {
		v = NullRef
	}
	e.String(string(v))
}

func EncSet[T any](e wire.Encoder, s []T, enc func(wire.Encoder, T)) {
	e.BeginArray()
	for _, x := range s {
		enc(e, x)
	}
	e.EndArray()
}

// EncMap writes a map, in key order.
func EncMap[K cmp.Ordered, V any](e wire.Encoder, m Map[K, V], key func(K) string, enc func(wire.Encoder, V)) {
	e.BeginStruct()
	for i := range m {
		e.Member(key(m[i].Key))
		enc(e, m[i].Value)
	}
	e.EndStruct()
}

// EncStringMap writes a (string -> string) map.
func EncStringMap(e wire.Encoder, m Map[string, string]) {
	e.BeginStruct()
	for i := range m {
		e.Member(m[i].Key)
		e.String(m[i].Value)
	}
	e.EndStruct()
}

func KeyStrOf[T ~string](k T) string { return string(k) }
func KeyIntOf(k int64) string        { return strconv.FormatInt(k, 10) }
func KeyFloatOf(k float64) string    { return strconv.FormatFloat(k, 'g', -1, 64) }
