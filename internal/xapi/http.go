package xapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// MaxBodyBytes bounds a request body. The largest legitimate XenAPI calls
// (VM.create with a full record, blob uploads go elsewhere) are far below.
const MaxBodyBytes = 16 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 4<<20 {
		return // let huge answers go rather than pin their memory
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Handler returns the HTTP handler for network listeners.
func (s *Server) Handler() http.Handler { return s.mux(false) }

// LocalHandler returns the handler for the trusted unix socket.
func (s *Server) LocalHandler() http.Handler { return s.mux(true) }

func (s *Server) mux(local bool) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("/jsonrpc", func(w http.ResponseWriter, r *http.Request) { s.serveRPC(w, r, true, local) })
	// Xen Orchestra's connector posts XML-RPC to /xmlrpc when it falls back
	// from JSON-RPC.
	m.HandleFunc("/xmlrpc", func(w http.ResponseWriter, r *http.Request) { s.serveRPC(w, r, isJSON(r), local) })
	m.HandleFunc("/RPC2", func(w http.ResponseWriter, r *http.Request) { s.serveRPC(w, r, isJSON(r), local) })
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "Xenith XenAPI server: POST XML-RPC to / or /RPC2, JSON-RPC to /jsonrpc\n")
			return
		}
		s.serveRPC(w, r, isJSON(r), local)
	})
	return m
}

func isJSON(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "json")
}

func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request, jsonBody, local bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "XenAPI calls are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body := getBuf()
	defer putBuf(body)
	n, err := readBody(r.Body, (*body)[:0], MaxBodyBytes)
	*body = n
	if err != nil {
		if errors.Is(err, errTooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
		return
	}
	out := getBuf()
	defer putBuf(out)
	ctx := r.Context()
	if jsonBody {
		*out = s.serveJSON(ctx, *body, (*out)[:0], r.RemoteAddr, local)
		w.Header().Set("Content-Type", "application/json")
	} else {
		*out = s.serveXML(ctx, *body, (*out)[:0], r.RemoteAddr, local)
		w.Header().Set("Content-Type", "text/xml")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(*out)))
	w.Write(*out)
}

var errTooLarge = errors.New("body too large")

// readBody reads at most limit bytes into buf.
func readBody(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *Server) serveXML(ctx context.Context, body, out []byte, source string, local bool) []byte {
	call, err := xmlrpc.ParseCall(body)
	if err != nil {
		s.log.Debug("bad XML-RPC request", "source", source, "err", err)
		return xmlrpc.AppendFailure(out, []string{api.ErrXmlrpcUnmarshalFailure, "methodCall", err.Error()})
	}
	res, err := s.dispatch(ctx, call.Method, call.Params, source, local)
	s.logCall(call.Method, source, err)
	if err != nil {
		return xmlrpc.AppendFailure(out, xenapi.AsError(err).Description())
	}
	if res == nil {
		return xmlrpc.AppendSuccess(out, voidResult)
	}
	return xmlrpc.AppendSuccess(out, res)
}

func (s *Server) serveJSON(ctx context.Context, body, out []byte, source string, local bool) []byte {
	req, err := jsonrpc.ParseRequest(body)
	if err != nil {
		s.log.Debug("bad JSON-RPC request", "source", source, "err", err)
		code := jsonrpc.CodeParseError
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			code = je.Code
		}
		return jsonrpc.AppendProtocolError(out, nil, code, err.Error())
	}
	res, err := s.dispatch(ctx, req.Method, req.Params, source, local)
	s.logCall(req.Method, source, err)
	if err != nil {
		return jsonrpc.AppendError(out, &req, xenapi.AsError(err).Description())
	}
	return jsonrpc.AppendResult(out, &req, res)
}

// voidResult is XML-RPC's void: an empty string, as the XenAPI manual says.
func voidResult(e wire.Encoder) { e.String("") }
