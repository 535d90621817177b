package wire

import "sync"

// Splicer is an encoder that can insert a value it encoded earlier, so an
// answer many clients receive at once (an event.from batch woken by one
// commit) is encoded once per codec rather than once per client.
type Splicer interface {
	Encoder
	// Codec names the wire format; bytes are only spliced into the codec
	// that made them.
	Codec() string
	// Scratch returns an empty encoder of the same codec whose Bytes, once
	// it holds one complete value, can be passed to Splice.
	Scratch() interface {
		Encoder
		Bytes() []byte
	}
	// Splice writes one complete value encoded by a Scratch encoder.
	Splice(encoded []byte)
}

// Shared is a value encoded at most once per codec and spliced into every
// answer that carries it. It is safe for concurrent use; the bytes are
// never modified after they are made.
type Shared struct {
	write func(Encoder)
	mu    sync.Mutex
	done  map[string][]byte
}

// NewShared returns a Shared value written by write.
func NewShared(write func(Encoder)) *Shared { return &Shared{write: write} }

// Encode writes the value to e, spliced if e supports it.
func (s *Shared) Encode(e Encoder) {
	sp, ok := e.(Splicer)
	if !ok {
		s.write(e)
		return
	}
	sp.Splice(s.bytes(sp))
}

func (s *Shared) bytes(sp Splicer) []byte {
	codec := sp.Codec()
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.done[codec]; ok {
		return b
	}
	scratch := sp.Scratch()
	s.write(scratch)
	b := scratch.Bytes()
	if s.done == nil {
		s.done = make(map[string][]byte, 2)
	}
	s.done[codec] = b
	return b
}
