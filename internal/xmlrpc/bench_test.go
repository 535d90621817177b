package xmlrpc

import (
	"os"
	"testing"

	"github.com/xenith/xenith/internal/wire"
)

// BenchmarkParseCall decodes a VM.get_record call as Python's
// xmlrpc.client (the XenAPI.py transport) sends it.
func BenchmarkParseCall(b *testing.B) {
	data, err := os.ReadFile("testdata/call/python_vm_get_record.xml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseCall(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeStruct encodes one struct of 100 mixed members into a
// reused buffer, the unit of work of a get_all_records answer.
func BenchmarkEncodeStruct(b *testing.B) {
	b.ReportAllocs()
	var e Encoder
	for b.Loop() {
		e.Reset(e.Bytes()[:0])
		wideRecord(&e, 12345)
	}
	b.SetBytes(int64(len(e.Bytes())))
}

// BenchmarkEncodeRecords10k encodes a whole 10,000-record response (~97 MB)
// streamed through a 64 KiB buffer, as the server sends large answers.
// (Accumulating it in one growing slice costs more than the encoding.)
func BenchmarkEncodeRecords10k(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 80<<10)
	var total int
	for b.Loop() {
		total = 0
		buf = AppendSuccess(buf[:0], func(w wire.Encoder) {
			e := w.(*Encoder)
			e.BeginStruct()
			for i := range 10000 {
				e.Member(refNames[i])
				wideRecord(e, i)
				if len(e.Bytes()) > 64<<10 {
					total += len(e.Bytes())
					e.Reset(e.Bytes()[:0])
				}
			}
			e.EndStruct()
		})
		total += len(buf)
	}
	b.SetBytes(int64(total))
}

// BenchmarkParseResponseRecord decodes a success response holding one
// 100-member record, what the Go client sees for VM.get_record.
func BenchmarkParseResponseRecord(b *testing.B) {
	data := AppendSuccess(nil, func(e wire.Encoder) { wideRecord(e, 1) })
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseResponse(data); err != nil {
			b.Fatal(err)
		}
	}
}
