package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/xenith/xenith/internal/auth"
)

// userAdd implements `xenithd user-add [--data DIR] NAME`: it sets a local
// user's password, read from the first line of stdin. A running daemon
// picks the change up at the next login. To let the user in, a pool admin
// then creates a subject with subject_identifier "local:NAME" and gives it
// roles (subject.create, subject.add_to_roles), as with xapi's subjects.
func userAdd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("xenithd user-add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", defaultDataDir(), "state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: xenithd user-add [--data DIR] NAME < password")
	}
	name := fs.Arg(0)
	if name == "" || strings.ContainsAny(name, " \t\n:") {
		return fmt.Errorf("invalid user name %q", name)
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("empty password on stdin")
	}
	users, err := auth.OpenUsers(filepath.Join(*data, "users.json"))
	if err != nil {
		return err
	}
	if err := users.SetPassword(name, pw); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "password set for %s; subject_identifier for subject.create: local:%s\n", name, name)
	return nil
}
