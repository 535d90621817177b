package wire_test

import (
	"sync"
	"testing"

	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// A spliced value must produce exactly the bytes of writing it in place,
// wherever it sits: first or later in an array, as a struct member.
func TestSharedSplicesLikeDirectEncoding(t *testing.T) {
	t.Parallel()
	value := func(e wire.Encoder) {
		e.BeginStruct()
		e.Member("name")
		e.String("a <b> & \"c\"")
		e.Member("list")
		e.BeginArray()
		e.Int(1)
		e.Int32(2)
		e.EndArray()
		e.EndStruct()
	}
	shared := wire.NewShared(value)
	around := func(e wire.Encoder, inner func(wire.Encoder)) {
		e.BeginArray()
		inner(e)
		inner(e)
		e.BeginStruct()
		e.Member("x")
		inner(e)
		e.Member("y")
		e.Bool(true)
		e.EndStruct()
		e.EndArray()
	}
	codecs := []struct {
		name string
		enc  func() interface {
			wire.Encoder
			Bytes() []byte
		}
	}{
		{"jsonrpc", func() interface {
			wire.Encoder
			Bytes() []byte
		} {
			return &jsonrpc.Encoder{}
		}},
		{"xmlrpc", func() interface {
			wire.Encoder
			Bytes() []byte
		} {
			return &xmlrpc.Encoder{}
		}},
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			direct, spliced := c.enc(), c.enc()
			around(direct, value)
			var wg sync.WaitGroup
			for range 8 { // concurrent first uses encode once, safely
				wg.Add(1)
				go func() { defer wg.Done(); shared.Encode(c.enc()) }()
			}
			wg.Wait()
			around(spliced, shared.Encode)
			if string(direct.Bytes()) != string(spliced.Bytes()) {
				t.Fatalf("spliced differs:\n got %s\nwant %s", spliced.Bytes(), direct.Bytes())
			}
		})
	}
	// An encoder that cannot splice gets the value written into it.
	var b wire.Builder
	shared.Encode(&b)
	if v := b.Value(); v.Kind != wire.KindStruct || len(v.Struct) != 2 {
		t.Fatalf("builder got %+v", v)
	}
}

// A prepared Name must encode exactly like Member with the same text.
func TestNameEncodesLikeMember(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"uuid", "name_label", "VCPUs_at_startup", "other-config", "a.b"} {
		n := wire.NewName(name)
		for _, mk := range []func() interface {
			wire.Encoder
			Bytes() []byte
		}{
			func() interface {
				wire.Encoder
				Bytes() []byte
			} {
				return &jsonrpc.Encoder{}
			},
			func() interface {
				wire.Encoder
				Bytes() []byte
			} {
				return &xmlrpc.Encoder{}
			},
		} {
			a, b := mk(), mk()
			for _, e := range []wire.Encoder{a, b} {
				e.BeginStruct()
				e.Member("first")
				e.Int(1)
			}
			a.Member(name)
			b.Name(n)
			for _, e := range []wire.Encoder{a, b} {
				e.String("v")
				e.EndStruct()
			}
			if string(a.Bytes()) != string(b.Bytes()) {
				t.Fatalf("%q: Name gives %s, Member %s", name, b.Bytes(), a.Bytes())
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("NewName accepted a name that needs escaping")
		}
	}()
	wire.NewName(`a"b`)
}
