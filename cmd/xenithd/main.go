// Command xenithd is the Xenith toolstack daemon: it serves the XenAPI over
// XML-RPC and JSON-RPC on HTTP, HTTPS and a local unix socket.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/inventory"
	"github.com/xenith/xenith/internal/rrdd"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/tlscert"
	"github.com/xenith/xenith/internal/xapi"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "user-add" {
		err = userAdd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	} else {
		err = run(ctx, os.Args[1:], os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xenithd:", err)
		os.Exit(1)
	}
}

type options struct {
	data         string
	http         string
	https        string
	socket       string
	rootPassword string
	hypervisor   string
	logLevel     string
	sessionIdle  time.Duration
	xend         string
	// cleanShutdownTimeout bounds VM.clean_shutdown/clean_reboot.
	cleanShutdownTimeout time.Duration
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/xenith"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "xenith")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "xenith")
	}
	return "xenith-data"
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("xenithd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.data, "data", defaultDataDir(), "state directory (database, certificates, storage)")
	fs.StringVar(&o.http, "http", ":8080", "HTTP listen address; empty disables")
	fs.StringVar(&o.https, "https", ":8443", "HTTPS listen address (self-signed certificate in the data dir); empty disables")
	fs.StringVar(&o.socket, "socket", "", "unix socket for local XenAPI clients, trusted as root (default /var/lib/xcp/xapi as root, else DATA/xapi.sock); \"none\" disables")
	fs.StringVar(&o.rootPassword, "root-password", os.Getenv("XENITH_ROOT_PASSWORD"), "set root's password (default $XENITH_ROOT_PASSWORD; generated at first start if neither)")
	fs.StringVar(&o.hypervisor, "hypervisor", "auto", "hypervisor driver: "+strings.Join(driverNames(), ", ")+`, or "auto" (xen in a Xen dom0, else sim)`)
	for _, d := range drivers {
		if d.flags != nil {
			d.flags(fs)
		}
	}
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&o.sessionIdle, "session-idle", 24*time.Hour, "idle time after which a session expires")
	fs.DurationVar(&o.cleanShutdownTimeout, "clean-shutdown-timeout", domain.DefaultCleanShutdownTimeout,
		"how long a guest may take to obey a clean shutdown or reboot (then VM.clean_shutdown fails with VM_SHUTDOWN_TIMEOUT and VM.shutdown forces it)")
	fs.StringVar(&o.xend, "xend", "", "also serve the xend HTTP interface on its own TCP address (e.g. 127.0.0.1:8000); empty disables")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.socket == "" {
		if os.Geteuid() == 0 {
			o.socket = "/var/lib/xcp/xapi"
		} else {
			o.socket = filepath.Join(o.data, "xapi.sock")
		}
	}
	if o.socket == "none" {
		o.socket = ""
	}
	if o.hypervisor == "auto" {
		o.hypervisor = autoHypervisor()
	}
	if _, ok := drivers[o.hypervisor]; !ok {
		return o, fmt.Errorf("--hypervisor %q: available drivers are %s", o.hypervisor, strings.Join(driverNames(), ", "))
	}
	return o, nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(o.logLevel, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return err
	}
	users, err := auth.OpenUsers(filepath.Join(o.data, "users.json"))
	if err != nil {
		return err
	}
	if err := ensureRootPassword(users, o, log); err != nil {
		return err
	}
	st, err := store.Open(store.Options{Path: filepath.Join(o.data, "xenith.db")})
	if err != nil {
		return err
	}
	defer st.Close()
	info, err := hostinfo.Read()
	if err != nil {
		log.Warn("reading host facts", "err", err)
	}
	hostRef, err := inventory.Ensure(ctx, st, inventory.Options{DataDir: o.data, Version: version, Info: info})
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	// Loading the database leaves garbage behind; hand it back to the OS
	// now rather than whenever the runtime gets to it.
	debug.FreeOSMemory()
	drv, err := drivers[o.hypervisor].open(o, info)
	if err != nil {
		return err
	}
	defer drv.Close()
	if err := applyHypervisorFacts(ctx, st, hostRef, o.hypervisor, drv); err != nil {
		log.Warn("host facts from the hypervisor", "err", err)
	}
	hostUUID := ""
	if row, err := st.Get(api.ClassHost, hostRef); err == nil {
		hostUUID = row.Rec.(*api.Host).UUID
	}
	rrds, err := rrdd.Open(filepath.Join(o.data, "rrd"), hostUUID, log.With("part", "rrdd"))
	if err != nil {
		return err
	}
	defer func() {
		if err := rrds.Close(); err != nil {
			log.Warn("saving statistics", "err", err)
		}
	}()
	var consoleBase atomic.Pointer[string] // set once the listeners are bound
	domains := domain.New(domain.Config{Store: st, Driver: drv, Host: hostRef, Log: log, StateDir: o.data,
		CleanShutdownTimeout: o.cleanShutdownTimeout, Samples: rrds,
		ConsoleURL: func(id string) string {
			base := ""
			if b := consoleBase.Load(); b != nil {
				base = *b
			}
			return base + domain.ConsolePath + "?uuid=" + id
		}})
	srv := xapi.New(xapi.Config{Store: st, Users: users, Log: log, Host: hostRef, SessionIdle: o.sessionIdle, Domains: domains, RRDs: rrds})
	fr := newFronts(srv, log)

	var servers []*http.Server
	var wg sync.WaitGroup
	serve := func(name string, l net.Listener, h http.Handler, tlsFiles ...string) {
		hs := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       2 * time.Minute,
			IdleTimeout:       5 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, hs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if len(tlsFiles) == 2 {
				err = hs.ServeTLS(l, tlsFiles[0], tlsFiles[1])
			} else {
				err = hs.Serve(l)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("listener stopped", "listener", name, "err", err)
			}
		}()
		log.Info("listening", "listener", name, "addr", l.Addr().String())
	}
	if o.http != "" {
		l, err := net.Listen("tcp", o.http)
		if err != nil {
			return err
		}
		consoleBase.Store(ptr(baseURL("http", l.Addr(), info.Address)))
		serve("http", l, fr.handler(srv.Handler()))
	}
	if o.https != "" {
		cert, key, err := tlscert.Ensure(o.data, info.Hostname, info.Address)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", o.https)
		if err != nil {
			return err
		}
		consoleBase.Store(ptr(baseURL("https", l.Addr(), info.Address))) // xapi's consoles are https
		serve("https", l, fr.handler(srv.Handler()), cert, key)
	}
	if o.socket != "" {
		l, err := listenUnix(o.socket)
		if err != nil {
			return err
		}
		defer os.Remove(o.socket)
		serve("unix", l, srv.LocalHandler())
	}
	closeFronts, err := fr.listen(o, serve)
	if err != nil {
		return err
	}
	defer closeFronts()
	if len(servers) == 0 {
		return errors.New("no listener enabled (--http, --https and --socket are all empty)")
	}
	bg, cancelBG := context.WithCancel(context.Background())
	go srv.Run(bg)
	go domains.Run(bg)
	log.Info("xenithd ready", "version", version, "data", o.data, "hypervisor", o.hypervisor, "host", hostRef)

	<-ctx.Done()
	log.Info("shutting down")
	cancelBG()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(shutdownCtx); err != nil {
			hs.Close()
		}
	}
	wg.Wait()
	return nil
}

// baseURL is how clients reach a listener: its own address, or the host's
// when it listens on every address.
func baseURL(scheme string, a net.Addr, hostAddr string) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = hostAddr
		if host == "" {
			host = "localhost"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

func ptr[T any](v T) *T { return &v }

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// A socket left by a crashed daemon would make Listen fail.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// Only the daemon's user may connect: the socket is trusted as root.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// ensureRootPassword sets root's password from the flag or environment; at
// first start without either it generates one into DATA/root-password.
func ensureRootPassword(users *auth.Users, o options, log *slog.Logger) error {
	if o.rootPassword != "" {
		return users.SetPassword("root", o.rootPassword)
	}
	if users.Has("root") {
		return nil
	}
	buf := make([]byte, 18)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	pw := base64.RawURLEncoding.EncodeToString(buf)
	path := filepath.Join(o.data, "root-password")
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	if err := users.SetPassword("root", pw); err != nil {
		return err
	}
	log.Warn("generated a password for root", "file", path)
	return nil
}
