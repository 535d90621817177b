package xecli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/xenith/xenith/internal/xenapi"
)

// Bash completion: scripts/xe-completion.bash calls `xe __complete LINE`
// with the command line up to the cursor and offers what this prints, one
// candidate per line, each the whole word being typed (the script trims
// what bash already split off at '=' and ':').

// completeCommand is the hidden command the completion script calls.
const completeCommand = "__complete"

// runComplete prints the candidates for line; it never fails loudly (a
// completion that errors must not spill onto the user's prompt).
func runComplete(ctx context.Context, line string, env *Env) int {
	words, open := shellWords(line)
	if !open || len(words) == 0 {
		words = append(words, "")
	}
	cur := words[len(words)-1]
	// Bash completes only what follows the last '=' or ':' of the word
	// (COMP_WORDBREAKS): print the candidates from there.
	head := cur[:strings.LastIndexAny(cur, "=:")+1]
	for _, c := range completeWords(ctx, words[1:len(words)-1], cur, env) {
		if c = strings.TrimPrefix(c, head); c != "" {
			fmt.Fprintln(env.Stdout, c)
		}
	}
	return ExitOK
}

// shellWords splits a command line as the shell would (backslash escapes,
// single and double quotes); open says the last word is still being typed
// (the line does not end in a separating blank).
func shellWords(line string) (words []string, open bool) {
	var cur strings.Builder
	in := false // inside a word
	var quote rune
	esc := false
	for _, r := range line {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, in = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, in
}

// completeWords returns the candidates for cur, given the words before it
// (without the program name).
func completeWords(ctx context.Context, before []string, cur string, env *Env) []string {
	a, err := Parse(before)
	if err != nil {
		return nil
	}
	if a.Command == "" || (a.Command == "help" && !strings.Contains(cur, "=")) {
		if strings.HasPrefix(cur, "-") {
			return withPrefix(cur, []string{"--minimal", "--nossl", "--debug", "-s", "-p", "-u", "-pw", "-pwf"})
		}
		return withPrefix(cur, commandNames(false))
	}
	cmd := findCommand(a.Command)
	if cmd == nil {
		return nil
	}
	if strings.HasPrefix(cur, "--") {
		var sw []string
		for _, o := range append([]string{"minimal", "multiple"}, cmd.Optn...) {
			if slices.Contains([]string{"minimal", "force", "multiple", "all"}, o) && !a.Flags[o] {
				sw = append(sw, "--"+o)
			}
		}
		return withPrefix(cur, sw)
	}
	name, typed, isValue := strings.Cut(cur, "=")
	if !isValue {
		return withPrefix(cur, paramNames(cmd, a))
	}
	vals := valueCandidates(ctx, cmd, a, name, typed, env)
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		out = append(out, name+"="+v)
	}
	return withPrefix(cur, out)
}

func withPrefix(prefix string, cands []string) []string {
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// commandClass is the class a command's arguments are about.
func commandClass(cmd *Command) *xeClass {
	for _, n := range []string{cmd.Select, cmd.Filter} {
		if n != "" {
			return lookupClass(n)
		}
	}
	for _, c := range classes() {
		if strings.HasPrefix(cmd.Name, c.Name+"-param-") {
			return c
		}
	}
	if i := strings.Index(cmd.Name, "-"); i > 0 {
		return lookupClass(cmd.Name[:i])
	}
	return nil
}

// paramNames lists the name= words the command still takes.
func paramNames(cmd *Command, a *Args) []string {
	var out []string
	add := func(n string) {
		if strings.HasSuffix(n, ":") {
			out = append(out, n)
			return
		}
		if slices.Contains([]string{"force", "multiple", "all"}, n) || a.Has(n) {
			return
		}
		out = append(out, n+"=")
	}
	for _, n := range cmd.Reqd {
		add(n)
	}
	for _, n := range cmd.Optn {
		add(n)
	}
	if cmd.Select != "" {
		add(cmd.Select)
	}
	if c := commandClass(cmd); c != nil && (cmd.Select != "" || cmd.Filter != "") {
		for _, f := range c.Fields {
			if f.Kind == kMap {
				add(f.Name + ":")
			} else {
				add(f.Name)
			}
		}
	}
	return out
}

// valueCandidates proposes values for name=: field names for
// param-name/params, enum values, and uuids or names fetched from the
// server for object arguments.
func valueCandidates(ctx context.Context, cmd *Command, a *Args, name, typed string, env *Env) []string {
	c := commandClass(cmd)
	switch name {
	case "param-name", "params":
		if c == nil {
			return nil
		}
		names := c.fieldNames()
		if name == "params" {
			// params=a,b,<TAB>: complete the last item.
			head := ""
			if i := strings.LastIndex(typed, ","); i >= 0 {
				head = typed[:i+1]
			}
			for i, n := range names {
				names[i] = head + n
			}
			names = append(names, "all")
		}
		return names
	}
	if c != nil {
		if f := c.field(name); f != nil && f.API.Type.Kind == xenapi.TEnum {
			vals := slices.Clone(f.API.Type.Enum)
			if f.API.Type.Name == "vm_power_state" {
				for i := range vals {
					vals[i] = strings.ToLower(vals[i])
				}
			}
			return vals
		}
		if f := c.field(name); f != nil && f.API.Type.Kind == xenapi.TBool {
			return []string{"true", "false"}
		}
	}
	// Object arguments need the server.
	var class *xeClass
	byName := false
	switch {
	case name == "uuid" && c != nil:
		class = c
	case name == "vm" || name == "host" || name == "sr":
		class, byName = lookupClass(name), true
	case name == "template":
		class, byName = lookupClass("template"), true
	case strings.HasSuffix(name, "-uuid"):
		class = lookupClass(strings.TrimSuffix(name, "-uuid"))
	case name == "cd-name":
		class, byName = lookupClass("vdi"), true
	}
	if class == nil {
		return nil
	}
	return objectNames(ctx, a, class, byName, env)
}

// objectNames fetches the uuids (or name-labels) of a class's objects.
func objectNames(ctx context.Context, a *Args, class *xeClass, byName bool, env *Env) []string {
	x := &Ctx{ctx: ctx, cmd: &Command{Name: completeCommand}, args: a, env: env,
		out: &printer{w: env.Stdout}, log: discardLogger()}
	var out []string
	err := x.run0(func(x *Ctx) error {
		recs, err := fetchAll(ctx, x.s, x.rs, class)
		if err != nil {
			return err
		}
		recs = filterRecords(ctx, x.rs, recs, classFilters(class))
		for _, r := range recs {
			if byName && r.nameLabel() != "" {
				out = append(out, r.nameLabel())
			} else {
				out = append(out, r.uuid())
			}
		}
		return nil
	})
	if err != nil {
		return nil
	}
	return out
}
