package xapi

import (
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// scalarString renders a wire value the way xapi's database holds it as a
// string, which is what get_all_records_where compares against: scalars as
// their text, sets and maps as s-expressions of quoted strings.
func scalarString(v wire.Value) string {
	switch v.Kind {
	case wire.KindString, wire.KindDateTime:
		return v.Str
	case wire.KindInt:
		return strconv.FormatInt(v.Int, 10)
	case wire.KindFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case wire.KindBool:
		return strconv.FormatBool(v.Bool)
	case wire.KindArray:
		parts := make([]string, len(v.Array))
		for i, x := range v.Array {
			parts[i] = "'" + scalarString(x) + "'"
		}
		return "(" + strings.Join(parts, " ") + ")"
	case wire.KindStruct:
		parts := make([]string, len(v.Struct))
		for i, m := range v.Struct {
			parts[i] = "('" + m.Name + "' '" + scalarString(m.Value) + "')"
		}
		return "(" + strings.Join(parts, " ") + ")"
	}
	return ""
}

// roleOrder lists the roles from most to least powerful, with their names.
var roleOrder = []struct {
	name string
	bit  xenapi.Role
}{
	{"pool-admin", xenapi.RolePoolAdmin},
	{"pool-operator", xenapi.RolePoolOperator},
	{"vm-power-admin", xenapi.RoleVMPowerAdmin},
	{"vm-admin", xenapi.RoleVMAdmin},
	{"vm-operator", xenapi.RoleVMOperator},
	{"read-only", xenapi.RoleReadOnly},
}
