package xen

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the master of a new pty and the path of its slave, as
// xenconsoled makes one per guest console.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no ptys here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ierr != nil {
		t.Fatal(err, ierr)
	}
	return m, "/dev/pts/" + strconv.Itoa(n)
}

func readLine(t *testing.T, r *bufio.Reader, deadline func(time.Time) error, want string) {
	t.Helper()
	_ = deadline(time.Now().Add(5 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %q: %v (read %q)", want, err, line)
		}
		if strings.TrimRight(line, "\r\n") == want {
			return
		}
	}
}

func TestConsoleRelayFollowsTheDomain(t *testing.T) {
	r := newRig(t, true)
	if cons, err := r.d.Consoles(r.ctx(), vmA); err == nil || len(cons) != 0 {
		t.Fatalf("console of a VM without a domain: %v %v", cons, err)
	}
	id := r.start(vmA)
	m1, pts1 := openPTY(t)
	r.xs.set("/local/domain/"+strconv.Itoa(id)+"/console/tty", pts1)
	cons, err := r.d.Consoles(r.ctx(), vmA)
	if err != nil || len(cons) != 1 || cons[0].Protocol != "vt100" || !strings.HasPrefix(cons[0].Location, "unix://") {
		t.Fatalf("Consoles = %+v, %v", cons, err)
	}
	again, _ := r.d.Consoles(r.ctx(), vmA)
	if len(again) != 1 || again[0].Location != cons[0].Location {
		t.Fatalf("second Consoles = %+v", again)
	}
	c, err := net.Dial("unix", strings.TrimPrefix(cons[0].Location, "unix://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := bufio.NewReader(c)

	// typed by the client, read by the guest (the pty's master side); sent
	// until the relay has the pty open
	guest := bufio.NewReader(m1)
	got := make(chan error, 1)
	go func() {
		_ = m1.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			line, err := guest.ReadString('\n')
			if err != nil {
				got <- err
				return
			}
			if strings.TrimRight(line, "\r\n") == "xcmd hello" {
				got <- nil
				return
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for done := false; !done; {
		if _, err := c.Write([]byte("xcmd hello\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("guest input: %v", err)
			}
			done = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the guest never got the client's line")
			}
		}
	}
	// printed by the guest, read by the client
	if _, err := m1.Write([]byte("GUEST-LINE 1\n")); err != nil {
		t.Fatal(err)
	}
	readLine(t, client, c.SetReadDeadline, "GUEST-LINE 1")

	// the guest reboots: a new domain and a new pty; the client stays
	m1.Close()
	m2, pts2 := openPTY(t)
	r.xs.set("/local/domain/"+strconv.Itoa(id)+"/console/tty", pts2)
	go func() {
		for i := 0; i < 50; i++ {
			if _, err := m2.Write([]byte("GUEST-UP\n")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	readLine(t, client, c.SetReadDeadline, "GUEST-UP")

	// destroyed: the socket goes away and the client sees the end
	if err := r.d.Destroy(r.ctx(), vmA); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := client.ReadString('\n'); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("client still connected after Destroy")
			}
			break
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(cons[0].Location, "unix://")); !os.IsNotExist(err) {
		t.Fatalf("console socket left after Destroy: %v", err)
	}
}

func TestConsolesWithoutXenstore(t *testing.T) {
	r := newRig(t, false)
	r.start(vmA)
	if cons, err := r.d.Consoles(r.ctx(), vmA); err != nil || len(cons) != 0 {
		t.Fatalf("Consoles without xenstore = %v, %v", cons, err)
	}
}

func TestStats(t *testing.T) {
	useSysfs(t, nil) // no device counters: the host's /sys is not read
	r := newRig(t, false)
	r.start(vmA)
	st, err := r.d.Stats(r.ctx(), vmA)
	if err != nil || st.MemoryActual != 96<<20 || st.CPUTime != 1500*time.Millisecond || len(st.VCPUTime) != 1 ||
		st.VCPUTime[0] != 1500*time.Millisecond || st.Time.IsZero() {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	if _, err := r.d.Stats(r.ctx(), vmB); err == nil {
		t.Fatal("Stats of a VM without a domain")
	}
}

func TestParseVCPUList(t *testing.T) {
	out := "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)\n" +
		"0f0e0d0c-0b0a-4908-8706-050403020100  3     0    1   -b-      12.3  all / all\n" +
		"0f0e0d0c-0b0a-4908-8706-050403020100  3     1    -   --p       0.4  all / all\n"
	times, err := parseVCPUList([]byte(out))
	if err != nil || len(times) != 2 || times[0] != 12300*time.Millisecond || times[1] != 400*time.Millisecond {
		t.Fatalf("%v %v", times, err)
	}
	if _, err := parseVCPUList([]byte("vm 3 x 1 -b- 1.0 all / all\n")); err == nil {
		t.Fatal("bad vcpu accepted")
	}
}
