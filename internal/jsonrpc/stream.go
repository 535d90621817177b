package jsonrpc

// Drain returns what has been encoded so far and continues into dst,
// keeping the encoder's position inside the value, so that a large answer
// can be sent to the connection piece by piece (unlike Reset, which starts
// a new value).
func (e *Encoder) Drain(dst []byte) []byte {
	out := e.buf
	e.buf = dst
	return out
}
