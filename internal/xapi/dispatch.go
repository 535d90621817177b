package xapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Result writes a call's value; nil means void.
type Result func(e wire.Encoder)

// Call is one decoded, checked invocation.
type Call struct {
	Method  *xenapi.Method
	Session *Session // nil for calls that take no session
	Args    []wire.Value
	Source  string // remote address, for throttling and logs
	Local   bool   // arrived on the trusted unix socket
}

// Arg returns argument i (after the session, if the message takes one).
func (c *Call) Arg(i int) wire.Value {
	if i < len(c.Args) {
		return c.Args[i]
	}
	return wire.Value{Kind: wire.KindNil}
}

// Str, Ref, Int, Bool and Float read already type-checked arguments.
func (c *Call) Str(i int) string     { return c.Arg(i).Str }
func (c *Call) Ref(i int) xenapi.Ref { r, _ := xenapi.DecRef(c.Arg(i)); return r }
func (c *Call) Int(i int) int64      { n, _ := xenapi.DecInt(c.Arg(i)); return n }
func (c *Call) Bool(i int) bool      { b, _ := xenapi.DecBool(c.Arg(i)); return b }
func (c *Call) Float(i int) float64  { f, _ := xenapi.DecFloat(c.Arg(i)); return f }

type handlerFunc func(ctx context.Context, c *Call) (Result, error)

// entry is one served method.
type entry struct {
	method  *xenapi.Method
	handler handlerFunc
	minArgs int // fewer arguments than the schema lists are accepted down to this
	// cancellable: the handler stops when its context is cancelled, so its
	// Async task offers "cancel".
	cancellable bool
}

// table maps wire names to entries.
type table map[string]*entry

// served reports whether a method is answered (for system.listMethods).
func (t table) names() []string {
	out := make([]string, 0, len(t))
	for n := range t {
		out = append(out, n)
	}
	return out
}

// dispatch runs one call: lookup, argument checks, session, RBAC, handler.
// "Async.<message>" runs the handler in a task and answers the task's
// reference at once. It returns a XenAPI error for every failure.
func (s *Server) dispatch(ctx context.Context, name string, params []wire.Value, source string, local bool) (Result, error) {
	if sync, ok := strings.CutPrefix(name, "Async."); ok {
		e, call, err := s.prepare(sync, params, source, local)
		if err != nil {
			// Errors name the method as it was called, as xapi's do.
			var xe *xenapi.Error
			if errors.As(err, &xe) && len(xe.Params) > 0 && xe.Params[0] == sync {
				xe.Params[0] = name
			}
			return nil, err
		}
		if !hasAsync(e.method) {
			return nil, xenapi.NewError(api.ErrMessageMethodUnknown, name)
		}
		return s.startAsync(ctx, e, call)
	}
	e, call, err := s.prepare(name, params, source, local)
	if err != nil {
		return nil, err
	}
	return s.invoke(ctx, e, call)
}

// prepare finds the method and checks the call: parameter count, session,
// RBAC and argument types, so that handlers may trust their arguments.
func (s *Server) prepare(name string, params []wire.Value, source string, local bool) (*entry, *Call, error) {
	e := s.methods[name]
	if e == nil {
		if m := s.removed[name]; m != nil {
			return nil, nil, xenapi.NewError(api.ErrMessageRemoved)
		}
		return nil, nil, xenapi.NewError(api.ErrMessageMethodUnknown, name)
	}
	m := e.method
	want := len(m.Params)
	if len(params) > want || len(params) < e.minArgs {
		return nil, nil, xenapi.NewError(api.ErrMessageParameterCountMismatch, name, strconv.Itoa(want), strconv.Itoa(len(params)))
	}
	call := &Call{Method: m, Source: source, Local: local}
	args := params
	if m.HasSession() {
		sess, err := s.sessions.check(params[0])
		if err != nil {
			return nil, nil, err
		}
		if err := s.authorize(sess, m); err != nil {
			return nil, nil, err
		}
		call.Session = sess
		args = params[1:]
	}
	off := len(params) - len(args)
	for i, a := range args {
		if err := checkType(m.Params[i+off].Type, a); err != nil {
			return nil, nil, fieldTypeError(m.Params[i+off].Name, err)
		}
	}
	call.Args = args
	return e, call, nil
}

// invoke runs a prepared call's handler, turning every failure (a panic
// included) into a XenAPI error.
func (s *Server) invoke(ctx context.Context, e *entry, call *Call) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "method", e.method.Name, "panic", p)
			res, err = nil, xenapi.NewError(api.ErrInternalError, fmt.Sprintf("%s: %v", e.method.Name, p))
		}
	}()
	res, err = e.handler(ctx, call)
	if err != nil {
		var xe *xenapi.Error
		if !errors.As(err, &xe) {
			var fe *xenapi.FieldTypeError
			if errors.As(err, &fe) {
				return nil, xenapi.NewError(api.ErrFieldTypeError, fe.Field)
			}
			s.log.Warn("call failed", "method", e.method.Name, "err", err)
		}
		return nil, xenapi.AsError(err)
	}
	return res, nil
}

// hasAsync tells whether XenAPI offers an Async form of a message: every
// message except those of session, task and event, the system calls, and
// the field accessors (create and destroy do have one).
func hasAsync(m *xenapi.Method) bool {
	switch m.Class {
	case "session", "task", "event", "system":
		return false
	}
	if m.Implicit {
		return m.Message == "create" || m.Message == "destroy"
	}
	return true
}

func fieldTypeError(param string, err error) error {
	var fe *xenapi.FieldTypeError
	if errors.As(err, &fe) {
		return xenapi.NewError(api.ErrFieldTypeError, fe.Field)
	}
	return xenapi.NewError(api.ErrFieldTypeError, param)
}

// checkType verifies a wire value against a XenAPI type, so handlers can
// read arguments without re-checking.
func checkType(t *xenapi.Type, v wire.Value) error {
	switch t.Kind {
	case xenapi.TString:
		_, err := xenapi.DecString(v)
		return err
	case xenapi.TInt:
		_, err := xenapi.DecInt(v)
		return err
	case xenapi.TFloat:
		_, err := xenapi.DecFloat(v)
		return err
	case xenapi.TBool:
		_, err := xenapi.DecBool(v)
		return err
	case xenapi.TDateTime:
		_, err := xenapi.DecTime(v)
		return err
	case xenapi.TRef:
		_, err := xenapi.DecRef(v)
		return err
	case xenapi.TEnum:
		if v.Kind != wire.KindString {
			return xenapi.ErrType
		}
		for _, e := range t.Enum {
			if e == v.Str {
				return nil
			}
		}
		return xenapi.ErrType
	case xenapi.TSet:
		if v.Kind != wire.KindArray {
			return xenapi.ErrType
		}
		for _, x := range v.Array {
			if err := checkType(t.Elem, x); err != nil {
				return err
			}
		}
	case xenapi.TMap:
		if v.Kind != wire.KindStruct {
			return xenapi.ErrType
		}
		for _, m := range v.Struct {
			if err := checkType(t.Key, wire.String(m.Name)); err != nil {
				return err
			}
			if err := checkType(t.Elem, m.Value); err != nil {
				return err
			}
		}
	case xenapi.TRecord:
		if v.Kind != wire.KindStruct {
			return xenapi.ErrType
		}
	case xenapi.TOption:
		if v.Kind == wire.KindNil {
			return nil
		}
		return checkType(t.Elem, v)
	}
	return nil
}

// authorize applies RBAC: the session's roles must include one of the
// message's roles. The local superuser may do everything.
func (s *Server) authorize(sess *Session, m *xenapi.Method) error {
	if sess.superuser || m.Roles == 0 || sess.Roles()&m.Roles != 0 {
		return nil
	}
	var allowed []string
	for _, r := range roleOrder {
		if m.Roles&r.bit != 0 {
			allowed = append(allowed, r.name)
		}
	}
	return xenapi.NewError(api.ErrRBACPermissionDenied, strings.ToLower(m.Name),
		"No permission in user session. (Roles with this permission: "+strings.Join(allowed, ", ")+")")
}

// logCall is used by the transports for request logs at debug level.
func (s *Server) logCall(name, source string, err error) {
	if err != nil {
		s.log.Debug("call", "method", name, "source", source, "err", err)
		return
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("call", "method", name, "source", source)
	}
}
