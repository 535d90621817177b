// Package where implements the expression language of the XenAPI
// <class>.get_all_records_where and <class>.get_all_where calls.
//
// The grammar follows xapi's own filter language (ocaml/database/
// db_filter_lex.mll and db_filter_parse.mly) token for token:
//
//	expr  := unary { ("and" | "or") unary }       left-associative, one level
//	unary := "not" expr                           "not" reaches as far right as it can
//	       | "true" | "false"
//	       | "(" expr ")"
//	       | value "=" value
//	value := STRING | "field" STRING
//	STRING := '"' any bytes except '"' '"'       no escapes at all
//
// Whitespace is exactly space, tab and newline. Keywords are lower case and
// need no separator ("trueandfalse" is "true and false"), because xapi's
// lexer has no identifier rule. Two precedence facts surprise readers but
// are what xapi does, so clients may depend on them:
//
//   - "and" and "or" bind equally and associate to the left:
//     a or b and c  ==  (a or b) and c
//   - "not" binds loosest, taking the whole rest of its operand chain:
//     not a and b  ==  not (a and b)
//
// As an extension, a bare field name may stand on the left of "=":
// name_label="foo" means field "name_label"="foo". Such a name is a word of
// [A-Za-z_][A-Za-z0-9_]* directly followed (after optional whitespace) by
// "=". Every input that xapi accepts parses here to the same tree, because in
// xapi's grammar "=" is always preceded by a string literal.
//
// Values compare as strings. xapi fails the whole call when a field does not
// exist; here the getter reports it and that comparison is false. Callers
// that want xapi's behaviour check Fields before evaluating.
package where

import (
	"fmt"
	"strings"
)

// Expr is a parsed filter. Eval reports whether a row matches; get returns
// the string form of a field of that row and whether the field exists.
//
// The node types below also implement fmt.Stringer, rendering canonical xapi
// syntax (fully parenthesised, fields as field "x") that Parse accepts again.
type Expr interface {
	Eval(get func(field string) (string, bool)) bool
}

// Limits that keep hostile input from costing much: expressions are short in
// practice, and recursion depth is what could exhaust resources.
const (
	MaxLen   = 64 << 10 // bytes of input
	MaxDepth = 100      // nesting of parentheses and "not"
)

// Const is the constant true or false.
type Const bool

// Not negates X.
type Not struct{ X Expr }

// And is true when both sides are.
type And struct{ L, R Expr }

// Or is true when either side is.
type Or struct{ L, R Expr }

// Eq compares two values as strings.
type Eq struct{ L, R Value }

// Value is one side of "=": a field of the row or a string literal.
type Value struct {
	Field bool // Text names a field rather than being a literal
	Text  string
}

func (c Const) Eval(func(string) (string, bool)) bool { return bool(c) }

func (n Not) Eval(get func(string) (string, bool)) bool { return !n.X.Eval(get) }

func (a And) Eval(get func(string) (string, bool)) bool { return a.L.Eval(get) && a.R.Eval(get) }

func (o Or) Eval(get func(string) (string, bool)) bool { return o.L.Eval(get) || o.R.Eval(get) }

func (e Eq) Eval(get func(string) (string, bool)) bool {
	l, ok := e.L.value(get)
	if !ok {
		return false
	}
	r, ok := e.R.value(get)
	return ok && l == r
}

func (v Value) value(get func(string) (string, bool)) (string, bool) {
	if v.Field {
		return get(v.Text)
	}
	return v.Text, true
}

func (c Const) String() string {
	if c {
		return "true"
	}
	return "false"
}

// Not is parenthesised as a whole because "not" would otherwise swallow a
// following "and"/"or" when this node is the left operand of one.
func (n Not) String() string { return "(not " + str(n.X) + ")" }
func (a And) String() string { return "(" + str(a.L) + " and " + str(a.R) + ")" }
func (o Or) String() string  { return "(" + str(o.L) + " or " + str(o.R) + ")" }

// str renders a subexpression; only foreign Expr implementations lack String.
func str(e Expr) string {
	if s, ok := e.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprint(e)
}
func (e Eq) String() string { return e.L.String() + "=" + e.R.String() }

// String quotes Text verbatim: the language has no escapes, so a literal
// containing '"' (which Parse never produces) cannot be rendered faithfully.
func (v Value) String() string {
	if v.Field {
		return `field "` + v.Text + `"`
	}
	return `"` + v.Text + `"`
}

// Fields returns the distinct field names e reads, in order of first use.
func Fields(e Expr) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v Value) {
		if v.Field && !seen[v.Text] {
			seen[v.Text] = true
			out = append(out, v.Text)
		}
	}
	// An explicit stack: and/or chains are left-deep, so a long chain would
	// otherwise mean deep recursion. Right-hand sides are pushed first so
	// the left side is visited first.
	stack := []Expr{e}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch n := n.(type) {
		case Not:
			stack = append(stack, n.X)
		case And:
			stack = append(stack, n.R, n.L)
		case Or:
			stack = append(stack, n.R, n.L)
		case Eq:
			add(n.L)
			add(n.R)
		}
	}
	return out
}

// SyntaxError reports where and why Parse rejected its input.
type SyntaxError struct {
	Offset    int // byte offset into the input
	Line, Col int // 1-based; Col counts bytes
	Msg       string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("where: %d:%d: %s", e.Line, e.Col, e.Msg)
}

func newError(src string, off int, format string, args ...any) *SyntaxError {
	line := 1 + strings.Count(src[:off], "\n")
	col := off + 1
	if i := strings.LastIndexByte(src[:off], '\n'); i >= 0 {
		col = off - i
	}
	return &SyntaxError{Offset: off, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}
