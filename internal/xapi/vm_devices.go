package xapi

import (
	"context"

	"github.com/xenith/xenith/internal/xenapi"
)

// VBD.plug/unplug and VIF.plug/unplug: hotplug through the domain manager.

func (s *Server) registerHotplugHandlers() {
	if s.domains == nil {
		return
	}
	d := s.domains
	for name, fn := range map[string]func(context.Context, xenapi.Ref) error{
		"VBD.plug":   d.PlugVBD,
		"VBD.unplug": d.UnplugVBD,
		"VIF.plug":   d.PlugVIF,
		"VIF.unplug": d.UnplugVIF,
	} {
		fn := fn
		s.handle(name, func(ctx context.Context, c *Call) (Result, error) {
			return nil, fn(ctx, c.Ref(0))
		}, -1)
	}
}
