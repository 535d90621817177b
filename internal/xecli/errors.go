package xecli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/xenapi"
)

// Exit codes. xe itself answers 1 to every failure; scripts that test for
// non-zero keep working, and these let them tell a typo from a refusal.
const (
	ExitOK          = 0
	ExitFailure     = 1   // the server refused or the operation failed
	ExitUsage       = 2   // bad command line: unknown command, missing or unknown argument
	ExitConnect     = 3   // cannot reach the server or log in
	ExitInterrupted = 130 // Ctrl-C (after cancelling the running task)
)

// cliError is a failure found by xe itself (no matching VM, a read-only
// field...), printed as "Error: ...".
type cliError struct{ msg string }

func (e *cliError) Error() string { return e.msg }

func failf(format string, args ...any) error { return &cliError{fmt.Sprintf(format, args...)} }

// usageError is a command line the command cannot accept; the command's
// usage follows the message.
type usageError struct {
	cmd string // "" when the command itself is unknown
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// connectError is a failure to reach or log in to the server.
type connectError struct{ msg string }

func (e *connectError) Error() string { return e.msg }

// interruptedError ends a command the user stopped with Ctrl-C.
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string { return e.msg }

// errorText is xe's own one-line explanation of the XenAPI errors people
// meet most; the others print their code. (Written for xenith: the schema
// carries the parameter names but no prose.)
var errorText = map[string]string{
	api.ErrVMBadPowerState:             "The VM is not in the power state this operation needs.",
	api.ErrUUIDInvalid:                 "The uuid you supplied was invalid.",
	api.ErrHandleInvalid:               "The object you referred to does not exist (any more).",
	api.ErrOperationNotAllowed:         "The operation is not allowed now.",
	api.ErrOtherOperationInProgress:    "Another operation on this object is in progress.",
	api.ErrTaskCancelled:               "The task was cancelled.",
	api.ErrHostNotEnoughFreeMemory:     "The host does not have enough free memory to run the VM.",
	api.ErrVMRequiresSR:                "The VM needs a storage repository that is not available.",
	api.ErrVMIsTemplate:                "The operation cannot be done on a template.",
	api.ErrVDIInUse:                    "The disk is in use by a VM.",
	api.ErrInvalidValue:                "A parameter has a value the server does not accept.",
	api.ErrFieldTypeError:              "A parameter has the wrong type.",
	api.ErrMapDuplicateKey:             "The key is already in the map.",
	api.ErrRBACPermissionDenied:        "You do not have the permissions required to perform this operation.",
	api.ErrNotImplemented:              "The server does not implement this operation.",
	api.ErrSessionAuthenticationFailed: "Authentication failed.",
	api.ErrDeviceAlreadyExists:         "A device with this name already exists on the VM.",
	api.ErrInternalError:               "The server failed internally.",
	api.ErrMessageMethodUnknown:        "The server does not know this method.",
}

// refNamer turns an OpaqueRef in an error parameter into "uuid (name)";
// class is the parameter's hint (its name, or a preceding "class" param).
type refNamer func(ctx context.Context, class, ref string) string

// writeXenAPIError prints a XenAPI failure as xe does: a sentence, then each
// parameter named after the schema's error description, references shown as
// the object's uuid and name.
func writeXenAPIError(ctx context.Context, w io.Writer, e *xenapi.Error, name refNamer) {
	if text, ok := errorText[e.Code]; ok {
		fmt.Fprintln(w, text)
	} else {
		fmt.Fprintf(w, "Error code: %s\n", e.Code)
	}
	for _, line := range errorParamLines(ctx, e, name) {
		fmt.Fprintln(w, line)
	}
}

// errorParamLines pairs the error's values with the schema's parameter
// names; surplus values are "<extra>", missing ones "<unknown>".
func errorParamLines(ctx context.Context, e *xenapi.Error, name refNamer) []string {
	names := api.ErrorParams[e.Code]
	var lines []string
	hint := ""
	for i, v := range e.Params {
		pname := "<extra>"
		if i < len(names) {
			pname = names[i]
		}
		if pname == "class" || pname == "type" {
			// OTHER_OPERATION_IN_PROGRESS and friends say which class the
			// following reference belongs to.
			hint = v
		}
		if strings.HasPrefix(v, "OpaqueRef:") && name != nil {
			h := hint
			if h == "" {
				h = pname
			}
			v = name(ctx, h, v)
		}
		lines = append(lines, pname+": "+v)
	}
	// Only complain about missing values when there are some values at all:
	// many codes are sent bare on purpose.
	if len(e.Params) > 0 {
		for i := len(e.Params); i < len(names); i++ {
			lines = append(lines, names[i]+": <unknown>")
		}
	}
	return lines
}

// exitCode maps an error to the process status.
func exitCode(err error) int {
	var ue *usageError
	var ce *connectError
	var ie *interruptedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue), isSyntax(err):
		return ExitUsage
	case errors.As(err, &ce):
		return ExitConnect
	case errors.As(err, &ie):
		return ExitInterrupted
	}
	return ExitFailure
}

func isSyntax(err error) bool {
	var se *syntaxError
	return errors.As(err, &se)
}
