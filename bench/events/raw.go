package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// rawWaiter makes event.from calls over one keep-alive connection with as
// little client work as possible (no JSON decoding, only the token is cut
// out), so that the figures are the server's delivery and not a Go
// client's decoding competing for the same two cores.
type rawWaiter struct {
	conn    net.Conn
	r       *bufio.Reader
	session string
	req     []byte
	body    []byte
}

func newRawWaiter(conn net.Conn, session string) *rawWaiter {
	return &rawWaiter{conn: conn, r: bufio.NewReaderSize(conn, 16<<10), session: session}
}

var (
	tokenKey  = []byte(`"token":"`)
	noEvents  = []byte(`"events":[]`)
	errorKey  = []byte(`"error":`)
	clHeader  = []byte("content-length:")
	crlf      = []byte("\r\n")
	errNoBody = errors.New("answer without Content-Length")
)

// eventFrom asks for ["vm"] changes after tok, waiting up to 60 s, and
// returns the next token and whether the answer carried events.
func (w *rawWaiter) eventFrom(tok string) (string, bool, error) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"event.from","params":[%q,["vm"],%q,60.0]}`, w.session, tok)
	w.req = fmt.Appendf(w.req[:0], "POST /jsonrpc HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := w.conn.Write(w.req); err != nil {
		return "", false, err
	}
	length := -1
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			return "", false, err
		}
		line = bytes.TrimSuffix(line, crlf)
		if len(line) == 0 {
			break
		}
		if len(line) > len(clHeader) && bytes.EqualFold(line[:len(clHeader)], clHeader) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(line[len(clHeader):])))
			if err != nil {
				return "", false, err
			}
		}
	}
	if length < 0 {
		return "", false, errNoBody
	}
	if cap(w.body) < length {
		w.body = make([]byte, length)
	}
	w.body = w.body[:length]
	if _, err := io.ReadFull(w.r, w.body); err != nil {
		return "", false, err
	}
	if bytes.Contains(w.body, errorKey) && !bytes.Contains(w.body, tokenKey) {
		return "", false, fmt.Errorf("event.from failed: %s", w.body)
	}
	i := bytes.LastIndex(w.body, tokenKey)
	if i < 0 {
		return "", false, fmt.Errorf("no token in %s", w.body)
	}
	rest := w.body[i+len(tokenKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false, fmt.Errorf("unterminated token in %s", w.body)
	}
	return string(rest[:j]), !bytes.Contains(w.body, noEvents), nil
}
