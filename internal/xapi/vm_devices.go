package xapi

import (
	"context"
	"strings"

	"github.com/xenith/xenith/internal/store"

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
		fn, vbd := fn, strings.HasPrefix(name, "VBD.")
		s.handle(name, func(ctx context.Context, c *Call) (Result, error) {
			if err := fn(ctx, c.Ref(0)); err != nil {
				return nil, err
			}
			if vbd {
				return nil, s.store.Update(ctx, func(tx *store.Tx) error { return refreshVBDAndVDIOps(tx, c.Ref(0)) })
			}
			return nil, nil
		}, -1)
	}
}
