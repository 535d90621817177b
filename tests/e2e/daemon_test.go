// Package e2e holds end-to-end tests that run the real xenithd binary.
//
// This file has the shared helpers: buildDaemon (go build ./cmd/xenithd once
// per test binary), freePort, startDaemon (fresh data dir, loopback HTTP port,
// unix socket, root password), waitReady, and a tiny XML-RPC client
// (xmlrpcCall) for tests that need to talk to the daemon themselves.
//
// Set XENITHD_BIN to use a prebuilt binary instead of building one.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long startDaemon waits for the first successful login.
	readyTimeout = 30 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// buildTimeout bounds `go build ./cmd/xenithd`.
	buildTimeout = 5 * time.Minute
)

var (
	buildOnce sync.Once
	buildDir  string // removed by TestMain
	buildBin  string
	buildErr  error
)

// TestMain removes the directory that holds the xenithd binary built for this
// test run. (Only one TestMain may exist in the package: it lives here.)
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// repoRoot is the directory holding the module's go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/xenith/xenith")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot find the repository root (go.mod of github.com/xenith/xenith) above the working directory")
		}
		dir = parent
	}
}

// buildDaemon builds ./cmd/xenithd once per test binary and returns its path.
func buildDaemon(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("XENITHD_BIN"); bin != "" {
		return bin
	}
	root := repoRoot(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "xenith-e2e-bin-")
		if buildErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		buildBin = filepath.Join(buildDir, "xenithd")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", buildBin, "./cmd/xenithd")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/xenithd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Daemon is a xenithd process started by startDaemon.
type Daemon struct {
	URL      string // base URL of the HTTP listener, e.g. http://127.0.0.1:PORT ("" if --http "")
	DataDir  string // --data
	Socket   string // --socket ("" if disabled)
	Password string // --root-password; the user is "root"
	Args     []string
	Cmd      *exec.Cmd // the process handle
	LogPath  string    // the daemon's stdout+stderr

	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed
	stopErr error
	stop    sync.Once
}

// Stop sends SIGTERM, then SIGKILL after 5 s, and waits for the process.
// It is idempotent and is also registered with t.Cleanup by startDaemon. It
// returns nil when the daemon exited by itself with status 0 or on our SIGTERM.
func (d *Daemon) Stop() error {
	d.stop.Do(func() {
		select {
		case <-d.exited:
			d.stopErr = d.waitErr
			return
		default:
		}
		_ = d.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
			d.stopErr = d.waitErr
			var ee *exec.ExitError
			if errors.As(d.waitErr, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
					d.stopErr = nil
				}
			}
		case <-time.After(stopGrace):
			_ = d.Cmd.Process.Kill()
			<-d.exited
			d.stopErr = fmt.Errorf("xenithd did not exit within %v of SIGTERM; killed", stopGrace)
		}
	})
	return d.stopErr
}

// Kill sends SIGKILL at once (for crash-safety tests) and waits for the exit.
func (d *Daemon) Kill() {
	d.stop.Do(func() {
		_ = d.Cmd.Process.Kill()
		<-d.exited
		d.stopErr = nil
	})
}

// Exited reports whether the process has exited, and its wait error.
func (d *Daemon) Exited() (bool, error) {
	select {
	case <-d.exited:
		return true, d.waitErr
	default:
		return false, nil
	}
}

// Log returns the daemon's output so far; tail > 0 keeps only the last tail lines.
func (d *Daemon) Log(tail int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", d.LogPath, err)
	}
	s := strings.TrimRight(string(b), "\n")
	if tail > 0 {
		lines := strings.Split(s, "\n")
		if len(lines) > tail {
			s = fmt.Sprintf("(… %d earlier lines)\n", len(lines)-tail) + strings.Join(lines[len(lines)-tail:], "\n")
		}
	}
	return s
}

// HTTPClient returns a client for the daemon: over TCP when the HTTP listener
// is on, over the unix socket otherwise (then use base URL "http://local").
func (d *Daemon) HTTPClient() (*http.Client, string) {
	if d.URL != "" {
		return &http.Client{Timeout: 10 * time.Second}, d.URL
	}
	return unixHTTPClient(d.Socket), "http://local"
}

func unixHTTPClient(path string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", path)
			},
		},
	}
}

// flagValue finds --name / -name in args ("--name v" or "--name=v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if strings.HasPrefix(a, name+"=") {
			return a[len(name)+1:], true
		}
	}
	return "", false
}

// startDaemon builds (once) and starts xenithd with a fresh --data temp dir,
// --http on a free 127.0.0.1 port, --https "", a --socket in a short temp dir
// and a random --root-password, then waits until session.login_with_password
// succeeds. extraFlags are appended; any of --data, --http, --https, --socket,
// --root-password given there replaces the default (e.g. pass the DataDir of
// a previous Daemon to restart on the same state). The daemon is stopped by
// t.Cleanup; on test failure its log tail is printed.
func startDaemon(t testing.TB, extraFlags ...string) *Daemon {
	t.Helper()
	bin := buildDaemon(t)
	_, httpGiven := flagValue(extraFlags, "http")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		d, err := tryStartDaemon(t, bin, extraFlags)
		if err == nil {
			return d
		}
		lastErr = err
		// A port found free by freePort may be taken again before the daemon binds it.
		if httpGiven || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(lastErr)
	return nil
}

func tryStartDaemon(t testing.TB, bin string, extra []string) (*Daemon, error) {
	t.Helper()
	d := &Daemon{exited: make(chan struct{})}

	defaults := map[string]string{}
	if v, ok := flagValue(extra, "data"); ok {
		d.DataDir = v
	} else {
		d.DataDir = t.TempDir()
		defaults["data"] = d.DataDir
	}
	if v, ok := flagValue(extra, "http"); ok {
		if v != "" {
			d.URL = "http://" + v
		}
	} else {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		d.URL = "http://" + addr
		defaults["http"] = addr
	}
	if _, ok := flagValue(extra, "https"); !ok {
		defaults["https"] = ""
	}
	if v, ok := flagValue(extra, "socket"); ok {
		d.Socket = v
	} else {
		// Short (unix socket paths are limited to 107 bytes) and free of '_'
		// (XenAPI.py's UDSHTTPConnection maps '_' to '/').
		base := os.TempDir()
		if strings.Contains(base, "_") || len(base) > 60 {
			base = "/tmp"
		}
		dir, err := os.MkdirTemp(base, "xenith-sock-")
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		d.Socket = filepath.Join(dir, "xapi.sock")
		defaults["socket"] = d.Socket
	}
	if v, ok := flagValue(extra, "root-password"); ok {
		d.Password = v
	} else {
		d.Password = "pw-" + randomHex(8)
		defaults["root-password"] = d.Password
	}
	if d.URL == "" && d.Socket == "" {
		return nil, errors.New("startDaemon: neither --http nor --socket is enabled; cannot wait for readiness")
	}

	for _, name := range []string{"data", "http", "https", "socket", "root-password"} {
		if v, ok := defaults[name]; ok {
			d.Args = append(d.Args, "--"+name, v)
		}
	}
	d.Args = append(d.Args, extra...)

	logDir := t.TempDir()
	d.LogPath = filepath.Join(logDir, "xenithd.log")
	logFile, err := os.Create(d.LogPath)
	if err != nil {
		return nil, err
	}
	d.Cmd = exec.Command(bin, d.Args...)
	d.Cmd.Stdout = logFile
	d.Cmd.Stderr = logFile
	if err := d.Cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %v", bin, err)
	}
	go func() {
		d.waitErr = d.Cmd.Wait()
		logFile.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stopping xenithd: %v", err)
		}
		if t.Failed() {
			t.Logf("xenithd %s\n--- xenithd log (tail) ---\n%s", strings.Join(d.Args, " "), d.Log(200))
		}
	})

	if err := waitReady(d, readyTimeout); err != nil {
		_ = d.Stop()
		return nil, fmt.Errorf("xenithd %s: %v\n--- xenithd log (tail) ---\n%s",
			strings.Join(d.Args, " "), err, d.Log(60))
	}
	return d, nil
}

// waitReady polls POST / with session.login_with_password(root, password)
// until it succeeds, the process exits, or the timeout passes.
func waitReady(d *Daemon, timeout time.Duration) error {
	client, base := d.HTTPClient()
	client.Timeout = 2 * time.Second
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if exited, err := d.Exited(); exited {
			return fmt.Errorf("xenithd exited before answering (%v)", err)
		}
		v, err := xmlrpcCall(client, base+"/", "session.login_with_password", "root", d.Password)
		if err == nil {
			if ref, ok := v.(string); ok && strings.HasPrefix(ref, "OpaqueRef:") {
				_, _ = xmlrpcCall(client, base+"/", "session.logout", ref)
				return nil
			}
			err = fmt.Errorf("login returned %#v, not a session ref", v)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: last error: %v", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// A tiny XML-RPC client, enough for readiness checks and simple e2e calls.

// XenAPIError is a XenAPI failure: ErrorDescription = [Code, Params...].
type XenAPIError struct {
	Code   string
	Params []string
}

func (e *XenAPIError) Error() string {
	return fmt.Sprintf("XenAPI error %s %q", e.Code, e.Params)
}

// xmlrpcCall POSTs methodName(params...) to url and unwraps the XenAPI
// {Status, Value | ErrorDescription} envelope. Params may be string, bool,
// int, int64 (sent as strings, as XenAPI wants), float64, []string, []any,
// map[string]string and map[string]any. Results decode to string, bool,
// int64 (i4/int/i8), float64, time.Time (as string), []any, map[string]any, nil.
func xmlrpcCall(client *http.Client, url, method string, params ...any) (any, error) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><methodCall><methodName>`)
	xml.EscapeText(&b, []byte(method))
	b.WriteString(`</methodName><params>`)
	for _, p := range params {
		b.WriteString(`<param>`)
		if err := encodeValue(&b, p); err != nil {
			return nil, err
		}
		b.WriteString(`</param>`)
	}
	b.WriteString(`</params></methodCall>`)
	resp, err := client.Post(url, "text/xml", strings.NewReader(b.String()))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, body)
	}
	v, err := decodeMethodResponse(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %v in %.300s", method, err, body)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: response is not a XenAPI struct: %#v", method, v)
	}
	switch m["Status"] {
	case "Success":
		return m["Value"], nil
	case "Failure":
		e := &XenAPIError{}
		if desc, ok := m["ErrorDescription"].([]any); ok {
			for i, x := range desc {
				s := fmt.Sprint(x)
				if i == 0 {
					e.Code = s
				} else {
					e.Params = append(e.Params, s)
				}
			}
		}
		return nil, e
	}
	return nil, fmt.Errorf("%s: no Status in response: %#v", method, m)
}

func encodeValue(b *strings.Builder, v any) error {
	b.WriteString("<value>")
	switch x := v.(type) {
	case string:
		b.WriteString("<string>")
		xml.EscapeText(b, []byte(x))
		b.WriteString("</string>")
	case bool:
		if x {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case int:
		fmt.Fprintf(b, "<string>%d</string>", x)
	case int64:
		fmt.Fprintf(b, "<string>%d</string>", x)
	case float64:
		b.WriteString("<double>" + strconv.FormatFloat(x, 'g', -1, 64) + "</double>")
	case []string:
		b.WriteString("<array><data>")
		for _, e := range x {
			if err := encodeValue(b, e); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case []any:
		b.WriteString("<array><data>")
		for _, e := range x {
			if err := encodeValue(b, e); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case map[string]string:
		b.WriteString("<struct>")
		for k, e := range x {
			b.WriteString("<member><name>")
			xml.EscapeText(b, []byte(k))
			b.WriteString("</name>")
			_ = encodeValue(b, e)
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	case map[string]any:
		b.WriteString("<struct>")
		for k, e := range x {
			b.WriteString("<member><name>")
			xml.EscapeText(b, []byte(k))
			b.WriteString("</name>")
			if err := encodeValue(b, e); err != nil {
				return err
			}
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	default:
		return fmt.Errorf("xmlrpcCall: cannot encode %T", v)
	}
	b.WriteString("</value>")
	return nil
}

// xmlNode is a generic element tree used to decode responses.
type xmlNode struct {
	XMLName  xml.Name
	Content  string    `xml:",chardata"`
	Children []xmlNode `xml:",any"`
}

func decodeMethodResponse(body []byte) (any, error) {
	var root xmlNode
	if err := xml.Unmarshal(body, &root); err != nil {
		return nil, err
	}
	if root.XMLName.Local != "methodResponse" {
		return nil, fmt.Errorf("root element <%s>, want <methodResponse>", root.XMLName.Local)
	}
	for _, c := range root.Children {
		switch c.XMLName.Local {
		case "params":
			if len(c.Children) != 1 || len(c.Children[0].Children) != 1 {
				return nil, errors.New("want exactly one <param><value>")
			}
			return decodeValue(c.Children[0].Children[0])
		case "fault":
			if len(c.Children) == 1 {
				v, err := decodeValue(c.Children[0])
				if err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("XML-RPC fault %v", v)
			}
			return nil, errors.New("malformed <fault>")
		}
	}
	return nil, errors.New("no <params> nor <fault>")
}

func decodeValue(n xmlNode) (any, error) {
	if n.XMLName.Local != "value" {
		return nil, fmt.Errorf("<%s> where <value> expected", n.XMLName.Local)
	}
	if len(n.Children) == 0 {
		return n.Content, nil // untyped value is a string
	}
	if len(n.Children) != 1 {
		return nil, errors.New("<value> with several children")
	}
	t := n.Children[0]
	switch t.XMLName.Local {
	case "string", "dateTime.iso8601", "base64":
		return t.Content, nil
	case "i4", "int", "i8":
		return strconv.ParseInt(strings.TrimSpace(t.Content), 10, 64)
	case "boolean":
		switch strings.TrimSpace(t.Content) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
		return nil, fmt.Errorf("bad boolean %q", t.Content)
	case "double":
		return strconv.ParseFloat(strings.TrimSpace(t.Content), 64)
	case "nil":
		return nil, nil
	case "array":
		out := []any{}
		if len(t.Children) != 1 || t.Children[0].XMLName.Local != "data" {
			return nil, errors.New("<array> without <data>")
		}
		for _, e := range t.Children[0].Children {
			v, err := decodeValue(e)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case "struct":
		out := map[string]any{}
		for _, m := range t.Children {
			var name string
			var val *xmlNode
			for i := range m.Children {
				switch m.Children[i].XMLName.Local {
				case "name":
					name = m.Children[i].Content
				case "value":
					val = &m.Children[i]
				}
			}
			if val == nil {
				return nil, fmt.Errorf("struct member %q without <value>", name)
			}
			v, err := decodeValue(*val)
			if err != nil {
				return nil, err
			}
			out[name] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown XML-RPC type <%s>", t.XMLName.Local)
}
