package xecli

import (
	"sort"
	"strings"
	"sync"
)

var (
	tableOnce sync.Once
	table     map[string]*Command
)

// commandTable is every command: the hand-written ones, then the generic
// ones of every class (a hand-written command of the same name wins).
func commandTable() map[string]*Command {
	tableOnce.Do(func() {
		table = map[string]*Command{}
		for _, c := range builtinCommands() {
			table[c.Name] = c
		}
		for _, xc := range classes() {
			for _, c := range genericCommands(xc) {
				if table[c.Name] == nil {
					table[c.Name] = c
				}
			}
		}
	})
	return table
}

func findCommand(name string) *Command { return commandTable()[name] }

// commandNames returns the sorted command names.
func commandNames(std bool) []string {
	var out []string
	for n, c := range commandTable() {
		if !std || c.Std {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// selectorHelp is added to the description of commands acting on objects
// picked by selectors.
var selectorHelp = map[string]string{
	"vm":   " The VM(s) are chosen with vm=NAME-OR-UUID, or with any VM field as a filter (power-state=running, other-config:key=value, tags:contains=x); when several match, --multiple acts on all of them.",
	"host": " The host(s) are chosen with host=NAME-OR-UUID, or with any host field as a filter; when several match, --multiple acts on all of them.",
	"sr":   " The SR(s) are chosen with sr=NAME-OR-UUID, or with any SR field as a filter; when several match, --multiple acts on all of them.",
}

// helpRecord is the help of one command, laid out as xe's.
func helpRecord(c *Command) []kv {
	optn := append([]string(nil), c.Optn...)
	desc := c.Help
	if c.Select != "" {
		optn = append(optn, c.Select+"=", "<"+c.Select+" field filters>")
		desc += selectorHelp[c.Select]
	}
	if c.Filter != "" {
		optn = append(optn, "<"+c.Filter+" field filters (see "+c.Filter+"-param-list)>")
	}
	return []kv{
		{"command name        ", c.Name},
		{"reqd params     ", strings.Join(c.Reqd, ", ")},
		{"optional params ", strings.Join(optn, ", ")},
		{"description     ", desc},
	}
}

const usageText = `Usage:
  xe <command>
    [ -s <server> ]            Xenith / XenServer host (default: the local socket)
    [ -p <port> ]              Port number (default 443, or 80 with --nossl)
    [ -u <username> -pw <password> | -pwf <password file> ]
                               User authentication (password or file)
    [ --nossl ]                Use HTTP instead of HTTPS
    [ --debug ]                Log every XenAPI call to stderr
    [ <other arguments> ... ]  Command-specific options

Arguments are name=value; --minimal prints only uuids (comma-separated),
params=a,b|all chooses the fields of a listing, field=value filters it.
Exit status: 0 success, 1 the operation failed, 2 bad command line,
3 cannot connect or log in, 130 interrupted.

To get help on a specific command:
  xe help <command>

`

// wrapList lays command names out in lines of at most ~78 columns.
func wrapList(names []string) []string {
	const indent = "    "
	var lines []string
	cur := ""
	for _, n := range names {
		switch {
		case cur == "":
			cur = indent + n
		case len(cur)+len(n) > 74:
			lines = append(lines, cur+",")
			cur = indent + n
		default:
			cur += ", " + n
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func helpCommand() *Command {
	return &Command{
		Name:      "help",
		Optn:      []string{"all"},
		Help:      "Describe a command (xe help COMMAND), or list the common commands; --all lists every command.",
		Std:       true,
		NoSession: true,
		Run: func(x *Ctx) error {
			if len(x.args.Bare) > 0 {
				for _, n := range x.args.Bare {
					c := findCommand(n)
					if c == nil {
						return usagef("", "Unknown command '%s'", n)
					}
					x.out.table([][]kv{helpRecord(c)})
				}
				return nil
			}
			all := x.args.Flag("all")
			names := commandNames(!all)
			if x.out.minimal {
				x.out.list(names...)
				return nil
			}
			w := x.out.w
			w.Write([]byte(usageText))
			if !all {
				w.Write([]byte("To get a full listing of commands:\n  xe help --all\n\nCommon command list\n-------------------\n"))
				for _, l := range wrapList(names) {
					w.Write([]byte(l + "\n"))
				}
				return nil
			}
			w.Write([]byte("Full command list\n-----------------\n"))
			var host, vm, other []string
			for _, n := range names {
				switch {
				case strings.HasPrefix(n, "host-"):
					host = append(host, n)
				case strings.HasPrefix(n, "vm-"):
					vm = append(vm, n)
				default:
					other = append(other, n)
				}
			}
			for i, group := range [][]string{host, vm, other} {
				if i > 0 {
					w.Write([]byte("\n"))
				}
				for _, l := range wrapList(group) {
					w.Write([]byte(l + "\n"))
				}
			}
			return nil
		},
	}
}
