package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/hypervisor/qemu"
)

var qemuFlags struct {
	binary  string
	accel   string
	reserve int64
}

func init() {
	registerDriver("qemu", driverEntry{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&qemuFlags.binary, "qemu-binary", "qemu-system-x86_64", "qemu: the QEMU system emulator")
			fs.StringVar(&qemuFlags.accel, "qemu-accel", "auto", "qemu: accelerator: auto (KVM when /dev/kvm is usable, else TCG), kvm or tcg")
			fs.Int64Var(&qemuFlags.reserve, "qemu-host-reserve", 512<<20, "qemu: bytes of host memory kept out of VMs' reach")
		},
		open: openQEMU,
	})
}

// openQEMU starts the QEMU driver on DATA/qemu, re-adopting the QEMU
// processes a previous xenithd left running.
func openQEMU(o options, _ hostinfo.Info) (openedDriver, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log, err := newLogger(o.logLevel, os.Stderr)
	if err != nil {
		log = slog.Default()
	}
	return qemu.New(ctx, qemu.Options{
		StateDir:    filepath.Join(o.data, "qemu"),
		Binary:      qemuFlags.binary,
		Accel:       qemuFlags.accel,
		HostReserve: qemuFlags.reserve,
		Log:         log,
	})
}
