package xapi

import (
	"context"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/where"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// This file serves the implicit messages every class gets from its fields
// (get_/set_/add_to_/remove_from_/add_/remove_, get_record, get_by_uuid,
// get_all..., create, destroy), straight from the generated descriptors.

// implicitHandler returns the generic implementation of an implicit
// message, or nil when the name does not follow a known pattern.
func (s *Server) implicitHandler(m *xenapi.Method) handlerFunc {
	c := s.store.Class(m.Class)
	if c == nil || !c.Stored {
		return nil
	}
	switch m.Message {
	case "get_record":
		return func(ctx context.Context, call *Call) (Result, error) {
			row, err := s.store.Get(c, call.Ref(0))
			if err != nil {
				return nil, err
			}
			return row.Rec.Encode, nil
		}
	case "get_by_uuid":
		return func(ctx context.Context, call *Call) (Result, error) {
			row, err := s.store.ByUUID(c, call.Str(0))
			if err != nil {
				return nil, err
			}
			return refResult(row.Ref), nil
		}
	case "get_by_name_label":
		return func(ctx context.Context, call *Call) (Result, error) {
			label, f := call.Str(0), c.Field("name_label")
			rows := s.store.Find(c, func(r *store.Row) bool { return fieldValue(f, r.Rec).Str == label })
			return refsResult(rows), nil
		}
	case "get_all":
		return func(ctx context.Context, call *Call) (Result, error) {
			return refsResult(s.store.All(c)), nil
		}
	case "get_all_records":
		return func(ctx context.Context, call *Call) (Result, error) {
			return recordsResult(s.store.All(c)), nil
		}
	case "create":
		return func(ctx context.Context, call *Call) (Result, error) {
			ref, err := s.create(ctx, c, call.Arg(0))
			if err != nil {
				return nil, err
			}
			return refResult(ref), nil
		}
	case "destroy":
		return func(ctx context.Context, call *Call) (Result, error) {
			return nil, s.destroy(ctx, c, call.Ref(0))
		}
	}
	for _, p := range []struct {
		prefix string
		make   func(*xenapi.Class, *xenapi.Field) handlerFunc
	}{
		{"add_to_", s.mapAdd},
		{"remove_from_", s.mapRemove},
		{"get_", s.fieldGet},
		{"set_", s.fieldSet},
		{"add_", s.setAdd},
		{"remove_", s.setRemove},
	} {
		if name, ok := strings.CutPrefix(m.Message, p.prefix); ok {
			if f := c.Field(name); f != nil {
				return p.make(c, f)
			}
		}
	}
	return nil
}

func refResult(ref xenapi.Ref) Result {
	return func(e wire.Encoder) { xenapi.EncRef(e, ref) }
}

func stringResult(s string) Result {
	return func(e wire.Encoder) { e.String(s) }
}

func refsResult(rows []*store.Row) Result {
	return func(e wire.Encoder) {
		e.BeginArray()
		for _, r := range rows {
			e.String(string(r.Ref))
		}
		e.EndArray()
	}
}

func recordsResult(rows []*store.Row) Result {
	return func(e wire.Encoder) {
		e.BeginStruct()
		for _, r := range rows {
			e.Member(string(r.Ref))
			r.Rec.Encode(e)
		}
		e.EndStruct()
	}
}

func (s *Server) fieldGet(c *xenapi.Class, f *xenapi.Field) handlerFunc {
	return func(ctx context.Context, call *Call) (Result, error) {
		row, err := s.store.Get(c, call.Ref(0))
		if err != nil {
			return nil, err
		}
		rec := row.Rec
		return func(e wire.Encoder) { f.Get(rec, e) }, nil
	}
}

func (s *Server) fieldSet(c *xenapi.Class, f *xenapi.Field) handlerFunc {
	return func(ctx context.Context, call *Call) (Result, error) {
		ref, v := call.Ref(0), call.Arg(1)
		return nil, s.store.Update(ctx, func(tx *store.Tx) error {
			return tx.Modify(c, ref, func(rec xenapi.Record) error {
				if err := f.Set(rec, v); err != nil {
					return fieldTypeError("value", err)
				}
				return nil
			})
		})
	}
}

// fieldValue returns the wire form of a field of rec.
func fieldValue(f *xenapi.Field, rec xenapi.Record) wire.Value {
	var b wire.Builder
	f.Get(rec, &b)
	return b.Value()
}

// mapAdd implements add_to_<map>: a key already present is refused with
// MAP_DUPLICATE_KEY, as xapi does.
func (s *Server) mapAdd(c *xenapi.Class, f *xenapi.Field) handlerFunc {
	return func(ctx context.Context, call *Call) (Result, error) {
		ref, k, v := call.Ref(0), call.Str(1), call.Arg(2)
		return nil, s.store.Update(ctx, func(tx *store.Tx) error {
			return tx.Modify(c, ref, func(rec xenapi.Record) error {
				cur := fieldValue(f, rec)
				if _, dup := cur.Field(k); dup {
					return xenapi.NewError(api.ErrMapDuplicateKey, c.Name, f.Name, rec.RecordUUID(), k)
				}
				cur.Struct = append(append([]wire.Member(nil), cur.Struct...), wire.Member{Name: k, Value: v})
				if err := f.Set(rec, cur); err != nil {
					return fieldTypeError("value", err)
				}
				return nil
			})
		})
	}
}

func (s *Server) mapRemove(c *xenapi.Class, f *xenapi.Field) handlerFunc {
	return func(ctx context.Context, call *Call) (Result, error) {
		ref, k := call.Ref(0), call.Str(1)
		return nil, s.store.Update(ctx, func(tx *store.Tx) error {
			cur, err := tx.Get(c, ref)
			if err != nil {
				return err
			}
			v := fieldValue(f, cur)
			if _, ok := v.Field(k); !ok {
				return nil // removing an absent key is a no-op, as in xapi
			}
			return tx.Modify(c, ref, func(rec xenapi.Record) error {
				kept := make([]wire.Member, 0, len(v.Struct))
				for _, m := range v.Struct {
					if m.Name != k {
						kept = append(kept, m)
					}
				}
				return f.Set(rec, wire.Value{Kind: wire.KindStruct, Struct: kept})
			})
		})
	}
}

func (s *Server) setAdd(c *xenapi.Class, f *xenapi.Field) handlerFunc {
	return func(ctx context.Context, call *Call) (Result, error) {
		ref, x := call.Ref(0), call.Arg(1)
		return nil, s.store.Update(ctx, func(tx *store.Tx) error {
			cur, err := tx.Get(c, ref)
			if err != nil {
				return err
			}
			v := fieldValue(f, cur)
			for _, y := range v.Array {
				if sameValue(x, y) {
					return nil // sets hold each value once
				}
			}
			return tx.Modify(c, ref, func(rec xenapi.Record) error {
				next := append(append([]wire.Value(nil), v.Array...), x)
				if err := f.Set(rec, wire.Value{Kind: wire.KindArray, Array: next}); err != nil {
					return fieldTypeError("value", err)
				}
				return nil
			})
		})
	}
}

func (s *Server) setRemove(c *xenapi.Class, f *xenapi.Field) handlerFunc {
	return func(ctx context.Context, call *Call) (Result, error) {
		ref, x := call.Ref(0), call.Arg(1)
		return nil, s.store.Update(ctx, func(tx *store.Tx) error {
			cur, err := tx.Get(c, ref)
			if err != nil {
				return err
			}
			v := fieldValue(f, cur)
			kept := make([]wire.Value, 0, len(v.Array))
			for _, y := range v.Array {
				if !sameValue(x, y) {
					kept = append(kept, y)
				}
			}
			if len(kept) == len(v.Array) {
				return nil
			}
			return tx.Modify(c, ref, func(rec xenapi.Record) error {
				return f.Set(rec, wire.Value{Kind: wire.KindArray, Array: kept})
			})
		})
	}
}

// sameValue compares scalar wire values across the forms clients send
// (an int may arrive as a decimal string in XML-RPC).
func sameValue(a, b wire.Value) bool {
	return scalarString(a) == scalarString(b)
}

// create builds a record from the schema defaults and the RW and
// RO/constructor fields of args; runtime fields in args are ignored, as
// xapi ignores them.
func (s *Server) create(ctx context.Context, c *xenapi.Class, args wire.Value) (xenapi.Ref, error) {
	rec := c.New()
	kept := make([]wire.Member, 0, len(args.Struct))
	for _, m := range args.Struct {
		if f := c.Field(m.Name); f != nil && f.Qualifier != xenapi.RORuntime {
			kept = append(kept, m)
		}
	}
	if err := rec.Decode(wire.Value{Kind: wire.KindStruct, Struct: kept}); err != nil {
		return "", fieldTypeError("args", err)
	}
	var ref xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		if hook := s.hooks[c].beforeCreate; hook != nil {
			if err := hook(tx, rec); err != nil {
				return err
			}
		}
		ref, err = tx.Create(rec)
		return err
	})
	return ref, err
}

func (s *Server) destroy(ctx context.Context, c *xenapi.Class, ref xenapi.Ref) error {
	var gone xenapi.Record
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		cur, err := tx.Get(c, ref)
		if err != nil {
			return err
		}
		if hook := s.hooks[c].beforeDestroy; hook != nil {
			if err := hook(tx, ref, cur); err != nil {
				return err
			}
		}
		gone = cur
		return tx.Delete(c, ref)
	})
	if after := s.afterCommit[c]; after != nil && err == nil {
		after(ref, gone)
	}
	return err
}

// getAllRecordsWhere serves <class>.get_all_records_where(expr), a message
// xapi keeps out of the datamodel but every binding calls.
func (s *Server) getAllRecordsWhere(c *xenapi.Class) handlerFunc {
	return func(ctx context.Context, call *Call) (Result, error) {
		expr, err := where.Parse(call.Str(0))
		if err != nil {
			return nil, xenapi.NewError(api.ErrInvalidValue, "expr", err.Error())
		}
		fields := map[string]*xenapi.Field{}
		for _, name := range where.Fields(expr) {
			f := whereField(c, name)
			if f == nil {
				// xapi fails the whole query on an unknown field.
				return nil, xenapi.NewError(api.ErrInvalidValue, "expr", "unknown field "+name)
			}
			fields[name] = f
		}
		rows := s.store.Find(c, func(r *store.Row) bool {
			return expr.Eval(func(name string) (string, bool) {
				f := fields[name]
				if f == nil {
					return "", false
				}
				return scalarString(fieldValue(f, r.Rec)), true
			})
		})
		return recordsResult(rows), nil
	}
}

// whereField resolves a field name of a where-expression. xapi's queries
// name database columns, where namespaced fields are joined by a double
// underscore (name__label, memory__static_max); the API names are accepted
// too.
func whereField(c *xenapi.Class, name string) *xenapi.Field {
	if f := c.Field(name); f != nil {
		return f
	}
	return c.Field(strings.ReplaceAll(name, "__", "_"))
}
