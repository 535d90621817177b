package xen

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/domain"
)

// domainName is the xl name of the domain of a VM: its uuid, which is
// unique (libxl refuses two domains with one name) and lets every xl
// command address the domain without a domid lookup.
func domainName(uuid string) string { return uuid }

const mib = 1 << 20

// toMiB rounds bytes up to whole MiB, xl's unit for memory.
func toMiB(b int64) int64 { return (b + mib - 1) / mib }

// quote renders s as an xl config string. The xl config lexer takes C-like
// escapes inside double quotes; control characters have no business in a
// domain config, so they are refused rather than escaped.
func quote(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("xen: control character in config value %q", s)
		}
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`, nil
}

// domainType is "pv", "pvh" or "hvm" for a spec.
func domainType(s domain.Spec) string {
	if s.HVM {
		return "hvm"
	}
	if s.PVH || s.Platform["pvh"] == "true" || s.Platform["domain-type"] == "pvh" {
		return "pvh"
	}
	return "pv"
}

// vdev names the guest device of a disk: a name given as such ("xvda",
// "hdc") is kept; a XenAPI userdevice number N becomes xvd<letter N> for
// PV and PVH guests and hd<letter N> (N < 4) for emulated HVM disks.
func vdev(s domain.Spec, device string) (string, error) {
	n, err := strconv.Atoi(device)
	if err != nil {
		if device == "" || strings.ContainsAny(device, ",= \"\\") {
			return "", fmt.Errorf("xen: bad disk device name %q", device)
		}
		return device, nil
	}
	if n < 0 || n > 25 {
		return "", fmt.Errorf("xen: disk userdevice %d out of range 0..25", n)
	}
	letter := string(rune('a' + n))
	if s.HVM && n < 4 {
		return "hd" + letter, nil
	}
	return "xvd" + letter, nil
}

// diskSpec is one xl disk specification (xl-disk-configuration(5)): file
// images go through the `qdisk` backend when qcow2, else through `phy`
// (blkback on a loop device set up by the block hotplug script).
func diskSpec(s domain.Spec, d domain.Disk) (string, error) {
	v, err := vdev(s, d.Device)
	if err != nil {
		return "", err
	}
	access := "rw"
	if d.ReadOnly || d.CD {
		access = "ro"
	}
	parts := []string{"vdev=" + v, "access=" + access}
	if d.CD {
		parts = append(parts, "devtype=cdrom")
	}
	if d.Path == "" {
		if !d.CD {
			return "", fmt.Errorf("xen: disk %s has no image", d.Device)
		}
		return strings.Join(parts, ","), nil // empty CD drive
	}
	switch d.Format {
	case "", "raw":
		parts = append(parts, "format=raw")
	case "qcow2":
		parts = append(parts, "format=qcow2", "backendtype=qdisk")
	default:
		return "", fmt.Errorf("xen: disk %s: unsupported image format %q", d.Device, d.Format)
	}
	// target= comes last: it takes the rest of the spec, commas included.
	return strings.Join(append(parts, "target="+d.Path), ","), nil
}

// nicSpec is one xl vif specification (xl-network-configuration(5)).
func nicSpec(n domain.NIC) (string, error) {
	devid, err := strconv.Atoi(n.Device)
	if err != nil || devid < 0 {
		return "", fmt.Errorf("xen: bad VIF device %q", n.Device)
	}
	parts := []string{"devid=" + strconv.Itoa(devid)}
	for k, v := range map[string]string{"mac": n.MAC, "bridge": n.Bridge} {
		if strings.ContainsAny(v, ",=\" \\") {
			return "", fmt.Errorf("xen: bad VIF %s %q", k, v)
		}
	}
	if n.MAC != "" {
		parts = append(parts, "mac="+n.MAC)
	}
	if n.Bridge != "" {
		parts = append(parts, "bridge="+n.Bridge)
	}
	if n.MTU > 0 {
		parts = append(parts, "mtu="+strconv.Itoa(n.MTU))
	}
	return strings.Join(parts, ","), nil
}

// hvmPlatform are the VM.platform keys passed through to an HVM config
// (the same names in xapi and in xl.cfg(5)), with xl's 0/1 booleans.
var hvmPlatform = []string{"acpi", "apic", "pae", "nx", "viridian", "hpet"}

// buildConfig renders the xl config file of a domain. Every action after a
// shutdown, reboot or crash is "preserve": the domain stays as it is for
// xenithd to notice (through xenstore) and act on per the VM's
// actions_after_* policy, as xapi does, instead of xl acting by itself.
func buildConfig(s domain.Spec) (string, error) {
	if s.UUID == "" {
		return "", fmt.Errorf("xen: spec without a uuid")
	}
	if s.MemoryStaticMax <= 0 {
		return "", fmt.Errorf("xen: memory_static_max must be positive")
	}
	target := s.MemoryTarget
	if target <= 0 || target > s.MemoryStaticMax {
		target = s.MemoryStaticMax
	}
	vcpus, vmax := max(s.VCPUs, 1), s.VCPUsMax
	if vmax < vcpus {
		vmax = vcpus
	}
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	str := func(k, v string) error {
		q, err := quote(v)
		if err != nil {
			return err
		}
		line(k, q)
		return nil
	}
	if err := str("name", domainName(s.UUID)); err != nil {
		return "", err
	}
	if err := str("uuid", s.UUID); err != nil {
		return "", err
	}
	typ := domainType(s)
	if err := str("type", typ); err != nil {
		return "", err
	}
	line("memory", strconv.FormatInt(toMiB(target), 10))
	line("maxmem", strconv.FormatInt(toMiB(s.MemoryStaticMax), 10))
	line("vcpus", strconv.Itoa(vcpus))
	line("maxvcpus", strconv.Itoa(vmax))
	for _, k := range []string{"on_poweroff", "on_reboot", "on_crash"} {
		line(k, `"preserve"`)
	}
	switch {
	case s.Kernel != "":
		if err := str("kernel", s.Kernel); err != nil {
			return "", err
		}
		if s.Ramdisk != "" {
			if err := str("ramdisk", s.Ramdisk); err != nil {
				return "", err
			}
		}
		if s.Args != "" {
			if err := str("extra", s.Args); err != nil {
				return "", err
			}
		}
	case typ == "pv":
		// No kernel given: the guest's own, found by pygrub in its disk.
		line("bootloader", `"pygrub"`)
		if s.Args != "" {
			if err := str("extra", s.Args); err != nil {
				return "", err
			}
		}
	}
	if typ == "hvm" {
		order := s.BootOrder
		if order == "" {
			order = "cd"
		}
		for _, c := range order {
			if !strings.ContainsRune("acdn", c) {
				return "", fmt.Errorf("xen: bad HVM boot order %q", order)
			}
		}
		if err := str("boot", order); err != nil {
			return "", err
		}
		line("serial", `"pty"`)
		line("vnc", "0")
		keys := make([]string, 0, len(hvmPlatform))
		for _, k := range hvmPlatform {
			if _, ok := s.Platform[k]; ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch strings.ToLower(s.Platform[k]) {
			case "true", "1":
				line(k, "1")
			case "false", "0":
				line(k, "0")
			}
		}
	}
	if len(s.Disks) > 0 {
		var specs []string
		for _, d := range s.Disks {
			ds, err := diskSpec(s, d)
			if err != nil {
				return "", err
			}
			q, err := quote(ds)
			if err != nil {
				return "", err
			}
			specs = append(specs, q)
		}
		line("disk", "[ "+strings.Join(specs, ", ")+" ]")
	}
	if len(s.NICs) > 0 {
		var specs []string
		for _, n := range s.NICs {
			ns, err := nicSpec(n)
			if err != nil {
				return "", err
			}
			q, _ := quote(ns)
			specs = append(specs, q)
		}
		line("vif", "[ "+strings.Join(specs, ", ")+" ]")
	}
	return b.String(), nil
}
