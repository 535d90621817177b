package xenops

import (
	"strconv"

	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// The wire: XML-RPC or JSON-RPC, with the xenopsd framing of answers.
// XML-RPC answers are {Status: "Success", Value: v} or {Status: "Failure",
// ErrorDescription: <error variant>}; JSON-RPC answers carry the value in
// "result" or the error variant in "error" (in JSON-RPC 2.0, an error
// object whose message is the variant's name and data the variant).

const xmlHead = `<?xml version="1.0"?><methodResponse><params><param>`
const xmlTail = `</param></params></methodResponse>`

// xmlEncoder writes a wire.Value with xenopsd's typing: int64 as <i8>,
// unit as <nil/>.
func encodeXML(e *xmlrpc.Encoder, v wire.Value) {
	switch v.Kind {
	case wire.KindInt:
		b := append([]byte("<value><i8>"), strconv.FormatInt(v.Int, 10)...)
		e.Splice(append(b, "</i8></value>"...))
	case wire.KindNil:
		e.Splice([]byte("<value><nil/></value>"))
	case wire.KindArray:
		e.BeginArray()
		for _, x := range v.Array {
			encodeXML(e, x)
		}
		e.EndArray()
	case wire.KindStruct:
		e.BeginStruct()
		for _, m := range v.Struct {
			e.Member(m.Name)
			encodeXML(e, m.Value)
		}
		e.EndStruct()
	default:
		wire.Encode(e, v)
	}
}

func encodeJSON(e *jsonrpc.Encoder, v wire.Value) {
	switch v.Kind {
	case wire.KindNil:
		e.Splice([]byte("null"))
	case wire.KindArray:
		e.BeginArray()
		for _, x := range v.Array {
			encodeJSON(e, x)
		}
		e.EndArray()
	case wire.KindStruct:
		e.BeginStruct()
		for _, m := range v.Struct {
			e.Member(m.Name)
			encodeJSON(e, m.Value)
		}
		e.EndStruct()
	default:
		wire.Encode(e, v)
	}
}

// JSON renders a value as JSON text (export_metadata, failed tasks).
func JSON(v wire.Value) string {
	var e jsonrpc.Encoder
	encodeJSON(&e, v)
	return string(e.Bytes())
}

// AppendXMLResponse appends an XML-RPC answer: the value, or the error.
func AppendXMLResponse(dst []byte, v wire.Value, err *Error) []byte {
	dst = append(dst, xmlHead...)
	var e xmlrpc.Encoder
	e.Reset(dst)
	if err != nil {
		encodeXML(&e, wire.Struct(mem("Status", wire.String("Failure")), mem("ErrorDescription", err.Value())))
	} else {
		encodeXML(&e, wire.Struct(mem("Status", wire.String("Success")), mem("Value", v)))
	}
	return append(e.Bytes(), xmlTail...)
}

// AppendJSONResponse appends a JSON-RPC answer in the request's version.
func AppendJSONResponse(dst []byte, req *jsonrpc.Request, v wire.Value, err *Error) []byte {
	v2 := req == nil || req.Version != 1
	if err == nil {
		return jsonrpc.AppendResult(dst, req, func(e wire.Encoder) { encodeJSON(e.(*jsonrpc.Encoder), v) })
	}
	var e jsonrpc.Encoder
	if v2 {
		dst = append(dst, `{"jsonrpc":"2.0","error":`...)
		e.Reset(dst)
		encodeJSON(&e, wire.Struct(mem("code", wire.Int(1)), mem("message", wire.String(err.Name)), mem("data", err.Value())))
	} else {
		dst = append(dst, `{"result":null,"error":`...)
		e.Reset(dst)
		encodeJSON(&e, err.Value())
	}
	dst = append(e.Bytes(), `,"id":`...)
	if req == nil || req.ID == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, req.ID...)
	}
	return append(dst, '}')
}
