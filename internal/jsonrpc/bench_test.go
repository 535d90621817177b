package jsonrpc

import (
	"strconv"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/wire"
)

func BenchmarkParseRequest(b *testing.B) {
	cases := []struct {
		name string
		body []byte
	}{
		{"login", []byte(`{"id":0,"jsonrpc":"2.0","method":"session.login_with_password","params":["root","secret"]}`)},
		{"event.from", []byte(`{"id":0,"jsonrpc":"2.0","method":"event.from","params":["OpaqueRef:6c0e2e74-95e0-4c4b-9a5e-6a1bb2d0c2aa",["vm","host","task","pool","sr","vdi","vbd","vif","network","pif","message"],"1723,98",60.1]}`)},
		{"VM.create", AppendCall(nil, 2, 1, "VM.create", []wire.Value{wire.String("OpaqueRef:s"), sampleRecord()})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, err := ParseRequest(c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// mixedFields are the names and kinds of a 100-member record resembling a
// VM record: mostly strings and refs, some ints, floats, bools, datetimes,
// sets and string maps.
type field struct {
	name string
	kind int
}

var mixedFields = func() []field {
	fs := make([]field, 100)
	for i := range fs {
		fs[i] = field{name: "field_name_" + strconv.Itoa(i), kind: i % 10}
	}
	return fs
}()

var benchTime = time.Date(2025, 3, 19, 4, 16, 24, 0, time.UTC)

// writeMixed encodes one record the way a generated encoder does.
func writeMixed(e wire.Encoder, n int) {
	e.BeginStruct()
	for _, f := range mixedFields {
		e.Member(f.name)
		switch f.kind {
		case 0, 1, 2:
			e.String("OpaqueRef:5b3a4c8e-9d0f-4e6a-8c3b-2a1d0e9f8b7c")
		case 3:
			e.String("a name with \"quotes\" and é")
		case 4:
			e.Int(int64(n) * 8589934592)
		case 5:
			e.Float(float64(n) * 0.25)
		case 6:
			e.Bool(n%2 == 0)
		case 7:
			e.DateTime(benchTime)
		case 8:
			e.BeginArray()
			e.String("OpaqueRef:aaaa")
			e.String("OpaqueRef:bbbb")
			e.EndArray()
		case 9:
			e.BeginStruct()
			e.Member("folder")
			e.String("/lab")
			e.Member("auto_poweron")
			e.String("true")
			e.EndStruct()
		}
	}
	e.EndStruct()
}

func BenchmarkEncodeStruct(b *testing.B) {
	b.ReportAllocs()
	var e Encoder
	e.Reset(make([]byte, 0, 1<<16))
	var we wire.Encoder = &e
	for b.Loop() {
		e.Reset(e.Bytes()[:0])
		writeMixed(we, 7)
	}
	b.SetBytes(int64(len(e.Bytes())))
}

// BenchmarkEncode10kRecords is a pool.get_all_records-sized answer: 10,000
// records of 100 fields, as a map from ref to record, through AppendResult
// into a reused buffer.
func BenchmarkEncode10kRecords(b *testing.B) {
	b.ReportAllocs()
	refs := make([]string, 10000)
	for i := range refs {
		refs[i] = "OpaqueRef:00000000-0000-0000-0000-" + strconv.Itoa(100000000000+i)
	}
	req := &Request{Version: 2, ID: []byte("0")}
	// The server reuses pooled buffers, so measure encoding, not growth.
	buf := make([]byte, 0, 64<<20)
	for b.Loop() {
		// Through the interface, as generated encoders will call it.
		buf = AppendResult(buf[:0], req, func(e wire.Encoder) {
			e.BeginStruct()
			for i, ref := range refs {
				e.Member(ref)
				writeMixed(e, i)
			}
			e.EndStruct()
		})
	}
	b.SetBytes(int64(len(buf)))
}
