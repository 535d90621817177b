// Package bench holds the performance benchmarks of xenithd and the
// fixtures they share with the programs under bench/cmd: a server built the
// way cmd/xenithd builds it, a realistic pool population, bare net/http
// baselines and a keep-alive HTTP load generator.
//
// Everything here is measured against a baseline taken in the same run, on
// the same kind of listener, with the same client code; see BENCHMARKS.md.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/inventory"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xenapi"
)

// Password is root's password in every benchmark environment.
const Password = "bench-root-password"

// Env is a xenithd core (store, inventory, users, XenAPI server) built the
// way cmd/xenithd builds it, without its listeners.
type Env struct {
	Dir    string
	Store  *store.Store
	Users  *auth.Users
	Host   xenapi.Ref
	Server *xapi.Server
	Infra  Infra
}

// EnvOptions configures NewEnv.
type EnvOptions struct {
	// Dir holds users.json, the SR directory and (if Persistent) the
	// database. It must exist.
	Dir string
	// Persistent selects the bbolt-backed store (with NoSync, for bulk
	// loads); otherwise the store is memory-only.
	Persistent bool
}

// NewEnv builds the core: users with root's password, the store, the
// first-start inventory and the XenAPI server. Logging is discarded so log
// formatting does not show up in the figures.
func NewEnv(ctx context.Context, o EnvOptions) (*Env, error) {
	users, err := auth.OpenUsers(filepath.Join(o.Dir, "users.json"))
	if err != nil {
		return nil, err
	}
	if err := users.SetPassword("root", Password); err != nil {
		return nil, err
	}
	opts := store.Options{}
	if o.Persistent {
		opts = store.Options{Path: filepath.Join(o.Dir, "xenith.db"), NoSync: true}
	}
	st, err := store.Open(opts)
	if err != nil {
		return nil, err
	}
	info, err := hostinfo.Read()
	if err != nil || info.Hostname == "" {
		info.Hostname = "bench-host"
	}
	host, err := inventory.Ensure(ctx, st, inventory.Options{DataDir: o.Dir, Version: "bench", Info: info})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("inventory: %w", err)
	}
	infra, err := FindInfra(st)
	if err != nil {
		st.Close()
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	srv := xapi.New(xapi.Config{Store: st, Users: users, Log: log, Host: host})
	return &Env{Dir: o.Dir, Store: st, Users: users, Host: host, Server: srv, Infra: infra}, nil
}

// Close closes the store.
func (e *Env) Close() error { return e.Store.Close() }

// Infra is what the VMs of a population refer to: the host they run on,
// the SR holding their disks and the network their VIFs are on.
type Infra struct {
	Host, SR, Network xenapi.Ref
}

// FindInfra reads the inventory's host, SR and network.
func FindInfra(st *store.Store) (Infra, error) {
	var in Infra
	if rows := st.All(api.ClassHost); len(rows) > 0 {
		in.Host = rows[0].Ref
	}
	if rows := st.All(api.ClassSR); len(rows) > 0 {
		in.SR = rows[0].Ref
	}
	if rows := st.All(api.ClassNetwork); len(rows) > 0 {
		in.Network = rows[0].Ref
	}
	if in.Host == "" || in.SR == "" || in.Network == "" {
		return in, errors.New("inventory lacks a host, SR or network")
	}
	return in, nil
}

// Listener is an HTTP server on a TCP loopback port, configured like
// cmd/xenithd's listeners.
type Listener struct {
	URL string // http://127.0.0.1:port
	hs  *http.Server
	ln  net.Listener
}

// Serve starts h on 127.0.0.1 on a free port.
func Serve(h http.Handler) (*Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	go hs.Serve(ln)
	return &Listener{URL: "http://" + ln.Addr().String(), hs: hs, ln: ln}, nil
}

// Close stops the server and its connections.
func (l *Listener) Close() error { return l.hs.Close() }

// BareHandler is the baseline: it reads the request body and answers with
// a fixed, pre-encoded body, setting the same headers as xenithd.
func BareHandler(body []byte, contentType string) http.Handler {
	length := fmt.Sprint(len(body))
	pool := sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bp := pool.Get().(*[]byte)
		defer pool.Put(bp)
		buf := (*bp)[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err != nil {
				break
			}
		}
		*bp = buf[:0]
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", length)
		w.Write(body)
	})
}

// TempDir makes a directory for an environment; the caller removes it.
func TempDir() (string, error) { return os.MkdirTemp("", "xenith-bench-") }
