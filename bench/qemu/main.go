// Command qemu benchmarks the qemu hypervisor driver with real guests (the
// test guest of scripts/guest/build.sh) for BENCHMARKS.md:
//
//   - VM.start to the guest's marker (XENITH-DISK on its serial console)
//     through xenithd, against the same QEMU command line started by hand
//     (the argv xenithd recorded, without -daemonize/-S/-pidfile), runs
//     interleaved in the same session;
//   - VM.suspend + VM.resume round trip of a 128 MiB guest;
//   - xenithd's RSS per running QEMU VM (and QEMU's own RSS).
//
// Usage (as root or any user that can run QEMU):
//
//	go run ./bench/qemu [-runs 5] [-vms 4] [-accel tcg]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/bench"
	"github.com/xenith/xenith/internal/wire"
)

const marker = "XENITH-DISK vda disk1"

func main() {
	runs := flag.Int("runs", 5, "start-to-marker runs per side")
	vms := flag.Int("vms", 4, "VMs running for the RSS measurement")
	accel := flag.String("accel", "tcg", "QEMU accelerator for xenithd (--qemu-accel)")
	xenithd := flag.String("xenithd", "", "xenithd binary (default: go build ./cmd/xenithd)")
	flag.Parse()
	if err := run(*runs, *vms, *accel, *xenithd); err != nil {
		fmt.Fprintln(os.Stderr, "bench/qemu:", err)
		os.Exit(1)
	}
}

type env struct {
	url, session string
	client       *http.Client
	data, guest  string
	srDir        string
	sr           string
	proc         *exec.Cmd
}

func (e *env) call(method string, params ...wire.Value) (wire.Value, error) {
	if e.session != "" {
		params = append([]wire.Value{wire.String(e.session)}, params...)
	}
	resp, err := e.client.Post(e.url, "text/xml", bytes.NewReader(bench.XMLCall(method, params...)))
	if err != nil {
		return wire.Value{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return wire.Value{}, err
	}
	v, err := bench.XMLResult(body)
	if err != nil {
		return v, fmt.Errorf("%s: %w", method, err)
	}
	return v, nil
}

func str(s string) wire.Value { return wire.String(s) }

func strct(kv ...any) wire.Value {
	var m []wire.Member
	for i := 0; i < len(kv); i += 2 {
		var v wire.Value
		switch x := kv[i+1].(type) {
		case string:
			v = wire.String(x)
		case bool:
			v = wire.Bool(x)
		case wire.Value:
			v = x
		}
		m = append(m, wire.Member{Name: kv[i].(string), Value: v})
	}
	return wire.Struct(m...)
}

func run(runs, nvms int, accel, bin string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out, err := exec.Command("sh", filepath.Join(root, "scripts", "guest", "build.sh")).Output()
	if err != nil {
		return fmt.Errorf("scripts/guest/build.sh: %w", err)
	}
	guest := strings.TrimSpace(string(out))
	data, err := os.MkdirTemp("/tmp", "xqb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)
	if bin == "" {
		bin = filepath.Join(data, "xenithd")
		b := exec.Command("go", "build", "-o", bin, "./cmd/xenithd")
		b.Dir, b.Stderr = root, os.Stderr
		if err := b.Run(); err != nil {
			return err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(data, "xenithd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	e := &env{url: "http://" + addr + "/", client: &http.Client{Timeout: 5 * time.Minute}, data: data, guest: guest,
		srDir: filepath.Join(data, "sr")}
	e.proc = exec.Command(bin, "--data", data, "--http", addr, "--https", "", "--socket", "none",
		"--root-password", bench.Password, "--hypervisor", "qemu", "--qemu-accel", accel, "--log-level", "warn")
	e.proc.Stdout, e.proc.Stderr = logf, logf
	if err := e.proc.Start(); err != nil {
		return err
	}
	defer func() {
		_ = e.proc.Process.Signal(syscall.SIGTERM)
		_ = e.proc.Wait()
		killQEMUs(data) // by pid, only this run's
	}()
	for i := 0; ; i++ {
		v, err := e.call("session.login_with_password", str("root"), str(bench.Password), str("2.21"), str("bench-qemu"))
		if err == nil {
			e.session = v.Str
			break
		}
		if i > 300 {
			return fmt.Errorf("xenithd not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	host, err := e.call("host.get_all")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.srDir, 0o700); err != nil {
		return err
	}
	sr, err := e.call("SR.create", str(host.Array[0].Str), strct("path", e.srDir), str("0"), str("bench SR"), str(""),
		str("file"), str("user"), wire.Bool(false), strct())
	if err != nil {
		return err
	}
	e.sr = sr.Str

	fmt.Printf("bench/qemu: accel %s, guest %s, %d runs per side\n\n", accel, guest, runs)

	// 1. VM.start to marker, through xenithd and by hand, interleaved.
	vm, vmUUID, err := e.newVM("bench-start")
	if err != nil {
		return err
	}
	var viaX, byHand []time.Duration
	var argv []string
	for i := 0; i < runs; i++ {
		d, err := e.startToMarker(vm, vmUUID)
		if err != nil {
			return err
		}
		viaX = append(viaX, d)
		if argv == nil {
			if argv, err = recordedArgs(data, vmUUID); err != nil {
				return err
			}
		}
		if _, err := e.call("VM.hard_shutdown", str(vm)); err != nil {
			return err
		}
		h, err := byHandToMarker(argv, filepath.Join(data, "qemu", vmUUID), filepath.Join(data, "hand"))
		if err != nil {
			return err
		}
		byHand = append(byHand, h)
		fmt.Printf("  run %d: xenithd %v, by hand %v\n", i+1, d.Round(time.Millisecond), h.Round(time.Millisecond))
	}
	mx, mh := median(viaX), median(byHand)
	fmt.Printf("VM.start to marker: xenithd median %v, same QEMU by hand median %v, overhead %+.1f%%\n\n",
		mx.Round(time.Millisecond), mh.Round(time.Millisecond), 100*(mx.Seconds()-mh.Seconds())/mh.Seconds())

	// 2. Suspend + resume round trip of the 128 MiB guest.
	if _, err := e.startToMarker(vm, vmUUID); err != nil {
		return err
	}
	time.Sleep(time.Second)
	var sus, res, rt []time.Duration
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		if _, err := e.call("VM.suspend", str(vm)); err != nil {
			return err
		}
		t1 := time.Now()
		if _, err := e.call("VM.resume", str(vm), wire.Bool(false), wire.Bool(false)); err != nil {
			return err
		}
		t2 := time.Now()
		sus, res, rt = append(sus, t1.Sub(t0)), append(res, t2.Sub(t1)), append(rt, t2.Sub(t0))
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Printf("suspend+resume round trip (128 MiB guest, XenAPI calls): median %v (VM.suspend %v, VM.resume %v)\n\n",
		median(rt).Round(time.Millisecond), median(sus).Round(time.Millisecond), median(res).Round(time.Millisecond))
	if _, err := e.call("VM.hard_shutdown", str(vm)); err != nil {
		return err
	}

	// 3. RSS of xenithd per running VM.
	time.Sleep(time.Second)
	rss0 := rssKiB(e.proc.Process.Pid)
	var started []string
	for i := 0; i < nvms; i++ {
		v, _, err := e.newVM(fmt.Sprintf("bench-rss-%d", i))
		if err != nil {
			return err
		}
		if _, err := e.call("VM.start", str(v), wire.Bool(false), wire.Bool(false)); err != nil {
			return err
		}
		started = append(started, v)
	}
	time.Sleep(15 * time.Second) // boots, and a few metrics rounds
	rssN := rssKiB(e.proc.Process.Pid)
	var qemuRSS []int64
	for _, pid := range qemuPids(data) {
		qemuRSS = append(qemuRSS, rssKiB(pid))
	}
	fmt.Printf("xenithd RSS: %d KiB with no VM running, %d KiB with %d running: %+.0f KiB per VM\n",
		rss0, rssN, nvms, float64(rssN-rss0)/float64(nvms))
	fmt.Printf("QEMU RSS per VM (128 MiB guest, %s): %v KiB\n", accel, qemuRSS)
	for _, v := range started {
		_, _ = e.call("VM.hard_shutdown", str(v))
	}
	return nil
}

// newVM makes a halted 128 MiB PV-booted VM with the guest's disk.
func (e *env) newVM(name string) (string, string, error) {
	vm, err := e.call("VM.create", strct(
		"name_label", name, "name_description", "", "user_version", "1", "is_a_template", false,
		"affinity", "OpaqueRef:NULL",
		"memory_static_max", strconv.Itoa(128<<20), "memory_dynamic_max", strconv.Itoa(128<<20),
		"memory_dynamic_min", strconv.Itoa(128<<20), "memory_static_min", strconv.Itoa(64<<20),
		"VCPUs_params", strct(), "VCPUs_max", "1", "VCPUs_at_startup", "1",
		"actions_after_shutdown", "destroy", "actions_after_reboot", "restart", "actions_after_crash", "destroy",
		"PV_bootloader", "", "PV_kernel", filepath.Join(e.guest, "vmlinuz"),
		"PV_ramdisk", filepath.Join(e.guest, "initramfs.gz"), "PV_args", "console=ttyS0 quiet",
		"PV_bootloader_args", "", "PV_legacy_args", "", "HVM_boot_policy", "", "HVM_boot_params", strct(),
		"platform", strct(), "PCI_bus", "", "other_config", strct(), "recommendations", ""))
	if err != nil {
		return "", "", err
	}
	vdiUUID := uuid.NewString()
	img, err := os.ReadFile(filepath.Join(e.guest, "disk1.ext4"))
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(e.srDir, vdiUUID+".raw"), img, 0o600); err != nil {
		return "", "", err
	}
	if _, err := e.call("SR.scan", str(e.sr)); err != nil {
		return "", "", err
	}
	vdi, err := e.call("VDI.get_by_uuid", str(vdiUUID))
	if err != nil {
		return "", "", err
	}
	if _, err := e.call("VBD.create", strct("VM", vm.Str, "VDI", vdi.Str, "userdevice", "0", "bootable", true,
		"mode", "RW", "type", "Disk", "empty", false, "other_config", strct(), "qos_algorithm_type", "",
		"qos_algorithm_params", strct())); err != nil {
		return "", "", err
	}
	id, err := e.call("VM.get_uuid", str(vm.Str))
	return vm.Str, id.Str, err
}

// startToMarker times VM.start until the marker shows in the serial log.
func (e *env) startToMarker(vm, vmUUID string) (time.Duration, error) {
	log := filepath.Join(e.data, "qemu", vmUUID, "serial.log")
	off := int64(0)
	if fi, err := os.Stat(log); err == nil {
		off = fi.Size()
	}
	t0 := time.Now()
	if _, err := e.call("VM.start", str(vm), wire.Bool(false), wire.Bool(false)); err != nil {
		return 0, err
	}
	if err := waitMarker(log, off, 3*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func waitMarker(path string, off int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && int64(len(b)) > off && bytes.Contains(b[off:], []byte(marker)) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("no %q in %s within %v", marker, path, timeout)
}

func recordedArgs(data, vmUUID string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(data, "qemu", vmUUID, "domain.json"))
	if err != nil {
		return nil, err
	}
	var rec struct {
		Args []string `json:"args"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return rec.Args, nil
}

// byHandToMarker runs xenithd's QEMU command line as a plain child (in the
// foreground, running at once: no -daemonize, -S, -pidfile), its sockets
// and log moved from dir to hand.
func byHandToMarker(argv []string, dir, hand string) (time.Duration, error) {
	if err := os.RemoveAll(hand); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(hand, 0o700); err != nil {
		return 0, err
	}
	var args []string
	for i := 0; i < len(argv); i++ {
		switch argv[i] {
		case "-daemonize", "-S":
			continue
		case "-pidfile":
			i++
			continue
		}
		args = append(args, strings.ReplaceAll(argv[i], dir, hand))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	err := waitMarker(filepath.Join(hand, "serial.log"), 0, 3*time.Minute)
	d := time.Since(t0)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return d, err
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rssKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

func qemuPids(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte(dir+"/")) && bytes.Contains(cmd, []byte("qemu-system")) && rssKiB(pid) > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

func killQEMUs(dir string) {
	for _, pid := range qemuPids(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the repository")
		}
		dir = parent
	}
}
