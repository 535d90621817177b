package xenops

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Error is one of the interface's error variants; Args are its
// constructor's arguments (none for a unit constructor).
type Error struct {
	Name string
	Args []wire.Value
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Name)
	for i, a := range e.Args {
		if i == 0 {
			b.WriteString("(")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(describe(a))
	}
	if len(e.Args) > 0 {
		b.WriteString(")")
	}
	return b.String()
}

// Value is the error as it goes on the wire, a variant.
func (e *Error) Value() wire.Value { return variant(e.Name, e.Args...) }

// The error variants of the interface.
func internalError(msg string) *Error {
	return &Error{Name: "Internal_error", Args: []wire.Value{wire.String(msg)}}
}
func alreadyExists() *Error { return &Error{Name: "Already_exists"} }
func doesNotExist(kind, id string) *Error {
	return &Error{Name: "Does_not_exist", Args: []wire.Value{wire.String(kind), wire.String(id)}}
}
func unimplemented() *Error  { return &Error{Name: "Unimplemented"} }
func domainNotBuilt() *Error { return &Error{Name: "Domain_not_built"} }
func maximumVCPUs(n int64) *Error {
	return &Error{Name: "Maximum_vcpus", Args: []wire.Value{wire.Int(n)}}
}
func badPowerState(actual, expected string) *Error {
	return &Error{Name: "Bad_power_state", Args: []wire.Value{variant(actual), variant(expected)}}
}
func notSupported() *Error   { return &Error{Name: "Not_supported"} }
func vdiNotFound() *Error    { return &Error{Name: "VDI_not_found"} }
func noBootable() *Error     { return &Error{Name: "No_bootable_device"} }
func failedToAck() *Error    { return &Error{Name: "Failed_to_achnowledge_shutdown_request"} }
func failedShutdown() *Error { return &Error{Name: "Failed_to_shutdown"} }
func notEnoughMemory(n int64) *Error {
	return &Error{Name: "Not_enough_memory", Args: []wire.Value{wire.Int(n)}}
}

// powerName spells a XenAPI power state as the interface's power_state
// constructor.
func powerName(s string) string {
	switch strings.ToLower(s) {
	case "running":
		return "Running"
	case "halted":
		return "Halted"
	case "suspended":
		return "Suspended"
	case "paused":
		return "Paused"
	}
	return "Halted"
}

// fromXenAPI maps a failure of the XenAPI layer to the interface's error
// variants; what has no counterpart is an Internal_error naming the XenAPI
// error, so nothing is lost.
func fromXenAPI(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return internalError("timed out")
	}
	if errors.Is(err, context.Canceled) {
		return internalError("cancelled")
	}
	xe := xenapi.AsError(err)
	p := func(i int) string {
		if i < len(xe.Params) {
			return xe.Params[i]
		}
		return ""
	}
	switch xe.Code {
	case api.ErrHandleInvalid:
		return doesNotExist(p(0), p(1))
	case api.ErrUUIDInvalid:
		return doesNotExist(p(0), p(1))
	case api.ErrVMBadPowerState:
		return badPowerState(powerName(p(2)), powerName(p(1)))
	case api.ErrDBUniquenessConstraintViolation:
		return alreadyExists()
	case api.ErrNotImplemented:
		return unimplemented()
	case api.ErrHostNotEnoughFreeMemory:
		n, _ := strconv.ParseInt(p(0), 10, 64)
		return notEnoughMemory(n)
	case api.ErrVMMissingPVDrivers, api.ErrVMFailedShutdownAcknowledgment:
		return failedToAck()
	case api.ErrVMShutdownTimeout:
		return failedShutdown()
	case api.ErrVMTooManyVCPUs:
		n, _ := strconv.ParseInt(p(1), 10, 64)
		return maximumVCPUs(n)
	case api.ErrVDIMissing:
		return vdiNotFound()
	}
	return internalError(strings.Join(xe.Description(), " "))
}
