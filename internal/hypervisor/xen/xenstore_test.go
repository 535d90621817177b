package xen

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeXenstored answers the xenstore wire protocol on one end of a pipe,
// from a map, and fires watches on writes, like xenstored.
func fakeXenstored(t *testing.T, conn net.Conn, vals map[string]string) {
	t.Helper()
	watches := map[string]string{} // path -> token
	send := func(typ, id uint32, payload string) error {
		msg := make([]byte, xsHeaderLen+len(payload))
		binary.LittleEndian.PutUint32(msg[0:], typ)
		binary.LittleEndian.PutUint32(msg[4:], id)
		binary.LittleEndian.PutUint32(msg[12:], uint32(len(payload)))
		copy(msg[xsHeaderLen:], payload)
		_, err := conn.Write(msg)
		return err
	}
	go func() {
		defer conn.Close()
		hdr := make([]byte, xsHeaderLen)
		for {
			if _, err := io.ReadFull(conn, hdr); err != nil {
				return
			}
			typ, id := binary.LittleEndian.Uint32(hdr[0:]), binary.LittleEndian.Uint32(hdr[4:])
			body := make([]byte, binary.LittleEndian.Uint32(hdr[12:]))
			if _, err := io.ReadFull(conn, body); err != nil {
				return
			}
			f := strings.Split(string(body), "\x00")
			var err error
			switch typ {
			case xsRead:
				v, ok := vals[f[0]]
				if !ok {
					err = send(xsError, id, "ENOENT\x00")
				} else {
					err = send(xsRead, id, v)
				}
			case xsDirectory:
				var names []string
				for k := range vals {
					if rest, ok := strings.CutPrefix(k, f[0]+"/"); ok && !strings.Contains(rest, "/") {
						names = append(names, rest+"\x00")
					}
				}
				err = send(xsDirectory, id, strings.Join(names, ""))
			case xsWrite:
				vals[f[0]] = strings.Join(f[1:], "\x00")
				err = send(xsWrite, id, "OK\x00")
				for p, tok := range watches {
					if strings.HasPrefix(f[0], p) {
						err = errors.Join(err, send(xsWatchEvent, 0, f[0]+"\x00"+tok+"\x00"))
					}
				}
			case xsWatch:
				watches[f[0]] = f[1]
				err = send(xsWatch, id, "OK\x00")
				err = errors.Join(err, send(xsWatchEvent, 0, f[0]+"\x00"+f[1]+"\x00"))
			case xsUnwatch:
				delete(watches, f[0])
				err = send(xsUnwatch, id, "OK\x00")
			default:
				err = send(xsError, id, "EINVAL\x00")
			}
			if err != nil {
				return
			}
		}
	}()
}

func TestXenstoreWire(t *testing.T) {
	client, server := net.Pipe()
	fakeXenstored(t, server, map[string]string{"/local/domain/1/name": "vm", "/local/domain/1/data/os_name": "Linux"})
	xs := newXSConn(client)
	defer xs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if v, err := xs.Read(ctx, "/local/domain/1/name"); err != nil || v != "vm" {
		t.Fatalf("read: %q %v", v, err)
	}
	if _, err := xs.Read(ctx, "/nope"); !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read of a missing key: %v", err)
	}
	if err := xs.Watch(ctx, "@releaseDomain", "release"); err != nil {
		t.Fatal(err)
	}
	if err := xs.Watch(ctx, "/local/domain/1/data", "agent:x"); err != nil {
		t.Fatal(err)
	}
	if err := xs.Write(ctx, "/local/domain/1/data/os_distro", "debian"); err != nil {
		t.Fatal(err)
	}
	tree, err := readTree(ctx, xs, "/local/domain/1/data")
	if err != nil || tree["os_name"] != "Linux" || tree["os_distro"] != "debian" || len(tree) != 2 {
		t.Fatalf("tree %v %v", tree, err)
	}
	want := []WatchEvent{{"@releaseDomain", "release"}, {"/local/domain/1/data", "agent:x"}, {"/local/domain/1/data/os_distro", "agent:x"}}
	for _, w := range want {
		select {
		case ev := <-xs.Events():
			if ev != w {
				t.Fatalf("event %+v, want %+v", ev, w)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no event %+v", w)
		}
	}
	if err := xs.Unwatch(ctx, "/local/domain/1/data", "agent:x"); err != nil {
		t.Fatal(err)
	}
	if _, err := xs.request(ctx, 99, nil); err == nil || !strings.Contains(err.Error(), "EINVAL") {
		t.Fatalf("unknown request: %v", err)
	}
	// a lost connection ends Events and fails requests
	server.Close()
	select {
	case _, ok := <-xs.Events():
		if ok {
			t.Fatal("event after close")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Events not closed when the connection was lost")
	}
	if _, err := xs.Read(ctx, "/local/domain/1/name"); err == nil {
		t.Fatal("read on a lost connection")
	}
}
