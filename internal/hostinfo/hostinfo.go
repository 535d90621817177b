// Package hostinfo gathers facts about the machine Xenith runs on, for the
// host, host_cpu and PIF records it creates on first start.
//
// Everything comes from procfs and the net package, so it works unprivileged
// and without Xen tools. Under a Xen dom0 /proc/cpuinfo lists dom0's vCPUs,
// not the physical CPUs; callers wanting the hypervisor's view must ask Xen.
package hostinfo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Info describes the host. The CPU summary fields repeat CPUs[0], which is
// what xapi's host.cpu_info reports; CPUs has one entry per processor.
type Info struct {
	Hostname string
	Address  string // primary non-loopback IPv4, or loopback if there is none

	CPUCount       int
	CPUModel       string
	CPUVendor      string
	CPUSpeedMHz    float64
	CPUFlags       []string
	CPUFamily      string
	CPUModelNumber string
	CPUStepping    string
	CPUs           []CPU

	MemoryTotal int64 // bytes, /proc/meminfo MemTotal
	MemoryFree  int64 // bytes, MemAvailable (MemFree on old kernels)

	KernelVersion string // uname -r
	Machine       string // uname -m, e.g. x86_64

	Interfaces []Interface

	BootID   string
	UUIDSeed string // /etc/machine-id, else the boot ID: stable per machine where possible
}

// Interface is one network interface. IPv4 and Netmask are its first IPv4
// address; Gateway is set when a default route leaves through it.
type Interface struct {
	Name, MAC, IPv4, Netmask, Gateway string
	MTU                               int
	Up                                bool
}

// Read gathers Info from the live machine.
func Read() (Info, error) {
	return read("/", liveInterfaces)
}

// read is Read with the filesystem root and the interface source made
// replaceable, so the assembly logic can be tested on fixtures.
func read(root string, ifaces func() ([]Interface, error)) (Info, error) {
	var info Info
	file := func(p string) (string, error) {
		b, err := os.ReadFile(filepath.Join(root, p))
		return strings.TrimSpace(string(b)), err
	}
	open := func(p string) (*os.File, error) { return os.Open(filepath.Join(root, p)) }

	var err error
	if info.Hostname, err = file("proc/sys/kernel/hostname"); err != nil || info.Hostname == "" {
		if info.Hostname, err = os.Hostname(); err != nil {
			return Info{}, fmt.Errorf("hostinfo: hostname: %w", err)
		}
	}

	f, err := open("proc/cpuinfo")
	if err != nil {
		return Info{}, fmt.Errorf("hostinfo: %w", err)
	}
	cpus, err := ParseCPUInfo(f)
	f.Close()
	if err != nil {
		return Info{}, fmt.Errorf("hostinfo: %w", err)
	}
	c := cpus[0]
	info.CPUs, info.CPUCount = cpus, len(cpus)
	info.CPUModel, info.CPUVendor, info.CPUSpeedMHz, info.CPUFlags = c.ModelName, c.Vendor, c.SpeedMHz, c.Flags
	info.CPUFamily, info.CPUModelNumber, info.CPUStepping = c.Family, c.Model, c.Stepping

	if f, err = open("proc/meminfo"); err != nil {
		return Info{}, fmt.Errorf("hostinfo: %w", err)
	}
	info.MemoryTotal, info.MemoryFree, err = ParseMemInfo(f)
	f.Close()
	if err != nil {
		return Info{}, fmt.Errorf("hostinfo: %w", err)
	}

	if info.KernelVersion, err = file("proc/sys/kernel/osrelease"); err != nil {
		return Info{}, fmt.Errorf("hostinfo: kernel version: %w", err)
	}
	// kernel.arch exists only on newer kernels; GOARCH is the same machine
	// for a native build.
	if info.Machine, err = file("proc/sys/kernel/arch"); err != nil || info.Machine == "" {
		info.Machine = unameMachine(runtime.GOARCH)
	}
	if info.BootID, err = file("proc/sys/kernel/random/boot_id"); err != nil {
		return Info{}, fmt.Errorf("hostinfo: boot id: %w", err)
	}
	// machine-id survives reboots, boot_id does not; the seed should be as
	// stable as the machine allows.
	if id, err := file("etc/machine-id"); err == nil && id != "" {
		info.UUIDSeed = id
	} else {
		info.UUIDSeed = info.BootID
	}

	// Routes are optional: a host (or container) without them just has no
	// gateway, which is not a reason to refuse to start.
	var routes []DefaultRoute
	if f, err = open("proc/net/route"); err == nil {
		routes, err = ParseRoutes(f)
		f.Close()
		if err != nil {
			return Info{}, fmt.Errorf("hostinfo: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("hostinfo: %w", err)
	}

	if info.Interfaces, err = ifaces(); err != nil {
		return Info{}, fmt.Errorf("hostinfo: interfaces: %w", err)
	}
	for i := range info.Interfaces {
		for _, r := range routes { // lowest metric first
			if r.Iface == info.Interfaces[i].Name {
				info.Interfaces[i].Gateway = r.Gateway
				break
			}
		}
	}
	info.Address = primaryAddress(info.Interfaces, routes)
	return info, nil
}

// primaryAddress picks the address other hosts most likely reach us on: that
// of the interface carrying the default route, else of the first interface
// that is up, else loopback.
func primaryAddress(ifs []Interface, routes []DefaultRoute) string {
	for _, r := range routes {
		for _, i := range ifs {
			if i.Name == r.Iface && i.IPv4 != "" {
				return i.IPv4
			}
		}
	}
	for _, i := range ifs {
		if i.Up && i.IPv4 != "" && !net.ParseIP(i.IPv4).IsLoopback() {
			return i.IPv4
		}
	}
	for _, i := range ifs {
		if i.IPv4 != "" && net.ParseIP(i.IPv4).IsLoopback() {
			return i.IPv4
		}
	}
	return "127.0.0.1"
}

// unameMachine maps GOARCH to the names uname -m prints.
func unameMachine(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "386":
		return "i686"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armv7l"
	}
	return goarch
}

func liveInterfaces() ([]Interface, error) {
	nifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(nifs))
	for _, n := range nifs {
		i := Interface{Name: n.Name, MAC: n.HardwareAddr.String(), MTU: n.MTU, Up: n.Flags&net.FlagUp != 0}
		addrs, err := n.Addrs()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil {
				continue
			}
			i.IPv4 = ipn.IP.To4().String()
			m := ipn.Mask
			if len(m) == net.IPv6len {
				m = m[12:]
			}
			i.Netmask = net.IP(m).String()
			break
		}
		out = append(out, i)
	}
	return out, nil
}
