package sim

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// reader collects a console's lines in the background.
type reader struct {
	t     *testing.T
	con   io.ReadWriteCloser
	lines chan string
}

func attach(t *testing.T, d *Driver, uuid string) *reader {
	t.Helper()
	con, err := d.AttachConsole(context.Background(), uuid, "vt100")
	if err != nil {
		t.Fatalf("AttachConsole %s: %v", uuid, err)
	}
	r := &reader{t: t, con: con, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(con)
		for sc.Scan() {
			r.lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(r.lines)
	}()
	t.Cleanup(func() { con.Close() })
	return r
}

// want waits for a line matching pattern, returning it.
func (r *reader) want(pattern string) string {
	r.t.Helper()
	rx := regexp.MustCompile(pattern)
	deadline := time.After(generous)
	var seen []string
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				r.t.Fatalf("console ended before %q; saw %q", pattern, seen)
			}
			if rx.MatchString(l) {
				return l
			}
			seen = append(seen, l)
		case <-deadline:
			r.t.Fatalf("no line %q; saw %q", pattern, seen)
		}
	}
}

// quiet checks that no line matching pattern comes for a while.
func (r *reader) quiet(pattern string, during time.Duration) {
	r.t.Helper()
	rx := regexp.MustCompile(pattern)
	deadline := time.After(during)
	for {
		select {
		case l, ok := <-r.lines:
			if ok && rx.MatchString(l) {
				r.t.Fatalf("unexpected line %q", l)
			}
			if !ok {
				return
			}
		case <-deadline:
			return
		}
	}
}

func (r *reader) ended() {
	r.t.Helper()
	deadline := time.After(generous)
	for {
		select {
		case _, ok := <-r.lines:
			if !ok {
				return
			}
		case <-deadline:
			r.t.Fatal("console did not end")
		}
	}
}

func (r *reader) send(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.con, line+"\n"); err != nil {
		r.t.Fatal(err)
	}
}

// ext4Image makes an ext4 image holding MARKER, or skips the test.
func ext4Image(t *testing.T, marker string) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 (e2fsprogs) is not installed")
	}
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "root"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "root", "MARKER"), []byte(marker+"\n"), 0o644))
	img := filepath.Join(dir, "disk.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", filepath.Join(dir, "root"), img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return img
}

func consoleSpec(uuid, disk string) domain.Spec {
	s := spec(uuid, 64*MiB)
	s.VCPUs = 1
	s.Disks = []domain.Disk{{Device: "0", Path: disk, Format: "raw", Bootable: true}}
	return s
}

func TestConsoleBootAndCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	disk1, disk2 := ext4Image(t, "disk1"), ext4Image(t, "disk2")
	d := newDriver(t, Options{BootTime: 50 * time.Millisecond, ShutdownTime: 10 * time.Millisecond, TickInterval: 100 * time.Millisecond})
	s := consoleSpec("c", disk1)
	s.Args = "console=ttyS0 xenith.ip=10.9.0.1/24"
	mustCreate(t, d, s)
	cons, err := d.Consoles(ctx, "c")
	if err != nil || len(cons) != 1 || cons[0].Protocol != "vt100" || cons[0].Location != "" {
		t.Fatalf("Consoles: %+v %v", cons, err)
	}
	must(t, d.Unpause(ctx, "c"))
	time.Sleep(100 * time.Millisecond) // printed before anyone watched: kept
	r := attach(t, d, "c")
	r.want(`^XENITH-GUEST-UP uptime=`)
	r.want(`^XENITH-NET eth0 10\.9\.0\.1/24$`)
	r.want(`^XENITH-DEVS blk=\[vda \] net=\[eth0 lo \] cpu=\[0\]$`)
	r.want(`^XENITH-DISK vda disk1$`)
	r.want(`^XENITH-TICK \d+ up=`)

	// Paused: no ticks; running again: ticks carry on.
	must(t, d.Pause(ctx, "c"))
	r.quiet(`XENITH-TICK`, 250*time.Millisecond)
	must(t, d.Unpause(ctx, "c"))
	r.want(`^XENITH-TICK [1-9]`)

	// Hotplug: the guest sees the disk, its marker, and the unplug.
	must(t, d.PlugDisk(ctx, "c", domain.Disk{Device: "1", Path: disk2, Format: "raw"}))
	r.want(`^XENITH-DEVS blk=\[vda vdb \]`)
	r.want(`^XENITH-DISK vdb disk2$`)
	must(t, d.SetVCPUs(ctx, "c", 2))
	r.want(`cpu=\[0-1\]$`)
	must(t, d.UnplugDisk(ctx, "c", "1"))
	r.want(`^XENITH-DEVS blk=\[vda \]`)

	// Typed commands are echoed and obeyed.
	r.send("xcmd bogus")
	r.want(`^xcmd bogus$`)
	r.want(`^XENITH-UNKNOWN bogus$`)
	r.send("xcmd readcd")
	r.want(`^XENITH-CD none$`)

	// A guest-initiated reboot: event, boot lines again, ticks from 0.
	r.send("xcmd reboot")
	r.want(`^XENITH-REBOOTING$`)
	waitEvent(t, d, "c", domain.GuestReboot, generous)
	r.want(`^XENITH-GUEST-UP`)
	r.want(`^XENITH-TICK 0 `)

	// Hung: the clean shutdown is not obeyed.
	r.send("xcmd hang")
	r.want(`^XENITH-HUNG$`)
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(sctx, "c", false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown of a hung guest: %v", err)
	}
	must(t, d.Reset(ctx, "c"))
	r.want(`^XENITH-GUEST-UP`)
	r.want(`^XENITH-TICK 0 `)

	// A clean shutdown runs the ACPI handler, then the console ends.
	must(t, d.Shutdown(ctx, "c", false))
	r.want(`^XENITH-ACPI-POWEROFF$`)
	r.ended()
	if _, err := d.AttachConsole(ctx, "c", "vt100"); !errors.Is(err, domain.ErrNoDomain) {
		t.Fatalf("attach to a gone domain: %v", err)
	}
}

func TestConsoleSuspendResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{BootTime: 20 * time.Millisecond, TickInterval: 50 * time.Millisecond})
	s := consoleSpec("s", "")
	mustCreate(t, d, s)
	must(t, d.Unpause(ctx, "s"))
	r := attach(t, d, "s")
	r.want(`^XENITH-TICK [3-9]`)
	path := filepath.Join(t.TempDir(), "s.img")
	must(t, d.Suspend(ctx, "s", path))
	r.ended()
	_, err := d.Resume(ctx, s, path)
	must(t, err)
	must(t, d.Unpause(ctx, "s"))
	r2 := attach(t, d, "s")
	// The guest carries on: no boot, later ticks.
	line := r2.want(`^XENITH-(TICK|GUEST-UP)`)
	if !regexp.MustCompile(`^XENITH-TICK ([4-9]|\d\d)`).MatchString(line) {
		t.Fatalf("after resume: %q, want a later tick", line)
	}
}

func TestConsoleNetwork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDriver(t, Options{TickInterval: time.Hour})
	for _, id := range []string{"a", "b"} {
		mustCreate(t, d, consoleSpec(id, ""))
		must(t, d.Unpause(ctx, id))
	}
	a, b := attach(t, d, "a"), attach(t, d, "b")
	a.send("xcmd ifup eth0 10.1.0.1/24")
	a.want(`^XENITH-NET eth0 10\.1\.0\.1/24$`)
	a.send("xcmd ifup eth7 10.1.0.1/24")
	a.want(`^XENITH-NET-FAIL eth7`)
	b.send("xcmd ifup eth0 10.1.0.2/24")
	b.want(`^XENITH-NET eth0`)
	a.send("xcmd ping 10.1.0.2")
	a.want(`^XENITH-PING-OK 10\.1\.0\.2$`)
	b.send("xcmd ping 10.1.0.1")
	b.want(`^XENITH-PING-OK 10\.1\.0\.1$`)
}

func TestConsoleSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	o := Options{StateDir: dir, BootTime: 10 * time.Millisecond, TickInterval: 50 * time.Millisecond}
	d := newDriver(t, o)
	mustCreate(t, d, consoleSpec("r", ""))
	must(t, d.Unpause(ctx, "r"))
	r := attach(t, d, "r")
	r.want(`^XENITH-TICK 2 `)
	d.Close()
	r.ended()
	d2 := newDriver(t, o)
	r2 := attach(t, d2, "r")
	line := r2.want(`^XENITH-(TICK|GUEST-UP)`)
	if !strings.HasPrefix(line, "XENITH-TICK") {
		t.Fatalf("after a restart the guest printed %q", line)
	}
	r2.send("xcmd poweroff")
	r2.want(`^XENITH-POWEROFF$`)
	waitEvent(t, d2, "r", domain.GuestShutdown, generous)
}

func TestAppendBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		buf, add string
		limit    int
		want     string
	}{
		{"", "a\n", 10, "a\n"},
		{"aaaa\n", "bb\n", 6, "bb\n"},
		{"a\nb\n", "c\n", 4, "b\nc\n"},
		{"", "0123456789\n", 4, "789\n"},
	} {
		if got := string(appendBounded([]byte(tc.buf), []byte(tc.add), tc.limit)); got != tc.want {
			t.Errorf("appendBounded(%q, %q, %d) = %q, want %q", tc.buf, tc.add, tc.limit, got, tc.want)
		}
	}
}

func TestDiskLetters(t *testing.T) {
	t.Parallel()
	for i, want := range map[int]string{0: "a", 1: "b", 25: "z", 26: "aa", 27: "ab", 701: "zz", 702: "aaa"} {
		if got := diskLetters(i); got != want {
			t.Errorf("diskLetters(%d) = %q, want %q", i, got, want)
		}
	}
}
