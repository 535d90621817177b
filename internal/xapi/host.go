package xapi

import (
	"context"
	"time"

	"github.com/xenith/xenith/internal/wire"
)

// host.* messages. The host record itself is created by the inventory.

func (s *Server) registerHostHandlers() {
	s.handle("host.get_servertime", s.hostServerTime, -1)
	s.handle("host.get_server_localtime", s.hostServerLocalTime, -1)
}

func (s *Server) hostServerTime(ctx context.Context, c *Call) (Result, error) {
	if _, err := s.store.Get(s.store.Class("host"), c.Ref(0)); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	return func(e wire.Encoder) { e.DateTime(now) }, nil
}

func (s *Server) hostServerLocalTime(ctx context.Context, c *Call) (Result, error) {
	if _, err := s.store.Get(s.store.Class("host"), c.Ref(0)); err != nil {
		return nil, err
	}
	// XenAPI datetimes carry no zone; local time is sent as if it were UTC.
	now := time.Now()
	local := time.Date(now.Year(), now.Month(), now.Day(), now.Hour(), now.Minute(), now.Second(), 0, time.UTC)
	return func(e wire.Encoder) { e.DateTime(local) }, nil
}
