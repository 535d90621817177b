package xenapi

import (
	"cmp"
	"iter"
	"slices"
	"unique"
)

// Map is a XenAPI map held as pairs sorted by key, each key once. Records
// carry thousands of small maps (other_config, platform, sm_config...): as
// a sorted slice a map takes well under half the memory of a Go map and is
// encoded by a plain loop, which matters for get_all_records.
//
// A Map is a value. With and Without return a new Map and never change the
// one they are called on, so records that share a map after a shallow
// Clone stay independent. The zero Map is the empty map.
type Map[K cmp.Ordered, V any] []Pair[K, V]

// Pair is one entry of a Map.
type Pair[K cmp.Ordered, V any] struct {
	Key   K
	Value V
}

// MapOf copies a Go map into a Map.
func MapOf[K cmp.Ordered, V any](m map[K]V) Map[K, V] {
	if len(m) == 0 {
		return nil
	}
	out := make(Map[K, V], 0, len(m))
	for k, v := range m {
		out = append(out, Pair[K, V]{k, v})
	}
	slices.SortFunc(out, func(a, b Pair[K, V]) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// MapFrom builds a Map from key, value, key, value... strings, for literals.
func MapFrom(kv ...string) Map[string, string] {
	out := make(Map[string, string], 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = out.With(kv[i], kv[i+1])
	}
	return out
}

func (m Map[K, V]) find(k K) (int, bool) {
	return slices.BinarySearchFunc(m, k, func(p Pair[K, V], k K) int { return cmp.Compare(p.Key, k) })
}

// Lookup returns the value of k and whether k is present.
func (m Map[K, V]) Lookup(k K) (V, bool) {
	if i, ok := m.find(k); ok {
		return m[i].Value, true
	}
	var zero V
	return zero, false
}

// Get returns the value of k, or the zero value if k is absent.
func (m Map[K, V]) Get(k K) V {
	v, _ := m.Lookup(k)
	return v
}

// Has reports whether k is present.
func (m Map[K, V]) Has(k K) bool {
	_, ok := m.find(k)
	return ok
}

// With returns a copy of m in which k maps to v.
func (m Map[K, V]) With(k K, v V) Map[K, V] {
	i, ok := m.find(k)
	if ok {
		out := slices.Clone(m)
		out[i].Value = v
		return out
	}
	out := make(Map[K, V], 0, len(m)+1)
	out = append(out, m[:i]...)
	out = append(out, Pair[K, V]{k, v})
	return append(out, m[i:]...)
}

// Without returns a copy of m without k (m itself if k is absent).
func (m Map[K, V]) Without(k K) Map[K, V] {
	i, ok := m.find(k)
	if !ok {
		return m
	}
	out := make(Map[K, V], 0, len(m)-1)
	out = append(out, m[:i]...)
	return append(out, m[i+1:]...)
}

// Merge returns a copy of m with every entry of other set in it.
func (m Map[K, V]) Merge(other Map[K, V]) Map[K, V] {
	out := m
	for _, p := range other {
		out = out.With(p.Key, p.Value)
	}
	return out
}

// All iterates over the entries in key order.
func (m Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for _, p := range m {
			if !yield(p.Key, p.Value) {
				return
			}
		}
	}
}

// Keys iterates over the keys in order.
func (m Map[K, V]) Keys() iter.Seq[K] {
	return func(yield func(K) bool) {
		for _, p := range m {
			if !yield(p.Key) {
				return
			}
		}
	}
}

// Go returns the entries as a Go map.
func (m Map[K, V]) Go() map[K]V {
	out := make(map[K]V, len(m))
	for _, p := range m {
		out[p.Key] = p.Value
	}
	return out
}

// sortMap orders decoded pairs by key; of duplicate keys the last wins, as
// it would in a Go map filled in wire order.
func sortMap[K cmp.Ordered, V any](m Map[K, V]) Map[K, V] {
	slices.SortStableFunc(m, func(a, b Pair[K, V]) int { return cmp.Compare(a.Key, b.Key) })
	out := m[:0]
	for i, p := range m {
		if i+1 < len(m) && m[i+1].Key == p.Key {
			continue
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}

// intern returns a shared copy of a short, often repeated string (map keys,
// flags such as "true"), so thousands of records loaded from disk hold one
// copy each instead of one per record.
func intern(s string) string {
	if len(s) > 32 {
		return s
	}
	return unique.Make(s).Value()
}
