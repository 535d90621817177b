package xapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// The console proxy, as xapi's: a client sends
//
//	CONNECT /console?uuid=CONSOLE_UUID&session_id=OpaqueRef:... HTTP/1.0
//
// (or ?ref=CONSOLE_REF; GET works too; the session may also be a cookie or
// HTTP basic credentials), gets "HTTP/1.1 200 OK" and then the console's
// raw byte stream both ways. It reaches consoles the driver serves itself
// (domain.ConsoleAttacher: the simulator's serial consoles) and consoles
// on a local unix socket (qemu, xen), so a remote client can use either.

// consoleRoles may connect to a console: those that may start a VM.
var consoleRoles = func() xenapi.Role {
	for _, m := range api.Methods {
		if m.Name == "VM.start" {
			return m.Roles
		}
	}
	return 0
}()

func (s *Server) serveConsole(f *Front, local bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect && r.Method != http.MethodGet {
			w.Header().Set("Allow", "CONNECT, GET")
			http.Error(w, "console: use CONNECT", http.StatusMethodNotAllowed)
			return
		}
		sessRef, ok := f.authenticateHTTP(w, r, local, "console")
		if !ok {
			return
		}
		if sess, err := s.sessions.check(wire.String(string(sessRef))); err != nil ||
			!(sess.superuser || sess.Roles()&consoleRoles != 0) {
			http.Error(w, "console: RBAC_PERMISSION_DENIED: your roles may not connect to consoles", http.StatusForbidden)
			return
		}
		con, vm, err := s.consoleOf(r)
		if err != nil {
			http.Error(w, "console: "+err.Error(), http.StatusNotFound)
			return
		}
		stream, err := s.dialConsole(r.Context(), con, vm)
		if err != nil {
			s.log.Warn("console proxy", "vm", vm.UUID, "err", err)
			http.Error(w, "console: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			stream.Close()
			http.Error(w, "console: this connection cannot be taken over (HTTP/2?)", http.StatusHTTPVersionNotSupported)
			return
		}
		conn, brw, err := hj.Hijack()
		if err != nil {
			stream.Close()
			return
		}
		// The server's read and write deadlines were for one request.
		_ = conn.SetDeadline(time.Time{})
		if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\n\r\n"); err != nil {
			conn.Close()
			stream.Close()
			return
		}
		s.log.Debug("console attached", "vm", vm.UUID, "session", sessRef, "protocol", con.Protocol)
		relay(conn, brw.Reader, stream)
	}
}

// consoleOf finds the console a request names, and its running VM.
func (s *Server) consoleOf(r *http.Request) (*api.Console, *api.VM, error) {
	q := r.URL.Query()
	var rec xenapi.Record
	switch {
	case q.Get("uuid") != "":
		row, err := s.store.ByUUID(api.ClassConsole, q.Get("uuid"))
		if err != nil {
			return nil, nil, errors.New("no console with that uuid")
		}
		rec = row.Rec
	case q.Get("ref") != "":
		row, err := s.store.Get(api.ClassConsole, xenapi.Ref(q.Get("ref")))
		if err != nil {
			return nil, nil, errors.New("no console with that reference")
		}
		rec = row.Rec
	default:
		return nil, nil, errors.New("name a console with ?uuid= or ?ref=")
	}
	con := rec.(*api.Console)
	row, err := s.store.Get(api.ClassVM, con.VM)
	if err != nil {
		return nil, nil, errors.New("the console's VM is gone")
	}
	vm := row.Rec.(*api.VM)
	if vm.PowerState != api.VMPowerStateRunning && vm.PowerState != api.VMPowerStatePaused {
		return nil, nil, errors.New("the console's VM is not running")
	}
	return con, vm, nil
}

func (s *Server) dialConsole(ctx context.Context, con *api.Console, vm *api.VM) (io.ReadWriteCloser, error) {
	if path, ok := strings.CutPrefix(con.Location, "unix://"); ok {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	if s.domains == nil {
		return nil, domain.ErrNoConsole
	}
	return s.domains.AttachConsole(ctx, vm.UUID, string(con.Protocol))
}

// relay copies between a client connection (whose first bytes may already
// sit in buffered) and a console until either side ends.
func relay(conn net.Conn, buffered io.Reader, stream io.ReadWriteCloser) {
	var once sync.Once
	done := func() {
		once.Do(func() {
			conn.Close()
			stream.Close()
		})
	}
	go func() {
		_, _ = io.Copy(stream, buffered)
		done()
	}()
	_, _ = io.Copy(conn, stream)
	done()
}
