package xen

import (
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/domain"
)

func TestBuildConfig(t *testing.T) {
	base := func(f func(*domain.Spec)) domain.Spec {
		s := domain.Spec{UUID: "u-1", MemoryStaticMax: 256 << 20, MemoryTarget: 128<<20 + 1, VCPUsMax: 2, VCPUs: 1}
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name    string
		spec    domain.Spec
		want    []string
		notWant []string
		err     string
	}{
		{"pv direct kernel", base(func(s *domain.Spec) {
			s.Kernel, s.Ramdisk, s.Args = "/k", "/r", `console=hvc0 x="y"`
			s.Disks = []domain.Disk{{Device: "0", Path: "/sr/a.img", Format: "raw", Bootable: true}, {Device: "1", Path: "/sr/b.qcow2", Format: "qcow2", ReadOnly: true}}
			s.NICs = []domain.NIC{{Device: "0", MAC: "aa:bb:cc:dd:ee:ff", Bridge: "xenbr0", MTU: 9000}}
		}), []string{
			`name = "u-1"`, `uuid = "u-1"`, `type = "pv"`, "memory = 129", "maxmem = 256", "vcpus = 1", "maxvcpus = 2",
			`on_poweroff = "preserve"`, `on_reboot = "preserve"`, `on_crash = "preserve"`,
			`kernel = "/k"`, `ramdisk = "/r"`, `extra = "console=hvc0 x=\"y\""`,
			`disk = [ "vdev=xvda,access=rw,format=raw,target=/sr/a.img", "vdev=xvdb,access=ro,format=qcow2,backendtype=qdisk,target=/sr/b.qcow2" ]`,
			`vif = [ "devid=0,mac=aa:bb:cc:dd:ee:ff,bridge=xenbr0,mtu=9000" ]`,
		}, []string{"bootloader", "\nboot ="}, ""},
		{"pv pygrub", base(func(s *domain.Spec) {}), []string{`bootloader = "pygrub"`}, []string{"kernel"}, ""},
		{"pvh", base(func(s *domain.Spec) { s.Kernel = "/k"; s.Platform = map[string]string{"pvh": "true"} }), []string{`type = "pvh"`}, nil, ""},
		{"pvh from domain_type", base(func(s *domain.Spec) { s.Kernel = "/k"; s.PVH = true }), []string{`type = "pvh"`, `kernel = "/k"`}, []string{"bootloader"}, ""},
		{"hvm", base(func(s *domain.Spec) {
			s.HVM, s.BootOrder = true, "dc"
			s.Platform = map[string]string{"acpi": "1", "viridian": "false", "other": "x"}
			s.Disks = []domain.Disk{{Device: "0", Path: "/d.img"}, {Device: "3", CD: true}, {Device: "4", CD: true, Path: "/x.iso"}}
		}), []string{`type = "hvm"`, `boot = "dc"`, "acpi = 1", "viridian = 0", `serial = "pty"`,
			`"vdev=hda,access=rw,format=raw,target=/d.img"`, `"vdev=hdd,access=ro,devtype=cdrom"`, `"vdev=xvde,access=ro,devtype=cdrom,format=raw,target=/x.iso"`},
			[]string{"other", "bootloader"}, ""},
		{"target above static max", base(func(s *domain.Spec) { s.Kernel = "/k"; s.MemoryTarget = 1 << 40 }), []string{"memory = 256"}, nil, ""},
		{"no uuid", base(func(s *domain.Spec) { s.UUID = "" }), nil, nil, "uuid"},
		{"no memory", base(func(s *domain.Spec) { s.MemoryStaticMax = 0 }), nil, nil, "memory_static_max"},
		{"newline in args", base(func(s *domain.Spec) { s.Kernel, s.Args = "/k", "a\nb" }), nil, nil, "control character"},
		{"bad format", base(func(s *domain.Spec) { s.Disks = []domain.Disk{{Device: "0", Path: "/a", Format: "vmdk"}} }), nil, nil, "format"},
		{"disk without image", base(func(s *domain.Spec) { s.Disks = []domain.Disk{{Device: "0"}} }), nil, nil, "no image"},
		{"bad bridge", base(func(s *domain.Spec) { s.NICs = []domain.NIC{{Device: "0", Bridge: "br,script=/evil"}} }), nil, nil, "bridge"},
		{"bad vif device", base(func(s *domain.Spec) { s.NICs = []domain.NIC{{Device: "eth0"}} }), nil, nil, "VIF device"},
		{"bad boot order", base(func(s *domain.Spec) { s.HVM, s.BootOrder = true, "z" }), nil, nil, "boot order"},
		{"bad disk name", base(func(s *domain.Spec) { s.Disks = []domain.Disk{{Device: "x,y", Path: "/a"}} }), nil, nil, "disk device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := buildConfig(tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one about %q; config:\n%s", err, tc.err, cfg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(cfg, w) {
					t.Errorf("missing %q in:\n%s", w, cfg)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(cfg, w) {
					t.Errorf("unexpected %q in:\n%s", w, cfg)
				}
			}
		})
	}
}

func TestAgentReport(t *testing.T) {
	for _, tc := range []struct {
		name              string
		data, attr, ctrl  map[string]string
		ok                bool
		os, nets, drivers map[string]string
		free              int64
	}{
		{"nothing", nil, nil, map[string]string{"feature-poweroff": "1"}, false, map[string]string{}, map[string]string{}, map[string]string{}, 0},
		{"xe-guest-utilities",
			map[string]string{"os_name": "Debian 12", "os_uname": "6.1.0", "os_distro": "debian", "os_majorver": "12", "os_minorver": "5", "meminfo_free": "2048"},
			map[string]string{"PVAddons/MajorVersion": "8", "PVAddons/MinorVersion": "4", "PVAddons/MicroVersion": "0",
				"vif/0/ipv4/0": "10.0.0.2", "vif/0/ipv6/0": "fe80::1", "vif/1/ipv4/1": "192.168.0.9"},
			map[string]string{"feature-poweroff": "1", "feature-suspend": "1", "shutdown": ""},
			true,
			map[string]string{"name": "Debian 12", "uname": "6.1.0", "distro": "debian", "major": "12", "minor": "5"},
			map[string]string{"0/ip": "10.0.0.2", "0/ipv4/0": "10.0.0.2", "0/ipv6/0": "fe80::1", "1/ipv4/1": "192.168.0.9"},
			map[string]string{"major": "8", "minor": "4", "micro": "0"}, 2048 << 10},
		{"old attr/ethN", nil, map[string]string{"eth0/ip": "10.1.1.1", "ethx/ip": "no"}, nil, true,
			map[string]string{}, map[string]string{"0/ip": "10.1.1.1"}, map[string]string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, ok := agentReport(tc.data, tc.attr, tc.ctrl)
			if ok != tc.ok || !same(rep.OSVersion, tc.os) || !same(rep.Networks, tc.nets) || !same(rep.PVDrivers, tc.drivers) || rep.MemoryFree != tc.free {
				t.Fatalf("%v %+v", ok, rep)
			}
			if ok && rep.Other["feature-poweroff"] != "1" && tc.ctrl["feature-poweroff"] == "1" {
				t.Fatalf("other %+v", rep.Other)
			}
		})
	}
}

func same(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
