package wire

import "time"

// Builder is an Encoder that assembles a Value tree. It serves tests and the
// rare server paths that need an encoded value as data (task results).
type Builder struct {
	stack []Value
	names []string
	out   Value
	done  bool
}

func (b *Builder) put(v Value) {
	if len(b.stack) == 0 {
		b.out, b.done = v, true
		return
	}
	top := &b.stack[len(b.stack)-1]
	if top.Kind == KindArray {
		top.Array = append(top.Array, v)
		return
	}
	name := b.names[len(b.names)-1]
	b.names = b.names[:len(b.names)-1]
	top.Struct = append(top.Struct, Member{Name: name, Value: v})
}

func (b *Builder) String(s string) { b.put(String(s)) }
func (b *Builder) Int(i int64)     { b.put(Int(i)) }
func (b *Builder) Int32(i int32)   { b.put(Int(int64(i))) }
func (b *Builder) Float(f float64) { b.put(Float(f)) }
func (b *Builder) Bool(v bool)     { b.put(Bool(v)) }
func (b *Builder) DateTime(t time.Time) {
	b.put(Value{Kind: KindDateTime, Str: t.UTC().Format(DateTimeLayout)})
}
func (b *Builder) BeginArray()        { b.stack = append(b.stack, Value{Kind: KindArray}) }
func (b *Builder) BeginStruct()       { b.stack = append(b.stack, Value{Kind: KindStruct}) }
func (b *Builder) Member(name string) { b.names = append(b.names, name) }
func (b *Builder) Name(n *Name)       { b.Member(n.Text) }
func (b *Builder) EndArray()          { b.pop() }
func (b *Builder) EndStruct()         { b.pop() }

func (b *Builder) pop() {
	v := b.stack[len(b.stack)-1]
	b.stack = b.stack[:len(b.stack)-1]
	b.put(v)
}

// Value returns the finished value (the zero Value if nothing was written).
func (b *Builder) Value() Value { return b.out }
