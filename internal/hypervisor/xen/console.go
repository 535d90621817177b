package xen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xenith/xenith/internal/domain"
)

// Consoles: a PV guest's console (hvc0) is a ring that xenconsoled relays
// to a pty, whose path it writes to /local/domain/DOMID/console/tty. The
// driver offers it as xenithd's other drivers offer serial consoles: a unix
// socket, DATA/xen/console/UUID.sock, whose clients read what the guest
// prints and type into it. A client stays connected across a guest reboot
// (a new domain, a new pty): the relay follows the VM, not the domid.

var _ domain.ConsoleDriver = (*Driver)(nil)

// consoleRetry is how often a relay looks for the pty of a domain that has
// none yet (booting, rebooting).
const consoleRetry = 200 * time.Millisecond

type consoleRelay struct {
	l      net.Listener
	path   string
	ctx    context.Context // ends when the socket is closed
	cancel context.CancelFunc
}

func (d *Driver) consoleSocket(uuid string) string {
	return filepath.Join(d.opts.StateDir, "console", uuid+".sock")
}

// Consoles returns the domain's PV console as a vt100 console on a unix
// socket; none without xenstore (the pty cannot be found).
func (d *Driver) Consoles(ctx context.Context, uuid string) ([]domain.Console, error) {
	d.mu.Lock()
	_, ok := d.recs[uuid]
	xs := d.xs
	d.mu.Unlock()
	if !ok {
		return nil, noDomain(uuid)
	}
	if xs == nil {
		return nil, nil
	}
	path, err := d.startConsole(uuid)
	if err != nil {
		return nil, err
	}
	return []domain.Console{{Protocol: "vt100", Location: "unix://" + path, Other: map[string]string{"xen": "pv"}}}, nil
}

func (d *Driver) startConsole(uuid string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.consoles == nil {
		d.consoles = map[string]*consoleRelay{}
	}
	if c := d.consoles[uuid]; c != nil {
		return c.path, nil
	}
	if d.ctx.Err() != nil {
		return "", ErrClosed
	}
	path := d.consoleSocket(uuid)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	os.Remove(path) // left by an earlier xenithd
	l, err := net.Listen("unix", path)
	if err != nil {
		return "", fmt.Errorf("xen: console socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return "", err
	}
	ctx, cancel := context.WithCancel(d.ctx)
	c := &consoleRelay{l: l, path: path, ctx: ctx, cancel: cancel}
	d.consoles[uuid] = c
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.acceptConsole(c, uuid)
	}()
	return path, nil
}

// stopConsole closes the console socket of uuid (its domain is gone for
// good: destroyed or suspended). Connected clients see EOF.
func (d *Driver) stopConsole(uuid string) {
	d.mu.Lock()
	c := d.consoles[uuid]
	delete(d.consoles, uuid)
	d.mu.Unlock()
	if c != nil {
		c.cancel()
		c.l.Close()
		os.Remove(c.path)
	}
}

func (d *Driver) acceptConsole(c *consoleRelay, uuid string) {
	var conns sync.WaitGroup
	defer conns.Wait()
	stop := context.AfterFunc(c.ctx, func() { c.l.Close() })
	defer stop()
	for {
		conn, err := c.l.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			d.relayConsole(conn, c, uuid)
		}()
	}
}

// ptyOf is the pty xenconsoled gave the VM's current domain.
func (d *Driver) ptyOf(ctx context.Context, uuid string) (string, error) {
	d.mu.Lock()
	r, xs := d.recs[uuid], d.xs
	domid := 0
	if r != nil {
		domid = r.Domid
	}
	d.mu.Unlock()
	if r == nil || xs == nil || domid <= 0 {
		return "", noDomain(uuid)
	}
	return xs.Read(ctx, "/local/domain/"+strconv.Itoa(domid)+"/console/tty")
}

// relayConsole copies between one client and the domain's pty until the
// client leaves, the socket is closed or the driver stops.
func (d *Driver) relayConsole(conn net.Conn, c *consoleRelay, uuid string) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	var mu sync.Mutex
	var cur *os.File
	closeCur := func() {
		mu.Lock()
		if cur != nil {
			cur.Close()
			cur = nil
		}
		mu.Unlock()
	}
	defer closeCur()
	stop := context.AfterFunc(ctx, func() { conn.Close(); closeCur() })
	defer stop()
	// Client to guest: written to the pty of the moment (dropped while the
	// domain has none).
	go func() {
		defer cancel()
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				mu.Lock()
				f := cur
				mu.Unlock()
				if f != nil {
					_, _ = f.Write(buf[:n])
				}
			}
			if err != nil {
				return
			}
		}
	}()
	// Guest to client, reopening the pty when the domain changes.
	for ctx.Err() == nil {
		path, err := d.ptyOf(ctx, uuid)
		var f *os.File
		if err == nil {
			f, err = openRawPTY(path)
		}
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(consoleRetry):
			}
			continue
		}
		mu.Lock()
		cur = f
		mu.Unlock()
		_, err = io.Copy(conn, f)
		closeCur()
		if err != nil && !errors.Is(err, os.ErrClosed) && !isEIO(err) {
			// the client is gone
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(consoleRetry):
		}
	}
}

// openRawPTY opens the slave side of a console pty without making it the
// controlling terminal, in raw mode (no echo, no line editing), as
// xenconsoled sets it up.
func openRawPTY(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	// Through SyscallConn, not Fd: Fd would make the file blocking, and a
	// blocked Read could then not be ended by Close.
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	_ = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		_ = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	return f, nil
}

func isEIO(err error) bool { return errors.Is(err, unix.EIO) }
