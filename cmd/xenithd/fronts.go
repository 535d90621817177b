package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xend"
	"github.com/xenith/xenith/internal/xenops"
)

// fronts are the older interfaces served over the XenAPI server: the
// xenopsd domain API (/xenops, and the unix socket DATA/xenopsd) and the
// xend HTTP interface (/xend/, and --xend's own listener).
type fronts struct {
	xenops *xenops.Service
	xend   *xend.Service
}

func newFronts(srv *xapi.Server, log *slog.Logger) *fronts {
	return &fronts{
		xenops: xenops.New(xenops.Config{Front: srv.NewFront("xenith-xenopsd"), Log: log.With("front", "xenopsd"), Version: version}),
		xend:   xend.New(xend.Config{Front: srv.NewFront("xenith-xend"), Log: log.With("front", "xend"), Version: version}),
	}
}

// handler mounts the fronts' paths in front of the XenAPI handler.
func (f *fronts) handler(xenapi http.Handler) http.Handler {
	m := http.NewServeMux()
	m.Handle("/xenops", f.xenops.Handler(false))
	m.Handle("/xend/", f.xend.Handler())
	m.Handle("/", xenapi)
	return m
}

// listen opens the fronts' own listeners: the xenopsd unix socket (mode
// 0600: its callers act as root) and, with --xend, xend's TCP port.
func (f *fronts) listen(o options, serve func(name string, l net.Listener, h http.Handler, tlsFiles ...string)) (func(), error) {
	sock := filepath.Join(o.data, "xenopsd")
	l, err := listenUnix(sock)
	if err != nil {
		return nil, fmt.Errorf("xenopsd socket: %w", err)
	}
	serve("xenopsd", l, f.xenops.Handler(true))
	if o.xend != "" {
		xl, err := net.Listen("tcp", o.xend)
		if err != nil {
			os.Remove(sock)
			return nil, fmt.Errorf("--xend: %w", err)
		}
		serve("xend", xl, f.xend.Handler())
	}
	return func() { os.Remove(sock) }, nil
}
