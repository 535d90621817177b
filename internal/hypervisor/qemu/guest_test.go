package qemu

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// Tests with a real guest under QEMU (TCG unless XENITH_QEMU_ACCEL says
// otherwise). They build the test guest with scripts/guest/build.sh
// (cached) and skip only when qemu-system-x86_64 is not installed.

func guestDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (Debian qemu-system-x86; scripts/install-test-deps.sh installs it)")
	}
	if d := os.Getenv("XENITH_GUEST_DIR"); d != "" {
		return d
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(root, "scripts", "guest", "build.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/guest/build.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func testAccel() string {
	if a := os.Getenv("XENITH_QEMU_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

// shortDir is a state directory short enough for unix socket paths.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "xq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits for a line containing want in the serial log, after
// offset bytes; it returns the offset just past that line.
func waitLog(t *testing.T, path, want string, offset int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if offset < len(b) {
			if i := bytes.Index(b[offset:], []byte(want)); i >= 0 {
				end := offset + i
				if j := bytes.IndexByte(b[end:], '\n'); j >= 0 {
					end += j + 1
				}
				return end
			}
		}
		if time.Now().After(deadline) {
			tail := b
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			t.Fatalf("no %q in %s after %v; tail:\n%s", want, path, timeout, tail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nextEvent(t *testing.T, d *Driver, timeout time.Duration) domain.Event {
	t.Helper()
	select {
	case ev := <-d.Events():
		return ev
	case <-time.After(timeout):
		t.Fatalf("no driver event within %v", timeout)
	}
	return domain.Event{}
}

func TestRealGuest(t *testing.T) {
	g := guestDir(t)
	state := shortDir(t)
	disks := t.TempDir()
	copyFile(t, filepath.Join(g, "disk1.ext4"), filepath.Join(disks, "d1.raw"))
	copyFile(t, filepath.Join(g, "disk2.ext4"), filepath.Join(disks, "d2.raw"))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d, err := New(ctx, Options{StateDir: state, Accel: testAccel()})
	if err != nil {
		t.Fatal(err)
	}
	const id = "5e0a6c0e-1111-4a4a-9c9c-000000000001"
	t.Cleanup(func() {
		// Never leave a QEMU behind: destroy through the live driver, or
		// through a new one that adopts what is left.
		if d != nil {
			_ = d.Destroy(context.Background(), id)
			d.Close()
		}
		if d2, err := New(context.Background(), Options{StateDir: state, Accel: "tcg"}); err == nil {
			_ = d2.Destroy(context.Background(), id)
			d2.Close()
		}
	})
	spec := domain.Spec{UUID: id, Name: "t1", MemoryStaticMax: 128 << 20, VCPUsMax: 2, VCPUs: 1,
		Kernel: filepath.Join(g, "vmlinuz"), Ramdisk: filepath.Join(g, "initramfs.gz"), Args: "console=ttyS0 quiet",
		Disks: []domain.Disk{{Device: "0", Path: filepath.Join(disks, "d1.raw"), Format: "raw"}},
		NICs:  []domain.NIC{{Device: "0", MAC: "52:54:00:12:34:56", Bridge: "xenith-nonexistent"}}}
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Unpause(ctx, id); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(state, id, serialLog)
	off := waitLog(t, log, "XENITH-DISK vda disk1", 0, 90*time.Second)
	off = waitLog(t, log, "XENITH-TICK 1 ", off, 30*time.Second)

	t.Run("info", func(t *testing.T) {
		in, err := d.Info(ctx, id)
		if err != nil || in.State != domain.Running || in.Domid < 1 {
			t.Fatalf("Info = %+v, %v", in, err)
		}
		st, err := d.Stats(ctx, id)
		if err != nil || st.CPUTime <= 0 || len(st.VCPUTime) != 1 {
			t.Fatalf("Stats = %+v, %v", st, err)
		}
		if _, ok := st.Disks["0"]; !ok {
			t.Fatalf("no disk counters: %+v", st)
		}
	})
	t.Run("hotplug", func(t *testing.T) {
		if err := d.PlugDisk(ctx, id, domain.Disk{Device: "1", Path: filepath.Join(disks, "d2.raw"), Format: "raw"}); err != nil {
			t.Fatal(err)
		}
		off = waitLog(t, log, "XENITH-DISK vdb disk2", off, 60*time.Second)
		if err := d.UnplugDisk(ctx, id, "1"); err != nil {
			t.Fatal(err)
		}
		off = waitLog(t, log, "XENITH-DEVS blk=[vda ]", off, 30*time.Second)
	})
	t.Run("suspend-resume", func(t *testing.T) {
		img := filepath.Join(disks, "suspend.img")
		t0 := time.Now()
		if err := d.Suspend(ctx, id, img); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if _, err := d.Info(ctx, id); err == nil {
			t.Fatal("domain still there after suspend")
		}
		if _, err := d.Resume(ctx, spec, img); err != nil {
			t.Fatal(err)
		}
		if err := d.Unpause(ctx, id); err != nil {
			t.Fatal(err)
		}
		t.Logf("suspend %v, resume %v", t1.Sub(t0), time.Since(t1))
		off = waitLog(t, log, "XENITH-TICK", off, 30*time.Second)
	})
	t.Run("adopt", func(t *testing.T) {
		d.Close()
		d = nil
		d, err = New(ctx, Options{StateDir: state, Accel: testAccel()})
		if err != nil {
			t.Fatal(err)
		}
		in, err := d.Info(ctx, id)
		if err != nil || in.State != domain.Running {
			t.Fatalf("after re-adoption Info = %+v, %v", in, err)
		}
	})
	t.Run("guest-reboot", func(t *testing.T) {
		sendSerial(t, filepath.Join(state, id, serialSock), "xcmd reboot")
		if ev := nextEvent(t, d, 30*time.Second); ev.Kind != domain.GuestReboot {
			t.Fatalf("event %+v, want a reboot", ev)
		}
		off = waitLog(t, log, "XENITH-MODULES", off, 90*time.Second)
		select {
		case ev := <-d.Events():
			t.Fatalf("one guest reboot gave a second event %+v", ev)
		default:
		}
	})
	t.Run("clean-shutdown", func(t *testing.T) {
		if err := d.Shutdown(ctx, id, false); err != nil {
			t.Fatal(err)
		}
		waitLog(t, log, "XENITH-ACPI-POWEROFF", off, time.Second)
		if _, err := d.Info(ctx, id); err == nil {
			t.Fatal("domain still there after shutdown")
		}
	})
	t.Run("killed", func(t *testing.T) {
		if _, err := d.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
		for len(d.Events()) > 0 {
			<-d.Events()
		}
		x, _ := d.get(id)
		_ = syscall.Kill(x.rec.Pid, syscall.SIGKILL)
		if ev := nextEvent(t, d, 10*time.Second); ev.Kind != domain.GuestCrash {
			t.Fatalf("event %+v, want a crash", ev)
		}
		in, err := d.Info(ctx, id)
		if err != nil || in.State != domain.Crashed {
			t.Fatalf("Info = %+v, %v", in, err)
		}
		if err := d.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
}

func sendSerial(t *testing.T, sock, line string) {
	t.Helper()
	c, err := dialUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
}
