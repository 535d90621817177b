package xapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Front is the in-process XenAPI entry point of xenithd's other fronts
// (the xenopsd domain API, the xend HTTP interface). A front is a XenAPI
// client that skips the wire: it authenticates HTTP requests to XenAPI
// sessions and calls XenAPI messages as those sessions, so every check
// (RBAC, power states, hooks) and every store change is the one XenAPI
// makes, and shows up in XenAPI events.
type Front struct {
	s          *Server
	originator string

	mu    sync.Mutex
	basic map[[32]byte]xenapi.Ref // sha256(user NUL password) -> session
	local xenapi.Ref              // the trusted local root session
}

// NewFront returns a front whose sessions carry originator (e.g.
// "xenith-xenopsd"), so they share one per-originator session limit.
func (s *Server) NewFront(originator string) *Front {
	return &Front{s: s, originator: originator, basic: make(map[[32]byte]xenapi.Ref)}
}

// Store returns the object store.
func (f *Front) Store() *store.Store { return f.s.store }

// Host returns this host's reference.
func (f *Front) Host() xenapi.Ref { return f.s.hostRef }

// Domains returns the domain manager (nil without a hypervisor).
func (f *Front) Domains() *domain.Manager { return f.s.domains }

// ErrNoCredentials is returned by Authenticate for a request that carries
// no credentials at all (the front answers 401 with a challenge).
var ErrNoCredentials = xenapi.NewError(api.ErrSessionAuthenticationFailed, "", "credentials required")

// SessionCookie is the cookie (and query parameter) a front reads a XenAPI
// session reference from, as xapi's HTTP handlers do.
const SessionCookie = "session_id"

// Authenticate maps an HTTP request to a live XenAPI session: on the trusted
// unix socket (local) the local root; else a session reference in the
// session_id cookie or query parameter, or HTTP basic credentials (one
// session is kept per user and password, so repeated requests do not pile
// up sessions or repeat the password hash).
func (f *Front) Authenticate(ctx context.Context, r *http.Request, local bool) (xenapi.Ref, error) {
	if local {
		return f.localSession(ctx)
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return f.checkSession(c.Value)
	}
	if v := r.URL.Query().Get(SessionCookie); v != "" {
		return f.checkSession(v)
	}
	user, pw, ok := r.BasicAuth()
	if !ok {
		return "", ErrNoCredentials
	}
	key := sha256.Sum256([]byte(user + "\x00" + pw))
	f.mu.Lock()
	ref, cached := f.basic[key]
	f.mu.Unlock()
	if cached && f.alive(ref) {
		return ref, nil
	}
	v, err := f.s.dispatch(ctx, "session.login_with_password",
		[]wire.Value{wire.String(user), wire.String(pw), wire.String("1.0"), wire.String(f.originator)}, r.RemoteAddr, false)
	if err != nil {
		return "", err
	}
	ref = xenapi.Ref(build(v).Str)
	f.mu.Lock()
	// Drop entries whose sessions ended, so the cache stays small.
	for k, old := range f.basic {
		if !f.alive(old) {
			delete(f.basic, k)
		}
	}
	f.basic[key] = ref
	f.mu.Unlock()
	return ref, nil
}

func (f *Front) checkSession(v string) (xenapi.Ref, error) {
	sess, err := f.s.sessions.check(wire.String(v))
	if err != nil {
		return "", err
	}
	return sess.Ref, nil
}

func (f *Front) alive(ref xenapi.Ref) bool {
	_, err := f.s.sessions.check(wire.String(string(ref)))
	return err == nil
}

// localSession returns the local root session of the trusted socket,
// opening it the first time (and again if it expired or was logged out).
func (f *Front) localSession(ctx context.Context) (xenapi.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.local != "" && f.alive(f.local) {
		return f.local, nil
	}
	v, err := f.s.dispatch(ctx, "session.login_with_password",
		[]wire.Value{wire.String("root"), wire.String(""), wire.String("1.0"), wire.String(f.originator)}, "local", true)
	if err != nil {
		return "", err
	}
	f.local = xenapi.Ref(build(v).Str)
	return f.local, nil
}

// Call runs XenAPI message method as session sess, exactly as if it had
// arrived on the wire (argument checks, RBAC, Async.* tasks), and returns
// its value (KindNil for void). Failures are *xenapi.Error.
func (f *Front) Call(ctx context.Context, sess xenapi.Ref, method string, args ...wire.Value) (wire.Value, error) {
	params := make([]wire.Value, 0, len(args)+1)
	params = append(params, wire.String(string(sess)))
	params = append(params, args...)
	res, err := f.s.dispatch(ctx, method, params, f.originator, false)
	if err != nil {
		return wire.Value{}, xenapi.AsError(err)
	}
	return build(res), nil
}

func build(res Result) wire.Value {
	if res == nil {
		return wire.Value{Kind: wire.KindNil}
	}
	var b wire.Builder
	res(&b)
	return b.Value()
}

// Roles returns the RBAC roles of a session (and whether it is the local
// superuser), for fronts that gate operations not reached through Call.
func (f *Front) Roles(sess xenapi.Ref) (xenapi.Role, bool, error) {
	s, err := f.s.sessions.check(wire.String(string(sess)))
	if err != nil {
		return 0, false, err
	}
	return s.Roles(), s.superuser, nil
}

// RunTask runs fn as a XenAPI task owned by sess and returns the task's
// reference at once: the task is pending while fn runs and ends in success
// or failure (or cancelled, when cancellable and task.cancel stopped it)
// like an Async.* call's. fn's context carries the task, so the XenAPI
// calls it makes report their progress on it.
func (f *Front) RunTask(ctx context.Context, sess xenapi.Ref, label string, cancellable bool, fn func(ctx context.Context) error) (xenapi.Ref, error) {
	owner, err := f.s.sessions.check(wire.String(string(sess)))
	if err != nil {
		return "", err
	}
	ref, err := f.s.newTask(ctx, owner, label, "", cancellable)
	if err != nil {
		return "", err
	}
	workCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	workCtx = withTask(workCtx, ref)
	rt := &runningTask{cancel: cancel, cancellable: cancellable}
	f.s.tasks.mu.Lock()
	f.s.tasks.m[ref] = rt
	f.s.tasks.mu.Unlock()
	f.s.log.Info("task started", "task", ref, "label", label, "session", sess)
	go func() {
		defer cancel()
		err := safeRun(workCtx, fn)
		if err != nil && !errors.Is(err, context.Canceled) {
			var xe *xenapi.Error
			if !errors.As(err, &xe) {
				f.s.log.Warn("task failed", "task", ref, "label", label, "err", err)
			}
		}
		f.s.finishTask(ref, rt, nil, err, workCtx.Err() != nil)
	}()
	return ref, nil
}

// safeRun turns a panic in fn into an INTERNAL_ERROR.
func safeRun(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = xenapi.NewError(api.ErrInternalError, "panic: "+strings.TrimSpace(anyString(p)))
		}
	}()
	return fn(ctx)
}

func anyString(p any) string {
	switch v := p.(type) {
	case error:
		return v.Error()
	case string:
		return v
	}
	return "unexpected failure"
}

// authenticateHTTP authenticates a request to one of the HTTP handlers
// beside the RPC (console, statistics), answering 401 itself when it
// fails; what names the handler in the error.
func (f *Front) authenticateHTTP(w http.ResponseWriter, r *http.Request, local bool, what string) (xenapi.Ref, bool) {
	sess, err := f.Authenticate(r.Context(), r, local)
	if err != nil {
		if errors.Is(err, ErrNoCredentials) {
			w.Header().Set("WWW-Authenticate", `Basic realm="xenith"`)
		}
		http.Error(w, what+": "+err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return sess, true
}

// CreateWithUUID is <class>.create as session sess (the same checks and
// hooks), keeping the uuid the caller chose: the xenopsd front registers
// VMs under the ids its clients give them. A uuid already taken fails with
// DB_UNIQUENESS_CONSTRAINT_VIOLATION; "" lets the store choose one.
func (f *Front) CreateWithUUID(ctx context.Context, sess xenapi.Ref, class, uuid string, rec wire.Value) (xenapi.Ref, error) {
	name := class + ".create"
	e, call, err := f.s.prepare(name, []wire.Value{wire.String(string(sess)), rec}, f.originator, false)
	if err != nil {
		return "", err
	}
	c := f.s.store.Class(e.method.Class)
	if c == nil {
		return "", xenapi.NewError(api.ErrMessageMethodUnknown, name)
	}
	if uuid == "" {
		return f.s.create(ctx, c, call.Arg(0))
	}
	if !xenapi.IsUUID(uuid) {
		return "", xenapi.NewError(api.ErrUUIDInvalid, class, uuid)
	}
	r := c.New()
	kept := make([]wire.Member, 0, len(rec.Struct)+1)
	for _, m := range rec.Struct {
		if fd := c.Field(m.Name); fd != nil && fd.Qualifier != xenapi.RORuntime {
			kept = append(kept, m)
		}
	}
	kept = append(kept, wire.Member{Name: "uuid", Value: wire.String(uuid)})
	if err := r.Decode(wire.Value{Kind: wire.KindStruct, Struct: kept}); err != nil {
		return "", fieldTypeError("args", err)
	}
	var ref xenapi.Ref
	err = f.s.store.Update(ctx, func(tx *store.Tx) error {
		if hook := f.s.hooks[c].beforeCreate; hook != nil {
			if err := hook(tx, r); err != nil {
				return err
			}
		}
		var err error
		ref, err = tx.Create(r)
		return err
	})
	return ref, err
}
