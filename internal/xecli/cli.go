// Package xecli is the xe command-line client: it parses xe's command
// syntax, runs the command against a XenAPI server (xenithd) and prints
// the result the way XenServer/XCP-ng's xe does.
//
// Commands come from two places: the generic <class>-list/-param-* family,
// generated at run time from the schema descriptors in internal/api, and
// the hand-written everyday commands (vm-install, vm-start, ...) in the
// cmd_*.go files.
package xecli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/xenith/xenith/internal/xenapi"
)

// Env is what a run of xe takes from its process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Terminal says stderr is a terminal: long operations draw a progress
	// bar there.
	Terminal bool
	// Interrupt delivers Ctrl-C; the running task is cancelled on the first.
	Interrupt <-chan os.Signal
	// Dial replaces the network connection (tests); nil means the real one.
	Dial func(o *ConnOptions) (Caller, bool, error)
}

// Command is one xe command.
type Command struct {
	Name string
	Reqd []string
	// Optn lists the optional arguments; "name:" accepts every name:key=v
	// and "force"/"multiple"/"all" allow those switches.
	Optn []string
	Help string
	// Std puts the command in the short list of `xe help`.
	Std bool
	// Select names the class whose objects the command acts on through
	// selectors (vm=NAME|UUID, or any field=value filter).
	Select string
	// Filter accepts field=value filters of this class (the -list commands).
	Filter    string
	NoSession bool
	// AnyParams takes arbitrary key=value arguments (param-add on a map).
	AnyParams bool
	Run       func(x *Ctx) error
}

// Ctx is a running command.
type Ctx struct {
	ctx  context.Context
	cmd  *Command
	args *Args
	s    *Session
	rs   *resolver
	out  *printer
	env  *Env
	log  *slog.Logger
	// waiting is set while a task is being waited for: Ctrl-C then goes to
	// intr (to cancel the task) instead of aborting the command.
	waiting atomic.Bool
	intr    chan struct{}
}

// Run executes one xe command line and returns the process exit status.
func Run(ctx context.Context, argv []string, env *Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(argv) == 2 && argv[0] == completeCommand {
		return runComplete(ctx, argv[1], env)
	}
	a, err := Parse(argv)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Syntax error: %v\nFor usage run: 'xe help'\n", err)
		return ExitUsage
	}
	level := slog.LevelWarn
	if a.Conn.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	if a.Command == "" {
		a.Command = "help"
	}
	cmd := findCommand(a.Command)
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "Unknown command: %s\nFor usage run: 'xe help'\n", a.Command)
		return ExitUsage
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	x := &Ctx{ctx: ctx, cmd: cmd, args: a, env: env, log: log, intr: make(chan struct{}, 1),
		out: &printer{w: env.Stdout, minimal: a.Flags["minimal"]}}
	if env.Interrupt != nil {
		go x.watchInterrupts(cancel)
	}
	err = x.validate()
	if err == nil {
		err = x.run()
	}
	var ie *interruptedError
	if err != nil && ctx.Err() != nil && !errors.As(err, &ie) {
		err = &interruptedError{"Interrupted."}
	}
	if err == nil {
		x.out.flush()
		return ExitOK
	}
	x.report(err)
	return exitCode(err)
}

// watchInterrupts routes Ctrl-C: to the task being waited for, which is
// then cancelled on the server, or else straight to the context, which
// aborts the call in flight.
func (x *Ctx) watchInterrupts(cancel context.CancelFunc) {
	for {
		select {
		case <-x.ctx.Done():
			return
		case <-x.env.Interrupt:
			if x.waiting.Load() {
				select {
				case x.intr <- struct{}{}:
				default:
				}
				continue
			}
			cancel()
			return
		}
	}
}

func (x *Ctx) run() error {
	if x.cmd.NoSession {
		return x.cmd.Run(x)
	}
	return x.run0(x.cmd.Run)
}

// run0 connects, logs in, runs f and logs out.
func (x *Ctx) run0(f func(x *Ctx) error) error {
	o := x.args.Conn
	if home := x.env.Getenv("HOME"); home != "" {
		if err := readConfigFile(filepath.Join(home, ".xe"), &o); err != nil {
			return &connectError{"reading ~/.xe: " + err.Error()}
		}
	}
	if o.PasswordFile != "" {
		if err := readPasswordFile(o.PasswordFile, &o); err != nil {
			return err
		}
	}
	dial := x.env.Dial
	if dial == nil {
		dial = func(o *ConnOptions) (Caller, bool, error) { return endpoint(o, x.env.Getenv) }
	}
	c, local, err := dial(&o)
	if err != nil {
		return err
	}
	s, err := login(x.ctx, c, local, &o, x.log)
	if err != nil {
		return err
	}
	defer s.logout(context.WithoutCancel(x.ctx))
	x.s = s
	x.rs = newResolver(s)
	return f(x)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// report prints a failure on stderr as xe does.
func (x *Ctx) report(err error) {
	w := x.env.Stderr
	var (
		ue *usageError
		ce *cliError
		xe *xenapi.Error
		co *connectError
		ie *interruptedError
		mf *multiFailure
	)
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(w, ue.msg)
		if ue.cmd != "" {
			if c := findCommand(ue.cmd); c != nil {
				fmt.Fprintln(w, "Usage:")
				io.WriteString(w, formatRecord(helpRecord(c)))
			}
		}
		fmt.Fprintln(w, "For usage run: 'xe help'")
	case errors.As(err, &mf):
		for _, f := range mf.fails {
			fmt.Fprintf(w, "operation failed on %s: %s\n", f.uuid, f.msg)
		}
	case errors.As(err, &xe):
		var name refNamer
		if x.rs != nil {
			name = x.rs.nameRef
		}
		writeXenAPIError(context.WithoutCancel(x.ctx), w, xe, name)
	case errors.As(err, &ce):
		fmt.Fprintln(w, "Error: "+ce.msg)
	case errors.As(err, &co):
		fmt.Fprintln(w, co.msg)
	case errors.As(err, &ie):
		fmt.Fprintln(w, ie.msg)
	default:
		fmt.Fprintln(w, "Error: "+err.Error())
	}
}

// validate checks the arguments against the command before connecting, so
// that a typo costs no round trip and always shows the usage.
func (x *Ctx) validate() error {
	c := x.cmd
	if c.Name != "help" && len(x.args.Bare) > 0 {
		return usagef(c.Name, "Syntax error: '%s' is not of the form name=value", x.args.Bare[0])
	}
	for name := range x.args.Flags {
		if name == "minimal" || slices.Contains(c.Optn, name) {
			continue
		}
		if c.Select != "" && name == "multiple" {
			continue
		}
		return usagef(c.Name, "Unknown switch: --%s", name)
	}
	for _, p := range x.args.Params {
		if x.accepts(p) {
			continue
		}
		return usagef(c.Name, "Unknown parameter '%s' for command %s", p.Name, c.Name)
	}
	for _, r := range c.Reqd {
		if !x.args.Has(r) {
			return usagef(c.Name, "Required parameter not found: %s", r)
		}
	}
	return nil
}

func (x *Ctx) accepts(p Param) bool {
	c := x.cmd
	if c.AnyParams || slices.Contains(c.Reqd, p.Name) || slices.Contains(c.Optn, p.Name) || p.Name == "minimal" {
		return true
	}
	if base, _, ok := strings.Cut(p.Name, ":"); ok && slices.Contains(c.Optn, base+":") {
		return true
	}
	for _, cls := range []string{c.Select, c.Filter} {
		if cls == "" {
			continue
		}
		xc := lookupClass(cls)
		if cls == "vm" && p.Name == "vm" || cls == "host" && p.Name == "host" || cls == "sr" && p.Name == "sr" {
			return true
		}
		if xc != nil {
			if _, err := parseFilter(xc, p); err == nil {
				return true
			}
		}
	}
	return false
}

// param returns an argument the command declared.
func (x *Ctx) param(name string) string {
	v, _ := x.args.Get(name)
	return v
}

func loadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("XE_CA_FILE: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("XE_CA_FILE %s: no PEM certificate found", path)
	}
	return pool, nil
}
