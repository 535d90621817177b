package xecli

import (
	"fmt"
	"slices"
	"strings"
)

// Param is one name=value argument, in the order given on the command line
// (order matters to nobody but the error messages, which name the first
// offending argument).
type Param struct {
	Name, Value string
}

// Args is a parsed xe command line: the command, its name=value arguments
// and the connection options, which xe accepts anywhere on the line.
type Args struct {
	Command string
	Params  []Param
	// Bare holds words without '=' (only "help" accepts them: they name
	// the commands to describe).
	Bare []string
	Conn ConnOptions
	// Flags are the --name switches other than the connection ones.
	Flags map[string]bool
}

// ConnOptions says where and as whom to connect.
type ConnOptions struct {
	Server       string // -s (also -h): empty means the local unix socket
	Port         string // -p
	User         string // -u
	Password     string // -pw
	PasswordFile string // -pwf
	NoSSL        bool   // --nossl
	Debug        bool   // --debug
}

// syntaxError is a malformed command line; it is reported with a pointer to
// the usage help.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// valueSwitches are the single-dash switches that take the next word as
// their value, as xe's own client accepts them.
var valueSwitches = []string{"-s", "-h", "-p", "-u", "-pw", "-pwf"}

// Parse splits an xe command line (without the program name).
func Parse(argv []string) (*Args, error) {
	a := &Args{Flags: map[string]bool{}}
	for i := 0; i < len(argv); i++ {
		w := argv[i]
		switch {
		case strings.HasPrefix(w, "--"):
			name := w[2:]
			if name == "" {
				return nil, &syntaxError{"empty switch '--'"}
			}
			switch name {
			case "nossl":
				a.Conn.NoSSL = true
			case "debug":
				a.Conn.Debug = true
			default:
				// Every other --name is a boolean argument (--force,
				// --minimal, --multiple, --all, ...); the command decides
				// whether it takes it.
				a.Flags[name] = true
			}
		case strings.HasPrefix(w, "-") && !strings.Contains(w, "="):
			if !slices.Contains(valueSwitches, w) {
				return nil, &syntaxError{"Unknown switch: " + w}
			}
			if i+1 >= len(argv) {
				return nil, &syntaxError{fmt.Sprintf("Switch %s requires a parameter", w)}
			}
			i++
			v := argv[i]
			switch w {
			case "-s", "-h":
				a.Conn.Server = v
			case "-p":
				a.Conn.Port = v
			case "-u":
				a.Conn.User = v
			case "-pw":
				a.Conn.Password = v
			case "-pwf":
				a.Conn.PasswordFile = v
			}
		case a.Command == "":
			if strings.Contains(w, "=") {
				return nil, &syntaxError{"command name is missing (found '" + w + "' first)"}
			}
			a.Command = w
		default:
			name, value, ok := strings.Cut(w, "=")
			if !ok {
				a.Bare = append(a.Bare, w)
				continue
			}
			if name == "" {
				return nil, &syntaxError{"argument '" + w + "' has no name before '='"}
			}
			if _, dup := a.Get(name); dup {
				return nil, &syntaxError{"argument '" + name + "' given twice"}
			}
			a.Params = append(a.Params, Param{name, value})
		}
	}
	return a, nil
}

// Get returns the value of a name=value argument.
func (a *Args) Get(name string) (string, bool) {
	for _, p := range a.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// Has reports whether the argument was given.
func (a *Args) Has(name string) bool {
	_, ok := a.Get(name)
	return ok
}

// Flag reports a boolean argument: --name, or name=true as xe also accepts.
func (a *Args) Flag(name string) bool {
	if a.Flags[name] {
		return true
	}
	v, ok := a.Get(name)
	return ok && isTrue(v)
}

// Map collects the prefix:key=value arguments of a map parameter, e.g.
// device-config:path=/srv.
func (a *Args) Map(prefix string) map[string]string {
	out := map[string]string{}
	for _, p := range a.Params {
		if k, ok := strings.CutPrefix(p.Name, prefix+":"); ok && k != "" {
			out[k] = p.Value
		}
	}
	return out
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1":
		return true
	}
	return false
}

// parseBool reads a boolean argument value strictly.
func parseBool(name, s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, &cliError{fmt.Sprintf("Parameter %s must be a boolean (true or false), not '%s'", name, s)}
}
