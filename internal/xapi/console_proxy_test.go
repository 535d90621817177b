package xapi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// connectConsole sends CONNECT path to the test server and returns the
// status line and, on 200, the connection with a reader past the header.
func connectConsole(t *testing.T, e *env, method, target string) (string, net.Conn, *bufio.Reader) {
	t.Helper()
	u, _ := url.Parse(e.http.URL)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, method+" "+target+" HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the status: %v", err)
	}
	for { // the header
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	return strings.TrimSpace(status), conn, br
}

func readUntil(t *testing.T, br *bufio.Reader, want string) {
	t.Helper()
	var seen []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("console: %v before %q; saw %q", err, want, seen)
		}
		if strings.Contains(l, want) {
			return
		}
		seen = append(seen, strings.TrimSpace(l))
	}
}

func TestConsoleProxy(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	e := h.e
	vm := h.vmIn("Running")
	cons := h.must("VM.get_consoles", vm)
	if len(cons.Array) != 1 {
		t.Fatalf("a running sim VM has consoles %v, want one", cons)
	}
	rec := h.must("console.get_record", cons.Array[0])
	loc, proto := mustField(rec, "location").Str, mustField(rec, "protocol").Str
	id := mustField(rec, "uuid").Str
	if proto != "vt100" || loc != "/console?uuid="+id {
		t.Fatalf("console %s at %q", proto, loc)
	}
	sess := url.QueryEscape(h.s.Ref)

	for _, tc := range []struct {
		name, method, target, status string
	}{
		{"no session", "CONNECT", loc, "401"},
		{"bad session", "CONNECT", loc + "&session_id=OpaqueRef:nope", "401"},
		{"no console named", "CONNECT", "/console?session_id=" + sess, "404"},
		{"unknown uuid", "CONNECT", "/console?uuid=nope&session_id=" + sess, "404"},
		{"unknown ref", "CONNECT", "/console?ref=OpaqueRef:nope&session_id=" + sess, "404"},
		{"wrong method", "POST", loc + "&session_id=" + sess, "405"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, _ := connectConsole(t, e, tc.method, tc.target)
			if !strings.Contains(status, " "+tc.status+" ") {
				t.Fatalf("%s %s: %q, want %s", tc.method, tc.target, status, tc.status)
			}
		})
	}

	// By uuid: what the guest printed before anyone watched, then typed
	// commands are obeyed.
	status, conn, br := connectConsole(t, e, "CONNECT", loc+"&session_id="+sess)
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("CONNECT: %q", status)
	}
	readUntil(t, br, "XENITH-GUEST-UP")
	if _, err := io.WriteString(conn, "xcmd what\n"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, br, "XENITH-UNKNOWN what")

	// By reference, with GET: a second viewer sees the same output.
	status, conn2, br2 := connectConsole(t, e, "GET", "/console?ref="+url.QueryEscape(cons.Array[0].Str)+"&session_id="+sess)
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("GET: %q", status)
	}
	if _, err := io.WriteString(conn2, "xcmd readcd\n"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, br2, "XENITH-CD none")
	readUntil(t, br, "XENITH-CD none")

	// The VM halts: the consoles end, the record goes.
	h.must("VM.hard_shutdown", vm)
	if _, err := br.ReadString(0); err == nil {
		t.Fatal("console still open after the VM halted")
	}
	if c := h.must("VM.get_consoles", vm); len(c.Array) != 0 {
		t.Fatalf("a halted VM has consoles %v", c)
	}
	status, _, _ = connectConsole(t, e, "CONNECT", loc+"&session_id="+sess)
	if !strings.Contains(status, " 404 ") {
		t.Fatalf("console of a halted VM: %q", status)
	}
}

// A console on a unix socket (qemu, xen) is relayed too.
func TestConsoleProxyUnixSocket(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Running")
	path := filepath.Join(t.TempDir(), "serial.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "login: ")
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "hello "+line)
	}()
	var id string
	err = h.e.store.Update(context.Background(), func(tx *store.Tx) error {
		c := api.NewConsole()
		c.Protocol, c.Location, c.VM = api.ConsoleProtocolVt100, "unix://"+path, xenapi.Ref(vm.Str)
		ref, err := tx.Create(c)
		if err == nil {
			r, _ := tx.Get(api.ClassConsole, ref)
			id = r.(*api.Console).UUID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	status, conn, br := connectConsole(t, h.e, "CONNECT", "/console?uuid="+id+"&session_id="+url.QueryEscape(h.s.Ref))
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("CONNECT: %q", status)
	}
	io.WriteString(conn, "root\n")
	readUntil(t, br, "hello root")
}
