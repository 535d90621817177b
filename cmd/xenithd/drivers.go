package main

import (
	"flag"
	"path/filepath"
	"slices"
	"time"

	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/hypervisor/sim"
)

// openedDriver is a started hypervisor driver that xenithd closes at exit.
type openedDriver interface {
	domain.Driver
	Close() error
}

// driverEntry is one --hypervisor choice. Each driver lives in its own
// file here (driver_<name>.go) and registers itself in init, with the
// flags only it reads.
type driverEntry struct {
	flags func(fs *flag.FlagSet)
	open  func(o options, info hostinfo.Info) (openedDriver, error)
}

var drivers = map[string]driverEntry{}

func registerDriver(name string, e driverEntry) { drivers[name] = e }

func driverNames() []string {
	var names []string
	for n := range drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

var simFlags struct {
	boot, shutdown time.Duration
	memory         int64
}

func init() {
	registerDriver("sim", driverEntry{
		flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&simFlags.boot, "sim-boot-time", 2*time.Second, "sim: time from start to a booted guest (guest agent reports)")
			fs.DurationVar(&simFlags.shutdown, "sim-shutdown-time", time.Second, "sim: time a guest takes to obey a clean shutdown or reboot")
			fs.Int64Var(&simFlags.memory, "sim-memory", 0, "sim: host memory in bytes (default: this machine's)")
		},
		open: openSim,
	})
}

// openSim starts the simulator. It models this machine unless told
// otherwise, and keeps its domains in DATA/sim so they outlive xenithd like
// real domains do.
func openSim(o options, info hostinfo.Info) (openedDriver, error) {
	mem := simFlags.memory
	if mem <= 0 {
		mem = info.MemoryTotal
	}
	return sim.New(sim.Options{
		StateDir:     filepath.Join(o.data, "sim"),
		TotalMemory:  mem,
		CPUs:         max(info.CPUCount, 1),
		BootTime:     simFlags.boot,
		ShutdownTime: simFlags.shutdown,
	})
}
