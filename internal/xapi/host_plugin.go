package xapi

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/xenapi"
)

// host.call_plugin(host, "sim", fn, args) drives the simulator's fault
// injection and guest actions, so people testing their XenAPI tools can
// make a guest crash, shut itself down or hang, or set what it keeps busy,
// through the API they already use. fn is one of crash, shutdown, reboot,
// hang, unhang, fail-next and load; args: vm=<uuid> (fail-next:
// op=<create|unpause|shutdown|...>, vm optional; load: cpu=<busy fraction
// of each vCPU, 0..1> and disk_read_kbs, disk_write_kbs, net_rx_kbs,
// net_tx_kbs in KiB/s per disk or NIC, as VBD_metrics' io_read_kbs; each
// optional, an omitted one keeps its value).

// simControls is what the sim driver offers beyond domain.Driver.
type simControls interface {
	Crash(uuid string) error
	GuestShutdown(uuid string) error
	GuestReboot(uuid string) error
	Hang(uuid string, on bool) error
	FailNext(op, uuid string) error
}

// simLoadControls sets the load a simulated guest runs (fn "load").
type simLoadControls interface {
	ChangeLoad(uuid string, edit func(*sim.Load)) error
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
	var ctl simControls
	if s.domains != nil {
		ctl, _ = s.domains.Driver().(simControls)
	}
	if ctl == nil {
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
		err = ctl.Crash(uuid)
	case "shutdown":
		err = ctl.GuestShutdown(uuid)
	case "reboot":
		err = ctl.GuestReboot(uuid)
	case "hang", "unhang":
		err = ctl.Hang(uuid, fn == "hang")
	case "fail-next":
		err = ctl.FailNext(args["op"], uuid)
	case "load":
		err = setSimLoad(ctl, uuid, args)
	default:
		return nil, xenapi.NewError(api.ErrXenapiPluginFailure, "unknown_function", fn, "functions: crash, shutdown, reboot, hang, unhang, fail-next, load")
	}
	if err != nil {
		return nil, xenapi.NewError(api.ErrXenapiPluginFailure, "failed", fn, err.Error())
	}
	return stringResult("ok"), nil
}

// setSimLoad changes the fields of a guest's load that args name (KiB/s
// but for cpu). The driver checks the ranges; unknown arguments are
// refused, since a misspelt one would silently leave its field unchanged.
func setSimLoad(c simControls, uuid string, args map[string]string) error {
	lc, ok := c.(simLoadControls)
	if !ok {
		return fmt.Errorf("this driver has no load control")
	}
	if uuid == "" {
		return fmt.Errorf("load needs vm=<uuid>")
	}
	fields := []struct {
		arg   string
		field func(*sim.Load) *float64
		scale float64
	}{
		{"cpu", func(l *sim.Load) *float64 { return &l.CPU }, 1},
		{"disk_read_kbs", func(l *sim.Load) *float64 { return &l.DiskReadBps }, 1024},
		{"disk_write_kbs", func(l *sim.Load) *float64 { return &l.DiskWriteBps }, 1024},
		{"net_rx_kbs", func(l *sim.Load) *float64 { return &l.NetRxBps }, 1024},
		{"net_tx_kbs", func(l *sim.Load) *float64 { return &l.NetTxBps }, 1024},
	}
	names := []string{"vm"}
	for _, f := range fields {
		names = append(names, f.arg)
	}
	for _, k := range slices.Sorted(maps.Keys(args)) {
		if !slices.Contains(names, k) {
			return fmt.Errorf("unknown argument %q (want %s)", k, strings.Join(names, ", "))
		}
	}
	var sets []func(*sim.Load)
	for _, f := range fields {
		v, ok := args[f.arg]
		if !ok {
			continue
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case err != nil || math.IsNaN(x) || math.IsInf(x, 0):
			return fmt.Errorf("%s: %q is not a number", f.arg, v)
		case x < 0:
			return fmt.Errorf("%s: %q is negative", f.arg, v)
		}
		sets = append(sets, func(l *sim.Load) { *f.field(l) = x * f.scale })
	}
	// Read, change and write under the driver's lock: concurrent calls
	// changing different fields all take effect.
	return lc.ChangeLoad(uuid, func(l *sim.Load) {
		for _, set := range sets {
			set(l)
		}
	})
}
