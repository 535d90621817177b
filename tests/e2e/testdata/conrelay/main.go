// Command conrelay runs in the emulated Xen dom0 of tests/e2e/xen_test.go: it
// lets the host reach the console sockets xenithd serves in dom0 (unix
// sockets, which the host cannot open) through one forwarded TCP port. A
// client sends the socket's path and a newline, then talks to the socket.
//
//	conrelay ADDR
package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		slog.Error("usage: conrelay ADDR")
		os.Exit(2)
	}
	l, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		slog.Error("listen", "err", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			slog.Error("accept", "err", err)
			os.Exit(1)
		}
		go relay(c)
	}
}

func relay(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	path, err := r.ReadString('\n')
	if err != nil {
		return
	}
	path = strings.TrimSpace(path)
	u, err := net.Dial("unix", path)
	if err != nil {
		slog.Warn("console socket", "path", path, "err", err)
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, r); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}
