package xen

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// testdata/ holds output recorded from Debian's Xen 4.17 in QEMU
// (scripts/xen-in-qemu): a running, a paused, a powered-off (sysrq o) and a
// rebooted (sysrq b) PV guest.
func TestParseListV(t *testing.T) {
	const guest = "0f0e0d0c-0b0a-4908-8706-050403020100"
	for _, tc := range []struct {
		file   string
		domid  int
		flags  string
		reason int
		state  domain.State
		ok     bool
	}{
		{"xl-list-v-running.txt", 1, "-b----", reasonNone, domain.Running, true},
		{"xl-list-v-paused.txt", 1, "--p---", reasonNone, domain.Paused, true},
		{"xl-list-v-poweroff.txt", 2, "---s--", reasonPoweroff, domain.Halted, true},
		{"xl-list-v-reboot.txt", 4, "---sr-", reasonReboot, domain.Running, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			doms, err := parseListV(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(doms) != 2 || doms[0].Domid != 0 || doms[0].Name != "Domain-0" || doms[0].MemMiB != 768 || doms[0].VCPUs != 2 {
				t.Fatalf("dom0: %+v", doms)
			}
			g := doms[1]
			if g.UUID != guest || g.Name != guest || g.Domid != tc.domid || g.Flags != tc.flags || g.reason() != tc.reason || g.MemMiB != 96 || g.VCPUs != 1 {
				t.Fatalf("guest: %+v (reason %d)", g, g.reason())
			}
			if st, ok := g.state(); st != tc.state || ok != tc.ok {
				t.Fatalf("state %v %v", st, ok)
			}
		})
	}
}

func TestStateFromFlags(t *testing.T) {
	for _, tc := range []struct {
		flags  string
		reason int
		state  domain.State
		ok     bool
	}{
		{"r-----", reasonNone, domain.Running, true},
		{"-b----", reasonNone, domain.Running, true},
		{"--p---", reasonNone, domain.Paused, true},
		{"---s--", reasonPoweroff, domain.Halted, true},
		{"---sc-", reasonCrash, domain.Crashed, true},
		{"---sc-", reasonNone, domain.Crashed, true}, // plain `xl list`: the letter alone
		{"---sw-", reasonWatchdog, domain.Crashed, true},
		{"---ss-", reasonSuspend, 0, false},
		{"---s-d", reasonPoweroff, 0, false},
	} {
		d := xlDomain{Flags: tc.flags, Reason: tc.reason}
		if st, ok := d.state(); st != tc.state || ok != tc.ok {
			t.Errorf("%s/%d: %v %v, want %v %v", tc.flags, tc.reason, st, ok, tc.state, tc.ok)
		}
	}
}

func TestParseListVErrors(t *testing.T) {
	for _, in := range []string{
		"Name ID Mem VCPUs State Time(s) UUID Reason-Code Security Label\nshort line\n",
		"Name\nx y 12 1 r----- 1.0 u - -\n",
		"Name\nx 1 12 1 r----- abc u - -\n",
		"Name\nx 1 12 1 r----- 1.0 u zz -\n",
	} {
		if _, err := parseListV([]byte(in)); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	doms, err := parseListV([]byte("Name  ID Mem VCPUs State Time(s) UUID Reason-Code Security Label\nmy vm 3 64 1 r----- 2.5 abc - -\n"))
	if err != nil || len(doms) != 1 || doms[0].Name != "my vm" || doms[0].CPUTime != 2500*time.Millisecond {
		t.Fatalf("%+v %v", doms, err)
	}
}

func TestParseInfo(t *testing.T) {
	b, err := os.ReadFile("testdata/xl-info.txt")
	if err != nil {
		t.Fatal(err)
	}
	in, err := parseInfo(b)
	if err != nil || in.TotalMiB != 2047 || in.FreeMiB != 1256 || in.CPUs != 2 || in.Fields["xen_version"] != "4.17.7" ||
		!strings.Contains(in.Fields["virt_caps"], "pv") {
		t.Fatalf("%+v %v", in, err)
	}
	if _, err := parseInfo([]byte("nr_cpus : x\n")); err == nil {
		t.Fatal("bad xl info parsed")
	}
}

func TestClassify(t *testing.T) {
	mk := func(stderr string) error {
		return &CmdError{Cmd: "xl", Stderr: stderr, Err: errors.New("exit status 1")}
	}
	for _, tc := range []struct {
		stderr     string
		noDom, mem bool
	}{
		{"abc is an invalid domain identifier (rc=-6)\n", true, false},
		{"Can't get domid of domain name 'x', maybe this domain does not exist.\n", true, false},
		{"libxl: error: libxl_create.c: failed to free memory for the domain\n", false, true},
		{"libxl: error: hotplug script failed\n", false, false},
	} {
		err := classify(mk(tc.stderr))
		if errors.Is(err, domain.ErrNoDomain) != tc.noDom || errors.Is(err, domain.ErrNoMemory) != tc.mem {
			t.Errorf("%q: %v", tc.stderr, err)
		}
		var ce *CmdError
		if !errors.As(err, &ce) {
			t.Errorf("%q: lost the CmdError", tc.stderr)
		}
	}
}
