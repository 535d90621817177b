package xenops

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/wire"
)

// The xenopsd interface is typed in OCaml and marshalled the way ocaml-rpc
// does it:
//
//	record               struct of its fields
//	int64, float, bool   <i8>, <double>, <boolean> (JSON numbers, booleans)
//	string               string
//	unit                 nil (<nil/>, JSON null)
//	'a list              array
//	'a option            [] for None, [x] for Some x
//	(string * 'a) list   struct (an association list)
//	tuple                array of its members
//	variant              "Name" for a constructor without (or with a unit)
//	                     argument, ["Name", arg] otherwise
//
// Inputs are read leniently: variant names in any case, options also as a
// bare value or nil, ints also as strings of digits (XML-RPC clients that
// cannot send 64-bit ints do that), a missing record field as its default.

var unit = wire.Value{Kind: wire.KindNil}

func variant(name string, args ...wire.Value) wire.Value {
	switch len(args) {
	case 0:
		return wire.String(name)
	case 1:
		return wire.Array(wire.String(name), args[0])
	}
	return wire.Array(wire.String(name), wire.Array(args...))
}

func some(v wire.Value) wire.Value { return wire.Array(v) }

func none() wire.Value { return wire.Value{Kind: wire.KindArray, Array: []wire.Value{}} }

func optString(s *string) wire.Value {
	if s == nil {
		return none()
	}
	return some(wire.String(*s))
}

func optInt(n *int64) wire.Value {
	if n == nil {
		return none()
	}
	return some(wire.Int(*n))
}

func optBool(b *bool) wire.Value {
	if b == nil {
		return none()
	}
	return some(wire.Bool(*b))
}

func strList(ss []string) wire.Value {
	out := wire.Value{Kind: wire.KindArray, Array: make([]wire.Value, 0, len(ss))}
	for _, s := range ss {
		out.Array = append(out.Array, wire.String(s))
	}
	return out
}

func list(vs []wire.Value) wire.Value {
	if vs == nil {
		vs = []wire.Value{}
	}
	return wire.Value{Kind: wire.KindArray, Array: vs}
}

// dict encodes an association list, keys in order.
func dict(m map[string]string) wire.Value {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := wire.Value{Kind: wire.KindStruct, Struct: make([]wire.Member, 0, len(keys))}
	for _, k := range keys {
		out.Struct = append(out.Struct, wire.Member{Name: k, Value: wire.String(m[k])})
	}
	return out
}

func record(members ...wire.Member) wire.Value { return wire.Struct(members...) }

func mem(name string, v wire.Value) wire.Member { return wire.Member{Name: name, Value: v} }

// decoder reads a wire value into Go values, remembering the first
// problem with the path where it was found.
type decoder struct {
	err error
}

func (d *decoder) fail(path, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) field(v wire.Value, path, name string) (wire.Value, bool) {
	if v.Kind != wire.KindStruct {
		d.fail(path, "expected a struct, got %s", v.Kind)
		return wire.Value{}, false
	}
	f, ok := v.Field(name)
	if ok && f.Kind == wire.KindNil {
		return f, false
	}
	return f, ok
}

func (d *decoder) str(v wire.Value, path string) string {
	switch v.Kind {
	case wire.KindString:
		return v.Str
	case wire.KindNil:
		return ""
	}
	d.fail(path, "expected a string, got %s", v.Kind)
	return ""
}

func (d *decoder) int(v wire.Value, path string) int64 {
	switch v.Kind {
	case wire.KindInt:
		return v.Int
	case wire.KindString:
		n, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64)
		if err == nil {
			return n
		}
	case wire.KindFloat:
		if v.Float == float64(int64(v.Float)) {
			return int64(v.Float)
		}
	}
	d.fail(path, "expected an int64, got %s", describe(v))
	return 0
}

func (d *decoder) float(v wire.Value, path string) float64 {
	switch v.Kind {
	case wire.KindFloat:
		return v.Float
	case wire.KindInt:
		return float64(v.Int)
	case wire.KindString:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64)
		if err == nil {
			return f
		}
	}
	d.fail(path, "expected a float, got %s", describe(v))
	return 0
}

func (d *decoder) bool(v wire.Value, path string) bool {
	switch v.Kind {
	case wire.KindBool:
		return v.Bool
	case wire.KindInt:
		if v.Int == 0 || v.Int == 1 {
			return v.Int == 1
		}
	case wire.KindString:
		switch strings.ToLower(v.Str) {
		case "true", "1":
			return true
		case "false", "0":
			return false
		}
	}
	d.fail(path, "expected a bool, got %s", describe(v))
	return false
}

func describe(v wire.Value) string {
	switch v.Kind {
	case wire.KindString:
		if len(v.Str) > 40 {
			return strconv.Quote(v.Str[:40] + "...")
		}
		return strconv.Quote(v.Str)
	}
	return v.Kind.String()
}

// option unwraps an option: nil or [] is None; [x] is Some x; any other
// value is taken as Some of itself.
func (d *decoder) option(v wire.Value) (wire.Value, bool) {
	switch v.Kind {
	case wire.KindNil:
		return wire.Value{}, false
	case wire.KindArray:
		switch len(v.Array) {
		case 0:
			return wire.Value{}, false
		case 1:
			return v.Array[0], v.Array[0].Kind != wire.KindNil
		}
	}
	return v, true
}

func (d *decoder) list(v wire.Value, path string) []wire.Value {
	switch v.Kind {
	case wire.KindArray:
		return v.Array
	case wire.KindNil:
		return nil
	}
	d.fail(path, "expected an array, got %s", v.Kind)
	return nil
}

// assoc reads a (string * string) list: a struct, or an array of pairs.
func (d *decoder) assoc(v wire.Value, path string) map[string]string {
	out := map[string]string{}
	switch v.Kind {
	case wire.KindStruct:
		for _, m := range v.Struct {
			out[m.Name] = d.str(m.Value, path+"."+m.Name)
		}
	case wire.KindArray:
		for i, p := range v.Array {
			if p.Kind != wire.KindArray || len(p.Array) != 2 {
				d.fail(fmt.Sprintf("%s[%d]", path, i), "expected a pair")
				continue
			}
			out[d.str(p.Array[0], path)] = d.str(p.Array[1], path)
		}
	case wire.KindNil:
	default:
		d.fail(path, "expected an association list, got %s", v.Kind)
	}
	return out
}

// variant reads a constructor: its name (as one of names, matched in any
// case) and its argument (KindNil when it has none).
func (d *decoder) variant(v wire.Value, path string, names ...string) (string, wire.Value) {
	var name string
	arg := unit
	switch v.Kind {
	case wire.KindString:
		name = v.Str
	case wire.KindArray:
		if len(v.Array) == 0 || v.Array[0].Kind != wire.KindString || len(v.Array) > 2 {
			d.fail(path, "expected a variant [\"Name\", argument]")
			return "", unit
		}
		name = v.Array[0].Str
		if len(v.Array) == 2 {
			arg = v.Array[1]
		}
	default:
		d.fail(path, "expected a variant, got %s", v.Kind)
		return "", unit
	}
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return n, arg
		}
	}
	d.fail(path, "unknown constructor %q (expected one of %s)", name, strings.Join(names, ", "))
	return "", unit
}
