package qemu

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/domain"
)

// The XenAPI VM as a QEMU command line. Devices get fixed PCI slots and
// IDE/SCSI positions derived from their device names, so that the same
// spec always gives the same machine (a suspend image only loads into an
// identical one) and hotplug never collides with boot-time devices.
//
// Machine "pc" (i440fx, the default; PCI hotplug through ACPI on bus 0):
//
//	slot 2        VGA (std)
//	slot 3        virtio-balloon
//	slot 4        virtio-scsi (only with sdX disks)
//	slots 8..15   NICs 0..7 (virtio-net)
//	slots 16..31  virtio disks 0..15 (virtio-blk)
//
// Machine "q35" (platform:machine=q35) uses the same slots on pcie.0,
// which does not support hotplug.

// Layout limits.
const (
	maxNICs        = 8
	maxVirtioDisks = 16
	nicSlot0       = 8
	diskSlot0      = 16
	balloonSlot    = 3
	scsiSlot       = 4
	maxSCSIDisks   = 16
)

type busKind int

const (
	busVirtio busKind = iota
	busIDE
	busSCSI
)

// diskPlace is where a disk sits in the machine.
type diskPlace struct {
	kind  busKind
	index int // virtio: slot offset; ide: 0..3 (pc) / 0..5 (q35); scsi: scsi-id
}

// placeDisk maps a device name to its bus: "xvdX"/"vdX" virtio,
// "hdX" IDE, "sdX" SCSI; a userdevice number uses platform:disk-bus
// (virtio by default; CDs always go on IDE).
func placeDisk(dev string, cd bool, platform map[string]string) (diskPlace, error) {
	letter := func(s string) (int, bool) {
		if len(s) != 1 || s[0] < 'a' || s[0] > 'z' {
			return 0, false
		}
		return int(s[0] - 'a'), true
	}
	var p diskPlace
	var ok bool
	switch {
	case strings.HasPrefix(dev, "xvd"):
		p.kind = busVirtio
		p.index, ok = letter(dev[3:])
	case strings.HasPrefix(dev, "vd"):
		p.kind = busVirtio
		p.index, ok = letter(dev[2:])
	case strings.HasPrefix(dev, "hd"):
		p.kind = busIDE
		p.index, ok = letter(dev[2:])
	case strings.HasPrefix(dev, "sd"):
		p.kind = busSCSI
		p.index, ok = letter(dev[2:])
	default:
		n, err := strconv.Atoi(dev)
		if err == nil && n >= 0 {
			p.index, ok = n, true
			switch platform["disk-bus"] {
			case "", "virtio":
				p.kind = busVirtio
			case "ide":
				p.kind = busIDE
			case "scsi":
				p.kind = busSCSI
			default:
				return p, fmt.Errorf("platform:disk-bus %q: want virtio, ide or scsi: %w", platform["disk-bus"], ErrUnsupported)
			}
		}
	}
	if !ok {
		return p, fmt.Errorf("disk device %q: want a number, xvdX, vdX, hdX or sdX: %w", dev, ErrUnsupported)
	}
	if cd {
		p.kind = busIDE
	}
	limit := map[busKind]int{busVirtio: maxVirtioDisks, busIDE: 4, busSCSI: maxSCSIDisks}[p.kind]
	if machineOf(platform) == "q35" && p.kind == busIDE {
		limit = 6
	}
	if p.index >= limit {
		return p, fmt.Errorf("disk device %q: index %d beyond the %d this bus has: %w", dev, p.index, limit, ErrUnsupported)
	}
	return p, nil
}

// nicIndex maps a VIF device number to its slot offset.
func nicIndex(dev string) (int, error) {
	n, err := strconv.Atoi(dev)
	if err != nil || n < 0 || n >= maxNICs {
		return 0, fmt.Errorf("VIF device %q: want 0..%d: %w", dev, maxNICs-1, ErrUnsupported)
	}
	return n, nil
}

func machineOf(platform map[string]string) string {
	if m := platform["machine"]; m != "" {
		return m
	}
	return "pc"
}

func pciBus(platform map[string]string) string {
	if machineOf(platform) == "q35" {
		return "pcie.0"
	}
	return "pci.0"
}

// qopt escapes a value for QEMU's key=value,... option syntax.
func qopt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func diskID(dev string) string   { return "vbd-" + dev }
func diskNode(dev string) string { return "vbd-" + dev + "-img" }
func nicID(dev string) string    { return "vif-" + dev }
func netdevID(dev string) string { return "net-" + dev }

// blockdev is the -blockdev / blockdev-add description of an image.
func blockdev(d domain.Disk) map[string]any {
	format := d.Format
	if format == "" {
		format = "raw"
	}
	return map[string]any{
		"driver":    format,
		"node-name": diskNode(d.Device),
		"read-only": d.ReadOnly || d.CD,
		"file": map[string]any{
			"driver":    "file",
			"filename":  d.Path,
			"read-only": d.ReadOnly || d.CD,
		},
	}
}

// diskDevice is the -device / device_add description of a disk (as an
// ordered list of key/value pairs; device_add takes the same as a map).
func diskDevice(d domain.Disk, platform map[string]string, bootindex int) ([][2]string, error) {
	p, err := placeDisk(d.Device, d.CD, platform)
	if err != nil {
		return nil, err
	}
	var kv [][2]string
	switch p.kind {
	case busVirtio:
		if d.CD {
			return nil, fmt.Errorf("CD %q cannot be a virtio disk: %w", d.Device, ErrUnsupported)
		}
		kv = [][2]string{{"driver", "virtio-blk-pci"}, {"bus", pciBus(platform)}, {"addr", fmt.Sprintf("0x%x", diskSlot0+p.index)}}
	case busIDE:
		drv := "ide-hd"
		if d.CD {
			drv = "ide-cd"
		}
		bus, unit := p.index/2, p.index%2
		if machineOf(platform) == "q35" {
			bus, unit = p.index, 0
		}
		kv = [][2]string{{"driver", drv}, {"bus", fmt.Sprintf("ide.%d", bus)}, {"unit", strconv.Itoa(unit)}}
	case busSCSI:
		kv = [][2]string{{"driver", "scsi-hd"}, {"bus", "scsi0.0"}, {"scsi-id", strconv.Itoa(p.index)}}
	}
	kv = append(kv, [2]string{"id", diskID(d.Device)})
	if d.Path != "" {
		kv = append(kv, [2]string{"drive", diskNode(d.Device)})
	}
	if bootindex >= 0 {
		kv = append(kv, [2]string{"bootindex", strconv.Itoa(bootindex)})
	}
	return kv, nil
}

func nicDevice(n domain.NIC, platform map[string]string, bootindex int) ([][2]string, error) {
	i, err := nicIndex(n.Device)
	if err != nil {
		return nil, err
	}
	kv := [][2]string{{"driver", "virtio-net-pci"}, {"bus", pciBus(platform)}, {"addr", fmt.Sprintf("0x%x", nicSlot0+i)},
		{"id", nicID(n.Device)}, {"netdev", netdevID(n.Device)}}
	if n.MAC != "" {
		kv = append(kv, [2]string{"mac", n.MAC})
	}
	if n.MTU > 0 && n.MTU != 1500 {
		kv = append(kv, [2]string{"host_mtu", strconv.Itoa(n.MTU)})
	}
	if bootindex >= 0 {
		kv = append(kv, [2]string{"bootindex", strconv.Itoa(bootindex)})
	}
	return kv, nil
}

func kvString(kv [][2]string) string {
	var b strings.Builder
	for i, p := range kv {
		if i == 0 && p[0] == "driver" {
			b.WriteString(qopt(p[1]))
			continue
		}
		b.WriteByte(',')
		b.WriteString(p[0])
		b.WriteByte('=')
		b.WriteString(qopt(p[1]))
	}
	return b.String()
}

func kvMap(kv [][2]string) map[string]any {
	m := make(map[string]any, len(kv))
	for _, p := range kv {
		m[p[0]] = p[1]
	}
	return m
}

// bootIndexes assigns SeaBIOS boot priorities from an HVM boot order
// ("cdn": c = the bootable (else first) hard disk, d = CD drives, n =
// NICs). Devices not named by the order get none.
func bootIndexes(s domain.Spec) (disks map[string]int, nics map[string]int) {
	disks, nics = map[string]int{}, map[string]int{}
	if !s.HVM || s.Kernel != "" {
		return
	}
	order := s.BootOrder
	if order == "" {
		order = "cd"
	}
	next := 0
	for _, c := range order {
		switch c {
		case 'c':
			var pick string
			for _, d := range s.Disks {
				if !d.CD && d.Bootable {
					pick = d.Device
					break
				}
			}
			if pick == "" {
				for _, d := range s.Disks {
					if !d.CD {
						pick = d.Device
						break
					}
				}
			}
			if _, done := disks[pick]; pick != "" && !done {
				disks[pick] = next
				next++
			}
		case 'd':
			for _, d := range s.Disks {
				if _, done := disks[d.Device]; d.CD && !done {
					disks[d.Device] = next
					next++
				}
			}
		case 'n':
			for _, n := range s.NICs {
				if _, done := nics[n.Device]; !done {
					nics[n.Device] = next
					next++
				}
			}
		}
	}
	return
}

// launch describes one QEMU process to start.
type launch struct {
	Binary   string
	Accel    string // "kvm" or "tcg"
	Dir      string // the domain's directory: sockets, pidfile, logs
	Spec     domain.Spec
	Incoming bool           // resume: the image comes on the first extra fd
	TapFDs   map[string]int // NIC device -> fd number in the child (tap on a bridge)
}

// Files in a domain's directory.
const (
	qmpSock    = "qmp.sock"
	serialSock = "serial.sock"
	serialLog  = "serial.log"
	vncSock    = "vnc.sock"
	pidFile    = "qemu.pid"
	recordFile = "domain.json"
)

func (l launch) path(name string) string { return l.Dir + "/" + name }

// hasVNC tells whether the VM gets a graphics card and a VNC console.
func hasVNC(platform map[string]string) bool { return platform["vga"] != "none" }

// args builds the command line (without the binary).
func (l launch) args() ([]string, error) {
	s := l.Spec
	pf := s.Platform
	machine := machineOf(pf)
	if machine != "pc" && machine != "q35" {
		return nil, fmt.Errorf("platform:machine %q: want pc or q35: %w", machine, ErrUnsupported)
	}
	if pf["secureboot"] == "true" {
		return nil, fmt.Errorf("platform:secureboot: UEFI is not supported by the qemu driver: %w", ErrUnsupported)
	}
	if !s.HVM && s.Kernel == "" {
		return nil, fmt.Errorf("a PV VM needs PV_kernel (bootloaders such as pygrub are not supported by the qemu driver): %w", ErrUnsupported)
	}
	memMiB := (s.MemoryStaticMax + 1<<20 - 1) >> 20
	cpu := "qemu64"
	if l.Accel == "kvm" {
		cpu = "host"
	}
	mopts := machine + ",accel=" + l.Accel
	if pf["acpi"] == "0" || pf["acpi"] == "false" {
		mopts += ",acpi=off"
	}
	a := []string{
		"-name", "guest=" + qopt(nameOr(s.Name, s.UUID)) + ",debug-threads=on",
		"-uuid", s.UUID,
		"-machine", mopts,
		"-cpu", cpu,
		"-m", "size=" + strconv.FormatInt(memMiB, 10) + "M",
		"-smp", fmt.Sprintf("cpus=%d,maxcpus=%d", s.VCPUs, s.VCPUsMax),
		"-nodefaults", "-no-user-config", "-no-shutdown",
		"-daemonize", "-pidfile", l.path(pidFile), "-S",
		"-chardev", "socket,id=qmp,server=on,wait=off,path=" + qopt(l.path(qmpSock)),
		"-mon", "chardev=qmp,mode=control",
		"-chardev", "socket,id=serial0,server=on,wait=off,path=" + qopt(l.path(serialSock)) +
			",logfile=" + qopt(l.path(serialLog)) + ",logappend=on",
		"-serial", "chardev:serial0",
		"-device", fmt.Sprintf("virtio-balloon-pci,id=balloon0,bus=%s,addr=0x%x", pciBus(pf), balloonSlot),
		"-device", "pvpanic",
	}
	if hasVNC(pf) {
		a = append(a, "-vga", "std", "-display", "none", "-vnc", "unix:"+qopt(l.path(vncSock)))
	} else {
		a = append(a, "-vga", "none", "-display", "none")
	}
	if s.Kernel != "" {
		a = append(a, "-kernel", qopt(s.Kernel))
		if s.Ramdisk != "" {
			a = append(a, "-initrd", qopt(s.Ramdisk))
		}
		if s.Args != "" {
			a = append(a, "-append", s.Args)
		}
	}
	diskBoot, nicBoot := bootIndexes(s)
	scsi := false
	for _, d := range s.Disks {
		idx, ok := diskBoot[d.Device]
		if !ok {
			idx = -1
		}
		kv, err := diskDevice(d, pf, idx)
		if err != nil {
			return nil, err
		}
		if kv[0][1] == "scsi-hd" && !scsi {
			scsi = true
			a = append(a, "-device", fmt.Sprintf("virtio-scsi-pci,id=scsi0,bus=%s,addr=0x%x", pciBus(pf), scsiSlot))
		}
		if d.Path != "" {
			b, err := json.Marshal(blockdev(d))
			if err != nil {
				return nil, err
			}
			a = append(a, "-blockdev", string(b))
		}
		a = append(a, "-device", kvString(kv))
	}
	for _, n := range s.NICs {
		if fd, ok := l.TapFDs[n.Device]; ok {
			a = append(a, "-netdev", fmt.Sprintf("tap,id=%s,fd=%d", netdevID(n.Device), fd))
		} else {
			a = append(a, "-netdev", "user,id="+netdevID(n.Device)+",restrict=on")
		}
		idx, ok := nicBoot[n.Device]
		if !ok {
			idx = -1
		}
		kv, err := nicDevice(n, pf, idx)
		if err != nil {
			return nil, err
		}
		a = append(a, "-device", kvString(kv))
	}
	if l.Incoming {
		a = append(a, "-incoming", "fd:3")
	}
	return a, nil
}

func nameOr(name, uuid string) string {
	if name == "" {
		return uuid
	}
	return name
}
