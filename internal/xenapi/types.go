// Package xenapi holds the hand-written runtime that the generated XenAPI
// model (package api) is built on: references, the error type, type
// descriptors, class/field/method descriptors and the typed conversions
// between wire values and Go values.
package xenapi

import (
	"strings"
	"time"

	"github.com/xenith/xenith/internal/wire"
)

// Ref is an opaque object reference, "OpaqueRef:<uuid>" on the wire.
type Ref string

// NullRef is XenAPI's null reference.
const NullRef Ref = "OpaqueRef:NULL"

// IsNull reports whether r refers to nothing.
func (r Ref) IsNull() bool { return r == NullRef || r == "" }

// TypeKind classifies a XenAPI type.
type TypeKind uint8

const (
	TString TypeKind = iota
	TInt
	TFloat
	TBool
	TDateTime
	TEnum
	TRef
	TSet
	TMap
	TRecord
	TOption
	TVoid
)

// Type describes a XenAPI type as the schema writes it.
type Type struct {
	Kind TypeKind
	Name string // enum name, or class name for refs and records
	Elem *Type  // set element, map value, option payload
	Key  *Type  // map key
	Enum []string
	Text string // the schema's spelling, e.g. "(string -> string) map"
}

func (t *Type) String() string { return t.Text }

// Qualifier says who may write a field.
type Qualifier uint8

const (
	RW            Qualifier = iota // clients may set it
	ROConstructor                  // set only by create
	RORuntime                      // set only by the server
)

// Lifecycle is the state of a message or field in the datamodel.
type Lifecycle uint8

const (
	Published Lifecycle = iota
	Deprecated
	Prototyped
	Removed
)

// Role is one of the XenAPI RBAC roles, as a bit.
type Role uint16

// The roles, from most to least powerful. client-cert is xapi's internal
// role for certificate-authenticated pool members.
const (
	RolePoolAdmin Role = 1 << iota
	RolePoolOperator
	RoleVMPowerAdmin
	RoleVMAdmin
	RoleVMOperator
	RoleReadOnly
	RoleClientCert
)

// RoleNames maps the schema's role names to bits.
var RoleNames = map[string]Role{
	"pool-admin":     RolePoolAdmin,
	"pool-operator":  RolePoolOperator,
	"vm-power-admin": RoleVMPowerAdmin,
	"vm-admin":       RoleVMAdmin,
	"vm-operator":    RoleVMOperator,
	"read-only":      RoleReadOnly,
	"client-cert":    RoleClientCert,
}

// Record is implemented by every generated class record.
type Record interface {
	XenClass() *Class
	// Clone returns a shallow copy: records are immutable once stored, so a
	// write clones, mutates the copy and publishes it.
	Clone() Record
	// Encode writes the record as a XenAPI struct.
	Encode(e wire.Encoder)
	// Decode sets the fields present in a struct value; unknown members are
	// ignored as xapi does.
	Decode(v wire.Value) error
	RecordUUID() string
}

// Class describes one XenAPI class.
type Class struct {
	Name      string // as the API spells it: "VM", "host_cpu"
	Lower     string // lower-cased, as in event.from's valid_ref_counts
	Fields    []*Field
	byName    map[string]*Field
	New       func() Record // a record with the schema's defaults
	Stored    bool          // objects of this class live in the store
	HasUUID   bool
	NameLabel *Field // nil when the class has no name_label
	Messages  []string
	Lifecycle Lifecycle
}

// Field returns the named field or nil.
func (c *Class) Field(name string) *Field {
	if c.byName == nil {
		m := make(map[string]*Field, len(c.Fields))
		for _, f := range c.Fields {
			m[f.Name] = f
		}
		c.byName = m
	}
	return c.byName[name]
}

// Init precomputes lookups; generated code calls it once per class.
func (c *Class) Init() {
	c.Field("")
	for _, f := range c.Fields {
		f.Class = c
	}
}

// Field describes one field of a class and gives typed access to it.
type Field struct {
	Class     *Class
	Name      string
	Type      *Type
	Qualifier Qualifier
	Default   string // schema spelling; empty when none
	Lifecycle Lifecycle
	Get       func(r Record, e wire.Encoder)
	// Set decodes v into the field of r (a private clone); a type mismatch
	// returns an error wrapping ErrType.
	Set func(r Record, v wire.Value) error
	// Refs and SetRefs exist for reference-valued fields (ref and ref set);
	// the store uses them to keep bound fields consistent.
	Refs    func(r Record) []Ref
	SetRefs func(r Record, refs []Ref)
}

// Param is one parameter of a message.
type Param struct {
	Name string
	Type *Type
}

// Method describes one XenAPI message as the schema declares it.
type Method struct {
	Name      string // "VM.start"
	Class     string
	Message   string
	Params    []Param
	Result    *Type // nil for void
	Roles     Role
	Implicit  bool
	Lifecycle Lifecycle
	Errors    []string
}

// HasSession reports whether the first parameter is a session reference.
func (m *Method) HasSession() bool {
	return len(m.Params) > 0 && m.Params[0].Type.Kind == TRef && m.Params[0].Type.Name == "session"
}

// LowerClass returns a class name as valid_ref_counts spells it.
func LowerClass(name string) string { return strings.ToLower(name) }

// Epoch is XenAPI's "never" datetime (19700101T00:00:00Z), the default of
// datetime fields.
var Epoch = time.Unix(0, 0).UTC()
