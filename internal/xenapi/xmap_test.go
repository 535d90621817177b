package xenapi

import (
	"slices"
	"testing"

	"github.com/xenith/xenith/internal/wire"
)

func TestMapOperations(t *testing.T) {
	t.Parallel()
	base := MapFrom("b", "2", "a", "1", "c", "3")
	if got := slices.Collect(base.Keys()); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("keys not sorted: %v", got)
	}
	tests := []struct {
		name string
		m    Map[string, string]
		want Map[string, string]
	}{
		{"with new key in the middle", base.With("bb", "x"), MapFrom("a", "1", "b", "2", "bb", "x", "c", "3")},
		{"with new first key", base.With("0", "x"), MapFrom("0", "x", "a", "1", "b", "2", "c", "3")},
		{"with existing key", base.With("b", "x"), MapFrom("a", "1", "b", "x", "c", "3")},
		{"without present key", base.Without("a"), MapFrom("b", "2", "c", "3")},
		{"without absent key", base.Without("z"), base},
		{"merge", base.Merge(MapFrom("c", "x", "d", "4")), MapFrom("a", "1", "b", "2", "c", "x", "d", "4")},
		{"of go map", MapOf(map[string]string{"c": "3", "a": "1", "b": "2"}), base},
		{"of empty go map", MapOf(map[string]string{}), nil},
	}
	for _, tc := range tests {
		if !slices.Equal(tc.m, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.m, tc.want)
		}
	}
	// Maps are values: nothing above changed base.
	if !slices.Equal(base, MapFrom("a", "1", "b", "2", "c", "3")) {
		t.Fatalf("base changed: %v", base)
	}
	if v, ok := base.Lookup("b"); !ok || v != "2" {
		t.Fatalf("Lookup(b) = %q, %v", v, ok)
	}
	if _, ok := base.Lookup("zz"); ok || base.Get("zz") != "" || base.Has("zz") || !base.Has("c") {
		t.Fatal("absent key found")
	}
	var empty Map[string, string]
	if empty.Get("a") != "" || len(empty.With("a", "1")) != 1 || empty.Go() == nil {
		t.Fatal("zero Map misbehaves")
	}
}

func TestDecMapSortsAndKeepsLastDuplicate(t *testing.T) {
	t.Parallel()
	v := wire.Struct(
		wire.Member{Name: "z", Value: wire.String("1")},
		wire.Member{Name: "a", Value: wire.String("first")},
		wire.Member{Name: "m", Value: wire.String("2")},
		wire.Member{Name: "a", Value: wire.String("last")},
	)
	want := MapFrom("a", "last", "m", "2", "z", "1")
	got, err := DecStringMap(v)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("DecStringMap = %v, %v; want %v", got, err, want)
	}
	generic, err := DecMap(KeyString, DecString)(v)
	if err != nil || !slices.Equal(generic, want) {
		t.Fatalf("DecMap = %v, %v; want %v", generic, err, want)
	}
	ints, err := DecMap(KeyInt, DecFloat)(wire.Struct(
		wire.Member{Name: "10", Value: wire.Float(1)}, wire.Member{Name: "9", Value: wire.Float(2)}))
	if err != nil || len(ints) != 2 || ints[0].Key != 9 {
		t.Fatalf("int keys sort numerically: %v, %v", ints, err)
	}
	if _, err := DecStringMap(wire.String("x")); err == nil {
		t.Fatal("a string decoded as a map")
	}
}

func TestEncMapInKeyOrder(t *testing.T) {
	t.Parallel()
	var b wire.Builder
	EncStringMap(&b, MapFrom("b", "2", "a", "1"))
	v := b.Value()
	if len(v.Struct) != 2 || v.Struct[0].Name != "a" || v.Struct[1].Value.Str != "2" {
		t.Fatalf("encoded %+v", v)
	}
}
