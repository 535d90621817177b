package xapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/rrd"
	"github.com/xenith/xenith/internal/rrdd"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Performance statistics, kept by rrdd: the data source messages of VM
// and host, and xapi's HTTP handlers /rrd_updates, /host_rrd and /vm_rrd.
// Every data source xenith records is a standard one, always recorded.

func (s *Server) registerDataSourceHandlers() {
	if s.rrds == nil {
		return // the messages stay NOT_IMPLEMENTED
	}
	vmDB := func(ctx context.Context, c *Call) (*rrd.DB, error) {
		row, err := s.store.Get(api.ClassVM, c.Ref(0))
		if err != nil {
			return nil, err
		}
		return s.rrds.VM(row.Rec.(*api.VM).UUID)
	}
	hostDB := func(ctx context.Context, c *Call) (*rrd.DB, error) {
		if err := s.assertThisHost(c.Ref(0)); err != nil {
			return nil, err
		}
		return s.rrds.Host(), nil
	}
	for class, db := range map[string]func(context.Context, *Call) (*rrd.DB, error){"VM": vmDB, "host": hostDB} {
		s.handle(class+".get_data_sources", func(ctx context.Context, c *Call) (Result, error) {
			d, err := db(ctx, c)
			if errors.Is(err, rrdd.ErrUnknown) {
				return dataSourcesResult(nil), nil // never ran here: no statistics yet
			}
			if err != nil {
				return nil, err
			}
			return dataSourcesResult(d.Sources()), nil
		}, -1)
		s.handle(class+".query_data_source", func(ctx context.Context, c *Call) (Result, error) {
			d, err := db(ctx, c)
			if err != nil {
				return nil, dataSourceError(err, c.Str(1))
			}
			v, ok := d.Query(c.Str(1))
			if !ok {
				return nil, dataSourceError(rrdd.ErrUnknown, c.Str(1))
			}
			return func(e wire.Encoder) { e.Float(v) }, nil
		}, -1)
		// Recording a source xenith records anyway succeeds; there is no
		// optional source to switch on.
		s.handle(class+".record_data_source", func(ctx context.Context, c *Call) (Result, error) {
			d, err := db(ctx, c)
			if err != nil {
				return nil, dataSourceError(err, c.Str(1))
			}
			if _, ok := d.Query(c.Str(1)); !ok {
				return nil, dataSourceError(rrdd.ErrUnknown, c.Str(1))
			}
			return voidResult, nil
		}, -1)
		// Forgetting drops the source's history; a standard source starts
		// a new one with the next sample, as in xapi.
		s.handle(class+".forget_data_source_archives", func(ctx context.Context, c *Call) (Result, error) {
			d, err := db(ctx, c)
			if err != nil {
				return nil, dataSourceError(err, c.Str(1))
			}
			if !d.Forget(c.Str(1)) {
				return nil, dataSourceError(rrdd.ErrUnknown, c.Str(1))
			}
			return voidResult, nil
		}, -1)
	}
}

// dataSourceError: xapi reports a missing data source (or RRD) as an
// internal error of its statistics daemon.
func dataSourceError(err error, name string) error {
	var xe *xenapi.Error
	if errors.As(err, &xe) {
		return err
	}
	if errors.Is(err, rrdd.ErrUnknown) {
		return xenapi.NewError(api.ErrInternalError, fmt.Sprintf("no data source %q: %v", name, err))
	}
	return xenapi.NewError(api.ErrInternalError, err.Error())
}

func dataSourcesResult(srcs []rrd.SourceInfo) Result {
	return func(e wire.Encoder) {
		e.BeginArray()
		for _, src := range srcs {
			ds := api.DataSource{NameLabel: src.Name, NameDescription: src.Description, Enabled: true, Standard: true,
				Units: src.Units, Min: src.Min, Max: src.Max, Value: src.Last}
			ds.Encode(e)
		}
		e.EndArray()
	}
}

// ------------------------------------------------------------------ HTTP

// serveRRD answers /rrd_updates, /host_rrd and /vm_rrd for any session
// (statistics are readable by every role, as the messages are).
func (s *Server) serveRRD(f *Front, local bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "statistics: use GET", http.StatusMethodNotAllowed)
			return
		}
		if _, ok := f.authenticateHTTP(w, r, local, "statistics"); !ok {
			return
		}
		if s.rrds == nil {
			http.Error(w, "statistics are not kept by this server", http.StatusNotImplemented)
			return
		}
		q := r.URL.Query()
		switch r.URL.Path {
		case "/rrd_updates":
			s.serveRRDUpdates(w, q)
		case "/host_rrd":
			s.serveDump(w, q, s.rrds.Host(), nil)
		case "/vm_rrd":
			db, err := s.rrds.VM(q.Get("uuid"))
			s.serveDump(w, q, db, err)
		default:
			http.NotFound(w, r)
		}
	}
}

func (s *Server) serveRRDUpdates(w http.ResponseWriter, q map[string][]string) {
	get := func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) == 0 {
			return "", ok
		}
		return v[0], true
	}
	bad := func(msg string) { http.Error(w, "rrd_updates: "+msg, http.StatusBadRequest) }
	var uq rrdd.UpdatesQuery
	startText, ok := get("start")
	if !ok {
		bad("the start parameter (unix seconds) is required")
		return
	}
	start, err := strconv.ParseInt(startText, 10, 64)
	if err != nil {
		bad("start: not an integer: " + startText)
		return
	}
	uq.Start = start
	if v, ok := get("interval"); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			bad("interval: not a number of seconds: " + v)
			return
		}
		uq.Interval = n
	}
	if v, ok := get("cf"); ok && v != "" {
		cf, err := rrd.ParseCF(v)
		if err != nil {
			bad("cf: " + err.Error())
			return
		}
		uq.CF = &cf
	}
	// host: present (any value but false/none) asks for the host's data.
	if v, ok := get("host"); ok {
		uq.Host = !strings.EqualFold(v, "false") && !strings.EqualFold(v, "none") && v != "0"
	}
	switch v, _ := get("vm_uuid"); {
	case v == "" || strings.EqualFold(v, "all"):
	case strings.EqualFold(v, "none"):
		uq.NoVMs = true
	default:
		uq.VM = v
	}
	u, err := s.rrds.Updates(uq)
	if err != nil {
		http.Error(w, "rrd_updates: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if _, asJSON := q["json"]; asJSON {
		writeStats(w, "rrd_updates", "application/json", u.WriteJSON)
	} else {
		writeStats(w, "rrd_updates", "text/xml", u.WriteXML)
	}
}

// writeStats answers with what write produces, whole (with its length),
// or a 500 if it fails.
func writeStats(w http.ResponseWriter, what, contentType string, write func(io.Writer) error) {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		http.Error(w, what+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) serveDump(w http.ResponseWriter, q map[string][]string, db *rrd.DB, err error) {
	if errors.Is(err, rrdd.ErrUnknown) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, ok := q["json"]; ok {
		http.Error(w, "the whole RRD is served as XML only (rrd_updates offers json)", http.StatusNotImplemented)
		return
	}
	writeStats(w, "RRD", "text/xml", db.WriteDump)
}
