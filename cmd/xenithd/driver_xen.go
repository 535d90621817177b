package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/hypervisor/xen"
	"github.com/xenith/xenith/internal/inventory"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

var xenFlags struct {
	xl   string
	poll time.Duration
}

func init() {
	registerDriver("xen", driverEntry{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&xenFlags.xl, "xen-xl", xen.DefaultXL, "xen: the xl command")
			fs.DurationVar(&xenFlags.poll, "xen-poll", xen.DefaultPollInterval, "xen: how often to poll `xl list` when xenstore cannot be watched")
		},
		open: openXen,
	})
}

// xenCapabilities is where a Xen control domain says it is one.
var xenCapabilities = "/proc/xen/capabilities"

// autoHypervisor picks the driver for --hypervisor auto: xen in a Xen
// control domain, else the simulator.
func autoHypervisor() string {
	b, err := os.ReadFile(xenCapabilities)
	if err == nil && bytes.Contains(b, []byte("control_d")) {
		return "xen"
	}
	return "sim"
}

// openXen starts the xen driver; it keeps its state (generated xl configs,
// the specs of running domains) in DATA/xen.
func openXen(o options, _ hostinfo.Info) (openedDriver, error) {
	log, err := newLogger(o.logLevel, os.Stderr)
	if err != nil {
		return nil, err
	}
	return xen.New(xen.Options{
		StateDir:     filepath.Join(o.data, "xen"),
		XL:           xenFlags.xl,
		PollInterval: xenFlags.poll,
		Log:          log,
	})
}

// applyHypervisorFacts records what the hypervisor says about the host on
// its records: with xen, `xl info` (Xen's version and build, the machine's
// memory and CPUs, capabilities, scheduler) and dom0's size from `xl list`
// for the control domain; with other drivers only the driver's name.
func applyHypervisorFacts(ctx context.Context, st *store.Store, hostRef xenapi.Ref, name string, drv domain.Driver) error {
	h := inventory.Hypervisor{Name: name}
	if x, ok := drv.(*xen.Driver); ok {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		fields, err := x.XenInfo(ctx)
		if err != nil {
			return err
		}
		mem, vcpus, err := x.ControlDomain(ctx)
		if err != nil {
			return err
		}
		if h, err = inventory.XenFacts(fields, mem, vcpus); err != nil {
			return err
		}
	}
	return inventory.ApplyHypervisor(ctx, st, hostRef, h)
}
