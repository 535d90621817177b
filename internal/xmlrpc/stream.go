package xmlrpc

// Drain returns what has been encoded so far and continues into dst,
// keeping the encoder's position inside the value, so that a large answer
// can be sent to the connection piece by piece.
func (e *Encoder) Drain(dst []byte) []byte {
	out := e.Bytes()
	e.Reset(dst)
	return out
}
