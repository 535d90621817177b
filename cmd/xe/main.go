// Command xe is the XenServer/XCP-ng command-line client for xenith: it
// talks XenAPI to xenithd over the local unix socket, or to a remote host
// over HTTPS (-s HOST -u USER -pw PASSWORD). Run `xe help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/xenith/xenith/internal/xecli"
)

func main() {
	// Ctrl-C is delivered to the running command (which cancels its task)
	// instead of killing the process outright.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt)
	env := &xecli.Env{
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		Getenv:    os.Getenv,
		Terminal:  isTerminal(os.Stderr),
		Interrupt: sigs,
	}
	os.Exit(xecli.Run(context.Background(), os.Args[1:], env))
}

// isTerminal reports whether f is a character device (a terminal), where a
// progress bar makes sense.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
