package xecli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// record is one object as fetched with get_record / get_all_records.
type record struct {
	class *xeClass
	ref   string
	v     wire.Value // the XenAPI struct
}

func (r *record) raw(apiName string) wire.Value {
	v, _ := r.v.Field(apiName)
	return v
}

func (r *record) uuid() string      { return r.raw("uuid").Str }
func (r *record) nameLabel() string { return r.raw("name_label").Str }

// refInfo is what xe prints instead of an OpaqueRef.
type refInfo struct{ uuid, name string }

// resolver turns references into uuids and names. It loads a class's
// records once (get_all_records), since a listing points at the same few
// objects over and over, and falls back to get_uuid when that is refused.
type resolver struct {
	s      *Session
	known  map[string]refInfo
	loaded map[string]bool
}

func newResolver(s *Session) *resolver {
	return &resolver{s: s, known: map[string]refInfo{}, loaded: map[string]bool{}}
}

// learn records the uuids and names of fetched records.
func (rs *resolver) learn(recs []*record) {
	for _, r := range recs {
		rs.known[r.ref] = refInfo{uuid: r.uuid(), name: r.nameLabel()}
	}
}

func (rs *resolver) lookup(ctx context.Context, class, ref string) (refInfo, bool) {
	if info, ok := rs.known[ref]; ok {
		return info, true
	}
	if class == "" || rs.s == nil {
		return refInfo{}, false
	}
	if !rs.loaded[class] {
		rs.loaded[class] = true
		if v, err := rs.s.Do(ctx, class+".get_all_records"); err == nil {
			for _, m := range v.Struct {
				u, _ := m.Value.Field("uuid")
				n, _ := m.Value.Field("name_label")
				rs.known[m.Name] = refInfo{uuid: u.Str, name: n.Str}
			}
			if info, ok := rs.known[ref]; ok {
				return info, true
			}
		}
	}
	v, err := rs.s.Do(ctx, class+".get_uuid", wire.String(ref))
	if err != nil {
		return refInfo{}, false
	}
	info := refInfo{uuid: v.Str}
	if method(class+".get_name_label") != nil {
		if n, err := rs.s.Do(ctx, class+".get_name_label", wire.String(ref)); err == nil {
			info.name = n.Str
		}
	}
	rs.known[ref] = info
	return info, true
}

// errorRefClasses are tried, in order, for a reference in an error whose
// parameter name does not say its class.
var errorRefClasses = []string{"VM", "host", "SR", "VDI", "VBD", "VIF", "network", "PIF", "PBD", "task", "pool", "Bond", "VLAN"}

// nameRef renders a reference in an error as "uuid (name)".
func (rs *resolver) nameRef(ctx context.Context, hint, ref string) string {
	var candidates []string
	for _, c := range classes() {
		if strings.EqualFold(c.API.Name, hint) || strings.EqualFold(c.Name, hint) {
			candidates = append(candidates, c.API.Name)
			break
		}
	}
	if len(candidates) == 0 {
		candidates = errorRefClasses
	}
	for _, class := range candidates {
		if info, ok := rs.lookup(ctx, class, ref); ok {
			if info.name != "" {
				return info.uuid + " (" + info.name + ")"
			}
			return info.uuid
		}
	}
	return ref
}

// notInDatabase is how xe shows a null or dangling reference.
const notInDatabase = "<not in database>"

// render formats a field value as xe prints it.
func (rs *resolver) render(ctx context.Context, f *xeField, r *record) string {
	v := r.raw(f.API.Name)
	if f.DerivedName {
		if xenapi.Ref(v.Str).IsNull() {
			return notInDatabase
		}
		if info, ok := rs.lookup(ctx, f.API.Type.Name, v.Str); ok {
			return info.name
		}
		return notInDatabase
	}
	return rs.value(ctx, f.API.Type, v)
}

func (rs *resolver) value(ctx context.Context, t *xenapi.Type, v wire.Value) string {
	switch t.Kind {
	case xenapi.TSet:
		parts := make([]string, 0, len(v.Array))
		for _, e := range v.Array {
			parts = append(parts, rs.value(ctx, t.Elem, e))
		}
		return strings.Join(parts, "; ")
	case xenapi.TMap:
		parts := make([]string, 0, len(v.Struct))
		for _, m := range v.Struct {
			parts = append(parts, rs.value(ctx, t.Key, wire.String(m.Name))+": "+rs.value(ctx, t.Elem, m.Value))
		}
		return strings.Join(parts, "; ")
	case xenapi.TRef:
		if xenapi.Ref(v.Str).IsNull() {
			return notInDatabase
		}
		if info, ok := rs.lookup(ctx, t.Name, v.Str); ok {
			return info.uuid
		}
		return v.Str
	case xenapi.TEnum:
		if t.Name == "vm_power_state" {
			// xe shows power states in lower case (halted, running) and
			// users filter with power-state=running.
			return strings.ToLower(v.Str)
		}
		return v.Str
	case xenapi.TOption:
		if v.Kind == wire.KindNil {
			return ""
		}
		return rs.value(ctx, t.Elem, v)
	case xenapi.TRecord:
		return "<record>"
	}
	return scalarString(v)
}

func scalarString(v wire.Value) string {
	switch v.Kind {
	case wire.KindInt:
		return strconv.FormatInt(v.Int, 10)
	case wire.KindFloat:
		return strconv.FormatFloat(v.Float, 'f', -1, 64)
	case wire.KindBool:
		return strconv.FormatBool(v.Bool)
	case wire.KindNil:
		return ""
	case wire.KindArray, wire.KindStruct:
		return fmt.Sprintf("<%s>", v.Kind)
	}
	return v.Str
}

// fetchAll returns every object of the class, with the class's own
// filters (a template list is VMs with is-a-template=true) not yet applied.
func fetchAll(ctx context.Context, s *Session, rs *resolver, c *xeClass) ([]*record, error) {
	v, err := s.Do(ctx, c.API.Name+".get_all_records")
	if err != nil {
		return nil, err
	}
	recs := make([]*record, 0, len(v.Struct))
	for _, m := range v.Struct {
		recs = append(recs, &record{class: c, ref: m.Name, v: m.Value})
	}
	rs.learn(recs)
	return recs, nil
}

// fetchByUUID returns one object.
func fetchByUUID(ctx context.Context, s *Session, rs *resolver, c *xeClass, uuid string) (*record, error) {
	ref, err := s.Do(ctx, c.API.Name+".get_by_uuid", wire.String(uuid))
	if err != nil {
		return nil, err
	}
	return fetchByRef(ctx, s, rs, c, ref.Str)
}

func fetchByRef(ctx context.Context, s *Session, rs *resolver, c *xeClass, ref string) (*record, error) {
	v, err := s.Do(ctx, c.API.Name+".get_record", wire.String(ref))
	if err != nil {
		return nil, err
	}
	r := &record{class: c, ref: ref, v: v}
	rs.learn([]*record{r})
	return r, nil
}

// filterSpec is one name=value filter of a list or selector.
type filterSpec struct {
	field *xeField
	key   string // map key, for map:key=value
	set   bool   // set:contains=value
	value string
	not   bool // event-wait's name=/=value
}

// parseFilter reads a filter argument against the class's fields: plain
// field=value, map-field:key=value, or set-field:contains=value.
func parseFilter(c *xeClass, p Param) (*filterSpec, error) {
	if f := c.field(p.Name); f != nil {
		return &filterSpec{field: f, value: p.Value}, nil
	}
	if base, rest, ok := strings.Cut(p.Name, ":"); ok {
		f := c.field(base)
		switch {
		case f != nil && f.Kind == kMap && rest != "":
			return &filterSpec{field: f, key: rest, value: p.Value}, nil
		case f != nil && f.Kind == kSet && rest == "contains":
			return &filterSpec{field: f, set: true, value: p.Value}, nil
		case f != nil && f.Kind == kSet:
			return nil, failf("Invalid syntax for set filtering (should be %s:contains=value)", base)
		}
	}
	return nil, failf("Parameter '%s' is not a field of the %s class", p.Name, c.API.Name)
}

func (fs *filterSpec) match(ctx context.Context, rs *resolver, r *record) bool {
	f := fs.field
	eq := func(a, b string) bool {
		if f.API.Type.Kind == xenapi.TEnum || f.API.Type.Kind == xenapi.TBool {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	var ok bool
	switch {
	case fs.key != "":
		for _, m := range r.raw(f.API.Name).Struct {
			if m.Name == fs.key {
				ok = eq(rs.value(ctx, f.API.Type.Elem, m.Value), fs.value)
				break
			}
		}
	case fs.set:
		for _, e := range r.raw(f.API.Name).Array {
			if eq(rs.value(ctx, f.API.Type.Elem, e), fs.value) {
				ok = true
				break
			}
		}
	default:
		ok = eq(rs.render(ctx, f, r), fs.value)
	}
	return ok != fs.not
}

// filterRecords keeps the records matching every filter.
func filterRecords(ctx context.Context, rs *resolver, recs []*record, filters []*filterSpec) []*record {
	var out []*record
next:
	for _, r := range recs {
		for _, f := range filters {
			if !f.match(ctx, rs, r) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// classFilters parses a class's fixed filters (they are known to be valid).
func classFilters(c *xeClass) []*filterSpec {
	var out []*filterSpec
	for _, p := range c.Filters {
		if f, err := parseFilter(c, p); err == nil {
			out = append(out, f)
		}
	}
	return out
}
