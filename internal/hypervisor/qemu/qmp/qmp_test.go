package qmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// fakeQEMU serves one QMP connection on a unix socket: it greets, then
// answers each command with answer(cmd) (a JSON object to send back, the
// id added), and sends events written to its events channel.
type fakeQEMU struct {
	path   string
	l      net.Listener
	events chan string
	fds    chan int
}

func newFake(t *testing.T, answer func(cmd map[string]any) map[string]any) *fakeQEMU {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "qmpt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeQEMU{path: filepath.Join(dir, "qmp.sock"), events: make(chan string, 8), fds: make(chan int, 4)}
	f.l, err = net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.l.Close() })
	go func() {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		uc := c.(*net.UnixConn)
		defer uc.Close()
		w := json.NewEncoder(uc)
		_ = w.Encode(map[string]any{"QMP": map[string]any{"version": map[string]any{"qemu": map[string]int{"major": 7, "minor": 2, "micro": 0}}, "capabilities": []string{}}})
		go func() {
			for ev := range f.events {
				if ev == "CLOSE" {
					uc.Close()
					return
				}
				_, _ = uc.Write([]byte(ev + "\n"))
			}
		}()
		for {
			buf := make([]byte, 4096)
			oob := make([]byte, 64)
			n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			if oobn > 0 {
				if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
					if fds, err := syscall.ParseUnixRights(&msgs[0]); err == nil {
						for _, fd := range fds {
							f.fds <- fd
						}
					}
				}
			}
			dec := json.NewDecoder(bytes.NewReader(buf[:n]))
			for dec.More() {
				var cmd map[string]any
				if dec.Decode(&cmd) != nil {
					return
				}
				out := answer(cmd)
				if out == nil {
					continue // never answered
				}
				out["id"] = cmd["id"]
				_ = w.Encode(out)
			}
		}
	}()
	return f
}

func TestMonitor(t *testing.T) {
	f := newFake(t, func(cmd map[string]any) map[string]any {
		switch cmd["execute"] {
		case "qmp_capabilities", "getfd":
			return map[string]any{"return": map[string]any{}}
		case "query-status":
			return map[string]any{"return": map[string]any{"status": "running", "running": true}}
		case "hang":
			return nil
		default:
			return map[string]any{"error": map[string]any{"class": "CommandNotFound", "desc": "The command " + cmd["execute"].(string) + " has not been found"}}
		}
	})
	events := make(chan Event, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Dial(ctx, f.path, func(e Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	if m.Greeting.QMP.Version.QEMU.Major != 7 {
		t.Fatalf("greeting %+v", m.Greeting)
	}
	for _, tc := range []struct {
		cmd     string
		wantErr string // error class, "" for success
	}{
		{"query-status", ""},
		{"no-such-thing", "CommandNotFound"},
	} {
		var st struct{ Status string }
		err := m.Execute(ctx, tc.cmd, nil, &st)
		var qe *Error
		switch {
		case tc.wantErr == "" && (err != nil || st.Status != "running"):
			t.Errorf("%s = %+v, %v", tc.cmd, st, err)
		case tc.wantErr != "" && (!errors.As(err, &qe) || qe.Class != tc.wantErr || qe.Command != tc.cmd):
			t.Errorf("%s: error %v, want class %s", tc.cmd, err, tc.wantErr)
		}
	}
	// A command QEMU never answers ends with its context.
	hctx, hcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if err := m.Execute(hctx, "hang", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered command: %v", err)
	}
	hcancel()
	// File descriptors travel with the command.
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if err := m.ExecuteFD(ctx, "getfd", map[string]string{"fdname": "x"}, int(w.Fd()), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case fd := <-f.fds:
		syscall.Close(fd)
	case <-time.After(5 * time.Second):
		t.Fatal("no fd received")
	}
	// Events reach the callback.
	f.events <- `{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}`
	select {
	case e := <-events:
		if e.Name != "STOP" || e.Time().Unix() != 1 {
			t.Errorf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	// QEMU going away ends the monitor; commands fail with ErrClosed.
	f.events <- "CLOSE"
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	if err := m.Execute(ctx, "query-status", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}
