package xapi

import (
	"context"
	"slices"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// subject.* and role.* messages: who may log in and with which roles. A
// local user "alice" (see `xenithd user-add`) is allowed in by a subject
// whose subject_identifier is "local:alice".

func (s *Server) registerSubjectHandlers() {
	s.handle("subject.add_to_roles", s.subjectRoles(true), -1)
	s.handle("subject.remove_from_roles", s.subjectRoles(false), -1)
	s.hooks[api.ClassSubject] = classHooks{
		beforeCreate: func(tx *store.Tx, rec xenapi.Record) error {
			subj := rec.(*api.Subject)
			for _, other := range tx.All(api.ClassSubject) {
				if other.(*api.Subject).SubjectIdentifier == subj.SubjectIdentifier {
					return xenapi.NewError(api.ErrSubjectAlreadyExists)
				}
			}
			return nil
		},
	}
	// Destroying a subject ends its sessions, as in xapi.
	s.afterCommit[api.ClassSubject] = func(ref xenapi.Ref, _ xenapi.Record) { s.refreshSubjectSessions(ref) }
}

func (s *Server) subjectRoles(add bool) handlerFunc {
	return func(ctx context.Context, c *Call) (Result, error) {
		subj, role := c.Ref(0), c.Ref(1)
		err := s.store.Update(ctx, func(tx *store.Tx) error {
			if !tx.Exists(api.ClassRole, role) {
				return xenapi.NewError(api.ErrRoleNotFound)
			}
			return tx.Modify(api.ClassSubject, subj, func(r xenapi.Record) error {
				rec := r.(*api.Subject)
				has := slices.Contains(rec.Roles, role)
				switch {
				case add && has:
					return xenapi.NewError(api.ErrRoleAlreadyExists)
				case !add && !has:
					return xenapi.NewError(api.ErrRoleNotFound)
				case add:
					rec.Roles = append(slices.Clone(rec.Roles), role)
				default:
					rec.Roles = slices.DeleteFunc(slices.Clone(rec.Roles), func(r xenapi.Ref) bool { return r == role })
				}
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
		s.refreshSubjectSessions(subj)
		return nil, nil
	}
}

// refreshSubjectSessions recomputes the roles of the live sessions of a
// subject, or ends them when the subject is gone.
func (s *Server) refreshSubjectSessions(subj xenapi.Ref) {
	row, err := s.store.Get(api.ClassSubject, subj)
	var roles xenapi.Role
	if err == nil {
		for _, rr := range row.Rec.(*api.Subject).Roles {
			if r, err := s.store.Get(api.ClassRole, rr); err == nil {
				roles |= xenapi.RoleNames[r.Rec.(*api.Role).NameLabel]
			}
		}
	}
	var gone []xenapi.Ref
	for _, x := range s.sessions.snapshot() {
		if x.subject != subj {
			continue
		}
		if err != nil {
			gone = append(gone, x.Ref)
			continue
		}
		x.roles.Store(uint32(roles))
	}
	s.closeSessions(context.Background(), gone)
}
