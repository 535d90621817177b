package where

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sexpr renders a tree unambiguously, in the shape used by
// testdata/xapi_conformance.txt.
func sexpr(e Expr) string {
	val := func(v Value) string {
		if v.Field {
			return "(f " + strconv.Quote(v.Text) + ")"
		}
		return "(l " + strconv.Quote(v.Text) + ")"
	}
	switch e := e.(type) {
	case Const:
		if e {
			return "T"
		}
		return "F"
	case Not:
		return "(not " + sexpr(e.X) + ")"
	case And:
		return "(and " + sexpr(e.L) + " " + sexpr(e.R) + ")"
	case Or:
		return "(or " + sexpr(e.L) + " " + sexpr(e.R) + ")"
	case Eq:
		return "(eq " + val(e.L) + " " + val(e.R) + ")"
	}
	return "?"
}

func TestParseTree(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`true`, `T`},
		{`false`, `F`},
		{` (true) `, `T`},
		{`field "name__label"="foo"`, `(eq (f "name__label") (l "foo"))`},
		{`field"a"="b"`, `(eq (f "a") (l "b"))`},
		{`"a" = field "b"`, `(eq (l "a") (f "b"))`},
		{`field "a" = field "b"`, `(eq (f "a") (f "b"))`},
		{`"x"="x"`, `(eq (l "x") (l "x"))`},
		{"field\t\"a\"\n=\n\"\"", `(eq (f "a") (l ""))`},
		// Literals have no escapes: backslashes and newlines are kept.
		{`field "a"="c:\x\"`, `(eq (f "a") (l "c:\\x\\"))`},
		{"field \"a\"=\"two\nlines\"", `(eq (f "a") (l "two\nlines"))`},
		{`field "a"="héllo ☃"`, `(eq (f "a") (l "héllo ☃"))`},
		// The brief's example.
		{`field "power_state" = "Running" and not (field "is_a_template"="true")`,
			`(and (eq (f "power_state") (l "Running")) (not (eq (f "is_a_template") (l "true"))))`},
		// and/or: one precedence level, left-associative.
		{`true and false or true`, `(or (and T F) T)`},
		{`true or false and true`, `(and (or T F) T)`},
		{`true or false or true`, `(or (or T F) T)`},
		{`true or (false and true)`, `(or T (and F T))`},
		// not: lowest precedence, takes the rest of the chain.
		{`not true and false`, `(not (and T F))`},
		{`not true or false and true`, `(not (and (or T F) T))`},
		{`(not true) and false`, `(and (not T) F)`},
		{`true and not false or true`, `(and T (not (or F T)))`},
		{`not not true`, `(not (not T))`},
		{`not (true) or false`, `(not (or T F))`},
		// Nested parentheses.
		{`((((true))))`, `T`},
		{`((true or (false)) and ((not (true))))`, `(and (or T F) (not T))`},
		// Keywords need no separator, as in xapi's lexer.
		{`trueandfalse`, `(and T F)`},
		{`nottrue`, `(not T)`},
		{`notfield"a"="b"orfalse`, `(not (or (eq (f "a") (l "b")) F))`},
		{`(true)and(false)`, `(and T F)`},
		// Extension: bare field name on the left.
		{`name_label="foo"`, `(eq (f "name_label") (l "foo"))`},
		{`name__label = "foo"`, `(eq (f "name__label") (l "foo"))`},
		{`VCPUs_max="4"`, `(eq (f "VCPUs_max") (l "4"))`},
		{`_x="1"`, `(eq (f "_x") (l "1"))`},
		{`other_config="x"`, `(eq (f "other_config") (l "x"))`}, // starts with "or"
		{`notes = "x"`, `(eq (f "notes") (l "x"))`},             // starts with "not"
		{`not uuid="u" or order="1"`, `(not (or (eq (f "uuid") (l "u")) (eq (f "order") (l "1"))))`},
		{`uuid = field "x"`, `(eq (f "uuid") (f "x"))`},
		// Any word before "=" is a name, keywords too; xapi rejects these,
		// and Fields lets the caller reject the unknown field.
		{`true = "a"`, `(eq (f "true") (l "a"))`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := sexpr(e); got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
			// String must give back an equivalent expression.
			e2, err := Parse(fmt.Sprint(e))
			if err != nil || !reflect.DeepEqual(e, e2) {
				t.Errorf("round trip of %q via %q: %v, %v", tt.in, fmt.Sprint(e), sexpr(e2), err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		line, col int
		msg       string // substring of the message
	}{
		{``, 1, 1, "found end of input"},
		{`   `, 1, 4, "found end of input"},
		{`TRUE`, 1, 1, `unexpected word "TRUE"`},
		{`tru`, 1, 1, `unexpected word "tru"`},
		{`true1`, 1, 1, `unexpected word "true1"`},
		{`true false`, 1, 6, `unexpected "false" after complete expression`},
		{`true and`, 1, 9, "found end of input"},
		{`and true`, 1, 1, `found "and"`},
		{`(true`, 1, 6, `expected ")" to close "(" at 1:1, found end of input`},
		{`(true))`, 1, 7, `unexpected ")"`},
		{`()`, 1, 2, `found ")"`},
		{`field "a"`, 1, 10, `expected "=" after field "a", found end of input`},
		{`field "a" == "b"`, 1, 12, `found "="`},
		{`field a="b"`, 1, 7, `after "field", found field name "a"`},
		{`field "a"="b`, 1, 11, "unterminated string literal"},
		{`field "a"=b`, 1, 11, `unexpected word "b"`},
		{`"a"="b"="c"`, 1, 8, `unexpected "=" after complete expression`},
		{`"a"=b="c"`, 1, 5, `found field name "b"`},
		{`field "a"<>"b"`, 1, 10, `unexpected character '<'`},
		{`field "a"!="b"`, 1, 10, `unexpected character '!'`},
		{`field "a"="b" && true`, 1, 15, `unexpected character '&'`},
		{"true\r\n", 1, 5, `unexpected character '\r'`}, // xapi skips only space, tab, newline
		{"true\nand\n  ☃", 3, 3, `unexpected character '☃'`},
		{"true \xff", 1, 6, "unexpected byte 0xff"},
		{"field 'a'='b'", 1, 7, `unexpected character '\''`},
		{`not`, 1, 4, "found end of input"},
		{`1x="a"`, 1, 1, `unexpected word "1x"`},
		{`uuid`, 1, 1, `unexpected word "uuid"`},
		{strings.Repeat("(", MaxDepth+1) + "true" + strings.Repeat(")", MaxDepth+1), 1, MaxDepth + 1, "nested more than 100 deep"},
		{strings.Repeat("not ", MaxDepth+1) + "true", 1, 4*MaxDepth + 1, "nested more than 100 deep"},
		{strings.Repeat(" ", MaxLen+1), 1, 1, "over the limit"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v, %v; want *SyntaxError", tt.in, e, err)
			}
			if se.Line != tt.line || se.Col != tt.col || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("Parse(%q) error = %q at %d:%d, want %q at %d:%d", tt.in, se.Msg, se.Line, se.Col, tt.msg, tt.line, tt.col)
			}
			if !strings.HasPrefix(err.Error(), "where: "+strconv.Itoa(tt.line)+":"+strconv.Itoa(tt.col)+": ") {
				t.Errorf("Error() = %q lacks position", err.Error())
			}
		})
	}
}

func TestDepthLimitInclusive(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("(", MaxDepth) + "true" + strings.Repeat(")", MaxDepth)
	if _, err := Parse(in); err != nil {
		t.Fatalf("depth %d rejected: %v", MaxDepth, err)
	}
	// Long flat chains are not nesting and stay accepted up to MaxLen.
	chain := "true" + strings.Repeat(" or true", (MaxLen-4)/8)
	e, err := Parse(chain)
	if err != nil {
		t.Fatalf("long chain: %v", err)
	}
	if !e.Eval(nil) {
		t.Error("long chain evaluated false")
	}
}

func TestEval(t *testing.T) {
	t.Parallel()
	row := map[string]string{
		"name__label":   "web",
		"power_state":   "Running",
		"is_a_template": "false",
		"VCPUs_max":     "4",
		"empty":         "",
		"uuid":          "web",
	}
	get := func(f string) (string, bool) { v, ok := row[f]; return v, ok }
	tests := []struct {
		in   string
		want bool
	}{
		{`true`, true},
		{`false`, false},
		{`field "name__label"="web"`, true},
		{`field "name__label"="Web"`, false}, // case-sensitive
		{`name__label="web"`, true},
		{`field "power_state" = "Running" and not (field "is_a_template"="true")`, true},
		{`field "power_state" = "Halted" or field "VCPUs_max" = "4"`, true},
		{`field "VCPUs_max" = "04"`, false}, // strings, not numbers
		{`field "empty" = ""`, true},
		{`field "name__label" = field "uuid"`, true},
		{`field "name__label" = field "power_state"`, false},
		{`"a" = "a"`, true},
		{`"a" = "b"`, false},
		// Unknown fields: that comparison is false, even against itself.
		{`field "nope" = ""`, false},
		{`field "nope" = field "nope"`, false},
		{`"" = field "nope"`, false},
		{`not field "nope" = "x"`, true},
		// Precedence shows in results: (true or true) and false.
		{`true or true and false`, false},
		{`not false and false`, true}, // not (false and false)
		{`(not false) and false`, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Eval(get); got != tt.want {
				t.Errorf("Eval(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{`true`, nil},
		{`"a"="a"`, nil},
		{`field "b"="x" or (a="y" and not field "b" = field "c")`, []string{"b", "a", "c"}},
		{`not (x="1" or y="2") and z="3"`, []string{"x", "y", "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := Fields(e); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Fields(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestXapiConformance replays inputs through which xapi's own lexer and
// parser (ocamllex + menhir on db_filter_lex.mll / db_filter_parse.mly) were
// run; each line holds the quoted input and xapi's tree or ERR. Every input
// xapi accepts must give the same tree; every one it rejects must be
// rejected here too unless it uses the bare-field extension.
func TestXapiConformance(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/xapi_conformance.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		q, want, ok := strings.Cut(line, "\t")
		in, err := strconv.Unquote(q)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		n++
		e, ext, err := parse(in)
		switch {
		case want == "ERR" && err == nil && !ext:
			t.Errorf("Parse(%q) = %s, xapi rejects it", in, sexpr(e))
		case want != "ERR" && ext:
			t.Errorf("Parse(%q) used the extension, xapi gives %s", in, want)
		case want != "ERR" && err != nil:
			t.Errorf("Parse(%q): %v, xapi gives %s", in, err, want)
		case want != "ERR" && sexpr(e) != want:
			t.Errorf("Parse(%q) = %s, xapi gives %s", in, sexpr(e), want)
		}
	}
	if n < 100 {
		t.Fatalf("only %d conformance cases", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`true`, `field "a"="b"`, `name_label="x" and not (false or "a"=field "b")`,
		`trueandfalse`, `((not true))`, "\"\n\"=\"\"", `field "a"<>"b"`, `or="x"`,
	} {
		f.Add(s)
	}
	get := func(f string) (string, bool) { return f, len(f)%2 == 0 }
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("Parse(%q): bad error %#v", s, err)
			}
			return
		}
		e.Eval(get)
		for _, name := range Fields(e) {
			if strings.Contains(name, `"`) {
				t.Fatalf("field name %q contains a quote", name)
			}
		}
		// The canonical form must parse back to the same tree, unless it
		// grew past the limits (String adds parentheses).
		c := fmt.Sprint(e)
		e2, err := Parse(c)
		if err != nil {
			var se *SyntaxError
			if errors.As(err, &se) && (strings.Contains(se.Msg, "nested") || strings.Contains(se.Msg, "limit")) {
				return
			}
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, c, err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip of %q: %s != %s", s, sexpr(e), sexpr(e2))
		}
		if e.Eval(get) != e2.Eval(get) {
			t.Fatalf("round trip of %q changed Eval", s)
		}
	})
}

func BenchmarkEval(b *testing.B) {
	e, err := Parse(`field "power_state" = "Running" and not (field "is_a_template"="true") and (field "name__label"="web" or field "uuid"="x")`)
	if err != nil {
		b.Fatal(err)
	}
	row := map[string]string{"power_state": "Running", "is_a_template": "false", "name__label": "web", "uuid": "u"}
	get := func(f string) (string, bool) { v, ok := row[f]; return v, ok }
	b.ReportAllocs()
	for b.Loop() {
		if !e.Eval(get) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	const s = `field "power_state" = "Running" and not (field "is_a_template"="true") and (name__label="web" or field "uuid"="x")`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
