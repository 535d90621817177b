package xapi

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Session is the in-memory side of a session object: what every call
// needs to check quickly. The durable record lives in the store;
// last_active is kept here and flushed lazily so that reads never cost a
// disk write.
type Session struct {
	Ref        xenapi.Ref
	User       string
	Originator string
	superuser  bool
	roles      atomic.Uint32 // xenapi.Role bits; changes when the subject's roles do
	subject    xenapi.Ref
	created    time.Time
	lastActive atomic.Int64  // unix nanoseconds
	flushed    atomic.Int64  // last_active value last written to the store
	done       chan struct{} // closed when the session ends: wakes its waiters
	closeOnce  sync.Once
}

func newSession() *Session { return &Session{done: make(chan struct{})} }

func (s *Session) close() { s.closeOnce.Do(func() { close(s.done) }) }

// Roles returns the session's RBAC roles.
func (s *Session) Roles() xenapi.Role { return xenapi.Role(s.roles.Load()) }

// Superuser reports whether the session is the local root.
func (s *Session) Superuser() bool { return s.superuser }

// sessionTable indexes live sessions by reference.
type sessionTable struct {
	mu sync.RWMutex
	m  map[xenapi.Ref]*Session
}

func (t *sessionTable) check(v wire.Value) (*Session, error) {
	ref, err := xenapi.DecRef(v)
	if err != nil {
		return nil, xenapi.NewError(api.ErrSessionInvalid, v.Str)
	}
	t.mu.RLock()
	sess := t.m[ref]
	t.mu.RUnlock()
	if sess == nil {
		return nil, xenapi.NewError(api.ErrSessionInvalid, string(ref))
	}
	sess.lastActive.Store(time.Now().UnixNano())
	return sess, nil
}

func (t *sessionTable) add(s *Session) {
	t.mu.Lock()
	t.m[s.Ref] = s
	t.mu.Unlock()
}

func (t *sessionTable) remove(ref xenapi.Ref) {
	t.mu.Lock()
	s := t.m[ref]
	delete(t.m, ref)
	t.mu.Unlock()
	if s != nil {
		s.close()
	}
}

func (t *sessionTable) snapshot() []*Session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Session, 0, len(t.m))
	for _, s := range t.m {
		out = append(out, s)
	}
	return out
}

// defaultSessionLimit is xapi's: at most this many sessions per originator
// (or per user name when a client gives none); the least recently active go.
const defaultSessionLimit = 500

func (s *Server) registerSessionHandlers() {
	s.handle("session.login_with_password", s.loginWithPassword, 2)
	s.handle("session.logout", s.logout, -1)
	s.handle("session.local_logout", s.logout, -1)
	s.handle("session.get_all_subject_identifiers", s.getAllSubjectIdentifiers, -1)
	s.handle("session.logout_subject_identifier", s.logoutSubjectIdentifier, -1)
	s.handle("session.change_password", s.changePassword, -1)
}

func sourceHost(source string) string {
	if h, _, err := net.SplitHostPort(source); err == nil {
		return h
	}
	return source
}

func (s *Server) loginWithPassword(ctx context.Context, c *Call) (Result, error) {
	uname, pwd := c.Str(0), c.Str(1)
	originator := ""
	if len(c.Args) > 3 {
		originator = c.Str(3)
	}
	src := sourceHost(c.Source)
	if !c.Local {
		if ok, wait := s.throttle.Allow(src); !ok {
			s.log.Warn("login throttled", "user", uname, "source", src, "wait", wait)
			return nil, xenapi.NewError(api.ErrSessionAuthenticationFailed, uname, "Too many failed logins; try again later")
		}
		ok, err := s.users.Check(uname, pwd)
		if err != nil && !errors.Is(err, auth.ErrNoUser) {
			s.log.Error("password check", "user", uname, "err", err)
		}
		if !ok {
			s.throttle.Fail(src)
			s.log.Info("login failed", "user", uname, "source", src)
			return nil, xenapi.NewError(api.ErrSessionAuthenticationFailed, uname, "Authentication failure")
		}
		s.throttle.Succeed(src)
	} else if uname != "root" && !s.users.Has(uname) {
		// The unix socket trusts the caller as local root, as xapi's does,
		// but a named user must at least exist.
		return nil, xenapi.NewError(api.ErrSessionAuthenticationFailed, uname, "Authentication failure")
	}
	sess := newSession()
	sess.User, sess.Originator, sess.created = uname, originator, time.Now()
	if uname == "root" {
		sess.superuser = true
	} else {
		subj, roles, ok := s.subjectOf(uname)
		if !ok {
			return nil, xenapi.NewError(api.ErrSessionAuthorizationFailed, uname, "the user is not in the subject list")
		}
		sess.subject = subj
		sess.roles.Store(uint32(roles))
	}
	ref, err := s.openSession(ctx, sess, originator)
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

// openSession records a new session and enforces the per-group limit.
func (s *Server) openSession(ctx context.Context, sess *Session, originator string) (xenapi.Ref, error) {
	now := time.Now().UTC()
	rec := api.NewSession()
	rec.ThisHost = s.hostRef
	rec.LastActive = now.Truncate(time.Second)
	rec.ValidationTime = rec.LastActive
	rec.IsLocalSuperuser = sess.superuser
	rec.Subject = sess.subject
	rec.AuthUserName = sess.User
	rec.Originator = originator
	if sess.subject.IsNull() {
		rec.Subject = xenapi.NullRef
	} else {
		rec.AuthUserSID = "local:" + sess.User
		rec.RBACPermissions = s.permissionsOf(sess.Roles())
	}
	var ref xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		ref, err = tx.Create(rec)
		return err
	})
	if err != nil {
		return "", err
	}
	sess.Ref = ref
	sess.lastActive.Store(now.UnixNano())
	sess.flushed.Store(now.UnixNano())
	s.sessions.add(sess)
	s.log.Info("session opened", "session", ref, "user", sess.User, "originator", originator)
	s.enforceSessionLimit(ctx, sess)
	return ref, nil
}

func sessionGroup(s *Session) string {
	if s.Originator != "" {
		return "originator:" + s.Originator
	}
	return "user:" + s.User
}

func (s *Server) enforceSessionLimit(ctx context.Context, newest *Session) {
	group := sessionGroup(newest)
	var same []*Session
	for _, x := range s.sessions.snapshot() {
		if sessionGroup(x) == group {
			same = append(same, x)
		}
	}
	if len(same) <= s.sessionLimit {
		return
	}
	sort.Slice(same, func(i, j int) bool { return same[i].lastActive.Load() < same[j].lastActive.Load() })
	var drop []xenapi.Ref
	for _, x := range same[:len(same)-s.sessionLimit] {
		if x != newest {
			drop = append(drop, x.Ref)
		}
	}
	s.log.Info("session limit reached; dropping oldest", "group", group, "dropped", len(drop))
	s.closeSessions(ctx, drop)
}

// closeSessions forgets sessions and deletes their records and tasks.
func (s *Server) closeSessions(ctx context.Context, refs []xenapi.Ref) {
	if len(refs) == 0 {
		return
	}
	for _, r := range refs {
		s.sessions.remove(r)
	}
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		for _, r := range refs {
			rec, err := tx.Get(api.ClassSession, r)
			if err != nil {
				continue
			}
			if err := s.releaseTasks(tx, rec.(*api.Session).Tasks); err != nil {
				return err
			}
			if err := tx.Delete(api.ClassSession, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("closing sessions", "err", err)
	}
	for _, fn := range s.onSessionClose {
		for _, r := range refs {
			fn(r)
		}
	}
}

func (s *Server) logout(ctx context.Context, c *Call) (Result, error) {
	s.closeSessions(ctx, []xenapi.Ref{c.Session.Ref})
	return nil, nil
}

func (s *Server) getAllSubjectIdentifiers(ctx context.Context, c *Call) (Result, error) {
	seen := map[string]bool{}
	var ids []string
	for _, x := range s.sessions.snapshot() {
		if x.subject.IsNull() {
			continue
		}
		if row, err := s.store.Get(api.ClassSubject, x.subject); err == nil {
			id := row.Rec.(*api.Subject).SubjectIdentifier
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return func(e wire.Encoder) { xenapi.EncSet(e, ids, xenapi.EncStr[string]) }, nil
}

func (s *Server) logoutSubjectIdentifier(ctx context.Context, c *Call) (Result, error) {
	id := c.Str(0)
	var drop []xenapi.Ref
	for _, x := range s.sessions.snapshot() {
		if x.subject.IsNull() {
			continue
		}
		if row, err := s.store.Get(api.ClassSubject, x.subject); err == nil && row.Rec.(*api.Subject).SubjectIdentifier == id {
			if x.Ref != c.Session.Ref {
				drop = append(drop, x.Ref)
			}
		}
	}
	s.closeSessions(ctx, drop)
	return nil, nil
}

func (s *Server) changePassword(ctx context.Context, c *Call) (Result, error) {
	oldPwd, newPwd := c.Str(0), c.Str(1)
	user := c.Session.User
	if !c.Local || !c.Session.superuser {
		ok, _ := s.users.Check(user, oldPwd)
		if !ok {
			return nil, xenapi.NewError(api.ErrSessionAuthenticationFailed, user, "Authentication failure")
		}
	}
	if newPwd == "" {
		return nil, xenapi.NewError(api.ErrInvalidValue, "new_pwd", "")
	}
	if err := s.users.SetPassword(user, newPwd); err != nil {
		return nil, err
	}
	s.log.Info("password changed", "user", user, "session", c.Session.Ref)
	return nil, nil
}

// subjectOf finds the subject record of a local user and its roles.
func (s *Server) subjectOf(user string) (xenapi.Ref, xenapi.Role, bool) {
	id := "local:" + user
	for _, row := range s.store.All(api.ClassSubject) {
		subj := row.Rec.(*api.Subject)
		if subj.SubjectIdentifier != id && subj.OtherConfig.Get("subject-name") != user {
			continue
		}
		var roles xenapi.Role
		for _, rr := range subj.Roles {
			if r, err := s.store.Get(api.ClassRole, rr); err == nil {
				roles |= xenapi.RoleNames[r.Rec.(*api.Role).NameLabel]
			}
		}
		return row.Ref, roles, true
	}
	return "", 0, false
}

// permissionsOf lists the lower-cased method names a role set may call, as
// xapi lists them in session.rbac_permissions.
func (s *Server) permissionsOf(roles xenapi.Role) []string {
	var out []string
	for _, m := range api.Methods {
		if m.Roles&roles != 0 && !m.Implicit && m.Lifecycle != xenapi.Removed {
			out = append(out, strings.ToLower(m.Name))
		}
	}
	return out
}

// loadSessions rebuilds the session table from the store after a restart.
func (s *Server) loadSessions() {
	for _, row := range s.store.All(api.ClassSession) {
		rec := row.Rec.(*api.Session)
		sess := newSession()
		sess.Ref, sess.User, sess.Originator = row.Ref, rec.AuthUserName, rec.Originator
		sess.superuser, sess.subject, sess.created = rec.IsLocalSuperuser, rec.Subject, rec.ValidationTime
		if !sess.superuser {
			if _, roles, ok := s.subjectOf(sess.User); ok {
				sess.roles.Store(uint32(roles))
			}
		}
		sess.lastActive.Store(rec.LastActive.UnixNano())
		sess.flushed.Store(rec.LastActive.UnixNano())
		s.sessions.add(sess)
	}
}

// sessionGC expires idle sessions and flushes last_active, until ctx ends.
func (s *Server) sessionGC(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.collectSessions(ctx)
			s.collectTasks(ctx)
		}
	}
}

func (s *Server) collectSessions(ctx context.Context) {
	cutoff := time.Now().Add(-s.sessionIdle).UnixNano()
	var expired []xenapi.Ref
	var stale []*Session
	for _, x := range s.sessions.snapshot() {
		la := x.lastActive.Load()
		switch {
		case la < cutoff:
			expired = append(expired, x.Ref)
		case la-x.flushed.Load() > int64(time.Second):
			stale = append(stale, x)
		}
	}
	if len(expired) > 0 {
		s.log.Info("expiring idle sessions", "count", len(expired))
		s.closeSessions(ctx, expired)
	}
	if len(stale) == 0 {
		return
	}
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		for _, x := range stale {
			la := x.lastActive.Load()
			if !tx.Exists(api.ClassSession, x.Ref) {
				continue
			}
			err := tx.Modify(api.ClassSession, x.Ref, func(r xenapi.Record) error {
				r.(*api.Session).LastActive = time.Unix(0, la).UTC().Truncate(time.Second)
				return nil
			})
			if err != nil {
				return err
			}
			x.flushed.Store(la)
		}
		return nil
	})
	if err != nil {
		s.log.Error("flushing session activity", "err", err)
	}
}
