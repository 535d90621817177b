package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// Target is one kind of request: where it is POSTed, its body, and the
// length every answer must have (the answers are fixed, so a length check
// catches errors without parsing).
type Target struct {
	Name        string
	URL         string
	ContentType string
	Body        []byte
	WantLen     int // 0: any length
}

// NewClient returns an HTTP/1.1 client with its own Transport, so that each
// load goroutine keeps exactly one keep-alive connection of its own.
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        4,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// Do POSTs the target's body and reads the whole answer into buf, which it
// returns (grown if needed) for reuse.
func (t *Target) Do(c *http.Client, buf []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return buf, err
	}
	req.Header.Set("Content-Type", t.ContentType)
	resp, err := c.Do(req)
	if err != nil {
		return buf, err
	}
	defer resp.Body.Close()
	buf = buf[:0]
	if n := resp.ContentLength; n > int64(cap(buf)) {
		buf = make([]byte, 0, n+512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, err
		}
	}
	if resp.StatusCode != http.StatusOK {
		return buf, fmt.Errorf("%s: HTTP %s: %.200s", t.Name, resp.Status, buf)
	}
	if t.WantLen > 0 && len(buf) != t.WantLen {
		return buf, fmt.Errorf("%s: answer of %d bytes, want %d: %.300s", t.Name, len(buf), t.WantLen, buf)
	}
	return buf, nil
}

// Load runs one goroutine per client against t for d and returns the
// requests completed per second. Every answer is checked.
func Load(t *Target, clients []*http.Client, d time.Duration) (float64, error) {
	var (
		stop  atomic.Bool
		total atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			n := int64(0)
			for !stop.Load() {
				var err error
				if buf, err = t.Do(c, buf); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					stop.Store(true)
					break
				}
				n++
			}
			total.Add(n)
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return 0, first
	}
	return float64(total.Load()) / elapsed.Seconds(), nil
}

// Clients makes n clients.
func Clients(n int) []*http.Client {
	cs := make([]*http.Client, n)
	for i := range cs {
		cs[i] = NewClient()
	}
	return cs
}

// CloseClients drops the clients' idle connections.
func CloseClients(cs []*http.Client) {
	for _, c := range cs {
		c.CloseIdleConnections()
	}
}

// XMLCall encodes an XML-RPC call.
func XMLCall(method string, params ...wire.Value) []byte {
	return xmlrpc.AppendCall(nil, method, params)
}

// JSONCall encodes a JSON-RPC 2.0 call, as Xen Orchestra sends them.
func JSONCall(method string, params ...wire.Value) []byte {
	return jsonrpc.AppendCall(nil, 2, 1, method, params)
}

// XMLResult checks a XenAPI XML-RPC answer and returns its Value.
func XMLResult(body []byte) (wire.Value, error) {
	v, err := xmlrpc.ParseResponse(body)
	if err != nil {
		return wire.Value{}, err
	}
	status, _ := v.Field("Status")
	if status.Str != "Success" {
		desc, _ := v.Field("ErrorDescription")
		var codes []string
		for _, d := range desc.Array {
			codes = append(codes, d.Str)
		}
		return wire.Value{}, fmt.Errorf("XenAPI failure %v", codes)
	}
	val, ok := v.Field("Value")
	if !ok {
		return wire.Value{}, errors.New("success without a Value")
	}
	return val, nil
}

// JSONResult checks a JSON-RPC answer and returns its result.
func JSONResult(body []byte) (wire.Value, error) {
	v, desc, err := jsonrpc.ParseResponse(body)
	if err != nil {
		return wire.Value{}, err
	}
	if desc != nil {
		return wire.Value{}, fmt.Errorf("XenAPI failure %v", desc)
	}
	return v, nil
}

// Login calls session.login_with_password over XML-RPC.
func Login(c *http.Client, url string) (xenapi.Ref, error) {
	t := Target{Name: "login", URL: url, ContentType: "text/xml",
		Body: XMLCall("session.login_with_password", wire.String("root"), wire.String(Password),
			wire.String("2.21"), wire.String("xenith-bench"))}
	body, err := t.Do(c, nil)
	if err != nil {
		return "", err
	}
	v, err := XMLResult(body)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	return xenapi.Ref(v.Str), nil
}
