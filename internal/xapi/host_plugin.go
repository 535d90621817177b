package xapi

import (
	"context"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/xenapi"
)

// host.call_plugin(host, "sim", fn, args) drives the simulator's fault
// injection and guest actions, so people testing their XenAPI tools can
// make a guest crash, shut itself down or hang through the API they
// already use. fn is one of crash, shutdown, reboot, hang, unhang and
// fail-next; args: vm=<uuid> (fail-next: op=<create|unpause|shutdown|...>,
// vm optional).

// simControls is what the sim driver offers beyond domain.Driver.
type simControls interface {
	Crash(uuid string) error
	GuestShutdown(uuid string) error
	GuestReboot(uuid string) error
	Hang(uuid string, on bool) error
	FailNext(op, uuid string) error
}

func (s *Server) registerHostPlugins() {
	s.handle("host.call_plugin", s.hostCallPlugin, -1)
}

func (s *Server) hostCallPlugin(ctx context.Context, c *Call) (Result, error) {
	if err := s.assertThisHost(c.Ref(0)); err != nil {
		return nil, err
	}
	plugin, fn := c.Str(1), c.Str(2)
	args := map[string]string{}
	for _, m := range c.Arg(3).Struct {
		args[m.Name] = m.Value.Str
	}
	if plugin != "sim" {
		return nil, xenapi.NewError(api.ErrXenapiMissingPlugin, plugin)
	}
	var sim simControls
	if s.domains != nil {
		sim, _ = s.domains.Driver().(simControls)
	}
	if sim == nil {
		return nil, xenapi.NewError(api.ErrXenapiPluginFailure, "not_available", "", "the sim plugin needs the sim hypervisor driver")
	}
	uuid := args["vm"]
	if uuid != "" {
		if _, err := s.store.ByUUID(api.ClassVM, uuid); err != nil {
			return nil, err
		}
	}
	var err error
	switch fn {
	case "crash":
		err = sim.Crash(uuid)
	case "shutdown":
		err = sim.GuestShutdown(uuid)
	case "reboot":
		err = sim.GuestReboot(uuid)
	case "hang", "unhang":
		err = sim.Hang(uuid, fn == "hang")
	case "fail-next":
		err = sim.FailNext(args["op"], uuid)
	default:
		return nil, xenapi.NewError(api.ErrXenapiPluginFailure, "unknown_function", fn, "functions: crash, shutdown, reboot, hang, unhang, fail-next")
	}
	if err != nil {
		return nil, xenapi.NewError(api.ErrXenapiPluginFailure, "failed", fn, err.Error())
	}
	return stringResult("ok"), nil
}
