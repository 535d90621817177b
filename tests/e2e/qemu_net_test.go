package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestQEMUNetwork runs `xenithd --hypervisor qemu` inside a network
// namespace of its own that holds a Linux bridge, and checks with two real
// guests (scripts/guest/build.sh) what needs a real network:
//
//   - a XenAPI network whose bridge field names that bridge puts each VIF on
//     a tap (vif<domid>.<device>) enslaved to it, and the two guests, given
//     static addresses on the kernel command line (PV_args xenith.ip=...),
//     ping each other;
//   - VIF.plug on a running VM: the guest sees eth1, which carries traffic
//     on the same bridge; VIF.unplug takes it away again;
//   - VM.clean_reboot is a Ctrl-Alt-Del the guest's init sees;
//   - with --clean-shutdown-timeout 3s, VM.clean_shutdown of a guest that
//     ignores the power button fails after the timeout with xapi's
//     VM_SHUTDOWN_TIMEOUT [vm; "3."] and leaves it running, while
//     VM.shutdown falls back to a hard shutdown; the taps go with the QEMUs.
//
// xenithd is reached over its unix socket (its HTTP port would be inside the
// namespace). Needs root (network namespaces, bridges, taps); skips with the
// reason when they cannot be made, or when qemu-system-x86_64 or iproute2 is
// missing. Everything it makes (namespace, bridge, taps, QEMUs) is removed
// by t.Cleanup.
func TestQEMUNetwork(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (Debian qemu-system-x86; scripts/install-test-deps.sh installs it)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 (ip) is not installed: cannot make a network namespace")
	}
	root := repoRoot(t)
	guest := buildGuest(t, root)
	accel := os.Getenv("XENITH_QEMU_ACCEL")
	if accel == "" {
		accel = "tcg"
	}
	const bridge = "xnbr0"
	ns := qnNetns(t, bridge)

	data, err := os.MkdirTemp("/tmp", "xqn-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the namespace (so it runs before its removal) and
	// before the daemon (so it runs after the daemon has stopped).
	t.Cleanup(func() {
		killQEMUs(t, data)
		os.RemoveAll(data)
	})

	// xenithd runs inside the namespace: `ip netns exec` execs it, so the
	// pid startDaemon signals is xenithd's own.
	bin := buildDaemon(t)
	wrapper := filepath.Join(t.TempDir(), "xenithd-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", ns, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XENITHD_BIN", wrapper)
	d := startDaemon(t, "--data", data, "--http", "", "--hypervisor", "qemu", "--qemu-accel", accel,
		"--clean-shutdown-timeout", "3s")
	x := qnLogin(t, d)

	netRef := x.str("network.create", map[string]any{
		"name_label": "qemu-net test", "name_description": "", "MTU": "1500", "other_config": map[string]string{},
		"bridge": bridge,
	})
	if got := x.str("network.get_bridge", netRef); got != bridge {
		t.Fatalf("network bridge %q, want %q", got, bridge)
	}
	mkVM := func(name, ip, vcpusMax string) string {
		vm := x.str("VM.create", map[string]any{
			"name_label": name, "name_description": "qemu network test guest",
			"user_version": "1", "is_a_template": false, "affinity": "OpaqueRef:NULL",
			"memory_static_max": "134217728", "memory_dynamic_max": "134217728",
			"memory_dynamic_min": "134217728", "memory_static_min": "67108864",
			"VCPUs_params": map[string]string{}, "VCPUs_max": vcpusMax, "VCPUs_at_startup": "1",
			"actions_after_shutdown": "destroy", "actions_after_reboot": "restart", "actions_after_crash": "destroy",
			"PV_bootloader": "", "PV_kernel": filepath.Join(guest, "vmlinuz"),
			"PV_ramdisk": filepath.Join(guest, "initramfs.gz"), "PV_args": "console=ttyS0 quiet xenith.ip=" + ip,
			"PV_bootloader_args": "", "PV_legacy_args": "", "HVM_boot_policy": "", "HVM_boot_params": map[string]string{},
			"platform": map[string]string{}, "PCI_bus": "", "other_config": map[string]string{}, "recommendations": "",
		})
		x.str("VIF.create", qnVIF(vm, netRef, "0"))
		return vm
	}
	vmA, vmB := mkVM("qnet-a", "10.77.0.1/24", "1"), mkVM("qnet-b", "10.77.0.2/24", "2")
	// B has an empty CD drive (IDE, hdd) and an ISO SR to fill it from.
	isoDir := filepath.Join(data, "iso")
	if err := os.MkdirAll(isoDir, 0o755); err != nil {
		t.Fatal(err)
	}
	iso := append([]byte("XENITHCD1-"), make([]byte, 1<<20)...)
	if err := os.WriteFile(filepath.Join(isoDir, "xenith-test.iso"), iso, 0o644); err != nil {
		t.Fatal(err)
	}
	hosts, _ := x.must("host.get_all").([]any)
	if len(hosts) == 0 {
		t.Fatal("no host")
	}
	isoSR := x.str("SR.create", hosts[0], map[string]string{"location": isoDir}, "0", "qemu-net ISOs", "", "iso", "iso", false, map[string]string{})
	x.call0("SR.scan", isoSR)
	isoVDIs, _ := x.must("SR.get_VDIs", isoSR).([]any)
	if len(isoVDIs) != 1 {
		t.Fatalf("ISO SR has VDIs %v, want the one ISO", isoVDIs)
	}
	cd := x.str("VBD.create", map[string]any{"VM": vmB, "VDI": "OpaqueRef:NULL", "userdevice": "3", "bootable": false,
		"mode": "RO", "type": "CD", "empty": true, "other_config": map[string]string{}, "qos_algorithm_type": "",
		"qos_algorithm_params": map[string]string{}})
	t.Cleanup(func() {
		for _, vm := range []string{vmA, vmB} {
			if p, _ := x.call("VM.get_power_state", vm); p != "Halted" {
				_, _ = x.call("VM.hard_shutdown", vm)
			}
		}
	})

	var conA, conB *qnConsole
	var unpluggedVIF string
	top := t // consoles live across the subtests
	t.Run("two guests on one bridge reach each other", func(t *testing.T) {
		t0 := time.Now()
		x.call0("VM.start", vmA, false, false)
		x.call0("VM.start", vmB, false, false)
		conA, conB = qnOpenConsole(top, x, vmA), qnOpenConsole(top, x, vmB)
		conA.waitFor(t, `XENITH-NET eth0 10\.77\.0\.1/24`, 120*time.Second, 0)
		conB.waitFor(t, `XENITH-NET eth0 10\.77\.0\.2/24`, 120*time.Second, 0)
		t.Logf("both guests up with addresses in %v", time.Since(t0).Round(time.Millisecond))

		taps := qnBridgePorts(t, ns, bridge)
		for _, vm := range []string{vmA, vmB} {
			tap := fmt.Sprintf("vif%d.0", x.int("VM.get_domid", vm))
			if !taps[tap] {
				t.Fatalf("tap %s is not on bridge %s (ports: %v)", tap, bridge, taps)
			}
		}
		i := conA.mark()
		conA.send(t, "xcmd ping 10.77.0.2")
		conA.waitFor(t, `XENITH-PING-(OK|FAIL) 10\.77\.0\.2`, 40*time.Second, i)
		conA.waitFor(t, `XENITH-PING-OK 10\.77\.0\.2`, time.Second, i)
		i = conB.mark()
		conB.send(t, "xcmd ping 10.77.0.1")
		conB.waitFor(t, `XENITH-PING-OK 10\.77\.0\.1`, 40*time.Second, i)
	})
	if t.Failed() {
		return
	}

	t.Run("NIC hotplug: the guest sees eth1 on the bridge", func(t *testing.T) {
		vif := x.str("VIF.create", qnVIF(vmA, netRef, "1"))
		i := conA.mark()
		x.call0("VIF.plug", vif)
		if !x.bool("VIF.get_currently_attached", vif) {
			t.Fatal("VIF.plug: currently_attached is false")
		}
		conA.waitFor(t, `XENITH-DEVS .*net=\[eth0 eth1 lo \]`, 30*time.Second, i)
		tap := fmt.Sprintf("vif%d.1", x.int("VM.get_domid", vmA))
		if !qnBridgePorts(t, ns, bridge)[tap] {
			t.Fatalf("hot-plugged tap %s is not on bridge %s", tap, bridge)
		}
		// eth1 alone on 10.78.0.0/24 in A: a ping to B's second address
		// must leave through it.
		j := conB.mark()
		conB.send(t, "xcmd ifup eth0 10.78.0.2/24")
		conB.waitFor(t, `XENITH-NET eth0 10\.78\.0\.2/24`, 10*time.Second, j)
		conA.send(t, "xcmd ifup eth1 10.78.0.1/24")
		conA.waitFor(t, `XENITH-NET eth1 10\.78\.0\.1/24`, 10*time.Second, i)
		conA.send(t, "xcmd ping 10.78.0.2")
		conA.waitFor(t, `XENITH-PING-OK 10\.78\.0\.2`, 40*time.Second, i)

		i = conA.mark()
		x.call0("VIF.unplug", vif)
		if x.bool("VIF.get_currently_attached", vif) {
			t.Fatal("VIF.unplug: currently_attached is still true")
		}
		conA.waitFor(t, `XENITH-DEVS .*net=\[eth0 lo \]`, 30*time.Second, i)
		unpluggedVIF = vif
	})

	t.Run("suspend and resume after a NIC unplug", func(t *testing.T) {
		if unpluggedVIF == "" {
			t.Skip("needs the NIC hotplug step")
		}
		before := qnTicks(conA)
		x.call0("VM.suspend", vmA)
		if p := x.str("VM.get_power_state", vmA); p != "Suspended" {
			t.Fatalf("after suspend: %s", p)
		}
		if x.bool("VIF.get_currently_attached", unpluggedVIF) {
			t.Fatal("the unplugged VIF is recorded attached while suspended")
		}
		x.call0("VM.resume", vmA, false, false)
		if p := x.str("VM.get_power_state", vmA); p != "Running" {
			t.Fatalf("after resume: %s", p)
		}
		// The new QEMU has the devices the saved one had: not the VIF
		// unplugged before the suspend.
		args := qnQEMUArgs(t, x.str("VM.get_uuid", vmA))
		if strings.Contains(args, "vif-1") || !strings.Contains(args, "vif-0") {
			t.Fatalf("resumed QEMU's NICs: want vif-0 only; command line: %s", args)
		}
		if x.bool("VIF.get_currently_attached", unpluggedVIF) {
			t.Fatal("the unplugged VIF is recorded attached after resume")
		}
		conA = qnOpenConsole(top, x, vmA)
		i := conA.waitFor(t, `XENITH-TICK`, 20*time.Second, 0)
		var n int
		fmt.Sscanf(conA.line(i), "XENITH-TICK %d", &n)
		if n <= before {
			t.Fatalf("guest ticks restarted after resume: %d after %d", n, before)
		}
		tap := fmt.Sprintf("vif%d.0", x.int("VM.get_domid", vmA))
		if !qnBridgePorts(t, ns, bridge)[tap] {
			t.Fatalf("resumed guest's tap %s is not on the bridge", tap)
		}
		i = conA.mark()
		conA.send(t, "xcmd ping 10.77.0.2")
		conA.waitFor(t, `XENITH-PING-OK 10\.77\.0\.2`, 40*time.Second, i)
		x.call0("VIF.destroy", unpluggedVIF)
	})

	t.Run("clean reboot is a Ctrl-Alt-Del", func(t *testing.T) {
		domid := x.int("VM.get_domid", vmB)
		i := conB.mark()
		x.call0("VM.clean_reboot", vmB)
		if p := x.str("VM.get_power_state", vmB); p != "Running" {
			t.Fatalf("after clean_reboot: %s", p)
		}
		j := conB.waitFor(t, `XENITH-CTRL-ALT-DEL`, 10*time.Second, i)
		j = conB.waitFor(t, `XENITH-GUEST-UP`, 120*time.Second, j)
		conB.waitFor(t, `XENITH-NET eth0 10\.77\.0\.2/24`, 60*time.Second, j)
		if got := x.int("VM.get_domid", vmB); got != domid {
			t.Fatalf("domid changed across a reboot in place: %d -> %d", domid, got)
		}
		i = conA.mark()
		conA.send(t, "xcmd ping 10.77.0.2")
		conA.waitFor(t, `XENITH-PING-OK 10\.77\.0\.2`, 40*time.Second, i)
	})

	t.Run("CD insert and eject, vCPU hotplug", func(t *testing.T) {
		i := conB.mark()
		conB.send(t, "xcmd readcd")
		conB.waitFor(t, `XENITH-CD none`, 10*time.Second, i)
		x.call0("VBD.insert", cd, isoVDIs[0])
		if x.bool("VBD.get_empty", cd) {
			t.Fatal("VBD.insert: the drive is still empty")
		}
		i = conB.mark()
		conB.send(t, "xcmd readcd")
		conB.waitFor(t, `XENITH-CD XENITHCD1-`, 10*time.Second, i)
		x.call0("VBD.eject", cd)
		i = conB.mark()
		conB.send(t, "xcmd readcd")
		conB.waitFor(t, `XENITH-CD none`, 10*time.Second, i)

		conB.waitFor(t, `XENITH-DEVS .*cpu=\[0\]`, time.Second, 0)
		i = conB.mark()
		x.call0("VM.set_VCPUs_number_live", vmB, int64(2))
		conB.waitFor(t, `XENITH-DEVS .*cpu=\[0-1\]`, 30*time.Second, i)
		if n := x.int("VM_metrics.get_VCPUs_number", x.str("VM.get_metrics", vmB)); n != 2 {
			t.Fatalf("VM_metrics.VCPUs_number %d after hotplug, want 2", n)
		}
	})

	t.Run("clean shutdown of a hung guest times out; shutdown forces it", func(t *testing.T) {
		domid := x.int("VM.get_domid", vmA)
		i := conA.mark()
		conA.send(t, "xcmd hang")
		conA.waitFor(t, `XENITH-HUNG`, 15*time.Second, i)
		t0 := time.Now()
		_, err := x.call("VM.clean_shutdown", vmA)
		took := time.Since(t0)
		var xe *XenAPIError
		if !errors.As(err, &xe) || xe.Code != "VM_SHUTDOWN_TIMEOUT" || len(xe.Params) != 2 || xe.Params[0] != vmA || xe.Params[1] != "3." {
			t.Fatalf("VM.clean_shutdown of a hung guest: %v; want VM_SHUTDOWN_TIMEOUT [%s, 3.]", err, vmA)
		}
		if took < 3*time.Second || took > 15*time.Second {
			t.Fatalf("VM.clean_shutdown gave up after %v; want the 3s timeout", took)
		}
		if p := x.str("VM.get_power_state", vmA); p != "Running" {
			t.Fatalf("after a timed-out clean_shutdown: %s, want Running", p)
		}
		t0 = time.Now()
		x.call0("VM.shutdown", vmA)
		t.Logf("VM.shutdown of the hung guest took %v", time.Since(t0).Round(time.Millisecond))
		if p := x.str("VM.get_power_state", vmA); p != "Halted" {
			t.Fatalf("after VM.shutdown: %s, want Halted", p)
		}
		tap := fmt.Sprintf("vif%d.0", domid)
		qnEventually(t, "tap "+tap+" gone from the bridge", 10*time.Second, func() bool {
			return !qnBridgePorts(t, ns, bridge)[tap]
		})

		i = conB.mark()
		x.call0("VM.clean_shutdown", vmB)
		conB.waitFor(t, `XENITH-ACPI-POWEROFF`, 5*time.Second, i)
		if p := x.str("VM.get_power_state", vmB); p != "Halted" {
			t.Fatalf("after VM.clean_shutdown: %s, want Halted", p)
		}
		qnEventually(t, "no taps left on the bridge", 10*time.Second, func() bool {
			return len(qnBridgePorts(t, ns, bridge)) == 0
		})
		if pids := qemuPids(data); len(pids) != 0 {
			t.Fatalf("QEMU processes left after both VMs halted: %v", pids)
		}
	})
}

// qnNetns makes a network namespace holding an up bridge named bridge and
// a loopback, removed by t.Cleanup; it skips the test when that is not
// permitted here.
func qnNetns(t *testing.T, bridge string) string {
	t.Helper()
	ns := "xenith-qn-" + randomHex(4)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace (needs root / CAP_SYS_ADMIN): ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", bridge, "type", "bridge"},
		{"link", "set", bridge, "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			if args[1] == "add" {
				t.Skipf("cannot make a Linux bridge in a network namespace: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			}
			t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no /dev/net/tun: QEMU VIFs cannot be taps here (%v)", err)
	}
	return ns
}

// qnBridgePorts lists the interfaces enslaved to bridge in namespace ns.
func qnBridgePorts(t *testing.T, ns, bridge string) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "master", bridge).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s link show master %s: %v: %s", ns, bridge, err, out)
	}
	ports := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		// "7: vif1.0@if8: <...>" or "7: vif1.0: <...>"
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if i := strings.IndexByte(name, '@'); i >= 0 {
			name = name[:i]
		}
		ports[name] = true
	}
	return ports
}

// qnQEMUArgs is the command line of the QEMU of VM uuid, NULs as spaces.
func qnQEMUArgs(t *testing.T, uuid string) string {
	t.Helper()
	needle := []byte("-uuid\x00" + uuid + "\x00")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, needle) {
			return string(bytes.ReplaceAll(b, []byte{0}, []byte(" ")))
		}
	}
	t.Fatalf("no QEMU process for VM %s", uuid)
	return ""
}

// qnTicks is the last XENITH-TICK number on a console (-1 if none).
func qnTicks(c *qnConsole) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.lines) - 1; i >= 0; i-- {
		var n int
		if _, err := fmt.Sscanf(c.lines[i], "XENITH-TICK %d", &n); err == nil {
			return n
		}
	}
	return -1
}

func qnVIF(vm, network, device string) map[string]any {
	return map[string]any{"device": device, "network": network, "VM": vm, "MAC": "", "MTU": "1500",
		"other_config": map[string]string{}, "qos_algorithm_type": "", "qos_algorithm_params": map[string]string{}}
}

func qnEventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// qnAPI is a logged-in XenAPI session over the daemon's unix socket.
type qnAPI struct {
	t       *testing.T
	client  *http.Client
	url     string
	session string
}

func qnLogin(t *testing.T, d *Daemon) *qnAPI {
	t.Helper()
	client, base := d.HTTPClient()
	client.Timeout = 3 * time.Minute
	v, err := xmlrpcCall(client, base+"/", "session.login_with_password", "root", d.Password)
	if err != nil {
		t.Fatal(err)
	}
	return &qnAPI{t: t, client: client, url: base + "/", session: v.(string)}
}

func (x *qnAPI) call(method string, params ...any) (any, error) {
	return xmlrpcCall(x.client, x.url, method, append([]any{x.session}, params...)...)
}

func (x *qnAPI) must(method string, params ...any) any {
	x.t.Helper()
	v, err := x.call(method, params...)
	if err != nil {
		x.t.Fatalf("%s: %v", method, err)
	}
	return v
}

func (x *qnAPI) call0(method string, params ...any) { x.t.Helper(); x.must(method, params...) }

func (x *qnAPI) str(method string, params ...any) string {
	x.t.Helper()
	s, ok := x.must(method, params...).(string)
	if !ok {
		x.t.Fatalf("%s: not a string", method)
	}
	return s
}

func (x *qnAPI) bool(method string, params ...any) bool {
	x.t.Helper()
	b, ok := x.must(method, params...).(bool)
	if !ok {
		x.t.Fatalf("%s: not a bool", method)
	}
	return b
}

func (x *qnAPI) int(method string, params ...any) int {
	x.t.Helper()
	var n int
	switch v := x.must(method, params...).(type) {
	case int64:
		n = int(v)
	case string:
		if _, err := fmt.Sscan(v, &n); err != nil {
			x.t.Fatalf("%s: %q is not an integer", method, v)
		}
	default:
		x.t.Fatalf("%s: %#v is not an integer", method, v)
	}
	return n
}

// qnConsole is a guest's serial console (its vt100 console object, a unix
// socket), read line by line in the background.
type qnConsole struct {
	conn   net.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	lines  []string
	closed bool
}

func qnOpenConsole(t *testing.T, x *qnAPI, vm string) *qnConsole {
	t.Helper()
	cons, _ := x.must("VM.get_consoles", vm).([]any)
	for _, c := range cons {
		if x.str("console.get_protocol", c) != "vt100" {
			continue
		}
		loc := x.str("console.get_location", c)
		path, ok := strings.CutPrefix(loc, "unix://")
		if !ok {
			t.Fatalf("serial console location %q is not a unix socket", loc)
		}
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c := &qnConsole{conn: conn}
		c.cond = sync.NewCond(&c.mu)
		go c.read()
		t.Cleanup(func() { conn.Close() })
		return c
	}
	t.Fatalf("VM %s has no vt100 console (%v)", vm, cons)
	return nil
}

func (c *qnConsole) read() {
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		c.mu.Lock()
		c.lines = append(c.lines, strings.TrimRight(sc.Text(), "\r"))
		c.cond.Broadcast()
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *qnConsole) line(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines[i]
}

func (c *qnConsole) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

func (c *qnConsole) send(t *testing.T, line string) {
	t.Helper()
	if _, err := c.conn.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("typing %q on the console: %v", line, err)
	}
}

// waitFor returns the index of the first line at or after start matching
// pattern, failing the test after timeout.
func (c *qnConsole) waitFor(t *testing.T, pattern string, timeout time.Duration, start int) int {
	t.Helper()
	rx := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	wake := time.AfterFunc(timeout, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer wake.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := start; ; {
		for ; i < len(c.lines); i++ {
			if rx.MatchString(c.lines[i]) {
				return i
			}
		}
		if c.closed || !time.Now().Before(deadline) {
			tail := c.lines[max(0, len(c.lines)-15):]
			t.Fatalf("console: no line matching %q within %v (closed=%v); last lines:\n  %s",
				pattern, timeout, c.closed, strings.Join(tail, "\n  "))
		}
		c.cond.Wait()
	}
}
