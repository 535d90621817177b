package jsonrpc

import "github.com/xenith/xenith/internal/wire"

// ParseValue decodes one JSON document into a wire.Value with the same
// rules and limits as request parsing. The object store uses it to read
// records back from disk.
func ParseValue(data []byte) (wire.Value, error) {
	d := newDecoder(data)
	defer d.release()
	v, err := d.value()
	if err != nil {
		return wire.Value{}, err
	}
	if err := d.end(); err != nil {
		return wire.Value{}, err
	}
	return v, nil
}
