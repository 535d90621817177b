// Package client is a small XenAPI client over JSON-RPC or XML-RPC, used by
// xenith's own tools (xe) and tests. Failures come back as *xenapi.Error.
package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// Protocol selects the wire format.
type Protocol int

const (
	JSONRPC Protocol = iota
	XMLRPC
)

// Client calls one XenAPI server.
type Client struct {
	url      string
	protocol Protocol
	http     *http.Client
	id       atomic.Int64
}

// New returns a client for baseURL ("http://host:port"). A base URL of the
// form "unix:/path/to/socket" talks HTTP over that unix socket.
func New(baseURL string, p Protocol, hc *http.Client) *Client {
	if path, ok := strings.CutPrefix(baseURL, "unix:"); ok {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		hc = &http.Client{Transport: tr}
		baseURL = "http://localhost"
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{url: strings.TrimSuffix(baseURL, "/"), protocol: p, http: hc}
}

// Call invokes method with params and returns its value.
func (c *Client) Call(ctx context.Context, method string, params ...wire.Value) (wire.Value, error) {
	var body []byte
	url := c.url + "/"
	ctype := "text/xml"
	if c.protocol == JSONRPC {
		body = jsonrpc.AppendCall(nil, 2, c.id.Add(1), method, params)
		url = c.url + "/jsonrpc"
		ctype = "application/json"
	} else {
		body = xmlrpc.AppendCall(nil, method, params)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return wire.Value{}, err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := c.http.Do(req)
	if err != nil {
		return wire.Value{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return wire.Value{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return wire.Value{}, fmt.Errorf("%s: HTTP %d: %s", method, resp.StatusCode, bytes.TrimSpace(data))
	}
	if c.protocol == JSONRPC {
		v, desc, err := jsonrpc.ParseResponse(data)
		if err != nil {
			return wire.Value{}, err
		}
		if desc != nil {
			return wire.Value{}, describe(desc)
		}
		return v, nil
	}
	v, err := xmlrpc.ParseResponse(data)
	if err != nil {
		return wire.Value{}, err
	}
	status, _ := v.Field("Status")
	if status.Str == "Success" {
		val, _ := v.Field("Value")
		return val, nil
	}
	ed, _ := v.Field("ErrorDescription")
	desc := make([]string, 0, len(ed.Array))
	for _, x := range ed.Array {
		desc = append(desc, x.Str)
	}
	return wire.Value{}, describe(desc)
}

func describe(desc []string) *xenapi.Error {
	if len(desc) == 0 {
		return xenapi.NewError("INTERNAL_ERROR", "empty error description")
	}
	return xenapi.NewError(desc[0], desc[1:]...)
}

// Session is a logged-in client.
type Session struct {
	*Client
	Ref string
}

// Login calls session.login_with_password.
func (c *Client) Login(ctx context.Context, user, password string) (*Session, error) {
	v, err := c.Call(ctx, "session.login_with_password", wire.String(user), wire.String(password), wire.String("2.21"), wire.String("xenith"))
	if err != nil {
		return nil, err
	}
	return &Session{Client: c, Ref: v.Str}, nil
}

// Do calls a method that takes the session first.
func (s *Session) Do(ctx context.Context, method string, params ...wire.Value) (wire.Value, error) {
	return s.Call(ctx, method, append([]wire.Value{wire.String(s.Ref)}, params...)...)
}

// Logout ends the session.
func (s *Session) Logout(ctx context.Context) error {
	_, err := s.Do(ctx, "session.logout")
	return err
}
