package xecli

import (
	"cmp"
	"slices"
	"strings"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// The generic commands every class gets: <class>-list, -param-list,
// -param-get, -param-set, -param-add, -param-remove, -param-clear.

// genericCommands builds the commands of one class from its fields.
func genericCommands(c *xeClass) []*Command {
	var settable, addable, clearable []string
	for _, f := range c.Fields {
		if !f.Writable || f.DerivedName {
			continue
		}
		clearable = append(clearable, f.Name)
		switch f.Kind {
		case kScalar:
			settable = append(settable, f.Name)
		case kMap:
			settable = append(settable, f.Name+":")
			addable = append(addable, f.Name)
		case kSet:
			addable = append(addable, f.Name)
		}
	}
	name := func(op string) string { return c.Name + "-" + op }
	cmds := []*Command{
		{
			Name:   name("list"),
			Optn:   []string{"params"},
			Help:   "List the " + c.Plural + ", filtered on the optional field=value arguments (map fields: 'map-field:key=value'; set fields: 'set-field:contains=value'). params=a,b or params=all chooses the fields shown.",
			Std:    c.Name == "vm" || c.Name == "network" || c.Name == "sr" || c.Name == "host" || c.Name == "template",
			Filter: c.Name,
			Run:    func(x *Ctx) error { return x.genericList(c) },
		},
		{
			Name: name("param-list"),
			Reqd: []string{"uuid"},
			Help: "List every field of the " + c.Name + " with this uuid.",
			Run:  func(x *Ctx) error { return x.paramList(c) },
		},
		{
			Name: name("param-get"),
			Reqd: []string{"uuid", "param-name"},
			Optn: []string{"param-key"},
			Help: "Print one field of the " + c.Name + "; for a map field, param-key=KEY prints the value of one key.",
			Run:  func(x *Ctx) error { return x.paramGet(c) },
		},
	}
	if len(settable) > 0 {
		cmds = append(cmds, &Command{
			Name: name("param-set"),
			Reqd: []string{"uuid"},
			Optn: settable,
			// Any field name is let through validation so that setting a
			// read-only field says so, rather than "unknown parameter".
			AnyParams: true,
			Help:      "Set fields of the " + c.Name + ": field=value, or 'map-field:key=value' to set one key of a map.",
			Run:       func(x *Ctx) error { return x.paramSet(c) },
		})
	}
	if len(addable) > 0 {
		cmds = append(cmds, &Command{
			Name:      name("param-add"),
			Reqd:      []string{"uuid", "param-name"},
			Optn:      []string{"param-key"},
			AnyParams: true,
			Help:      "Add to a set or map field (" + strings.Join(addable, ", ") + "): for a set, param-key=MEMBER; for a map, the pairs as key=value arguments.",
			Run:       func(x *Ctx) error { return x.paramAdd(c) },
		}, &Command{
			Name: name("param-remove"),
			Reqd: []string{"uuid", "param-name", "param-key"},
			Help: "Remove a member of a set field, or a key of a map field.",
			Run:  func(x *Ctx) error { return x.paramRemove(c) },
		})
	}
	if len(clearable) > 0 {
		cmds = append(cmds, &Command{
			Name: name("param-clear"),
			Reqd: []string{"uuid", "param-name"},
			Help: "Clear a field (param-name one of " + strings.Join(clearable, ", ") + ").",
			Run:  func(x *Ctx) error { return x.paramClear(c) },
		})
	}
	return cmds
}

// chosenFields returns the fields a listing prints: params=all, params=a,b
// or the class's defaults; in record order, as xe prints them.
func (x *Ctx) chosenFields(c *xeClass, defaults []string) ([]*xeField, error) {
	want := defaults
	if ps, ok := x.args.Get("params"); ok {
		if ps == "all" {
			want = nil
		} else {
			want = splitList(ps)
			for _, n := range want {
				if c.field(n) == nil {
					return nil, usagef(x.cmd.Name, "Unknown field '%s' in params= (the fields of %s: see %s-param-list)", n, c.Name, c.Name)
				}
			}
		}
	}
	if len(want) == 0 {
		return c.Fields, nil
	}
	var out []*xeField
	for _, f := range c.Fields {
		if slices.Contains(want, f.Name) {
			out = append(out, f)
		}
	}
	return out, nil
}

func (x *Ctx) printRecords(recs []*record, fields []*xeField) {
	table := make([][]kv, 0, len(recs))
	for _, r := range recs {
		row := make([]kv, 0, len(fields))
		for _, f := range fields {
			row = append(row, kv{f.label(), x.rs.render(x.ctx, f, r)})
		}
		table = append(table, row)
	}
	x.out.table(table)
}

// sortRecords orders a listing by name, then uuid: the server's order is
// arbitrary, and people (and scripts diffing outputs) want a stable one.
func sortRecords(recs []*record) {
	slices.SortStableFunc(recs, func(a, b *record) int {
		return cmp.Or(cmp.Compare(a.nameLabel(), b.nameLabel()), cmp.Compare(a.uuid(), b.uuid()))
	})
}

func (x *Ctx) genericList(c *xeClass) error {
	fields, err := x.chosenFields(c, c.Defaults)
	if err != nil {
		return err
	}
	filters := classFilters(c)
	for _, p := range x.args.Params {
		if p.Name == "params" {
			continue
		}
		f, err := parseFilter(c, p)
		if err != nil {
			return err
		}
		filters = append(filters, f)
	}
	recs, err := fetchAll(x.ctx, x.s, x.rs, c)
	if err != nil {
		return err
	}
	recs = filterRecords(x.ctx, x.rs, recs, filters)
	sortRecords(recs)
	x.printRecords(recs, fields)
	return nil
}

func (x *Ctx) paramList(c *xeClass) error {
	r, err := fetchByUUID(x.ctx, x.s, x.rs, c, x.param("uuid"))
	if err != nil {
		return err
	}
	x.printRecords([]*record{r}, c.Fields)
	return nil
}

// fieldArg finds the field named by param-name.
// fieldAndRecord reads the param-name and uuid arguments of the
// <class>-param-* commands: the field they name and the object's record.
func (x *Ctx) fieldAndRecord(c *xeClass) (*xeField, *record, error) {
	f, err := x.fieldArg(c)
	if err != nil {
		return nil, nil, err
	}
	r, err := fetchByUUID(x.ctx, x.s, x.rs, c, x.param("uuid"))
	if err != nil {
		return nil, nil, err
	}
	return f, r, nil
}

func (x *Ctx) fieldArg(c *xeClass) (*xeField, error) {
	n := x.param("param-name")
	f := c.field(n)
	if f == nil {
		return nil, failf("Unknown field '%s' of %s", n, c.Name)
	}
	return f, nil
}

func (x *Ctx) paramGet(c *xeClass) error {
	f, r, err := x.fieldAndRecord(c)
	if err != nil {
		return err
	}
	if key, ok := x.args.Get("param-key"); ok && f.Kind == kMap {
		for _, m := range r.raw(f.API.Name).Struct {
			if m.Name == key {
				x.out.list(x.rs.value(x.ctx, f.API.Type.Elem, m.Value))
				return nil
			}
		}
		return failf("Key %s not found in map", key)
	}
	x.out.list(x.rs.render(x.ctx, f, r))
	return nil
}

// setter returns the XenAPI message that changes field f with the given
// prefix (set_, add_to_, remove_from_, add_, remove_), or nil.
func setter(c *xeClass, prefix string, f *xeField) *xenapi.Method {
	return method(c.API.Name + "." + prefix + f.API.Name)
}

func (x *Ctx) paramSet(c *xeClass) error {
	r, err := fetchByUUID(x.ctx, x.s, x.rs, c, x.param("uuid"))
	if err != nil {
		return err
	}
	self := wire.String(r.ref)
	for _, p := range x.args.Params {
		if p.Name == "uuid" {
			continue
		}
		if f := c.field(p.Name); f != nil {
			m := setter(c, "set_", f)
			switch {
			case f.Kind != kScalar && m == nil:
				return failf("Field '%s' is a map or set: use the 'name:key=value' syntax, or %s-param-add", p.Name, c.Name)
			case m == nil || f.DerivedName:
				return failf("Field '%s' is read-only.", p.Name)
			}
			v, err := x.toWire(p.Name, m.Params[len(m.Params)-1].Type, p.Value)
			if err != nil {
				return err
			}
			if _, err := x.s.Do(x.ctx, m.Name, self, v); err != nil {
				return err
			}
			continue
		}
		base, key, _ := strings.Cut(p.Name, ":")
		f := c.field(base)
		if f == nil || f.Kind != kMap {
			return usagef(x.cmd.Name, "Unknown field '%s' of %s", p.Name, c.Name)
		}
		add, remove := setter(c, "add_to_", f), setter(c, "remove_from_", f)
		if add == nil || remove == nil {
			return failf("Map field '%s' is read-only.", base)
		}
		for _, m := range r.raw(f.API.Name).Struct {
			if m.Name == key {
				if _, err := x.s.Do(x.ctx, remove.Name, self, wire.String(key)); err != nil {
					return err
				}
				break
			}
		}
		v, err := x.toWire(p.Name, f.API.Type.Elem, p.Value)
		if err != nil {
			return err
		}
		if _, err := x.s.Do(x.ctx, add.Name, self, wire.String(key), v); err != nil {
			return err
		}
	}
	return nil
}

func (x *Ctx) paramAdd(c *xeClass) error {
	f, r, err := x.fieldAndRecord(c)
	if err != nil {
		return err
	}
	self := wire.String(r.ref)
	switch f.Kind {
	case kSet:
		m := setter(c, "add_", f)
		if m == nil {
			return failf("Parameter %s is read-only", f.Name)
		}
		key, ok := x.args.Get("param-key")
		if !ok {
			return usagef(x.cmd.Name, "When adding to a set, use the syntax: %s-param-add uuid=UUID param-name=%s param-key=MEMBER", c.Name, f.Name)
		}
		v, err := x.toWire(f.Name, f.API.Type.Elem, key)
		if err != nil {
			return err
		}
		_, err = x.s.Do(x.ctx, m.Name, self, v)
		return err
	case kMap:
		m := setter(c, "add_to_", f)
		if m == nil {
			return failf("Parameter %s is read-only", f.Name)
		}
		pairs := x.extraPairs()
		if len(pairs) == 0 {
			return usagef(x.cmd.Name, "Give the pairs to add to %s as key=value arguments", f.Name)
		}
		for _, p := range pairs {
			v, err := x.toWire(f.Name, f.API.Type.Elem, p.Value)
			if err != nil {
				return err
			}
			if _, err := x.s.Do(x.ctx, m.Name, self, wire.String(p.Name), v); err != nil {
				return err
			}
		}
		return nil
	}
	return failf("Can only add to parameters of type Set or Map")
}

// extraPairs are the key=value arguments of param-add on a map: everything
// but the command's own arguments.
func (x *Ctx) extraPairs() []Param {
	var out []Param
	for _, p := range x.args.Params {
		if !slices.Contains([]string{"uuid", "param-name", "param-key"}, p.Name) {
			out = append(out, p)
		}
	}
	return out
}

func (x *Ctx) paramRemove(c *xeClass) error {
	f, r, err := x.fieldAndRecord(c)
	if err != nil {
		return err
	}
	self, key := wire.String(r.ref), x.param("param-key")
	switch f.Kind {
	case kSet:
		m := setter(c, "remove_", f)
		if m == nil {
			return failf("Cannot remove members from read-only set %s", f.Name)
		}
		for _, e := range r.raw(f.API.Name).Array {
			if x.rs.value(x.ctx, f.API.Type.Elem, e) == key {
				_, err := x.s.Do(x.ctx, m.Name, self, e)
				return err
			}
		}
		return failf("Key %s is not in the set", key)
	case kMap:
		m := setter(c, "remove_from_", f)
		if m == nil {
			return failf("Cannot remove keys from read-only map %s", f.Name)
		}
		for _, e := range r.raw(f.API.Name).Struct {
			if e.Name == key {
				_, err := x.s.Do(x.ctx, m.Name, self, wire.String(key))
				return err
			}
		}
		return failf("Key %s is not in map", key)
	}
	return failf("Can only remove from parameters of type Set or Map")
}

func (x *Ctx) paramClear(c *xeClass) error {
	f, r, err := x.fieldAndRecord(c)
	if err != nil {
		return err
	}
	self := wire.String(r.ref)
	if m := setter(c, "set_", f); m != nil && !f.DerivedName {
		var empty wire.Value
		switch f.Kind {
		case kSet:
			empty = wire.Array()
		case kMap:
			empty = wire.Struct()
		default:
			switch f.API.Type.Kind {
			case xenapi.TString:
				empty = wire.String("")
			case xenapi.TRef:
				empty = wire.String(string(xenapi.NullRef))
			default:
				return failf("Cannot clear parameter %s (it has no empty value); use %s-param-set", f.Name, c.Name)
			}
		}
		_, err := x.s.Do(x.ctx, m.Name, self, empty)
		return err
	}
	switch f.Kind {
	case kSet:
		if m := setter(c, "remove_", f); m != nil {
			for _, e := range r.raw(f.API.Name).Array {
				if _, err := x.s.Do(x.ctx, m.Name, self, e); err != nil {
					return err
				}
			}
			return nil
		}
	case kMap:
		if m := setter(c, "remove_from_", f); m != nil {
			for _, e := range r.raw(f.API.Name).Struct {
				if _, err := x.s.Do(x.ctx, m.Name, self, wire.String(e.Name)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return failf("Can only clear RW parameters")
}
