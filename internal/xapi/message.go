package xapi

import (
	"context"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// message.* : the pool's alert log. Its readers (get_record, get_all...)
// are ordinary store reads; the datamodel marks them explicit only
// because xapi keeps messages outside its database.

func (s *Server) registerMessageHandlers() {
	c := api.ClassMessage
	for _, name := range []string{"get_record", "get_by_uuid", "get_all", "get_all_records", "destroy"} {
		if h := s.implicitHandler(&xenapi.Method{Class: c.Name, Message: name}); h != nil {
			s.handle("message."+name, h, -1)
		}
	}
	s.handle("message.get_all_records_where", s.getAllRecordsWhere(c), -1)
	s.handle("message.create", s.messageCreate, -1)
	s.handle("message.get_since", func(ctx context.Context, call *Call) (Result, error) {
		since, _ := xenapi.DecTime(call.Arg(0))
		return recordsResult(s.store.Find(c, func(r *store.Row) bool {
			return r.Rec.(*api.Message).Timestamp.After(since)
		})), nil
	}, -1)
	s.handle("message.get", func(ctx context.Context, call *Call) (Result, error) {
		cls, uuid := api.Cls(call.Str(0)), call.Str(1)
		since, _ := xenapi.DecTime(call.Arg(2))
		return recordsResult(s.store.Find(c, func(r *store.Row) bool {
			m := r.Rec.(*api.Message)
			return m.Cls == cls && m.ObjUUID == uuid && m.Timestamp.After(since)
		})), nil
	}, -1)
}

func (s *Server) messageCreate(ctx context.Context, c *Call) (Result, error) {
	m := api.NewMessage()
	m.Name, m.Priority, m.Cls, m.ObjUUID, m.Body = c.Str(0), c.Int(1), api.Cls(c.Str(2)), c.Str(3), c.Str(4)
	m.Timestamp = time.Now().UTC().Truncate(time.Second)
	var ref xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		ref, err = tx.Create(m)
		return err
	})
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}
