package sexpr

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Value
	}{
		{"x", Atom("x")},
		{"()", List()},
		{"(a b)", List(Atom("a"), Atom("b"))},
		{" ( vm (name 'my vm') (memory 128) ) ", List(Atom("vm"), Pair("name", "my vm"), Pair("memory", "128"))},
		{`("a\"b" 'c\'d')`, List(Atom(`a"b`), Atom(`c'd`))},
		{`'\x41\101\n\t\\'`, Atom("AA\n\t\\")},
		{"(a # comment (\n b)", List(Atom("a"), Atom("b"))},
		{"(uname file:/srv/img.raw)", Pair("uname", "file:/srv/img.raw")},
		{`(a"b")`, List(Atom("a"), Atom("b"))},
		{"''", Atom("")},
		{"(é ü)", List(Atom("é"), Atom("ü"))},
	} {
		got, err := Parse([]byte(tc.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !equal(got, tc.want) {
			t.Errorf("Parse(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func equal(a, b Value) bool {
	if a.IsList != b.IsList || a.Atom != b.Atom || len(a.List) != len(b.List) {
		return false
	}
	for i := range a.List {
		if !equal(a.List[i], b.List[i]) {
			return false
		}
	}
	return true
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("(", MaxDepth+1) + strings.Repeat(")", MaxDepth+1)
	for _, tc := range []struct {
		in     string
		offset int
	}{
		{"", 0},
		{"   # only a comment", 19},
		{"(a", 0},
		{")", 0},
		{"(a))", 3},
		{"(a) (b)", 7},
		{`'abc`, 0},
		{`'ab\`, 0},
		{`'\q'`, 1},
		{`'\x4'`, 1},
		{`'\xzz'`, 1},
		{`'\777'`, 1},
		{"(\xff)", 1},
		{deep, MaxDepth},
	} {
		_, err := Parse([]byte(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError", tc.in, err)
			continue
		}
		if se.Offset != tc.offset {
			t.Errorf("Parse(%q): offset %d (%v), want %d", tc.in, se.Offset, err, tc.offset)
		}
	}
}

func TestAccessors(t *testing.T) {
	t.Parallel()
	v, err := Parse([]byte("(vm (name x) (device (vbd (dev xvda))) (device (vif (mac m))) (memory))"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != "vm" {
		t.Errorf("Name = %q", v.Name())
	}
	if n, ok := v.Get("name"); !ok || n != "x" {
		t.Errorf("Get(name) = %q, %v", n, ok)
	}
	if _, ok := v.Get("memory"); ok {
		t.Error("Get(memory) of (memory) should fail")
	}
	if got := len(v.Children("device")); got != 2 {
		t.Errorf("Children(device) = %d", got)
	}
	if Atom("x").Children("x") != nil || Atom("x").Name() != "" {
		t.Error("atoms have no children")
	}
}

func TestAtomQuoting(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"abc":           "abc",
		"file:/a/b.img": "file:/a/b.img",
		"":              "''",
		"a b":           "'a b'",
		"it's":          `'it\'s'`,
		"a\nb\x01":      `'a\nb\x01'`,
		"(x)":           "'(x)'",
		"@":             "@",
		"é":             "'é'",
	} {
		if got := string(AppendAtom(nil, in)); got != want {
			t.Errorf("AppendAtom(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	v := List(Atom("domain"), Pair("name", "a 'b' \"c\"\n"), Int("memory", 128),
		List(Atom("device"), List(Atom("vbd"), Pair("uname", "file:/x y"))), List())
	for _, enc := range [][]byte{Append(nil, v), AppendPretty(nil, v)} {
		got, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(%s): %v", enc, err)
		}
		if !equal(got, v) {
			t.Errorf("round trip of %s gave %s", enc, got)
		}
	}
}

func TestPrettyGolden(t *testing.T) {
	t.Parallel()
	v := List(Atom("domain"), Int("domid", 3), Pair("uuid", "0a1b2c3d-0000-4000-8000-000000000001"),
		Pair("name", "web server"), Int("memory", 512), Int("vcpus", 2), Pair("state", "-b----"),
		List(Atom("cpus"), List(), List()),
		List(Atom("device"), List(Atom("vbd"), Pair("dev", "xvda"), Pair("uname", "file:/srv/a.img"), Pair("mode", "w"))),
		List(Atom("device"), List(Atom("vif"), Pair("mac", "00:16:3e:00:00:01"), Pair("bridge", "xenbr0"))))
	got := append(AppendPretty(nil, v), '\n')
	path := filepath.Join("testdata", "pretty.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("pretty output differs from %s (run with -update):\n%s", path, got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"(vm (name x) (memory 128) (vcpus 1) (device (vbd (dev xvda) (uname file:/a) (mode w))) (device (vif (mac 00:16:3e:00:00:01) (bridge xenbr0))))",
		`('a\'b' "c\"d" \x41)`, "(a # c\n b)", "((((((", `'\777'`, "", ")", `'\x4`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := ParseAll(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		for _, v := range vs {
			for _, enc := range [][]byte{Append(nil, v), AppendPretty(nil, v)} {
				back, err := Parse(enc)
				if err != nil {
					t.Fatalf("re-parse of %q: %v", enc, err)
				}
				if !reflect.DeepEqual(normal(back), normal(v)) {
					t.Fatalf("round trip: %q -> %q", v.String(), back.String())
				}
			}
		}
	})
}

// normal makes empty lists comparable whatever their backing.
func normal(v Value) Value {
	if !v.IsList {
		return v
	}
	out := Value{IsList: true, List: []Value{}}
	for _, c := range v.List {
		out.List = append(out.List, normal(c))
	}
	return out
}
