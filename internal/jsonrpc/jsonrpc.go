// Package jsonrpc is XenAPI's JSON-RPC codec: it decodes calls (JSON-RPC 1.0
// and 2.0, as xapi accepts both at /jsonrpc) into wire.Values and appends
// responses in the exact shapes xapi sends.
//
// Shapes (as xapi and its ocaml-rpc library write them):
//
//	v1 success  {"result":R,"error":null,"id":ID}
//	v1 failure  {"result":null,"error":["CODE","p1",...],"id":ID}
//	v2 success  {"jsonrpc":"2.0","result":R,"id":ID}
//	v2 failure  {"jsonrpc":"2.0","error":{"code":1,"message":"CODE","data":["p1",...]},"id":ID}
//
// A void result is the empty string "", as in xapi. Xen Orchestra's connector
// depends on details of these shapes: a v2 success must not carry an "error"
// member at all (even null), a v1 success must carry "error":null, and the
// response must be served with Content-Type exactly ContentType.
package jsonrpc

import (
	"strconv"

	"github.com/xenith/xenith/internal/wire"
)

// ContentType is the media type of requests and responses. Xen Orchestra
// compares the response header with this exact string (no parameters such
// as charset) and falls back to XML-RPC if it differs.
const ContentType = "application/json"

// JSON-RPC 2.0 error codes for failures of the protocol itself. XenAPI
// failures are not among them: they carry their own string codes.
const (
	CodeParseError     = -32700 // not JSON, or JSON we refuse (depth, ranges)
	CodeInvalidRequest = -32600 // JSON, but not a request we accept
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
)

// xenapiErrorCode is the "code" of every XenAPI failure in a v2 error object.
// xapi always uses 1: clients read the XenAPI code from "message", and some
// JSON-RPC libraries take code 0 for "no error".
const xenapiErrorCode = 1

// Error is a JSON-RPC level error: ParseRequest returns one for a body it
// rejects (Code says which protocol error to answer with), and ParseResponse
// returns one for a malformed response or a protocol error sent by the peer.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string {
	return "jsonrpc: " + e.Message + " (" + strconv.Itoa(e.Code) + ")"
}

func invalid(msg string) *Error { return &Error{Code: CodeInvalidRequest, Message: msg} }

// Request is one decoded JSON-RPC call (v1.0 or v2.0).
type Request struct {
	Version int          // 1 or 2 ("jsonrpc":"2.0" present)
	Method  string       // e.g. "VM.get_all_records"
	Params  []wire.Value // positional params (XenAPI uses positional arrays)
	ID      []byte       // the raw JSON id as sent (nil if absent)
}

// ParseRequest decodes one call. Like xapi it requires an object with a
// string "method", an "id" that is a string or an integer (XenAPI has no
// notifications), "params" as an array ("params" may be absent or null in
// v2 only), and "jsonrpc", if present, to be "2.0". Other members are
// ignored. Batches (a top-level array) are refused, and so is a key repeated
// in any object: "last wins" would let a proxy that reads the first copy
// disagree with us about what was called.
//
// On error, the returned *Error's Code is the protocol error to answer with,
// and the Request holds the Version and ID if they could be read, so the
// answer can echo them (AppendProtocolError). Syntax errors leave it empty,
// as JSON-RPC 2.0 then asks for a null id.
func ParseRequest(data []byte) (Request, error) {
	d := newDecoder(data)
	req, err := d.request()
	d.release()
	if err != nil {
		return req, err
	}
	return req, nil
}

func (d *decoder) request() (Request, *Error) {
	switch d.peek() {
	case 0:
		if d.pos < len(d.data) {
			return Request{}, d.unexpected() // a NUL byte
		}
		return Request{}, &Error{Code: CodeParseError, Message: "empty body"}
	case '{':
	default:
		// Not an object: check it is JSON at all to pick the right code.
		isBatch := d.data[d.pos] == '['
		if _, err := d.value(); err != nil {
			return Request{}, err
		}
		if err := d.end(); err != nil {
			return Request{}, err
		}
		if isBatch {
			return Request{}, invalid("batch requests are not supported")
		}
		return Request{}, invalid("request is not a JSON object")
	}
	if err := d.enter(); err != nil {
		return Request{}, err
	}

	const (
		hasVer = 1 << iota
		hasMethod
		hasParams
		hasID
	)
	var (
		req  Request
		bad  *Error // first problem with the request's shape
		seen uint8
		// dupID: with two ids there is no telling which to echo, so
		// the error answer gets null, as for an unreadable id.
		dupID bool
	)
	note := func(e *Error) {
		if bad == nil {
			bad = e
		}
	}
	// once flags a member seen twice: which copy would count is exactly the
	// kind of ambiguity a proxy and a server can disagree on.
	once := func(flag uint8, name string) {
		if seen&flag != 0 {
			note(invalid("duplicate " + name + " member"))
		}
		seen |= flag
	}
	if d.peek() == '}' {
		d.pos++
	} else {
		for {
			if d.peek() != '"' {
				return Request{}, d.unexpected()
			}
			k, err := d.str()
			if err != nil {
				return Request{}, err
			}
			if err := d.expect(':'); err != nil {
				return Request{}, err
			}
			switch string(k) {
			case "jsonrpc":
				once(hasVer, `"jsonrpc"`)
				ok := false
				if d.peek() == '"' {
					s, err := d.str()
					if err != nil {
						return Request{}, err
					}
					ok = string(s) == "2.0" // compared in place: no allocation
				} else if _, err := d.value(); err != nil {
					return Request{}, err
				}
				if !ok {
					note(invalid(`"jsonrpc" must be "2.0"`))
				}
			case "method":
				once(hasMethod, `"method"`)
				v, err := d.value()
				if err != nil {
					return Request{}, err
				}
				if v.Kind != wire.KindString || v.Str == "" {
					note(invalid(`"method" must be a non-empty string`))
				}
				req.Method = v.Str
			case "params":
				if d.peek() == '[' {
					once(hasParams, `"params"`)
					a, err := d.array()
					if err != nil {
						return Request{}, err
					}
					req.Params = a
					break
				}
				v, err := d.value()
				if err != nil {
					return Request{}, err
				}
				// null stands for absent. xapi would take a v2
				// object as one struct argument; no XenAPI client
				// sends named parameters, so we refuse them plainly.
				if v.Kind != wire.KindNil {
					note(invalid(`"params" must be an array`))
				}
			case "id":
				if seen&hasID != 0 {
					dupID = true
				}
				once(hasID, `"id"`)
				d.ws()
				start := d.pos
				v, err := d.value()
				if err != nil {
					return Request{}, err
				}
				switch v.Kind {
				case wire.KindString, wire.KindInt:
					// Copied: callers may reuse the body buffer.
					req.ID = append([]byte(nil), d.data[start:d.pos]...)
				case wire.KindNil:
					// A notification; refused below.
				default:
					note(invalid(`"id" must be a string or an integer`))
				}
			default:
				if _, err := d.value(); err != nil {
					return Request{}, err
				}
			}
			c := d.peek()
			if c == '}' {
				d.pos++
				break
			}
			if c != ',' {
				return Request{}, d.unexpected()
			}
			d.pos++
		}
	}
	d.depth--
	if err := d.end(); err == d.dup && err != nil {
		note(err) // a well-formed body: answer with the id
	} else if err != nil {
		return Request{}, err
	}

	// Answer in the version the client asked for, even if it got the
	// "jsonrpc" value wrong: it evidently speaks 2.0.
	req.Version = 1
	if seen&hasVer != 0 {
		req.Version = 2
	}
	if seen&hasMethod == 0 {
		note(invalid(`missing "method"`))
	}
	if req.Version == 1 && seen&hasParams == 0 {
		note(invalid(`JSON-RPC 1.0 requires "params" as an array`))
	}
	if req.ID == nil {
		note(invalid(`missing or null "id": notifications are not supported`))
	}
	if dupID {
		req.ID = nil
	}
	if bad != nil {
		req.Params = nil
		return req, bad
	}
	return req, nil
}

func version(req *Request) int {
	if req != nil && req.Version == 1 {
		return 1
	}
	return 2
}

func appendID(dst []byte, req *Request) []byte {
	if req == nil || req.ID == nil {
		return append(dst, "null"...)
	}
	return append(dst, req.ID...)
}

// AppendResult appends the response to a successful call in the shape of
// req.Version. write must emit exactly one value, or none for a void result,
// which is sent as "" like xapi does. A nil req, or a nil write, is allowed.
func AppendResult(dst []byte, req *Request, write func(wire.Encoder)) []byte {
	v := version(req)
	if v == 2 {
		dst = append(dst, `{"jsonrpc":"2.0","result":`...)
	} else {
		dst = append(dst, `{"result":`...)
	}
	n := len(dst)
	if write != nil {
		e := Encoder{buf: dst}
		write(&e)
		dst = e.buf
	}
	if len(dst) == n {
		dst = append(dst, `""`...)
	}
	if v == 2 {
		dst = append(dst, `,"id":`...)
	} else {
		dst = append(dst, `,"error":null,"id":`...)
	}
	dst = appendID(dst, req)
	return append(dst, '}')
}

// AppendError appends the response for a XenAPI failure: desc[0] is the
// error code, desc[1:] its parameters. v1 sends the description as an array
// of strings; v2 as {"code":1,"message":desc[0],"data":desc[1:]}, which Xen
// Orchestra's XapiError.wrap reads as code=message, params=data. An empty
// desc is sent as INTERNAL_ERROR, since a failure must always carry a code.
func AppendError(dst []byte, req *Request, desc []string) []byte {
	code, params := "INTERNAL_ERROR", []string(nil)
	if len(desc) > 0 {
		code, params = desc[0], desc[1:]
	}
	if version(req) == 2 {
		dst = append(dst, `{"jsonrpc":"2.0","error":{"code":`...)
		dst = strconv.AppendInt(dst, xenapiErrorCode, 10)
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, code)
		dst = append(dst, `,"data":[`...)
		for i, p := range params {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, p)
		}
		dst = append(dst, `]},"id":`...)
	} else {
		dst = append(dst, `{"result":null,"error":[`...)
		dst = appendString(dst, code)
		for _, p := range params {
			dst = append(dst, ',')
			dst = appendString(dst, p)
		}
		dst = append(dst, `],"id":`...)
	}
	dst = appendID(dst, req)
	return append(dst, '}')
}

// AppendProtocolError appends a JSON-RPC level error (CodeParseError, ...)
// for a body that is not a valid request. The error is the object
// {"code":code,"message":msg} in both versions (JSON-RPC 1.0 leaves its
// shape open); req may be nil, which gives the v2 shape and a null id.
// Xen Orchestra surfaces it as a XapiError whose code is msg.
func AppendProtocolError(dst []byte, req *Request, code int, msg string) []byte {
	v := version(req)
	if v == 2 {
		dst = append(dst, `{"jsonrpc":"2.0","error":{"code":`...)
	} else {
		dst = append(dst, `{"result":null,"error":{"code":`...)
	}
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, msg)
	dst = append(dst, `},"id":`...)
	dst = appendID(dst, req)
	return append(dst, '}')
}

// AppendCall encodes a request: version 1 or 2 (anything else means 2).
// Params go through wire.Encode, so a KindNil param is sent as "".
func AppendCall(dst []byte, version int, id int64, method string, params []wire.Value) []byte {
	if version == 1 {
		dst = append(dst, `{"method":`...)
	} else {
		dst = append(dst, `{"jsonrpc":"2.0","method":`...)
	}
	dst = appendString(dst, method)
	dst = append(dst, `,"params":`...)
	e := Encoder{buf: dst}
	e.BeginArray()
	for _, p := range params {
		wire.Encode(&e, p)
	}
	e.EndArray()
	dst = append(e.buf, `,"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, '}')
}

// ParseResponse decodes a response. Exactly one of the results is set: the
// result Value (a void result is the string ""), the XenAPI error
// description (code first), or err. err is an *Error both for a malformed
// response and for a protocol error sent by the peer (its Code in the
// JSON-RPC reserved range -32768..-32000).
func ParseResponse(data []byte) (result wire.Value, errDesc []string, err error) {
	d := newDecoder(data)
	r, desc, e := d.response()
	d.release()
	if e != nil {
		return wire.Value{}, nil, e
	}
	return r, desc, nil
}

func badResponse(msg string) *Error {
	return &Error{Code: CodeInvalidRequest, Message: "invalid response: " + msg}
}

func (d *decoder) response() (wire.Value, []string, *Error) {
	if d.peek() == 0 && d.pos == len(d.data) {
		return wire.Value{}, nil, &Error{Code: CodeParseError, Message: "empty body"}
	}
	top, err := d.value()
	if err != nil {
		return wire.Value{}, nil, err
	}
	if err := d.end(); err != nil {
		return wire.Value{}, nil, err
	}
	if top.Kind != wire.KindStruct {
		return wire.Value{}, nil, badResponse("not a JSON object")
	}
	result, hasResult := top.Field("result")
	errv, hasErr := top.Field("error")
	ver, hasVer := top.Field("jsonrpc")
	if hasVer && (ver.Kind != wire.KindString || ver.Str != "2.0") {
		return wire.Value{}, nil, badResponse(`"jsonrpc" must be "2.0"`)
	}
	// v1 sends "error":null on success; v2 omits it. Both mean no error.
	if hasErr && errv.Kind == wire.KindNil {
		hasErr = false
	}
	if !hasErr {
		if !hasResult {
			return wire.Value{}, nil, badResponse(`neither "result" nor "error"`)
		}
		return result, nil, nil
	}
	if hasResult && (hasVer || result.Kind != wire.KindNil) {
		return wire.Value{}, nil, badResponse(`both "result" and "error"`)
	}
	switch errv.Kind {
	case wire.KindArray: // v1 XenAPI failure: [code, params...]
		desc, ok := stringsOf(errv.Array)
		if !ok || len(desc) == 0 {
			return wire.Value{}, nil, badResponse(`"error" must be a non-empty array of strings`)
		}
		return wire.Value{}, desc, nil
	case wire.KindStruct:
		code, ok1 := errv.Field("code")
		msg, ok2 := errv.Field("message")
		if !ok1 || code.Kind != wire.KindInt || !ok2 || msg.Kind != wire.KindString {
			return wire.Value{}, nil, badResponse(`"error" needs an integer "code" and a string "message"`)
		}
		if code.Int >= -32768 && code.Int <= -32000 {
			return wire.Value{}, nil, &Error{Code: int(code.Int), Message: msg.Str}
		}
		desc := []string{msg.Str}
		if data, ok := errv.Field("data"); ok && data.Kind != wire.KindNil {
			params, ok := stringsOf(data.Array)
			if data.Kind != wire.KindArray || !ok {
				return wire.Value{}, nil, badResponse(`"error.data" must be an array of strings`)
			}
			desc = append(desc, params...)
		}
		return wire.Value{}, desc, nil
	}
	return wire.Value{}, nil, badResponse(`"error" must be an array or an object`)
}

// stringsOf returns the Str of each value, or false if one is not a string.
func stringsOf(vs []wire.Value) ([]string, bool) {
	out := make([]string, len(vs))
	for i, v := range vs {
		if v.Kind != wire.KindString {
			return nil, false
		}
		out[i] = v.Str
	}
	return out, true
}
