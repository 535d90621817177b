package xecli

import (
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/xenapi"
)

// The xe view of the datamodel: every schema class with uuids and
// get_all_records becomes an xe class (vm, host, sr, vdi, host-cpu...), its
// fields spelled with dashes and marked RO/RW, set (S) or map (M), derived
// from the generated descriptors rather than written out per class.

type fieldKind uint8

const (
	kScalar fieldKind = iota
	kSet
	kMap
)

// xeField is one field as xe shows it.
type xeField struct {
	Name     string        // xe spelling: name-label, VCPUs-max, vm-uuid
	API      *xenapi.Field // the schema field (for a derived field: the ref field)
	Kind     fieldKind
	Writable bool // set_/add_to_/add_ exists for it
	// DerivedName marks vm-name-label and friends: the name-label of the
	// object the ref field API points at.
	DerivedName bool
	Deprecated  bool
}

// marker is xe's access annotation.
func (f *xeField) marker() string {
	switch {
	case f.Kind == kSet && f.Writable:
		return "(SRW)"
	case f.Kind == kSet:
		return "(SRO)"
	case f.Kind == kMap && f.Writable:
		return "(MRW)"
	case f.Kind == kMap:
		return "(MRO)"
	case f.Writable:
		return "( RW)"
	}
	return "( RO)"
}

// label is the field name as printed in records.
func (f *xeField) label() string {
	s := f.Name + " " + f.marker()
	if f.Deprecated {
		s += " [DEPRECATED]"
	}
	return s
}

// xeClass is an xe object class: a schema class, or a view of one
// (template and snapshot are VMs).
type xeClass struct {
	Name     string // xe spelling: vm, host-cpu
	Plural   string // for help texts
	API      *xenapi.Class
	Filters  []Param  // fixed filters of a view
	Defaults []string // fields <class>-list shows without params=
	Fields   []*xeField
	byName   map[string]*xeField
}

func (c *xeClass) field(name string) *xeField { return c.byName[name] }

// fieldNames lists the xe field names in record order.
func (c *xeClass) fieldNames() []string {
	out := make([]string, len(c.Fields))
	for i, f := range c.Fields {
		out[i] = f.Name
	}
	return out
}

// xeAliases are the classes xe names differently from the schema.
var xeAliases = map[string]string{
	"pool_patch":   "patch",
	"pool_update":  "update",
	"VM_appliance": "appliance",
	"DR_task":      "drtask",
}

// listDefaults are the fields <class>-list shows by default, as in xe;
// classes not listed show uuid, name-label and name-description (or every
// field when they have no name).
var listDefaults = map[string][]string{
	"vm":               {"uuid", "name-label", "power-state"},
	"template":         {"uuid", "name-label", "name-description"},
	"snapshot":         {"uuid", "name-label", "name-description", "snapshot-of", "snapshot-time"},
	"pool":             {"uuid", "name-label", "name-description", "master", "default-SR"},
	"pif":              {"uuid", "device", "VLAN", "MAC", "network-uuid", "currently-attached", "host-uuid"},
	"bond":             {"uuid", "master", "slaves"},
	"vlan":             {"uuid", "tagged-PIF", "untagged-PIF", "tag"},
	"tunnel":           {"uuid", "transport-PIF", "access-PIF", "status"},
	"vif":              {"uuid", "device", "vm-uuid", "network-uuid"},
	"network":          {"uuid", "name-label", "name-description", "bridge"},
	"console":          {"uuid", "vm-uuid", "vm-name-label", "protocol", "location"},
	"host-cpu":         {"uuid", "number", "vendor", "speed", "utilisation"},
	"vdi":              {"uuid", "name-label", "name-description", "virtual-size", "read-only", "sharable", "sr-uuid"},
	"vbd":              {"uuid", "vm-uuid", "vm-name-label", "vdi-uuid", "device", "empty"},
	"sr":               {"uuid", "name-label", "name-description", "host", "type", "content-type"},
	"sm":               {"uuid", "type", "name-label", "name-description", "vendor", "copyright", "configuration"},
	"pbd":              {"uuid", "host-uuid", "sr-uuid", "device-config", "currently-attached"},
	"task":             {"uuid", "name-label", "name-description", "status", "progress"},
	"subject":          {"uuid", "subject-identifier", "other-config", "roles"},
	"role":             {"uuid", "name-label", "name-description", "subroles"},
	"vm-guest-metrics": {"uuid", "os-version", "PV-drivers-version", "networks"},
}

var (
	classesOnce sync.Once
	xeClasses   []*xeClass
	classByXe   map[string]*xeClass
	classByAPI  map[string]*xeClass // schema name -> the class's own xe class
	methodSet   map[string]*xenapi.Method
)

// classes builds the xe classes from the generated schema descriptors.
func classes() []*xeClass {
	classesOnce.Do(buildClasses)
	return xeClasses
}

func lookupClass(name string) *xeClass {
	classesOnce.Do(buildClasses)
	return classByXe[name]
}

// classOfAPI returns the xe class of a schema class name ("VM" -> vm).
func classOfAPI(name string) *xeClass {
	classesOnce.Do(buildClasses)
	return classByAPI[name]
}

func method(name string) *xenapi.Method {
	classesOnce.Do(buildClasses)
	return methodSet[name]
}

func buildClasses() {
	methodSet = make(map[string]*xenapi.Method, len(api.Methods))
	for _, m := range api.Methods {
		methodSet[m.Name] = m
	}
	classByXe = map[string]*xeClass{}
	classByAPI = map[string]*xeClass{}
	apiByName := map[string]*xenapi.Class{}
	for _, c := range api.Classes {
		apiByName[c.Name] = c
	}
	for _, c := range api.Classes {
		if !c.HasUUID || methodSet[c.Name+".get_all_records"] == nil || c.Lifecycle == xenapi.Removed {
			continue
		}
		name := xeAliases[c.Name]
		if name == "" {
			name = strings.ReplaceAll(strings.ToLower(c.Name), "_", "-")
		}
		xc := newXeClass(name, c, apiByName)
		xeClasses = append(xeClasses, xc)
		classByAPI[c.Name] = xc
		if c.Name == "VM" {
			tmpl := newXeClass("template", c, apiByName)
			tmpl.Filters = []Param{{"is-a-template", "true"}, {"is-a-snapshot", "false"}}
			snap := newXeClass("snapshot", c, apiByName)
			snap.Filters = []Param{{"is-a-snapshot", "true"}}
			xc.Filters = []Param{{"is-a-template", "false"}}
			xeClasses = append(xeClasses, tmpl, snap)
		}
	}
	for _, c := range xeClasses {
		classByXe[c.Name] = c
		c.Defaults = listDefaults[c.Name]
		if c.Defaults == nil {
			c.Defaults = []string{"uuid"}
			for _, n := range []string{"name-label", "name-description"} {
				if c.field(n) != nil {
					c.Defaults = append(c.Defaults, n)
				}
			}
			if len(c.Defaults) == 1 {
				c.Defaults = nil // every field
			}
		}
		// Keep only defaults that exist: the table above is xe's, and a
		// schema without one of its fields must not break the list.
		c.Defaults = slices.DeleteFunc(c.Defaults, func(n string) bool { return c.field(n) == nil })
	}
	sort.Slice(xeClasses, func(i, j int) bool { return xeClasses[i].Name < xeClasses[j].Name })
}

func newXeClass(name string, c *xenapi.Class, apiByName map[string]*xenapi.Class) *xeClass {
	xc := &xeClass{Name: name, Plural: name + "s", API: c, byName: map[string]*xeField{}}
	if name == "patch" {
		xc.Plural = "patches"
	}
	add := func(f *xeField) {
		if xc.byName[f.Name] != nil {
			return
		}
		xc.Fields = append(xc.Fields, f)
		xc.byName[f.Name] = f
	}
	for _, f := range c.Fields {
		if f.Lifecycle == xenapi.Removed {
			continue
		}
		xf := &xeField{Name: strings.ReplaceAll(f.Name, "_", "-"), API: f, Deprecated: f.Lifecycle == xenapi.Deprecated}
		switch f.Type.Kind {
		case xenapi.TSet:
			xf.Kind = kSet
			xf.Writable = methodSet[c.Name+".add_"+f.Name] != nil
		case xenapi.TMap:
			xf.Kind = kMap
			xf.Writable = methodSet[c.Name+".add_to_"+f.Name] != nil
		default:
			xf.Writable = methodSet[c.Name+".set_"+f.Name] != nil
		}
		if f.Type.Kind == xenapi.TRef && strings.EqualFold(f.Name, f.Type.Name) {
			// VIF.VM, VDI.SR, PBD.host: xe shows the object's uuid as
			// vm-uuid, sr-uuid, host-uuid and adds its name-label.
			base := strings.ReplaceAll(strings.ToLower(f.Name), "_", "-")
			xf.Name = base + "-uuid"
			add(xf)
			if t := apiByName[f.Type.Name]; t != nil && t.Field("name_label") != nil {
				add(&xeField{Name: base + "-name-label", API: f, DerivedName: true})
			}
			continue
		}
		add(xf)
	}
	return xc
}
