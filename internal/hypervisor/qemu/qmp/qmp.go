// Package qmp is a small client for the QEMU Machine Protocol: one
// connection to a QMP unix socket, commands run concurrently (matched to
// their answers by id), asynchronous events handed to a callback, and file
// descriptors passed with SCM_RIGHTS (for getfd).
//
// It exists instead of github.com/digitalocean/go-qemu because that module
// has no tagged release, pulls in go-libvirt, and its socket monitor takes
// no context and serves events to a single consumer.
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Event is an asynchronous QMP event.
type Event struct {
	Name      string          `json:"event"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// Time is when QEMU sent the event.
func (e Event) Time() time.Time {
	return time.Unix(e.Timestamp.Seconds, e.Timestamp.Microseconds*1000)
}

// Error is a failure QEMU reported for a command.
type Error struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *Error) Error() string { return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc) }

// ErrClosed is returned for commands on a connection that has ended (the
// error of Err wraps it too).
var ErrClosed = errors.New("qmp: connection closed")

// Greeting is what QEMU says first.
type Greeting struct {
	QMP struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

// Monitor is one QMP connection. Its methods are safe for concurrent use.
type Monitor struct {
	conn     *net.UnixConn
	Greeting Greeting

	wmu sync.Mutex // one command written at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan reply
	err     error // why the connection ended
	done    chan struct{}
}

type reply struct {
	ID     string          `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *Error          `json:"error"`
	Event  string          `json:"event"`
}

// Dial connects to the QMP socket at path, reads the greeting and leaves
// capabilities negotiation mode. onEvent (may be nil) is called for every
// event, in order, from the connection's reader goroutine: it must not
// block nor run commands on this Monitor.
func Dial(ctx context.Context, path string, onEvent func(Event)) (*Monitor, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UnixConn)
	m := &Monitor{conn: conn, pending: map[string]chan reply{}, done: make(chan struct{})}
	dec := json.NewDecoder(conn)
	// The greeting comes at once; bound the wait by ctx.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	err = dec.Decode(&m.Greeting)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err == nil && m.Greeting.QMP.Version.QEMU.Major == 0 {
		err = errors.New("qmp: no greeting")
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: greeting on %s: %w", path, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go m.read(dec, onEvent)
	if err := m.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// read dispatches answers and events until the connection ends.
func (m *Monitor) read(dec *json.Decoder, onEvent func(Event)) {
	var err error
	for {
		var raw json.RawMessage
		if err = dec.Decode(&raw); err != nil {
			break
		}
		var r reply
		if err = json.Unmarshal(raw, &r); err != nil {
			break
		}
		if r.Event != "" {
			if onEvent != nil {
				var ev Event
				if json.Unmarshal(raw, &ev) == nil {
					onEvent(ev)
				}
			}
			continue
		}
		m.mu.Lock()
		ch := m.pending[r.ID]
		delete(m.pending, r.ID)
		m.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	m.mu.Lock()
	m.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for id, ch := range m.pending {
		close(ch)
		delete(m.pending, id)
	}
	m.mu.Unlock()
	m.conn.Close()
	close(m.done)
}

// Done is closed when the connection has ended (QEMU exited, or Close).
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err says why the connection ended (nil while it is up).
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close ends the connection; QEMU keeps running.
func (m *Monitor) Close() error {
	err := m.conn.Close()
	<-m.done
	return err
}

// Execute runs cmd with args (nil for none, else marshalled as the
// "arguments" object) and unmarshals the "return" value into out (may be
// nil). A QEMU failure is an *Error.
func (m *Monitor) Execute(ctx context.Context, cmd string, args, out any) error {
	return m.execute(ctx, cmd, args, out, -1)
}

// ExecuteFD is Execute passing the file descriptor fd along with the
// command (SCM_RIGHTS), as getfd and add-fd need.
func (m *Monitor) ExecuteFD(ctx context.Context, cmd string, args any, fd int, out any) error {
	return m.execute(ctx, cmd, args, out, fd)
}

func (m *Monitor) execute(ctx context.Context, cmd string, args, out any, fd int) error {
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return err
	}
	m.nextID++
	id := strconv.FormatUint(m.nextID, 10)
	ch := make(chan reply, 1)
	m.pending[id] = ch
	m.mu.Unlock()
	forget := func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}

	msg := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		msg["arguments"] = args
	}
	b, err := json.Marshal(msg)
	if err != nil {
		forget()
		return err
	}
	b = append(b, '\n')
	m.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		_ = m.conn.SetWriteDeadline(dl)
	}
	if fd >= 0 {
		_, _, err = m.conn.WriteMsgUnix(b, syscall.UnixRights(fd), nil)
	} else {
		_, err = m.conn.Write(b)
	}
	_ = m.conn.SetWriteDeadline(time.Time{})
	m.wmu.Unlock()
	if err != nil {
		forget()
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("qmp %s: %w", cmd, m.Err())
		}
		if r.Error != nil {
			e := *r.Error
			e.Command = cmd
			return &e
		}
		if out != nil && len(r.Return) > 0 {
			if err := json.Unmarshal(r.Return, out); err != nil {
				return fmt.Errorf("qmp %s: decoding the answer: %w", cmd, err)
			}
		}
		return nil
	case <-ctx.Done():
		forget() // the answer, when it comes, is dropped
		return ctx.Err()
	}
}
