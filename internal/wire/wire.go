// Package wire holds the protocol-neutral model shared by the XML-RPC and
// JSON-RPC codecs: a decoded Value tree for incoming arguments and a streaming
// Encoder interface that generated record encoders write into.
//
// Decoding produces untyped Values; the dispatcher checks them against the
// XenAPI types of the called message. Encoding never builds a tree: results
// stream straight into the codec's buffer.
package wire

import (
	"strconv"
	"time"
)

// Kind tells which member of a Value is meaningful.
type Kind uint8

const (
	KindString   Kind = iota // Str
	KindInt                  // Int (XML-RPC i4/int/i8, JSON integer literals)
	KindFloat                // Float
	KindBool                 // Bool
	KindDateTime             // Str holds the text as sent
	KindArray                // Array
	KindStruct               // Struct
	KindNil                  // JSON null, XML-RPC <nil/>
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindBool:
		return "bool"
	case KindDateTime:
		return "datetime"
	case KindArray:
		return "array"
	case KindStruct:
		return "struct"
	case KindNil:
		return "nil"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one decoded argument (or part of one).
type Value struct {
	Kind   Kind
	Bool   bool
	Int    int64
	Float  float64
	Str    string
	Array  []Value
	Struct []Member
}

// Member is one named entry of a struct, in wire order.
type Member struct {
	Name  string
	Value Value
}

// String, Int, ... build Values; handy in tests and server-side code.
func String(s string) Value    { return Value{Kind: KindString, Str: s} }
func Int(i int64) Value        { return Value{Kind: KindInt, Int: i} }
func Float(f float64) Value    { return Value{Kind: KindFloat, Float: f} }
func Bool(b bool) Value        { return Value{Kind: KindBool, Bool: b} }
func Array(v ...Value) Value   { return Value{Kind: KindArray, Array: v} }
func Struct(m ...Member) Value { return Value{Kind: KindStruct, Struct: m} }

// Field returns the member named name of a struct Value.
func (v Value) Field(name string) (Value, bool) {
	for i := range v.Struct {
		if v.Struct[i].Name == name {
			return v.Struct[i].Value, true
		}
	}
	return Value{}, false
}

// Encoder receives a value as a stream of events. XML-RPC and JSON-RPC each
// implement it over a byte buffer. Struct members are announced with Member
// followed by exactly one value.
type Encoder interface {
	String(s string)
	// Int writes a XenAPI int (64-bit: a decimal string in XML-RPC).
	Int(i int64)
	// Int32 writes a native 32-bit int (XML-RPC <i4>), for the few values
	// xapi sends that way, such as event.from's valid_ref_counts.
	Int32(i int32)
	Float(f float64)
	Bool(b bool)
	DateTime(t time.Time)
	BeginArray()
	EndArray()
	BeginStruct()
	Member(name string)
	// Name announces a member like Member, with the name prepared.
	Name(n *Name)
	EndStruct()
}

// DateTimeLayout is XenAPI's wire form of a datetime (always UTC).
const DateTimeLayout = "20060102T15:04:05Z"

// ParseDateTime accepts the forms clients send: XenAPI's own
// (20060102T15:04:05Z), the same without zone, and RFC 3339.
func ParseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{DateTimeLayout, "20060102T15:04:05", time.RFC3339, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, &time.ParseError{Layout: DateTimeLayout, Value: s}
}

// Encode writes a decoded Value back out, e.g. to echo stored values.
func Encode(e Encoder, v Value) {
	switch v.Kind {
	case KindString:
		e.String(v.Str)
	case KindInt:
		e.Int(v.Int)
	case KindFloat:
		e.Float(v.Float)
	case KindBool:
		e.Bool(v.Bool)
	case KindDateTime:
		if t, err := ParseDateTime(v.Str); err == nil {
			e.DateTime(t)
		} else {
			e.String(v.Str)
		}
	case KindArray:
		e.BeginArray()
		for _, x := range v.Array {
			Encode(e, x)
		}
		e.EndArray()
	case KindStruct:
		e.BeginStruct()
		for _, m := range v.Struct {
			e.Member(m.Name)
			Encode(e, m.Value)
		}
		e.EndStruct()
	case KindNil:
		e.String("")
	}
}

// Limits bound what a decoder accepts, so hostile input cannot exhaust
// memory or stack.
const (
	MaxDepth = 64
)
