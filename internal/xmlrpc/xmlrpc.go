// Package xmlrpc is XenAPI's XML-RPC codec: a hand-written decoder for
// <methodCall> and <methodResponse> documents into wire.Values, and a
// streaming wire.Encoder that appends XML-RPC straight to a byte slice.
//
// The decoder accepts only the small grammar XML-RPC needs. It never reads a
// DTD or expands an entity other than the five predefined ones and numeric
// character references, bounds nesting at wire.MaxDepth and rejects invalid
// UTF-8, so hostile bodies cost at most one linear pass. Elements must not
// carry attributes. CDATA sections are accepted wherever text is, comments
// wherever whitespace or text is. Input size is the caller's to bound: the
// densest document (<value/> after <value/>) decodes to about 11 bytes of
// wire.Value per input byte.
//
// The encoder writes what xapi writes (ocaml-rpc's Xmlrpc module): strings
// and 64-bit ints as untyped <value>text</value>, no whitespace between
// elements, and a response struct {Status, Value|ErrorDescription}.
package xmlrpc

import (
	"strconv"

	"github.com/xenith/xenith/internal/wire"
)

// Call is a decoded <methodCall>.
type Call struct {
	Method string
	Params []wire.Value
}

// SyntaxError reports a malformed or refused document. Offset is the byte
// position in the input where the decoder gave up.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "xmlrpc: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// Fault is a standard XML-RPC <fault> returned by ParseResponse. XenAPI
// servers answer failures with Status "Failure" instead; a Fault means the
// peer could not read the request at all.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string {
	return "xmlrpc: fault " + strconv.Itoa(f.Code) + ": " + f.String
}
