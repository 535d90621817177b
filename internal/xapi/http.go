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
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// MaxBodyBytes bounds a request body. The largest legitimate XenAPI calls
// (VM.create with a full record, blob uploads go elsewhere) are far below.
const MaxBodyBytes = 16 << 20

// Small to start: a thousand event.from waiters answered at once each hold
// two of these; big answers grow theirs and the pool keeps it.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

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
	m.HandleFunc(domain.ConsolePath, s.serveConsole(s.NewFront("xenith-console"), local))
	stats := s.serveRRD(s.NewFront("xenith-rrd"), local)
	for _, p := range []string{"/rrd_updates", "/host_rrd", "/vm_rrd"} {
		m.HandleFunc(p, stats)
	}
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
	sw := &streamWriter{w: w}
	if jsonBody {
		// Exactly this value: Xen Orchestra's connector falls back to
		// XML-RPC on anything else, even with a charset parameter.
		w.Header().Set("Content-Type", "application/json")
		*out = s.serveJSON(ctx, *body, (*out)[:0], r.RemoteAddr, local, sw)
	} else {
		w.Header().Set("Content-Type", "text/xml")
		*out = s.serveXML(ctx, *body, (*out)[:0], r.RemoteAddr, local, sw)
	}
	if !sw.streamed {
		w.Header().Set("Content-Length", strconv.Itoa(len(*out)))
	}
	sw.write(*out)
}

// streamChunk is the size at which a growing answer is sent on: answers
// such as get_all_records of thousands of VMs then stream in pieces
// instead of growing one huge buffer.
const streamChunk = 256 << 10

// drainer is an encoder whose output so far can be taken without losing
// its place in the value (xmlrpc.Encoder, jsonrpc.Encoder).
type drainer interface {
	wire.Splicer
	Bytes() []byte
	Drain(dst []byte) []byte
}

// streamWriter sends an encoder's output to the connection once it grows
// past streamChunk, checking at the end of each struct (each record).
type streamWriter struct {
	w        http.ResponseWriter
	streamed bool
	failed   bool
}

func (sw *streamWriter) write(b []byte) {
	if sw.failed || len(b) == 0 {
		return
	}
	if _, err := sw.w.Write(b); err != nil {
		sw.failed = true // the client went away; finish encoding quietly
	}
}

// wrap returns the result writer that streams through sw.
func (sw *streamWriter) wrap(res Result) func(wire.Encoder) {
	return func(e wire.Encoder) {
		d, ok := e.(drainer)
		if !ok {
			res(e)
			return
		}
		res(&streamingEncoder{drainer: d, sw: sw})
	}
}

type streamingEncoder struct {
	drainer
	sw *streamWriter
}

func (s *streamingEncoder) EndStruct() {
	s.drainer.EndStruct()
	if len(s.drainer.Bytes()) >= streamChunk {
		b := s.drainer.Drain(nil)
		s.sw.streamed = true
		s.sw.write(b)
		s.drainer.Drain(b[:0])
	}
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

func (s *Server) serveXML(ctx context.Context, body, out []byte, source string, local bool, sw *streamWriter) []byte {
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
	return xmlrpc.AppendSuccess(out, sw.wrap(res))
}

func (s *Server) serveJSON(ctx context.Context, body, out []byte, source string, local bool, sw *streamWriter) []byte {
	req, err := jsonrpc.ParseRequest(body)
	if err != nil {
		s.log.Debug("bad JSON-RPC request", "source", source, "err", err)
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			// The request may still carry a usable id and version to echo.
			return jsonrpc.AppendProtocolError(out, &req, je.Code, je.Message)
		}
		return jsonrpc.AppendProtocolError(out, nil, jsonrpc.CodeParseError, err.Error())
	}
	res, err := s.dispatch(ctx, req.Method, req.Params, source, local)
	s.logCall(req.Method, source, err)
	if err != nil {
		return jsonrpc.AppendError(out, &req, xenapi.AsError(err).Description())
	}
	if res == nil {
		return jsonrpc.AppendResult(out, &req, nil)
	}
	return jsonrpc.AppendResult(out, &req, sw.wrap(res))
}

// voidResult is XML-RPC's void: an empty string, as the XenAPI manual says.
func voidResult(e wire.Encoder) { e.String("") }
