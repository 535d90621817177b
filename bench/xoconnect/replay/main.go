// Command replay is the baseline server of bench/xoconnect/run.sh: the
// fastest server a XenAPI client can meet, one that answers every call with
// bytes it already holds.
//
// Record mode is a reverse proxy in front of xenithd. It forwards every
// request as is and keeps, for each distinct call, the first complete
// 200 answer: its status, headers and body bytes. A JSON-RPC call (a POST
// body that internal/jsonrpc parses) is known by its path, method and
// params, whatever its id; anything else (XML-RPC, other paths) by its
// method, path, query and exact body. Failed or cut-off exchanges (say a
// long-polling event.from the client gave up on) are not kept. On SIGINT or
// SIGTERM it writes what it recorded to FILE and exits.
//
//	replay -record FILE -listen 127.0.0.1:PORT -upstream http://127.0.0.1:XENITHD
//
// Replay mode loads FILE and serves it from memory with a bare net/http
// handler: the recorded status and headers (Content-Type above all: the
// xen-api connector insists on exactly "application/json") and the recorded
// body, with a JSON-RPC answer's id replaced by the new request's id.
// Nothing is computed and nothing is made up: a call it has no recording of
// (the connector's next event.from, with a token newer than any recorded) is
// held open like a long poll until the client goes away or 60 s pass, then
// answered 503.
//
//	replay -replay FILE -listen 127.0.0.1:PORT
//
// Both modes print "listening on ADDR" on stdout once the port is open, and
// a summary on stderr at exit (replay: also on SIGINT/SIGTERM).
package main

import (
	"bytes"
	"context"
	"encoding/gob"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xenith/xenith/internal/jsonrpc"
)

// holdFor is how long a call without a recording is held open.
const holdFor = 60 * time.Second

// maxRequest bounds a request body; XenAPI calls are small.
const maxRequest = 16 << 20

// entry is one recorded exchange, as stored in the file.
type entry struct {
	Key    string      // see callKey
	Label  string      // for humans: method or path
	Status int         // always 200 for now
	Header http.Header // response headers, minus hop-by-hop ones and Content-Length
	Body   []byte      // the response body as received
	// IDAt >= 0: Body is a JSON-RPC answer that ends in `"id":<ID>}` and
	// whose ID starts at IDAt; the replay swaps in the request's id.
	IDAt int
}

// callKey names a call independently of its JSON-RPC id. label is the
// method for JSON-RPC, else the path; id is the raw JSON-RPC id (nil if the
// request is not JSON-RPC).
func callKey(r *http.Request, body []byte) (key, label string, id []byte) {
	if r.Method == http.MethodPost && len(body) > 0 && body[0] == '{' {
		if req, err := jsonrpc.ParseRequest(body); err == nil && req.ID != nil {
			canon := jsonrpc.AppendCall(nil, req.Version, 0, req.Method, req.Params)
			return "J " + r.URL.Path + " " + string(canon), req.Method, req.ID
		}
	}
	return "R " + r.Method + " " + r.URL.RequestURI() + " " + string(body), r.URL.Path, nil
}

// idOffset reports where the id of a JSON-RPC answer starts, if body ends
// in `"id":<id>}` as xenithd writes it, else -1.
func idOffset(body, id []byte) int {
	tail := append(append([]byte(`"id":`), id...), '}')
	if id == nil || !bytes.HasSuffix(body, tail) {
		return -1
	}
	return len(body) - len(id) - 1
}

var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer", "Content-Length", "Date"}

func main() {
	record := flag.String("record", "", "record mode: proxy to -upstream, write the recording to this file at SIGINT/SIGTERM")
	replay := flag.String("replay", "", "replay mode: serve the recording in this file")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "record mode: xenithd's base URL, e.g. http://127.0.0.1:8080")
	flag.Parse()
	var err error
	switch {
	case *record != "" && *replay == "" && *upstream != "":
		err = runRecord(*record, *listen, strings.TrimSuffix(*upstream, "/"))
	case *replay != "" && *record == "":
		err = runReplay(*replay, *listen)
	default:
		fmt.Fprintln(os.Stderr, "usage: replay -record FILE -upstream URL [-listen ADDR] | replay -replay FILE [-listen ADDR]")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replay:", err)
		os.Exit(1)
	}
}

// serve listens, prints the address, and serves until SIGINT/SIGTERM.
func serve(listen string, h http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx) // held calls do not end by themselves: cut them
	_ = srv.Close()
	return nil
}

// ---- Record ----

type recorder struct {
	upstream string
	client   *http.Client

	mu        sync.Mutex
	entries   []*entry
	byKey     map[string]*entry
	seen      int // complete 200 exchanges
	differing int // repeated calls whose answer differed from the kept one
	failed    int // not kept: error, cut off or not 200
}

func runRecord(file, listen, upstream string) error {
	rec := &recorder{
		upstream: upstream,
		// DisableCompression: the client's Accept-Encoding goes through
		// as is, and so does whatever xenithd answers to it.
		client: &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}},
		byKey:  map[string]*entry{},
	}
	if err := serve(listen, rec); err != nil {
		return err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var total int
	labels := make([]string, 0, len(rec.entries))
	for _, e := range rec.entries {
		total += len(e.Body)
		labels = append(labels, e.Label)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := gob.NewEncoder(f).Encode(rec.entries); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "replay: recorded %d distinct calls (%d complete exchanges, %d repeated with a different answer, %d not kept), %.1f MiB of answers, to %s\n",
		len(rec.entries), rec.seen, rec.differing, rec.failed, float64(total)/(1<<20), file)
	slices.Sort(labels)
	fmt.Fprintf(os.Stderr, "replay: calls: %s\n", summarize(labels))
	return nil
}

// summarize turns sorted labels into "a, b ×3, c".
func summarize(labels []string) string {
	var parts []string
	for i := 0; i < len(labels); {
		j := i
		for j < len(labels) && labels[j] == labels[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%s ×%d", labels[i], j-i))
		} else {
			parts = append(parts, labels[i])
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

func (rec *recorder) fail(w http.ResponseWriter, code int, msg string) {
	rec.mu.Lock()
	rec.failed++
	rec.mu.Unlock()
	http.Error(w, msg, code)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err != nil {
		rec.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	key, label, id := callKey(r, body)
	up, err := http.NewRequestWithContext(r.Context(), r.Method, rec.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		rec.fail(w, http.StatusBadGateway, err.Error())
		return
	}
	for k, vs := range r.Header {
		if !slices.Contains(hopByHop, k) {
			up.Header[k] = vs
		}
	}
	res, err := rec.client.Do(up)
	if err != nil {
		rec.fail(w, http.StatusBadGateway, err.Error())
		return
	}
	resBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		rec.fail(w, http.StatusBadGateway, err.Error())
		return
	}
	h := http.Header{}
	for k, vs := range res.Header {
		if !slices.Contains(hopByHop, k) {
			h[k] = vs
		}
	}
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resBody)))
	w.WriteHeader(res.StatusCode)
	_, werr := w.Write(resBody)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if res.StatusCode != http.StatusOK || werr != nil {
		rec.failed++
		return
	}
	rec.seen++
	if old, ok := rec.byKey[key]; ok {
		if !bytes.Equal(old.Body[:max(old.IDAt, 0)], resBody[:max(idOffset(resBody, id), 0)]) {
			rec.differing++
		}
		return
	}
	e := &entry{Key: key, Label: label, Status: res.StatusCode, Header: h, Body: resBody, IDAt: idOffset(resBody, id)}
	if id != nil && e.IDAt < 0 {
		fmt.Fprintf(os.Stderr, "replay: warning: the answer to %s does not end in its id: it will be replayed with the recorded id\n", label)
	}
	rec.entries = append(rec.entries, e)
	rec.byKey[key] = e
}

// ---- Replay ----

type replayer struct {
	byKey          map[string]*entry
	served, missed atomic.Int64
	bytes          atomic.Int64
}

func runReplay(file string, listen string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	var entries []*entry
	err = gob.NewDecoder(f).Decode(&entries)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	rp := &replayer{byKey: make(map[string]*entry, len(entries))}
	var total int
	for _, e := range entries {
		rp.byKey[e.Key] = e
		total += len(e.Body)
	}
	runtime.GC()
	debug.FreeOSMemory()
	fmt.Fprintf(os.Stderr, "replay: serving %d recorded calls (%.1f MiB) from %s\n", len(entries), float64(total)/(1<<20), file)
	err = serve(listen, rp)
	fmt.Fprintf(os.Stderr, "replay: served %d calls (%.1f MiB), held %d without a recording\n",
		rp.served.Load(), float64(rp.bytes.Load())/(1<<20), rp.missed.Load())
	return err
}

func (rp *replayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key, _, id := callKey(r, body)
	e, ok := rp.byKey[key]
	if !ok {
		// Like a long poll with nothing to say: hold, never invent.
		rp.missed.Add(1)
		t := time.NewTimer(holdFor)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		http.Error(w, "replay: no recording of this call", http.StatusServiceUnavailable)
		return
	}
	hdr := w.Header()
	for k, vs := range e.Header {
		hdr[k] = vs
	}
	rp.served.Add(1)
	if e.IDAt < 0 || id == nil {
		hdr.Set("Content-Length", strconv.Itoa(len(e.Body)))
		w.WriteHeader(e.Status)
		n, _ := w.Write(e.Body)
		rp.bytes.Add(int64(n))
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(e.IDAt+len(id)+1))
	w.WriteHeader(e.Status)
	n1, err := w.Write(e.Body[:e.IDAt])
	if err != nil {
		return
	}
	n2, _ := w.Write(append(id[:len(id):len(id)], '}'))
	rp.bytes.Add(int64(n1 + n2))
}
