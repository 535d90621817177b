package xen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs one command to completion and returns its standard output.
// It is the driver's only way out to processes (xl), so unit tests replace
// it with a recorded or scripted fake at exactly the process boundary.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// CmdError is a command that failed: it exited non-zero or could not start.
type CmdError struct {
	Cmd    string
	Args   []string
	Stderr string
	Err    error
}

func (e *CmdError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 && len(msg) > 400 {
		msg = "…" + msg[i+1:]
	}
	if msg == "" {
		return fmt.Sprintf("%s %s: %v", e.Cmd, strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("%s %s: %v: %s", e.Cmd, strings.Join(e.Args, " "), e.Err, msg)
}

func (e *CmdError) Unwrap() error { return e.Err }

// ExecRunner runs commands as child processes. A context that ends kills
// the process.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return stdout.Bytes(), &CmdError{Cmd: name, Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}
