package xecli

import (
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// toWire converts a command-line string to a value of the XenAPI type t:
// numbers and booleans parsed, enums matched case-insensitively, objects
// named by uuid looked up (an empty string is the null reference), sets
// given comma-separated.
func (x *Ctx) toWire(name string, t *xenapi.Type, s string) (wire.Value, error) {
	switch t.Kind {
	case xenapi.TString:
		return wire.String(s), nil
	case xenapi.TInt:
		n, err := parseSize(s)
		if err != nil {
			return wire.Value{}, failf("Parameter %s must be an integer, not '%s'", name, s)
		}
		return wire.Int(n), nil
	case xenapi.TFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return wire.Value{}, failf("Parameter %s must be a floating-point number, not '%s'", name, s)
		}
		return wire.Float(f), nil
	case xenapi.TBool:
		b, err := parseBool(name, s)
		if err != nil {
			return wire.Value{}, err
		}
		return wire.Bool(b), nil
	case xenapi.TDateTime:
		if _, err := wire.ParseDateTime(s); err != nil {
			return wire.Value{}, failf("Parameter %s must be a date and time (YYYYMMDDThh:mm:ssZ), not '%s'", name, s)
		}
		return wire.Value{Kind: wire.KindDateTime, Str: s}, nil
	case xenapi.TEnum:
		for _, e := range t.Enum {
			if strings.EqualFold(e, s) {
				return wire.String(e), nil
			}
		}
		return wire.Value{}, failf("Parameter %s must be one of %s, not '%s'", name, strings.Join(t.Enum, ", "), s)
	case xenapi.TRef:
		if s == "" {
			return wire.String(string(xenapi.NullRef)), nil
		}
		ref, err := x.refOf(t.Name, s)
		if err != nil {
			return wire.Value{}, err
		}
		return wire.String(ref), nil
	case xenapi.TSet:
		var elems []wire.Value
		for _, part := range splitList(s) {
			v, err := x.toWire(name, t.Elem, part)
			if err != nil {
				return wire.Value{}, err
			}
			elems = append(elems, v)
		}
		return wire.Array(elems...), nil
	case xenapi.TMap:
		var members []wire.Member
		for _, part := range splitList(s) {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				k, v, ok = strings.Cut(part, ":")
			}
			if !ok {
				return wire.Value{}, failf("Parameter %s must be a list of key=value pairs, not '%s'", name, s)
			}
			wv, err := x.toWire(name, t.Elem, strings.TrimSpace(v))
			if err != nil {
				return wire.Value{}, err
			}
			members = append(members, wire.Member{Name: strings.TrimSpace(k), Value: wv})
		}
		return wire.Struct(members...), nil
	case xenapi.TOption:
		return x.toWire(name, t.Elem, s)
	}
	return wire.Value{}, failf("Parameter %s has type %s, which xe cannot read from the command line", name, t)
}

// refOf looks an object up by uuid.
func (x *Ctx) refOf(class, uuid string) (string, error) {
	v, err := x.s.Do(x.ctx, class+".get_by_uuid", wire.String(uuid))
	if err != nil {
		return "", err
	}
	return v.Str, nil
}

// splitList splits a comma-separated list, dropping empty items (so ""
// is the empty list).
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// sizeUnits are the suffixes xe accepts on sizes (binary multiples).
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// parseSize reads an integer, optionally with a size suffix (512MiB, 4G).
func parseSize(s string) (int64, error) {
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok && num != "" {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				return 0, err
			}
			if n > (1<<63-1)/u.mult || n < -(1<<63-1)/u.mult {
				return 0, strconv.ErrRange
			}
			return n * u.mult, nil
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// sizeArg reads a required size argument of a command.
func (x *Ctx) sizeArg(name string) (int64, error) {
	s := x.param(name)
	n, err := parseSize(s)
	if err != nil || n < 0 {
		return 0, usagef(x.cmd.Name, "Parameter %s must be a size in bytes (suffixes KiB, MiB, GiB, TiB allowed), not '%s'", name, s)
	}
	return n, nil
}
