// Command xenapigen generates package api (internal/api) from the XenAPI
// schema: record types, enums, error codes, class and field descriptors, the
// method table and bound-field relations. Run it through `go generate ./...`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

type schema struct {
	Classes   []class             `json:"classes"`
	Relations [][2][2]string      `json:"relations"`
	Errors    map[string][]string `json:"errors"`
}

type lifecycle struct {
	State string `json:"state"`
}

type class struct {
	Name      string    `json:"name"`
	Lifecycle lifecycle `json:"lifecycle"`
	Fields    []field   `json:"fields"`
	Messages  []message `json:"messages"`
	Enums     []enum    `json:"enums"`
}

type field struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Qualifier string    `json:"qualifier"`
	Default   *string   `json:"default"`
	Lifecycle lifecycle `json:"lifecycle"`
}

type message struct {
	Name      string    `json:"name"`
	Params    []param   `json:"params"`
	Result    string    `json:"result"`
	Errors    []string  `json:"errors"`
	Roles     []string  `json:"roles"`
	Implicit  bool      `json:"implicit"`
	Lifecycle lifecycle `json:"lifecycle"`
}

type param struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type enum struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// typ is a parsed schema type.
type typ struct {
	kind string // string int float bool datetime enum ref set map record option void
	name string
	elem *typ
	key  *typ
	text string
}

func parseType(s string) (*typ, error) {
	s = strings.TrimSpace(s)
	t := &typ{text: s}
	switch {
	case s == "void":
		t.kind = "void"
	case s == "an event batch":
		// event.from's result: a struct of events, valid_ref_counts and token.
		t.kind, t.name = "record", "event_batch"
	case s == "string" || s == "int" || s == "float" || s == "bool" || s == "datetime":
		t.kind = s
	case strings.HasPrefix(s, "enum ") && !strings.Contains(s[5:], " "):
		t.kind, t.name = "enum", strings.TrimPrefix(s, "enum ")
	case strings.HasPrefix(s, "(") && strings.HasSuffix(s, ") map"):
		inner := s[1 : len(s)-len(") map")]
		depth := 0
		for i := 0; i < len(inner); i++ {
			switch inner[i] {
			case '(':
				depth++
			case ')':
				depth--
			case '-':
				if depth == 0 && strings.HasPrefix(inner[i:], "-> ") && i > 0 {
					k, err := parseType(inner[:i])
					if err != nil {
						return nil, err
					}
					v, err := parseType(inner[i+3:])
					if err != nil {
						return nil, err
					}
					t.kind, t.key, t.elem = "map", k, v
					return t, nil
				}
			}
		}
		return nil, fmt.Errorf("bad map type %q", s)
	default:
		i := strings.LastIndexByte(s, ' ')
		if i < 0 {
			return nil, fmt.Errorf("unknown type %q", s)
		}
		head, tail := s[:i], s[i+1:]
		switch tail {
		case "set", "option":
			e, err := parseType(head)
			if err != nil {
				return nil, err
			}
			t.kind, t.elem = tail, e
		case "ref", "record":
			t.kind, t.name = tail, head
		default:
			return nil, fmt.Errorf("unknown type %q", s)
		}
	}
	return t, nil
}

var acronyms = map[string]string{}

func init() {
	for _, a := range strings.Fields(`vm vdi vbd vif pif pbd sr sm uuid cpu id ip ipv4 ipv6 mac mtu api ha url
		vlan usb gpu pci hvm pv os nbd tls ssl uefi pvs sdn dr vtpm vgpu pgpu pusb vusb numa iscsi iqn bios
		db http https json xml dns dhcp gre vmpp vmss wlb sriov igmp crl ca rbac sid psr xsm vcpus cpuid
		rrd rrds pvh smbios ssh nvme tpm sched vm_appliance dom`) {
		acronyms[a] = strings.ToUpper(a)
	}
	acronyms["vcpus"] = "VCPUs"
	acronyms["rrds"] = "RRDs"
	acronyms["ipv4"] = "IPv4"
	acronyms["ipv6"] = "IPv6"
	acronyms["sched"] = "Sched"
	acronyms["dom"] = "Dom"
}

// goName turns a XenAPI identifier into an exported Go identifier.
func goName(s string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '_' || r == '-' || r == ' ' || r == '.' || r == ':' || r == '/' }) {
		if a, ok := acronyms[strings.ToLower(part)]; ok && strings.ToLower(part) == part {
			b.WriteString(a)
			continue
		}
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	out := b.String()
	if out == "" || !unicode.IsLetter([]rune(out)[0]) {
		out = "X" + out
	}
	return out
}

type gen struct {
	s        schema
	enums    map[string]*enum // by schema name
	enumGo   map[string]string
	classGo  map[string]string
	classes  map[string]*class
	types    []*typ
	typeIdx  map[string]int
	helpers  bytes.Buffer // dec/enc helper vars and funcs
	helperOK map[string]bool
}

func (g *gen) goType(t *typ) string {
	switch t.kind {
	case "string":
		return "string"
	case "int":
		return "int64"
	case "float":
		return "float64"
	case "bool":
		return "bool"
	case "datetime":
		return "time.Time"
	case "enum":
		return g.enumGo[t.name]
	case "ref":
		return "xenapi.Ref"
	case "set":
		return "[]" + g.goType(t.elem)
	case "map":
		return "xenapi.Map[" + g.goType(t.key) + ", " + g.goType(t.elem) + "]"
	case "option":
		return g.goType(t.elem)
	}
	panic("no Go type for " + t.text)
}

func (g *gen) supported(t *typ) bool {
	switch t.kind {
	case "record", "void":
		return false
	case "enum":
		_, ok := g.enumGo[t.name]
		return ok
	case "set", "option":
		return g.supported(t.elem)
	case "map":
		return g.supported(t.key) && g.supported(t.elem)
	}
	return true
}

// ident makes a stable helper name from a type's spelling.
func ident(prefix string, t *typ) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range t.text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// decoder returns an expression of type func(wire.Value) (T, error).
func (g *gen) decoder(t *typ) string {
	switch t.kind {
	case "string":
		return "xenapi.DecString"
	case "int":
		return "xenapi.DecInt"
	case "float":
		return "xenapi.DecFloat"
	case "bool":
		return "xenapi.DecBool"
	case "datetime":
		return "xenapi.DecTime"
	case "ref":
		return "xenapi.DecRef"
	case "option":
		return g.decoder(t.elem)
	}
	name := ident("dec_", t)
	if !g.helperOK[name] {
		g.helperOK[name] = true
		var expr string
		switch t.kind {
		case "enum":
			expr = "xenapi.DecEnum(valid" + g.enumGo[t.name] + ")"
		case "set":
			expr = "xenapi.DecSet(" + g.decoder(t.elem) + ")"
		case "map":
			if t.key.kind == "string" && t.elem.kind == "string" {
				expr = "xenapi.DecStringMap"
			} else {
				expr = "xenapi.DecMap(" + g.keyDecoder(t.key) + ", " + g.decoder(t.elem) + ")"
			}
		}
		fmt.Fprintf(&g.helpers, "var %s = %s\n", name, expr)
	}
	return name
}

func (g *gen) keyDecoder(t *typ) string {
	switch t.kind {
	case "string":
		return "xenapi.KeyString"
	case "ref":
		return "xenapi.KeyRef"
	case "int":
		return "xenapi.KeyInt"
	case "float":
		return "xenapi.KeyFloat"
	case "enum":
		return "xenapi.KeyEnum(valid" + g.enumGo[t.name] + ")"
	}
	panic("unsupported map key " + t.text)
}

func (g *gen) keyOf(t *typ) string {
	switch t.kind {
	case "string":
		return "xenapi.KeyStrOf[string]"
	case "ref":
		return "xenapi.KeyStrOf[xenapi.Ref]"
	case "enum":
		return "xenapi.KeyStrOf[" + g.enumGo[t.name] + "]"
	case "int":
		return "xenapi.KeyIntOf"
	case "float":
		return "xenapi.KeyFloatOf"
	}
	panic("unsupported map key " + t.text)
}

// encoder returns an expression of type func(wire.Encoder, T).
func (g *gen) encoder(t *typ) string {
	switch t.kind {
	case "string":
		return "xenapi.EncStr[string]"
	case "enum":
		return "xenapi.EncStr[" + g.enumGo[t.name] + "]"
	case "int":
		return "xenapi.EncInt"
	case "float":
		return "xenapi.EncFloat"
	case "bool":
		return "xenapi.EncBool"
	case "datetime":
		return "xenapi.EncTime"
	case "ref":
		return "xenapi.EncRef"
	case "option":
		return g.encoder(t.elem)
	}
	name := ident("enc_", t)
	if !g.helperOK[name] {
		g.helperOK[name] = true
		switch t.kind {
		case "set":
			fmt.Fprintf(&g.helpers, "func %s(e wire.Encoder, v %s) { xenapi.EncSet(e, v, %s) }\n", name, g.goType(t), g.encoder(t.elem))
		case "map":
			if t.key.kind == "string" && t.elem.kind == "string" {
				fmt.Fprintf(&g.helpers, "func %s(e wire.Encoder, v %s) { xenapi.EncStringMap(e, v) }\n", name, g.goType(t))
			} else {
				fmt.Fprintf(&g.helpers, "func %s(e wire.Encoder, v %s) { xenapi.EncMap(e, v, %s, %s) }\n", name, g.goType(t), g.keyOf(t.key), g.encoder(t.elem))
			}
		}
	}
	return name
}

// encodeStmt writes value expr v of type t to encoder e.
func (g *gen) encodeStmt(t *typ, v string) string {
	switch t.kind {
	case "string":
		return "e.String(" + v + ")"
	case "enum":
		return "e.String(string(" + v + "))"
	case "int":
		return "e.Int(" + v + ")"
	case "float":
		return "e.Float(" + v + ")"
	case "bool":
		return "e.Bool(" + v + ")"
	case "datetime":
		return "e.DateTime(" + v + ")"
	}
	return g.encoder(t) + "(e, " + v + ")"
}

func (g *gen) typeVar(t *typ) string {
	if i, ok := g.typeIdx[t.text]; ok {
		return fmt.Sprintf("typ%d", i)
	}
	if t.elem != nil {
		g.typeVar(t.elem)
	}
	if t.key != nil {
		g.typeVar(t.key)
	}
	g.typeIdx[t.text] = len(g.types)
	g.types = append(g.types, t)
	return fmt.Sprintf("typ%d", len(g.types)-1)
}

func (g *gen) typeLiteral(t *typ) string {
	kinds := map[string]string{"string": "TString", "int": "TInt", "float": "TFloat", "bool": "TBool",
		"datetime": "TDateTime", "enum": "TEnum", "ref": "TRef", "set": "TSet", "map": "TMap",
		"record": "TRecord", "option": "TOption", "void": "TVoid"}
	var b strings.Builder
	fmt.Fprintf(&b, "{Kind: xenapi.%s, Text: %q", kinds[t.kind], t.text)
	if t.name != "" {
		fmt.Fprintf(&b, ", Name: %q", t.name)
	}
	if t.kind == "enum" {
		if e, ok := g.enums[t.name]; ok {
			fmt.Fprintf(&b, ", Enum: %#v", e.Values)
		}
	}
	if t.elem != nil {
		fmt.Fprintf(&b, ", Elem: typ%d", g.typeIdx[t.elem.text])
	}
	if t.key != nil {
		fmt.Fprintf(&b, ", Key: typ%d", g.typeIdx[t.key.text])
	}
	b.WriteString("}")
	return b.String()
}

// defaultExpr renders the schema default of a field as a Go expression, or
// "" when the Go zero value already is the default.
func (g *gen) defaultExpr(t *typ, d *string) (string, error) {
	if d == nil {
		switch t.kind {
		case "ref":
			return "xenapi.NullRef", nil
		case "datetime":
			return "xenapi.Epoch", nil
		}
		return "", nil
	}
	s := *d
	switch t.kind {
	case "string":
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		if s == "" {
			return "", nil
		}
		return strconv.Quote(s), nil
	case "int":
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return "", fmt.Errorf("bad int default %q", s)
		}
		if s == "0" {
			return "", nil
		}
		return s, nil
	case "float":
		s = strings.TrimSuffix(s, ".")
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", fmt.Errorf("bad float default %q", s)
		}
		if f == 0 {
			return "", nil
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case "bool":
		if s == "false" {
			return "", nil
		}
		return s, nil
	case "datetime":
		if s == "19700101T00:00:00Z" {
			return "xenapi.Epoch", nil
		}
		return "", fmt.Errorf("unhandled datetime default %q", s)
	case "enum":
		e := g.enums[t.name]
		for _, v := range e.Values {
			if v == s {
				return g.enumGo[t.name] + goName(v), nil
			}
		}
		return "", fmt.Errorf("default %q not in enum %s", s, t.name)
	case "ref":
		if s == "OpaqueRef:NULL" || s == "Null" {
			return "xenapi.NullRef", nil
		}
		return "xenapi.Ref(" + strconv.Quote(s) + ")", nil
	case "option":
		if s == "Null" || s == "None" {
			return "", nil
		}
		return g.defaultExpr(t.elem, d)
	case "set":
		inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}"))
		if inner == "" {
			return "", nil
		}
		var elems []string
		for _, p := range strings.Split(inner, ",") {
			p = strings.TrimSpace(p)
			x, err := g.defaultExpr(t.elem, &p)
			if err != nil {
				return "", err
			}
			if x == "" {
				x = "0"
			}
			elems = append(elems, x)
		}
		return g.goType(t) + "{" + strings.Join(elems, ", ") + "}", nil
	case "map":
		inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}"))
		if inner == "" {
			return "", nil
		}
		var elems []string
		for _, p := range strings.Split(inner, ",") {
			kv := strings.SplitN(p, "->", 2)
			k, v := strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1])
			kx, err := g.defaultExpr(t.key, &k)
			if err != nil {
				return "", err
			}
			vx, err := g.defaultExpr(t.elem, &v)
			if err != nil {
				return "", err
			}
			if vx == "" {
				vx = `""`
			}
			elems = append(elems, k+"\x00{Key: "+kx+", Value: "+vx+"}")
		}
		// A Map literal must be in key order.
		sort.Strings(elems)
		for i, e := range elems {
			_, elems[i], _ = strings.Cut(e, "\x00")
		}
		return g.goType(t) + "{" + strings.Join(elems, ", ") + "}", nil
	}
	return "", fmt.Errorf("no default for type %s", t.text)
}

func lifecycleConst(s string) string {
	switch s {
	case "Deprecated_s":
		return "xenapi.Deprecated"
	case "Removed_s":
		return "xenapi.Removed"
	case "Prototyped_s":
		return "xenapi.Prototyped"
	}
	return "xenapi.Published"
}

func qualifierConst(s string) string {
	switch s {
	case "RW":
		return "xenapi.RW"
	case "RO/constructor":
		return "xenapi.ROConstructor"
	}
	return "xenapi.RORuntime"
}

const header = "// Code generated by xenapigen from api/schema.json; DO NOT EDIT.\n\n"

func main() {
	schemaPath := flag.String("schema", "api/schema.json", "XenAPI schema")
	out := flag.String("out", "internal/api", "output directory")
	flag.Parse()
	raw, err := os.ReadFile(*schemaPath)
	if err != nil {
		log.Fatal(err)
	}
	g := &gen{enums: map[string]*enum{}, enumGo: map[string]string{}, classGo: map[string]string{},
		classes: map[string]*class{}, typeIdx: map[string]int{}, helperOK: map[string]bool{}}
	if err := json.Unmarshal(raw, &g.s); err != nil {
		log.Fatal(err)
	}
	used := map[string]string{}
	claim := func(goID, what string) {
		if prev, ok := used[goID]; ok {
			log.Fatalf("Go name %s used by both %s and %s", goID, prev, what)
		}
		used[goID] = what
	}
	for i := range g.s.Classes {
		c := &g.s.Classes[i]
		g.classes[c.Name] = c
		g.classGo[c.Name] = goName(c.Name)
		claim(goName(c.Name), "class "+c.Name)
		for j := range c.Enums {
			e := &c.Enums[j]
			if _, dup := g.enums[e.Name]; dup {
				continue
			}
			g.enums[e.Name] = e
			n := goName(e.Name)
			if _, clash := used[n]; clash {
				n += "Enum"
			}
			claim(n, "enum "+e.Name)
			g.enumGo[e.Name] = n
		}
	}
	files := map[string]string{}
	files["enums_gen.go"] = g.genEnums()
	files["errors_gen.go"] = g.genErrors()
	files["classes_gen.go"] = g.genClasses()
	files["methods_gen.go"] = g.genMethods()
	files["types_gen.go"] = g.genTypes()
	files["helpers_gen.go"] = header + "package api\n\nimport (\n\"github.com/xenith/xenith/internal/wire\"\n\"github.com/xenith/xenith/internal/xenapi\"\n)\n\n" + g.helpers.String() + "\nvar _ wire.Encoder\n"
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, src := range files {
		formatted, err := format.Source([]byte(src))
		if err != nil {
			_ = os.WriteFile(filepath.Join(*out, name+".broken"), []byte(src), 0o644)
			log.Fatalf("%s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(*out, name), formatted, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func sortedEnumNames(g *gen) []string {
	names := make([]string, 0, len(g.enums))
	for n := range g.enums {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (g *gen) genEnums() string {
	var b strings.Builder
	b.WriteString(header + "package api\n\n")
	for _, n := range sortedEnumNames(g) {
		e := g.enums[n]
		gn := g.enumGo[n]
		fmt.Fprintf(&b, "// %s is the XenAPI enum %s.\ntype %s string\n\nconst (\n", gn, n, gn)
		seen := map[string]bool{}
		for _, v := range e.Values {
			id := gn + goName(v)
			if seen[id] {
				log.Fatalf("enum %s: duplicate Go name %s", n, id)
			}
			seen[id] = true
			fmt.Fprintf(&b, "%s %s = %q\n", id, gn, v)
		}
		b.WriteString(")\n\n")
		fmt.Fprintf(&b, "var valid%s = map[string]%s{\n", gn, gn)
		for _, v := range e.Values {
			fmt.Fprintf(&b, "%q: %s,\n", v, gn+goName(v))
		}
		b.WriteString("}\n\n")
		fmt.Fprintf(&b, "// Parse%s returns the enum value for s.\nfunc Parse%s(s string) (%s, bool) { v, ok := valid%s[s]; return v, ok }\n\n", gn, gn, gn, gn)
	}
	return b.String()
}

func (g *gen) genErrors() string {
	var b strings.Builder
	b.WriteString(header + "package api\n\n// XenAPI error codes.\nconst (\n")
	codes := make([]string, 0, len(g.s.Errors))
	for c := range g.s.Errors {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "Err%s = %q\n", goName(strings.ToLower(c)), c)
	}
	b.WriteString(")\n\n// ErrorParams lists the parameter names of each error code.\nvar ErrorParams = map[string][]string{\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "%q: %#v,\n", c, g.s.Errors[c])
	}
	b.WriteString("}\n")
	return b.String()
}

func hasMessage(c *class, name string) bool {
	for _, m := range c.Messages {
		if m.Name == name {
			return true
		}
	}
	return false
}

func (g *gen) genClasses() string {
	var b strings.Builder
	b.WriteString(header + "package api\n\nimport (\n\"time\"\n\n\"github.com/xenith/xenith/internal/wire\"\n\"github.com/xenith/xenith/internal/xenapi\"\n)\n\n")
	var classVars []string
	for i := range g.s.Classes {
		c := &g.s.Classes[i]
		gn := g.classGo[c.Name]
		type fld struct {
			f  field
			t  *typ
			gn string
		}
		var fs []fld
		names := map[string]bool{"XenClass": true, "Clone": true, "Encode": true, "Decode": true, "RecordUUID": true}
		for _, f := range c.Fields {
			t, err := parseType(f.Type)
			if err != nil {
				log.Fatalf("%s.%s: %v", c.Name, f.Name, err)
			}
			if !g.supported(t) {
				continue
			}
			n := goName(f.Name)
			if names[n] {
				log.Fatalf("%s: duplicate Go field name %s", c.Name, n)
			}
			names[n] = true
			fs = append(fs, fld{f, t, n})
		}
		if len(fs) == 0 {
			continue
		}
		stored := hasMessage(c, "get_record") || hasMessage(c, "get_by_uuid")
		fmt.Fprintf(&b, "// %s is a record of the XenAPI class %s.\ntype %s struct {\n", gn, c.Name, gn)
		for _, f := range fs {
			fmt.Fprintf(&b, "%s %s // %s\n", f.gn, g.goType(f.t), f.f.Name)
		}
		b.WriteString("}\n\n")
		// Constructor with defaults.
		fmt.Fprintf(&b, "// New%s returns a record holding the schema's defaults.\nfunc New%s() *%s {\nreturn &%s{\n", gn, gn, gn, gn)
		for _, f := range fs {
			x, err := g.defaultExpr(f.t, f.f.Default)
			if err != nil {
				log.Fatalf("%s.%s: %v", c.Name, f.f.Name, err)
			}
			if x != "" {
				fmt.Fprintf(&b, "%s: %s,\n", f.gn, x)
			}
		}
		b.WriteString("}\n}\n\n")
		cv := "Class" + gn
		classVars = append(classVars, cv)
		fmt.Fprintf(&b, "func (r *%s) XenClass() *xenapi.Class { return %s }\n", gn, cv)
		fmt.Fprintf(&b, "func (r *%s) Clone() xenapi.Record { c := *r; return &c }\n", gn)
		hasUUID := false
		for _, f := range fs {
			if f.f.Name == "uuid" && f.t.kind == "string" {
				hasUUID = true
			}
		}
		if hasUUID {
			fmt.Fprintf(&b, "func (r *%s) RecordUUID() string { return r.UUID }\n", gn)
		} else {
			fmt.Fprintf(&b, "func (r *%s) RecordUUID() string { return \"\" }\n", gn)
		}
		fmt.Fprintf(&b, "\n// Member names of %s, prepared for the codecs.\nvar (\n", gn)
		for _, f := range fs {
			fmt.Fprintf(&b, "name%s_%s = wire.NewName(%q)\n", gn, f.gn, f.f.Name)
		}
		b.WriteString(")\n")
		fmt.Fprintf(&b, "\n// Encode writes the record as a XenAPI struct.\nfunc (r *%s) Encode(e wire.Encoder) {\ne.BeginStruct()\n", gn)
		for _, f := range fs {
			fmt.Fprintf(&b, "e.Name(name%s_%s)\n%s\n", gn, f.gn, g.encodeStmt(f.t, "r."+f.gn))
		}
		b.WriteString("e.EndStruct()\n}\n\n")
		fmt.Fprintf(&b, "// Decode sets the fields present in v.\nfunc (r *%s) Decode(v wire.Value) error {\nif v.Kind != wire.KindStruct { return xenapi.FieldError(%q, xenapi.ErrType) }\nfor i := range v.Struct {\nm := &v.Struct[i]\nvar err error\nswitch m.Name {\n", gn, c.Name)
		for _, f := range fs {
			fmt.Fprintf(&b, "case %q:\nr.%s, err = %s(m.Value)\n", f.f.Name, f.gn, g.decoder(f.t))
		}
		b.WriteString("}\nif err != nil { return xenapi.FieldError(m.Name, err) }\n}\nreturn nil\n}\n\n")
		// Class descriptor.
		fmt.Fprintf(&b, "// %s describes the class %s.\nvar %s = &xenapi.Class{\nName: %q,\nLower: %q,\nStored: %v,\nHasUUID: %v,\nLifecycle: %s,\nNew: func() xenapi.Record { return New%s() },\n", cv, c.Name, cv, c.Name, strings.ToLower(c.Name), stored, hasUUID, lifecycleConst(c.Lifecycle.State), gn)
		var msgs []string
		for _, m := range c.Messages {
			msgs = append(msgs, m.Name)
		}
		fmt.Fprintf(&b, "Messages: %#v,\n", msgs)
		b.WriteString("Fields: []*xenapi.Field{\n")
		for _, f := range fs {
			def := ""
			if f.f.Default != nil {
				def = *f.f.Default
			}
			fmt.Fprintf(&b, "{Name: %q, Type: %s, Qualifier: %s, Default: %q, Lifecycle: %s,\n", f.f.Name, g.typeVar(f.t), qualifierConst(f.f.Qualifier), def, lifecycleConst(f.f.Lifecycle.State))
			fmt.Fprintf(&b, "Get: func(r xenapi.Record, e wire.Encoder) { %s },\n", g.encodeStmt(f.t, "r.(*"+gn+")."+f.gn))
			fmt.Fprintf(&b, "Set: func(r xenapi.Record, v wire.Value) (err error) { r.(*%s).%s, err = %s(v); return },\n", gn, f.gn, g.decoder(f.t))
			switch {
			case f.t.kind == "ref":
				fmt.Fprintf(&b, "Refs: func(r xenapi.Record) []xenapi.Ref { return []xenapi.Ref{r.(*%s).%s} },\n", gn, f.gn)
				fmt.Fprintf(&b, "SetRefs: func(r xenapi.Record, v []xenapi.Ref) { if len(v) == 0 { r.(*%s).%s = xenapi.NullRef } else { r.(*%s).%s = v[0] } },\n", gn, f.gn, gn, f.gn)
			case f.t.kind == "set" && f.t.elem.kind == "ref":
				fmt.Fprintf(&b, "Refs: func(r xenapi.Record) []xenapi.Ref { return r.(*%s).%s },\n", gn, f.gn)
				fmt.Fprintf(&b, "SetRefs: func(r xenapi.Record, v []xenapi.Ref) { r.(*%s).%s = v },\n", gn, f.gn)
			}
			b.WriteString("},\n")
		}
		b.WriteString("},\n}\n\n")
	}
	b.WriteString("// Classes lists every class that has fields, in schema order.\nvar Classes = []*xenapi.Class{\n")
	for _, cv := range classVars {
		b.WriteString(cv + ",\n")
	}
	b.WriteString("}\n\nfunc init() {\nfor _, c := range Classes { c.Init() }\n}\n\nvar _ = time.Time{}\n")
	return b.String()
}

func (g *gen) genMethods() string {
	var body strings.Builder
	body.WriteString("// Methods is every message of the schema, implicit ones included.\nvar Methods = []*xenapi.Method{\n")
	for i := range g.s.Classes {
		c := &g.s.Classes[i]
		for _, m := range c.Messages {
			var params []string
			for _, p := range m.Params {
				t, err := parseType(p.Type)
				if err != nil {
					log.Fatalf("%s.%s(%s): %v", c.Name, m.Name, p.Name, err)
				}
				params = append(params, fmt.Sprintf("{Name: %q, Type: %s}", p.Name, g.typeVar(t)))
			}
			rt, err := parseType(m.Result)
			if err != nil {
				log.Fatalf("%s.%s result: %v", c.Name, m.Name, err)
			}
			result := "nil"
			if rt.kind != "void" {
				result = g.typeVar(rt)
			}
			var roles []string
			for _, r := range m.Roles {
				roles = append(roles, fmt.Sprintf("xenapi.RoleNames[%q]", r))
			}
			if len(roles) == 0 {
				roles = []string{"0"}
			}
			fmt.Fprintf(&body, "{Name: %q, Class: %q, Message: %q, Params: []xenapi.Param{%s}, Result: %s, Roles: %s, Implicit: %v, Lifecycle: %s, Errors: %#v},\n",
				c.Name+"."+m.Name, c.Name, m.Name, strings.Join(params, ", "), result, strings.Join(roles, "|"), m.Implicit, lifecycleConst(m.Lifecycle.State), m.Errors)
		}
	}
	body.WriteString("}\n\n")
	body.WriteString("// Relations lists the bound field pairs: A.Field refers to B, B.Field holds the As.\nvar Relations = [][2]struct{ Class, Field string }{\n")
	for _, r := range g.s.Relations {
		fmt.Fprintf(&body, "{{%q, %q}, {%q, %q}},\n", r[0][0], r[0][1], r[1][0], r[1][1])
	}
	body.WriteString("}\n")
	return header + "package api\n\nimport \"github.com/xenith/xenith/internal/xenapi\"\n\n" + body.String()
}

func (g *gen) genTypes() string {
	var b strings.Builder
	b.WriteString(header + "package api\n\nimport \"github.com/xenith/xenith/internal/xenapi\"\n\n// The XenAPI types used by fields and messages.\nvar (\n")
	for i, t := range g.types {
		fmt.Fprintf(&b, "typ%d = &xenapi.Type%s\n", i, g.typeLiteral(t))
	}
	b.WriteString(")\n")
	return b.String()
}
