package xenapi

import (
	"errors"
	"strings"
)

// Error is a XenAPI failure: a code from the schema and its parameters, as
// sent in ErrorDescription. Code inside xenithd returns *Error (wrapped with
// %w where context helps); the dispatcher unwraps it with errors.As.
type Error struct {
	Code   string
	Params []string
}

// NewError builds a failure; code should be one of the generated api.Err*
// constants.
func NewError(code string, params ...string) *Error {
	return &Error{Code: code, Params: params}
}

func (e *Error) Error() string {
	if len(e.Params) == 0 {
		return e.Code
	}
	return e.Code + ": " + strings.Join(e.Params, ", ")
}

// Description is the ErrorDescription array: code then params.
func (e *Error) Description() []string {
	return append([]string{e.Code}, e.Params...)
}

// Is makes errors.Is match on the code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Params == nil
}

// AsError extracts the XenAPI error from err. Anything else becomes
// INTERNAL_ERROR carrying the message, so a client always gets a XenAPI
// failure and never a transport-level error.
func AsError(err error) *Error {
	var xe *Error
	if errors.As(err, &xe) {
		return xe
	}
	return &Error{Code: "INTERNAL_ERROR", Params: []string{err.Error()}}
}

// ErrType is wrapped by decoders when a value has the wrong wire type; the
// dispatcher turns it into FIELD_TYPE_ERROR naming the parameter or field.
var ErrType = errors.New("wrong type")

// FieldTypeError names the parameter or record field whose value had the
// wrong type; it becomes FIELD_TYPE_ERROR [field].
type FieldTypeError struct {
	Field string
	Err   error
}

func (e *FieldTypeError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldTypeError) Unwrap() error { return e.Err }

// FieldError wraps a decoding error with the field name (keeping the
// innermost name when records nest).
func FieldError(field string, err error) error {
	var fe *FieldTypeError
	if errors.As(err, &fe) {
		return err
	}
	return &FieldTypeError{Field: field, Err: err}
}
