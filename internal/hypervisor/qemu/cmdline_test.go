package qemu

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/domain"
)

func TestPlaceDisk(t *testing.T) {
	for _, tc := range []struct {
		dev      string
		cd       bool
		platform map[string]string
		want     diskPlace
		err      bool
	}{
		{dev: "0", want: diskPlace{busVirtio, 0}},
		{dev: "15", want: diskPlace{busVirtio, 15}},
		{dev: "16", err: true},
		{dev: "xvdb", want: diskPlace{busVirtio, 1}},
		{dev: "vdc", want: diskPlace{busVirtio, 2}},
		{dev: "hdd", want: diskPlace{busIDE, 3}},
		{dev: "hde", err: true},
		{dev: "hde", platform: map[string]string{"machine": "q35"}, want: diskPlace{busIDE, 4}},
		{dev: "sda", want: diskPlace{busSCSI, 0}},
		{dev: "3", cd: true, want: diskPlace{busIDE, 3}},
		{dev: "1", platform: map[string]string{"disk-bus": "ide"}, want: diskPlace{busIDE, 1}},
		{dev: "1", platform: map[string]string{"disk-bus": "scsi"}, want: diskPlace{busSCSI, 1}},
		{dev: "1", platform: map[string]string{"disk-bus": "floppy"}, err: true},
		{dev: "xvdzz", err: true},
		{dev: "nvme0", err: true},
		{dev: "-1", err: true},
	} {
		got, err := placeDisk(tc.dev, tc.cd, tc.platform)
		if tc.err {
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("placeDisk(%q, %v, %v) = %+v, %v; want ErrUnsupported", tc.dev, tc.cd, tc.platform, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("placeDisk(%q, %v, %v) = %+v, %v; want %+v", tc.dev, tc.cd, tc.platform, got, err, tc.want)
		}
	}
}

func TestBootIndexes(t *testing.T) {
	disks := []domain.Disk{{Device: "0", Path: "/a"}, {Device: "1", Path: "/b", Bootable: true}, {Device: "3", CD: true}}
	nics := []domain.NIC{{Device: "0"}}
	for _, tc := range []struct {
		name      string
		spec      domain.Spec
		wantDisks map[string]int
		wantNICs  map[string]int
	}{
		{"pv", domain.Spec{Kernel: "/k", Disks: disks, NICs: nics}, map[string]int{}, map[string]int{}},
		{"default cd", domain.Spec{HVM: true, Disks: disks, NICs: nics}, map[string]int{"1": 0, "3": 1}, map[string]int{}},
		{"dcn", domain.Spec{HVM: true, BootOrder: "dcn", Disks: disks, NICs: nics}, map[string]int{"3": 0, "1": 1}, map[string]int{"0": 2}},
		{"n", domain.Spec{HVM: true, BootOrder: "n", Disks: disks, NICs: nics}, map[string]int{}, map[string]int{"0": 0}},
		{"c without bootable", domain.Spec{HVM: true, BootOrder: "c", Disks: disks[:1]}, map[string]int{"0": 0}, map[string]int{}},
	} {
		d, n := bootIndexes(tc.spec)
		if !mapsEqual(d, tc.wantDisks) || !mapsEqual(n, tc.wantNICs) {
			t.Errorf("%s: bootIndexes = %v %v; want %v %v", tc.name, d, n, tc.wantDisks, tc.wantNICs)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestArgs(t *testing.T) {
	base := domain.Spec{UUID: "u-1", Name: "a,b", MemoryStaticMax: 128<<20 + 1, VCPUs: 1, VCPUsMax: 2,
		Kernel: "/boot/vmlinuz", Ramdisk: "/boot/initrd", Args: "console=ttyS0"}
	with := func(f func(*domain.Spec)) domain.Spec {
		s := base
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name     string
		l        launch
		want     []string // each must appear as one argument
		wantNot  []string
		err      bool
		errMatch string
	}{
		{name: "pv direct kernel boot", l: launch{Accel: "tcg", Dir: "/d", Spec: base}, want: []string{
			"guest=a,,b,debug-threads=on", "pc,accel=tcg", "qemu64", "size=129M", "cpus=1,maxcpus=2", "-no-shutdown", "-daemonize",
			"/boot/vmlinuz", "/boot/initrd", "console=ttyS0", "unix:/d/vnc.sock", "chardev:serial0",
			"socket,id=serial0,server=on,wait=off,path=/d/serial.sock,logfile=/d/serial.log,logappend=on",
		}},
		{name: "kvm uses the host CPU", l: launch{Accel: "kvm", Dir: "/d", Spec: base}, want: []string{"pc,accel=kvm", "host"}},
		{name: "no vga, no vnc", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) { s.Platform = map[string]string{"vga": "none"} })},
			want: []string{"none"}, wantNot: []string{"unix:/d/vnc.sock"}},
		{name: "acpi off", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) { s.Platform = map[string]string{"acpi": "0"} })},
			want: []string{"pc,accel=tcg,acpi=off"}},
		{name: "disks and NICs", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) {
			s.Disks = []domain.Disk{{Device: "xvda", Path: "/i/a.qcow2", Format: "qcow2"}, {Device: "3", CD: true}, {Device: "sdb", Path: "/i/b", ReadOnly: true}}
			s.NICs = []domain.NIC{{Device: "1", MAC: "00:16:3e:00:00:01", MTU: 9000}}
		})}, want: []string{
			`{"driver":"qcow2","file":{"driver":"file","filename":"/i/a.qcow2","read-only":false},"node-name":"vbd-xvda-img","read-only":false}`,
			"virtio-blk-pci,bus=pci.0,addr=0x10,id=vbd-xvda,drive=vbd-xvda-img",
			"ide-cd,bus=ide.1,unit=1,id=vbd-3",
			"virtio-scsi-pci,id=scsi0,bus=pci.0,addr=0x4",
			"scsi-hd,bus=scsi0.0,scsi-id=1,id=vbd-sdb,drive=vbd-sdb-img",
			"user,id=net-1,restrict=on",
			"virtio-net-pci,bus=pci.0,addr=0x9,id=vif-1,netdev=net-1,mac=00:16:3e:00:00:01,host_mtu=9000",
		}},
		{name: "tap NIC", l: launch{Accel: "tcg", Dir: "/d", TapFDs: map[string]int{"0": 4}, Spec: with(func(s *domain.Spec) {
			s.NICs = []domain.NIC{{Device: "0", Bridge: "xenbr0"}}
		})}, want: []string{"tap,id=net-0,fd=4"}},
		{name: "hvm boot order", l: launch{Accel: "tcg", Dir: "/d", Spec: domain.Spec{UUID: "u", MemoryStaticMax: 1 << 30, VCPUs: 1, VCPUsMax: 1, HVM: true, BootOrder: "dc",
			Disks: []domain.Disk{{Device: "0", Path: "/i/a"}, {Device: "3", CD: true, Path: "/iso/x.iso"}}}},
			want: []string{"virtio-blk-pci,bus=pci.0,addr=0x10,id=vbd-0,drive=vbd-0-img,bootindex=1", "ide-cd,bus=ide.1,unit=1,id=vbd-3,drive=vbd-3-img,bootindex=0"}},
		{name: "resume", l: launch{Accel: "tcg", Dir: "/d", Spec: base, Incoming: true}, want: []string{"fd:3"}},
		{name: "PV without kernel", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) { s.Kernel = "" })}, err: true, errMatch: "PV_kernel"},
		{name: "unknown machine", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) { s.Platform = map[string]string{"machine": "microvm"} })}, err: true},
		{name: "secure boot", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) { s.Platform = map[string]string{"secureboot": "true"} })}, err: true},
		{name: "CD on virtio", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) { s.Disks = []domain.Disk{{Device: "xvdd", CD: true}} })}, want: []string{"ide-cd,bus=ide.1,unit=1,id=vbd-xvdd"}},
		{name: "too many NICs", l: launch{Accel: "tcg", Dir: "/d", Spec: with(func(s *domain.Spec) { s.NICs = []domain.NIC{{Device: "8"}} })}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, err := tc.l.args()
			if tc.err {
				if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.errMatch) {
					t.Fatalf("args() = %v, %v; want an ErrUnsupported error mentioning %q", args, err, tc.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !slices.Contains(args, w) {
					t.Errorf("missing %q in\n%s", w, strings.Join(args, "\n"))
				}
			}
			for _, w := range tc.wantNot {
				if slices.Contains(args, w) {
					t.Errorf("unexpected %q", w)
				}
			}
		})
	}
}
