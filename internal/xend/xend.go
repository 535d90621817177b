// Package xend serves xend's HTTP interface (the /xend/ resources xm and
// early management tools used) as a front over xenithd's XenAPI: domains
// are XenAPI VMs, operations are the XenAPI messages, and every change
// shows up in XenAPI events.
//
//	GET  /xend/                      the resources
//	GET  /xend/node                  host facts (nr_cpus, memory, versions)
//	GET  /xend/domain/[?detail=1]    domain names, or full domain s-expressions
//	GET  /xend/domain/NAME           one domain (by name, domid or uuid)
//	POST /xend/domain/  op=create&config=SXP   a new paused domain
//	POST /xend/domain/  op=restore&file=F      resume what op=save saved as F
//	POST /xend/domain/NAME  op=wait_for_devices|unpause|pause|destroy|delete|
//	     shutdown&reason=halt|poweroff|reboot|suspend|save&file=F|restore|
//	     cpu_sedf_set&period=&slice=&latency=&extratime=&weight=|
//	     domain_sched_credit_set&weight=&cap=|domain_sched_credit_get
//
// Answers are s-expressions, or HTML when the Accept header asks for
// text/html. Malformed requests get HTTP 400 with (xend.err 'message').
// xend itself had no authentication; this front takes XenAPI credentials
// (HTTP basic auth, or a session_id cookie) and lets no one in without.
//
// Domains created here are "unmanaged" in xend's sense: destroying one
// forgets it (the XenAPI VM record goes, its disks stay). A saved domain's
// memory image is the XenAPI suspend image; the file name given to save
// names it for restore.
package xend

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/sexpr"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xenapi"
)

// MaxBody bounds a POST body (a configuration with its devices).
const MaxBody = 1 << 20

// Config is what New needs.
type Config struct {
	Front   *xapi.Front
	Log     *slog.Logger
	Version string
}

// Service answers xend requests.
type Service struct {
	front   *xapi.Front
	st      *store.Store
	log     *slog.Logger
	version string
}

// New returns the service.
func New(cfg Config) *Service {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Service{front: cfg.Front, st: cfg.Front.Store(), log: log, version: cfg.Version}
}

// httpError is a failure with its HTTP status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// fromXenAPI turns a XenAPI failure into a 4xx answer naming it.
func fromXenAPI(err error) error {
	var he *httpError
	if errors.As(err, &he) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &httpError{http.StatusServiceUnavailable, "the operation did not finish: " + err.Error()}
	}
	xe := xenapi.AsError(err)
	status := http.StatusBadRequest
	switch xe.Code {
	case api.ErrHandleInvalid, api.ErrUUIDInvalid:
		status = http.StatusNotFound
	case api.ErrRBACPermissionDenied:
		status = http.StatusForbidden
	case api.ErrInternalError:
		status = http.StatusInternalServerError
	}
	return &httpError{status, strings.Join(xe.Description(), " ")}
}

// Handler serves /xend/.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("xend request panic", "path", r.URL.Path, "panic", p)
			s.fail(w, r, &httpError{http.StatusInternalServerError, "internal failure"})
		}
	}()
	sess, err := s.front.Authenticate(r.Context(), r, false)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="xend"`)
		s.fail(w, r, &httpError{http.StatusUnauthorized, "authentication required: use XenAPI credentials (HTTP basic auth) or a session_id cookie"})
		return
	}
	v, err := s.route(r.Context(), sess, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, r, http.StatusOK, v)
}

func (s *Service) route(ctx context.Context, sess xenapi.Ref, r *http.Request) (sexpr.Value, error) {
	path := strings.TrimPrefix(r.URL.Path, "/xend")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(nil, r.Body, MaxBody)
		if err := r.ParseForm(); err != nil {
			return sexpr.Value{}, badRequest("reading the form: %v", err)
		}
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case path == "" || path == "/":
		if !get {
			return sexpr.Value{}, &httpError{http.StatusMethodNotAllowed, "GET only"}
		}
		return sexpr.List(sexpr.Atom("xend"), sexpr.List(sexpr.Atom("node")), sexpr.List(sexpr.Atom("domain"))), nil
	case path == "/node" || path == "/node/":
		if !get {
			return sexpr.Value{}, &httpError{http.StatusMethodNotAllowed, "GET only"}
		}
		return s.node(ctx)
	case path == "/domain" || path == "/domain/":
		if get {
			return s.domains(r.URL.Query().Get("detail") == "1"), nil
		}
		if r.Method != http.MethodPost {
			return sexpr.Value{}, &httpError{http.StatusMethodNotAllowed, "GET or POST"}
		}
		switch op := r.Form.Get("op"); op {
		case "create":
			return s.create(ctx, sess, r.Form.Get("config"))
		case "restore":
			return s.restoreFile(ctx, sess, r.Form.Get("file"))
		case "":
			return sexpr.Value{}, badRequest("missing op")
		default:
			return sexpr.Value{}, badRequest("unknown operation %q on /xend/domain/", op)
		}
	case strings.HasPrefix(path, "/domain/"):
		name := strings.TrimSuffix(strings.TrimPrefix(path, "/domain/"), "/")
		if strings.Contains(name, "/") {
			return sexpr.Value{}, notFound("no such resource %s", r.URL.Path)
		}
		ref, vm, err := s.lookup(name)
		if err != nil {
			return sexpr.Value{}, err
		}
		if get {
			return s.domain(ref, vm), nil
		}
		if r.Method != http.MethodPost {
			return sexpr.Value{}, &httpError{http.StatusMethodNotAllowed, "GET or POST"}
		}
		return s.op(ctx, sess, ref, vm, r)
	}
	return sexpr.Value{}, notFound("no such resource %s", r.URL.Path)
}

// errValue is xend's error answer.
func errValue(msg string) sexpr.Value { return sexpr.List(sexpr.Atom("xend.err"), sexpr.Atom(msg)) }

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{http.StatusInternalServerError, err.Error()}
	}
	if he.status >= 500 {
		s.log.Warn("xend request failed", "path", r.URL.Path, "err", he.msg)
	} else {
		s.log.Info("xend request refused", "path", r.URL.Path, "status", he.status, "err", he.msg)
	}
	s.reply(w, r, he.status, errValue(he.msg))
}

// wantsHTML tells whether the client asked for HTML (xend answered HTML to
// browsers, s-expressions to programs).
func wantsHTML(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Accept")), "text/html")
}

func (s *Service) reply(w http.ResponseWriter, r *http.Request, status int, v sexpr.Value) {
	var body []byte
	if wantsHTML(r) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		body = appendHTML(nil, r.URL.Path, v)
	} else {
		w.Header().Set("Content-Type", "application/sxp")
		body = append(sexpr.AppendPretty(nil, v), '\n')
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// appendHTML renders an answer for a browser: a domain list as a table of
// links, anything else as the s-expression.
func appendHTML(dst []byte, path string, v sexpr.Value) []byte {
	title := html.EscapeString("Xend " + path)
	dst = append(dst, "<!DOCTYPE html>\n<html><head><title>"+title+"</title></head><body><h1>"+title+"</h1>\n"...)
	if v.Name() == "xend.err" && len(v.List) == 2 {
		dst = append(dst, "<p class=\"error\">Error: "+html.EscapeString(v.List[1].Atom)+"</p>\n"...)
	} else if v.IsList && len(v.List) > 0 && v.List[0].Name() == "domain" {
		dst = append(dst, "<table border=\"1\"><tr><th>Name</th><th>Id</th><th>Memory (MiB)</th><th>VCPUs</th><th>State</th></tr>\n"...)
		for _, d := range v.List {
			name, _ := d.Get("name")
			id, _ := d.Get("domid")
			memory, _ := d.Get("memory")
			vcpus, _ := d.Get("vcpus")
			state, _ := d.Get("state")
			dst = append(dst, "<tr><td><a href=\"/xend/domain/"+html.EscapeString(name)+"\">"+html.EscapeString(name)+"</a></td><td>"+
				html.EscapeString(id)+"</td><td>"+html.EscapeString(memory)+"</td><td>"+html.EscapeString(vcpus)+"</td><td>"+
				html.EscapeString(state)+"</td></tr>\n"...)
		}
		dst = append(dst, "</table>\n"...)
	} else {
		dst = append(dst, "<pre>"...)
		dst = append(dst, html.EscapeString(string(sexpr.AppendPretty(nil, v)))...)
		dst = append(dst, "</pre>\n"...)
	}
	return append(dst, "</body></html>\n"...)
}
