package xen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
)

// XenStore is what the driver needs of xenstore: reads to learn what
// guests report, a write to withdraw a shutdown request, and watches to
// hear of domains shutting down (@releaseDomain) and of guest agent data.
type XenStore interface {
	Read(ctx context.Context, path string) (string, error)
	Write(ctx context.Context, path, value string) error
	Directory(ctx context.Context, path string) ([]string, error)
	// Watch asks for a WatchEvent whenever path or anything below it
	// changes; xenstored fires one at once too.
	Watch(ctx context.Context, path, token string) error
	Unwatch(ctx context.Context, path, token string) error
	// Events delivers watch events; it is closed when the connection is
	// lost or closed.
	Events() <-chan WatchEvent
	Close() error
}

// WatchEvent is one firing of a watch.
type WatchEvent struct{ Path, Token string }

// ErrNotFound is xenstored's ENOENT; it wraps fs.ErrNotExist.
var ErrNotFound = fmt.Errorf("xenstore: %w", fs.ErrNotExist)

// XenstoreSockets are where DialXenStore looks for xenstored: its unix
// socket (xenstored running in this domain), then the kernel's xenbus
// device (which reaches xenstored wherever it runs).
var XenstoreSockets = []string{"/run/xenstored/socket", "/var/run/xenstored/socket", "/dev/xen/xenbus"}

// The xenstore wire protocol (xen/include/public/io/xs_wire.h): a 16-byte
// little-endian header {type, req_id, tx_id, len} and len bytes of payload.
const (
	xsDirectory  = 1
	xsRead       = 2
	xsWatch      = 4
	xsUnwatch    = 5
	xsWrite      = 11
	xsWatchEvent = 15
	xsError      = 16

	xsHeaderLen  = 16
	xsPayloadMax = 4096
)

type xsReply struct {
	typ     uint32
	payload []byte
}

// xsConn is a xenstore client over a byte stream: requests are matched to
// replies by req_id; watch events go to Events.
type xsConn struct {
	rw io.ReadWriteCloser

	wmu     sync.Mutex
	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]chan xsReply
	err     error // set once the reader has stopped

	events chan WatchEvent
	done   chan struct{}
}

// DialXenStore connects to xenstored through the first of XenstoreSockets
// that opens.
func DialXenStore() (XenStore, error) {
	var errs []error
	for _, p := range XenstoreSockets {
		var rw io.ReadWriteCloser
		var err error
		if strings.HasPrefix(p, "/dev/") {
			rw, err = os.OpenFile(p, os.O_RDWR, 0)
		} else {
			rw, err = net.Dial("unix", p)
		}
		if err == nil {
			return newXSConn(rw), nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("xenstore: no way to xenstored: %w", errors.Join(errs...))
}

func newXSConn(rw io.ReadWriteCloser) *xsConn {
	c := &xsConn{rw: rw, nextID: 1, pending: map[uint32]chan xsReply{},
		events: make(chan WatchEvent, 256), done: make(chan struct{})}
	go c.readLoop()
	return c
}

func (c *xsConn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
		c.mu.Unlock()
		close(c.done)
		close(c.events)
	}()
	hdr := make([]byte, xsHeaderLen)
	for {
		if _, err = io.ReadFull(c.rw, hdr); err != nil {
			return
		}
		typ := binary.LittleEndian.Uint32(hdr[0:])
		id := binary.LittleEndian.Uint32(hdr[4:])
		n := binary.LittleEndian.Uint32(hdr[12:])
		if n > xsPayloadMax {
			err = fmt.Errorf("xenstore: message of %d bytes", n)
			return
		}
		payload := make([]byte, n)
		if _, err = io.ReadFull(c.rw, payload); err != nil {
			return
		}
		if typ == xsWatchEvent {
			f := strings.Split(string(payload), "\x00")
			if len(f) >= 2 {
				select {
				case c.events <- WatchEvent{Path: f[0], Token: f[1]}:
				default:
					// The consumer is behind; it rescans on any event,
					// so a dropped duplicate loses nothing.
				}
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- xsReply{typ: typ, payload: payload}
		}
	}
}

func (c *xsConn) request(ctx context.Context, typ uint32, payload []byte) ([]byte, error) {
	if len(payload) > xsPayloadMax {
		return nil, fmt.Errorf("xenstore: request of %d bytes", len(payload))
	}
	ch := make(chan xsReply, 1)
	c.mu.Lock()
	if c.err != nil || isClosed(c.done) {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("xenstore: connection lost: %v", err)
	}
	id := c.nextID
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	c.pending[id] = ch
	c.mu.Unlock()

	msg := make([]byte, xsHeaderLen+len(payload))
	binary.LittleEndian.PutUint32(msg[0:], typ)
	binary.LittleEndian.PutUint32(msg[4:], id)
	binary.LittleEndian.PutUint32(msg[12:], uint32(len(payload)))
	copy(msg[xsHeaderLen:], payload)
	c.wmu.Lock()
	_, err := c.rw.Write(msg)
	c.wmu.Unlock()
	if err != nil {
		c.forget(id)
		return nil, fmt.Errorf("xenstore: %w", err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, errors.New("xenstore: connection lost")
		}
		if r.typ == xsError {
			code := strings.TrimRight(string(r.payload), "\x00")
			if code == "ENOENT" {
				return nil, ErrNotFound
			}
			return nil, fmt.Errorf("xenstore: %s", code)
		}
		if r.typ != typ {
			return nil, fmt.Errorf("xenstore: reply type %d to request type %d", r.typ, typ)
		}
		return r.payload, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

func (c *xsConn) forget(id uint32) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *xsConn) Read(ctx context.Context, path string) (string, error) {
	p, err := c.request(ctx, xsRead, []byte(path+"\x00"))
	if err != nil {
		return "", fmt.Errorf("xenstore read %s: %w", path, err)
	}
	return strings.TrimRight(string(p), "\x00"), nil
}

func (c *xsConn) Write(ctx context.Context, path, value string) error {
	if _, err := c.request(ctx, xsWrite, []byte(path+"\x00"+value)); err != nil {
		return fmt.Errorf("xenstore write %s: %w", path, err)
	}
	return nil
}

func (c *xsConn) Directory(ctx context.Context, path string) ([]string, error) {
	p, err := c.request(ctx, xsDirectory, []byte(path+"\x00"))
	if err != nil {
		return nil, fmt.Errorf("xenstore directory %s: %w", path, err)
	}
	var names []string
	for _, n := range strings.Split(string(p), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

func (c *xsConn) Watch(ctx context.Context, path, token string) error {
	if _, err := c.request(ctx, xsWatch, []byte(path+"\x00"+token+"\x00")); err != nil {
		return fmt.Errorf("xenstore watch %s: %w", path, err)
	}
	return nil
}

func (c *xsConn) Unwatch(ctx context.Context, path, token string) error {
	if _, err := c.request(ctx, xsUnwatch, []byte(path+"\x00"+token+"\x00")); err != nil {
		return fmt.Errorf("xenstore unwatch %s: %w", path, err)
	}
	return nil
}

func (c *xsConn) Events() <-chan WatchEvent { return c.events }

func (c *xsConn) Close() error { return c.rw.Close() }
