package xecli

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Caller makes one XenAPI call; *client.Client is the real one, tests may
// substitute their own.
type Caller interface {
	Call(ctx context.Context, method string, params ...wire.Value) (wire.Value, error)
}

// Session is a logged-in connection.
type Session struct {
	c   Caller
	ref string
	log *slog.Logger
}

// Do calls a method whose first parameter is the session.
func (s *Session) Do(ctx context.Context, method string, params ...wire.Value) (wire.Value, error) {
	s.log.Debug("call", "method", method, "params", len(params))
	v, err := s.c.Call(ctx, method, append([]wire.Value{wire.String(s.ref)}, params...)...)
	if err != nil {
		s.log.Debug("call failed", "method", method, "err", err)
	}
	return v, err
}

// localSocketPaths lists where a local xenithd listens, in the order xe
// tries them: $XE_SOCKET, the root location xapi tools expect, then the
// per-user data dir of a xenithd run without root.
func localSocketPaths(getenv func(string) string) []string {
	if p := getenv("XE_SOCKET"); p != "" {
		return []string{p}
	}
	var paths []string
	if os.Geteuid() == 0 {
		paths = append(paths, "/var/lib/xcp/xapi")
	}
	state := getenv("XDG_STATE_HOME")
	if state == "" {
		if home := getenv("HOME"); home != "" {
			state = filepath.Join(home, ".local", "state")
		}
	}
	if state != "" {
		paths = append(paths, filepath.Join(state, "xenith", "xapi.sock"))
	}
	if os.Geteuid() != 0 {
		paths = append(paths, "/var/lib/xcp/xapi")
	}
	return paths
}

// readConfigFile applies ~/.xe (key=value lines: server, port, username,
// password, nossl), which xe users keep to avoid typing -s/-u/-pw; the
// command line wins over it.
func readConfigFile(path string, o *ConnOptions) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "server":
			if o.Server == "" {
				o.Server = v
			}
		case "port":
			if o.Port == "" {
				o.Port = v
			}
		case "username":
			if o.User == "" {
				o.User = v
			}
		case "password":
			if o.Password == "" && o.PasswordFile == "" {
				o.Password = v
			}
		case "nossl":
			if isTrue(v) {
				o.NoSSL = true
			}
		}
	}
	return sc.Err()
}

// readPasswordFile reads -pwf: the user name on the first line, the
// password on the second, as xe's password files are written.
func readPasswordFile(path string, o *ConnOptions) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return &connectError{fmt.Sprintf("Error opening password file '%s': %v", path, err)}
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) == "" {
		return &connectError{"Error: password file format: expecting username on the first line, password on the second line"}
	}
	if o.User == "" {
		o.User = strings.TrimSpace(lines[0])
	}
	o.Password = lines[1]
	return nil
}

// endpoint builds the client for the options: the local unix socket when no
// server is named, else HTTPS (HTTP with --nossl) on the given port.
func endpoint(o *ConnOptions, getenv func(string) string) (Caller, bool, error) {
	if o.Server == "" {
		var tried []string
		for _, p := range localSocketPaths(getenv) {
			if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				return client.New("unix:"+p, client.JSONRPC, nil), true, nil
			}
			tried = append(tried, p)
		}
		return nil, true, &connectError{fmt.Sprintf(
			"Failed to contact a running management agent (no socket at %s).\nTry specifying a server name and port, or set XE_SOCKET.",
			strings.Join(tried, ", "))}
	}
	scheme, port := "https", "443"
	if o.NoSSL {
		scheme, port = "http", "80"
	}
	if o.Port != "" {
		port = o.Port
	}
	host := o.Server
	if h, p, err := net.SplitHostPort(o.Server); err == nil && o.Port == "" {
		host, port = h, p
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}
	// xe does not check the server's certificate (a fresh host has a
	// self-signed one); XE_CA_FILE turns verification on.
	tlsConf := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // xe compatibility, see above
	if ca := getenv("XE_CA_FILE"); ca != "" {
		pool, err := loadCertPool(ca)
		if err != nil {
			return nil, false, &connectError{err.Error()}
		}
		tlsConf = &tls.Config{RootCAs: pool, ServerName: host}
	}
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 15 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
	}}
	return client.New(u.String(), client.JSONRPC, hc), false, nil
}

// login opens a session: the local socket trusts its callers (as root
// unless -u names someone), a remote server wants a user and password.
func login(ctx context.Context, c Caller, local bool, o *ConnOptions, log *slog.Logger) (*Session, error) {
	user, pw := o.User, o.Password
	if local && user == "" {
		user = "root"
	}
	if !local && (user == "" || pw == "") {
		return nil, &connectError{"Username/password must be specified (-u USER -pw PASSWORD, or -pwf FILE)"}
	}
	v, err := c.Call(ctx, "session.login_with_password", wire.String(user), wire.String(pw), wire.String("2.21"), wire.String("xe"))
	if err != nil {
		var xe *xenapi.Error
		if errors.As(err, &xe) {
			if xe.Code == "SESSION_AUTHENTICATION_FAILED" || xe.Code == "SESSION_AUTHORIZATION_FAILED" {
				return nil, &connectError{"Authentication failed"}
			}
			return nil, err
		}
		return nil, &connectError{"Unable to contact server. Please check server and port settings.\n(" + err.Error() + ")"}
	}
	return &Session{c: c, ref: v.Str, log: log}, nil
}

// logout ends the session; a failure here changes nothing for the user.
func (s *Session) logout(ctx context.Context) {
	if _, err := s.Do(ctx, "session.logout"); err != nil {
		s.log.Debug("logout", "err", err)
	}
}
