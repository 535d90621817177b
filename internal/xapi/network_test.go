package xapi

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// netT is a server with a root session, for the networking tests.
type netT struct {
	e *env
	s *client.Session
}

func newNetT(t *testing.T, p client.Protocol) *netT {
	t.Helper()
	e := newEnv(t, Config{})
	return &netT{e: e, s: e.login(t, p, "root", "pw")}
}

// netArg turns Go values into call arguments.
func netArg(a any) wire.Value {
	switch v := a.(type) {
	case wire.Value:
		return v
	case string:
		return wire.String(v)
	case int:
		return wire.Int(int64(v))
	case bool:
		return wire.Bool(v)
	case []string:
		out := make([]wire.Value, len(v))
		for i, s := range v {
			out[i] = wire.String(s)
		}
		return wire.Array(out...)
	case map[string]string:
		var m []wire.Member
		for _, k := range slices.Sorted(maps.Keys(v)) {
			m = append(m, wire.Member{Name: k, Value: wire.String(v[k])})
		}
		return wire.Struct(m...)
	}
	panic("netArg: unsupported type")
}

func (n *netT) call(method string, args ...any) (wire.Value, error) {
	vals := make([]wire.Value, len(args))
	for i, a := range args {
		vals[i] = netArg(a)
	}
	return n.s.Do(context.Background(), method, vals...)
}

func (n *netT) do(t *testing.T, method string, args ...any) wire.Value {
	t.Helper()
	v, err := n.call(method, args...)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return v
}

// get reads one field of an object through the API, as its text.
func (n *netT) get(t *testing.T, class, ref, name string) string {
	t.Helper()
	return scalarString(n.do(t, class+".get_"+name, ref))
}

// recField reads one field of an object's record, as its text.
func (n *netT) recField(t *testing.T, class, ref, name string) string {
	t.Helper()
	v, _ := n.do(t, class+".get_record", ref).Field(name)
	return scalarString(v)
}

// getRefs reads a set field of an object through the API.
func (n *netT) getRefs(t *testing.T, class, ref, name string) []string {
	t.Helper()
	var out []string
	for _, v := range n.do(t, class+".get_"+name, ref).Array {
		out = append(out, v.Str)
	}
	slices.Sort(out)
	return out
}

func sortedRefs(refs ...string) []string {
	out := slices.Clone(refs)
	slices.Sort(out)
	return out
}

// modify changes a record directly in the store (for states the API
// reaches only through the domain manager or HA).
func (n *netT) modify(t *testing.T, c *xenapi.Class, ref string, fn func(r xenapi.Record)) {
	t.Helper()
	err := n.e.store.Update(context.Background(), func(tx *store.Tx) error {
		return tx.Modify(c, xenapi.Ref(ref), func(r xenapi.Record) error { fn(r); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
}

// insert creates a record directly in the store.
func (n *netT) insert(t *testing.T, rec xenapi.Record) string {
	t.Helper()
	var ref xenapi.Ref
	err := n.e.store.Update(context.Background(), func(tx *store.Tx) error {
		var err error
		ref, err = tx.Create(rec)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(ref)
}

func (n *netT) exists(c *xenapi.Class, ref string) bool {
	_, err := n.e.store.Get(c, xenapi.Ref(ref))
	return err == nil
}

func (n *netT) host(t *testing.T) string { return string(n.e.srv.hostRef) }

// mgmtPIF returns the inventory's management PIF (eth0).
func (n *netT) mgmtPIF(t *testing.T) string {
	t.Helper()
	for _, p := range n.do(t, "PIF.get_all").Array {
		if n.get(t, "PIF", p.Str, "management") == "true" {
			return p.Str
		}
	}
	t.Fatal("no management PIF")
	return ""
}

func (n *netT) network(t *testing.T, name string) string {
	t.Helper()
	return n.do(t, "network.create", map[string]string{"name_label": name}).Str
}

// phys introduces a detached physical PIF on a new network of its own.
func (n *netT) phys(t *testing.T, device, mac string) (pif, net string) {
	t.Helper()
	return n.physOn(t, device, mac, n.host(t), true)
}

func (n *netT) physOn(t *testing.T, device, mac, host string, managed bool) (pif, net string) {
	t.Helper()
	net = n.network(t, "net-"+device)
	pif = n.do(t, "PIF.db_introduce", device, net, host, mac, 1500, -1, true, "None", "", "", "", "",
		string(xenapi.NullRef), string(xenapi.NullRef), false, map[string]string{}, false, "None", []string{}, "", "IPv4", managed,
		map[string]string{}).Str
	return pif, net
}

func (n *netT) vm(t *testing.T, name string) string {
	t.Helper()
	return n.do(t, "VM.create", vmRecord(name)).Str
}

func (n *netT) vif(vm, net, device, mac string) (wire.Value, error) {
	return n.call("VIF.create", wire.Struct(
		wire.Member{Name: "device", Value: wire.String(device)},
		wire.Member{Name: "network", Value: wire.String(net)},
		wire.Member{Name: "VM", Value: wire.String(vm)},
		wire.Member{Name: "MAC", Value: wire.String(mac)},
		wire.Member{Name: "MTU", Value: wire.String("0")},
		wire.Member{Name: "other_config", Value: wire.Struct()},
		wire.Member{Name: "qos_algorithm_type", Value: wire.String("")},
		wire.Member{Name: "qos_algorithm_params", Value: wire.Struct()},
	))
}

func (n *netT) mustVIF(t *testing.T, vm, net, device string) string {
	t.Helper()
	v, err := n.vif(vm, net, device, "")
	if err != nil {
		t.Fatalf("VIF.create: %v", err)
	}
	return v.Str
}

// runVM makes a VM look running on this host, with its VIFs attached.
func (n *netT) runVM(t *testing.T, vm string, vifs ...string) {
	t.Helper()
	host := n.e.srv.hostRef
	n.modify(t, api.ClassVM, vm, func(r xenapi.Record) {
		v := r.(*api.VM)
		v.PowerState, v.Domid, v.ResidentOn = api.VMPowerStateRunning, 7, host
	})
	for _, v := range vifs {
		n.modify(t, api.ClassVIF, v, func(r xenapi.Record) { r.(*api.VIF).CurrentlyAttached = true })
	}
}

func (n *netT) haltVM(t *testing.T, vm string, vifs ...string) {
	t.Helper()
	n.modify(t, api.ClassVM, vm, func(r xenapi.Record) {
		v := r.(*api.VM)
		v.PowerState, v.Domid, v.ResidentOn = api.VMPowerStateHalted, -1, xenapi.NullRef
	})
	for _, v := range vifs {
		n.modify(t, api.ClassVIF, v, func(r xenapi.Record) { r.(*api.VIF).CurrentlyAttached = false })
	}
}

func TestNetworkCreate(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	// Sequential: generated bridge names depend on what exists.
	for _, tc := range []struct {
		name       string
		rec        map[string]string
		code       string
		params     []string
		bridge     string
		mtu        string
		managedOff bool
	}{
		{name: "generated bridge", rec: map[string]string{"name_label": "a"}, bridge: "xapi0", mtu: "1500"},
		{name: "next generated bridge", rec: map[string]string{"name_label": "b", "MTU": "9000"}, bridge: "xapi1", mtu: "9000"},
		{name: "MTU 0 is 1500", rec: map[string]string{"MTU": "0"}, bridge: "xapi2", mtu: "1500"},
		{name: "negative MTU is 1500", rec: map[string]string{"MTU": "-5"}, bridge: "xapi3", mtu: "1500"},
		{name: "MTU too small", rec: map[string]string{"MTU": "67"}, code: api.ErrInvalidValue, params: []string{"MTU", "67"}},
		{name: "MTU too large", rec: map[string]string{"MTU": "65536"}, code: api.ErrInvalidValue, params: []string{"MTU", "65536"}},
		{name: "MTU bounds", rec: map[string]string{"MTU": "68", "bridge": "br68"}, bridge: "br68", mtu: "68"},
		{name: "chosen bridge", rec: map[string]string{"bridge": "mybr"}, bridge: "mybr", mtu: "1500"},
		{name: "bridge taken", rec: map[string]string{"bridge": "mybr"}, code: api.ErrBridgeNameExists, params: []string{"mybr"}},
		{name: "reserved prefix", rec: map[string]string{"bridge": "xenbr7"}, code: api.ErrInvalidValue, params: []string{"bridge", "xenbr7"}},
		{name: "reserved eth", rec: map[string]string{"bridge": "eth1"}, code: api.ErrInvalidValue, params: []string{"bridge", "eth1"}},
		{name: "bridge too long", rec: map[string]string{"bridge": "abcdefghijklmnop"}, code: api.ErrInvalidValue, params: []string{"bridge", "abcdefghijklmnop"}},
		{name: "unmanaged", rec: map[string]string{"bridge": "ext0", "managed": "false"}, bridge: "ext0", mtu: "1500", managedOff: true},
	} {
		v, err := n.call("network.create", tc.rec)
		if tc.code != "" {
			wantErr(t, err, tc.code, tc.params...)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := n.get(t, "network", v.Str, "bridge"); got != tc.bridge {
			t.Errorf("%s: bridge = %q, want %q", tc.name, got, tc.bridge)
		}
		if got := n.get(t, "network", v.Str, "MTU"); got != tc.mtu {
			t.Errorf("%s: MTU = %s, want %s", tc.name, got, tc.mtu)
		}
		if got := n.get(t, "network", v.Str, "managed"); got != map[bool]string{true: "false", false: "true"}[tc.managedOff] {
			t.Errorf("%s: managed = %s", tc.name, got)
		}
	}
	net := n.network(t, "mtu")
	n.do(t, "network.set_MTU", net, 9000)
	if got := n.get(t, "network", net, "MTU"); got != "9000" {
		t.Errorf("MTU after set_MTU = %s", got)
	}
	_, err := n.call("network.set_MTU", net, 10)
	wantErr(t, err, api.ErrInvalidValue, "MTU", "10")
	_, err = n.call("network.set_MTU", net, 70000)
	wantErr(t, err, api.ErrInvalidValue, "MTU", "70000")
}

func TestNetworkDestroy(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.XMLRPC)
	vm := n.vm(t, "vm")

	t.Run("attached VIF", func(t *testing.T) {
		net := n.network(t, "with-vif")
		vif := n.mustVIF(t, vm, net, "0")
		n.runVM(t, vm, vif)
		_, err := n.call("network.destroy", net)
		wantErr(t, err, api.ErrNetworkContainsVIF, vif)
		n.haltVM(t, vm, vif)
		// A detached VIF goes with its network, as in xapi.
		m := n.recField(t, "VIF", vif, "metrics")
		n.do(t, "network.destroy", net)
		if n.exists(api.ClassVIF, vif) || n.exists(api.ClassVIFMetrics, m) || n.exists(api.ClassNetwork, net) {
			t.Error("network.destroy left the network, its VIF or the VIF's metrics")
		}
		if vifs := n.getRefs(t, "VM", vm, "VIFs"); len(vifs) != 0 {
			t.Errorf("VM.VIFs = %v after its network went", vifs)
		}
	})
	t.Run("PIF", func(t *testing.T) {
		pif, net := n.phys(t, "eth1", "52:54:00:00:00:01")
		_, err := n.call("network.destroy", net)
		wantErr(t, err, api.ErrNetworkContainsPIF, pif)
	})
	t.Run("management network", func(t *testing.T) {
		net := n.get(t, "PIF", n.mgmtPIF(t), "network")
		_, err := n.call("network.destroy", net)
		wantErr(t, err, api.ErrNetworkContainsPIF, n.mgmtPIF(t))
	})
	t.Run("host internal management network", func(t *testing.T) {
		v := n.do(t, "network.create", wire.Struct(wire.Member{Name: "other_config",
			Value: wire.Struct(wire.Member{Name: "is_host_internal_management_network", Value: wire.String("true")})}))
		_, err := n.call("network.destroy", v.Str)
		wantErr(t, err, api.ErrCannotDestroySystemNetwork, v.Str)
	})
	t.Run("bad reference", func(t *testing.T) {
		_, err := n.call("network.destroy", "OpaqueRef:nonesuch")
		wantErr(t, err, api.ErrHandleInvalid)
	})
}

func TestNetworkPurposeAndLocking(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	a, b := n.network(t, "a"), n.network(t, "b")
	n.do(t, "network.add_purpose", a, "nbd")
	n.do(t, "network.add_purpose", a, "nbd") // again: no-op
	if got := n.getRefs(t, "network", a, "purpose"); !slices.Equal(got, []string{"nbd"}) {
		t.Errorf("purpose = %v", got)
	}
	_, err := n.call("network.add_purpose", b, "insecure_nbd")
	wantErr(t, err, api.ErrNetworkIncompatiblePurposes, "insecure_nbd", "nbd")
	n.do(t, "network.remove_purpose", a, "nbd")
	n.do(t, "network.remove_purpose", a, "nbd")
	n.do(t, "network.add_purpose", b, "insecure_nbd")
	ext := n.do(t, "network.create", map[string]string{"bridge": "ext1", "managed": "false"}).Str
	_, err = n.call("network.add_purpose", ext, "nbd")
	wantErr(t, err, api.ErrNetworkUnmanaged, ext)

	vm := n.vm(t, "vm")
	vif := n.mustVIF(t, vm, a, "0")
	n.do(t, "network.set_default_locking_mode", a, "disabled")
	if got := n.get(t, "network", a, "default_locking_mode"); got != "disabled" {
		t.Errorf("default_locking_mode = %s", got)
	}
	n.runVM(t, vm, vif)
	_, err = n.call("network.set_default_locking_mode", a, "unlocked")
	wantErr(t, err, api.ErrVIFInUse, a, vif)
}

// TestAssertCanSeeNetworks covers the helper the VM lifecycle uses.
func TestAssertCanSeeNetworks(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	other := n.insert(t, api.NewHost())
	_, remote := n.physOn(t, "eth1", "52:54:00:00:00:01", other, true)
	slavePIF, slaveNet := n.phys(t, "eth2", "52:54:00:00:00:02")
	internal := n.network(t, "internal")
	local := n.get(t, "PIF", n.mgmtPIF(t), "network")
	n.modify(t, api.ClassPIF, slavePIF, func(r xenapi.Record) { r.(*api.PIF).BondSlaveOf = "OpaqueRef:some-bond" })
	vm := n.vm(t, "vm")
	host := n.e.srv.hostRef
	for _, tc := range []struct {
		name   string
		nets   []string
		code   string
		params []string
	}{
		{"local and internal", []string{local, internal}, "", nil},
		{"other host only", []string{remote}, api.ErrVMRequiresNetwork, []string{vm, remote}},
		{"bond slave", []string{slaveNet}, api.ErrHostCannotAttachNetwork, []string{string(host), slaveNet}},
	} {
		err := n.e.store.Update(context.Background(), func(tx *store.Tx) error {
			var nets []xenapi.Ref
			for _, x := range tc.nets {
				nets = append(nets, xenapi.Ref(x))
			}
			return assertCanSeeNetworks(tx, xenapi.Ref(vm), host, nets)
		})
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		wantErr(t, err, tc.code, tc.params...)
	}
}
