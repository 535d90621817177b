package xapi

import (
	"maps"
	"slices"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/xenapi"
)

// getMap reads a (string -> string) map field through the API.
func (n *netT) getMap(t *testing.T, class, ref, name string) map[string]string {
	t.Helper()
	return netStringMap(n.do(t, class+".get_"+name, ref)).Go()
}

func TestBondCreateErrors(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	host := n.host(t)
	eth0 := n.mgmtPIF(t)
	eth1, net1 := n.phys(t, "eth1", "52:54:00:00:00:01")
	eth2, _ := n.phys(t, "eth2", "52:54:00:00:00:02")
	eth3, _ := n.phys(t, "eth3", "52:54:00:00:00:03")
	withIP, _ := n.phys(t, "eth4", "52:54:00:00:00:04")
	n.do(t, "PIF.reconfigure_ip", withIP, "Static", "10.1.1.1", "255.255.255.0", "", "")
	groOff, _ := n.phys(t, "eth5", "52:54:00:00:00:05")
	n.do(t, "PIF.set_property", groOff, "gro", "off")
	v6, _ := n.phys(t, "eth6", "52:54:00:00:00:06")
	n.do(t, "PIF.set_primary_address_type", v6, "IPv6")
	unmanaged, _ := n.physOn(t, "eth7", "52:54:00:00:00:07", host, false)
	remote, _ := n.physOn(t, "eth1", "52:54:00:00:00:11", n.insert(t, api.NewHost()), true)
	vlanPIF := n.do(t, "PIF.create_VLAN", "eth3", n.network(t, "v10"), host, 10).Str
	ext := n.do(t, "network.create", map[string]string{"bridge": "ext0", "managed": "false"}).Str
	bondNet := n.network(t, "bond")
	pifsBefore := n.e.store.Count(api.ClassPIF)

	for _, tc := range []struct {
		name    string
		net     string
		members []string
		mac     string
		mode    string
		props   map[string]string
		ha      bool
		code    string
		params  []string
	}{
		{name: "no members", members: []string{}, code: api.ErrPIFBondNeedsMoreMembers},
		{name: "bad MAC", members: []string{eth1, eth2}, mac: "01:02", code: api.ErrMACInvalid, params: []string{"01:02"}},
		{name: "property for no mode", members: []string{eth1, eth2}, props: map[string]string{"hashing_algorithm": "src_mac"},
			code: api.ErrInvalidValue, params: []string{"properties", "hashing_algorithm = src_mac"}},
		{name: "bad lacp value", members: []string{eth1, eth2}, mode: "lacp", props: map[string]string{"lacp-time": "sometimes"},
			code: api.ErrInvalidValue, params: []string{"properties", "lacp-time = sometimes"}},
		{name: "bad lacp key", members: []string{eth1, eth2}, mode: "lacp", props: map[string]string{"lacp-aggregation-key": "x"},
			code: api.ErrInvalidValue, params: []string{"properties", "lacp-aggregation-key = x"}},
		{name: "across hosts", members: []string{eth1, remote}, code: api.ErrPIFCannotBondCrossHost},
		{name: "two IP configurations", members: []string{eth0, withIP}, code: api.ErrPIFBondMoreThanOneIP},
		{name: "different properties", members: []string{eth1, groOff}, code: api.ErrIncompatiblePIFProperties},
		{name: "different address types", members: []string{eth1, v6}, code: api.ErrPIFIncompatiblePrimaryAddressType, params: []string{v6}},
		{name: "VLAN member", members: []string{eth1, vlanPIF}, code: api.ErrPIFVLANExists, params: []string{"eth3"}},
		{name: "unmanaged member", members: []string{eth1, unmanaged}, code: api.ErrPIFUnmanaged, params: []string{unmanaged}},
		{name: "network already on the host", net: net1, members: []string{eth2, eth3}, code: api.ErrNetworkAlreadyConnected, params: []string{host, eth1}},
		{name: "unmanaged network", net: ext, members: []string{eth1, eth2}, code: api.ErrNetworkUnmanaged, params: []string{ext}},
		{name: "bad member", members: []string{eth1, "OpaqueRef:nonesuch"}, code: api.ErrHandleInvalid, params: []string{"PIF", "OpaqueRef:nonesuch"}},
		{name: "management under HA", members: []string{eth0, eth1}, ha: true, code: api.ErrHACannotChangeBondStatusOfMgmtIface},
	} {
		if tc.net == "" {
			tc.net = bondNet
		}
		if tc.mode == "" {
			tc.mode = "balance-slb"
		}
		if tc.props == nil {
			tc.props = map[string]string{}
		}
		if tc.ha {
			n.setHA(t, true)
		}
		_, err := n.call("Bond.create", tc.net, tc.members, tc.mac, tc.mode, tc.props)
		if tc.ha {
			n.setHA(t, false)
		}
		if err == nil {
			t.Errorf("%s: succeeded, want %s", tc.name, tc.code)
			continue
		}
		wantErr(t, err, tc.code, tc.params...)
	}
	if got := n.e.store.Count(api.ClassBond); got != 0 {
		t.Errorf("%d bonds after failed creations", got)
	}
	if got := n.e.store.Count(api.ClassPIF); got != pifsBefore {
		t.Errorf("%d PIFs after failed creations, want %d", got, pifsBefore)
	}
	_, err := n.call("Bond.create", bondNet, []string{eth1}, "", "round-robin", map[string]string{})
	wantErr(t, err, api.ErrFieldTypeError)
}

func (n *netT) setHA(t *testing.T, on bool) {
	t.Helper()
	pool := n.do(t, "pool.get_all").Array[0].Str
	n.modify(t, api.ClassPool, pool, func(r xenapi.Record) { r.(*api.Pool).HAEnabled = on })
}

func TestBondLifecycle(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.XMLRPC)
	host := n.host(t)
	eth1, net1 := n.phys(t, "eth1", "52:54:00:00:00:01")
	eth2, net2 := n.phys(t, "eth2", "52:54:00:00:00:02")
	n.do(t, "PIF.plug", eth1)
	n.do(t, "PIF.plug", eth2)
	n.do(t, "PIF.reconfigure_ip", eth1, "Static", "10.0.0.1", "255.255.255.0", "10.0.0.254", "10.0.0.53")
	// VIFs on the members' networks, and VLAN 10 on both members (on two
	// networks) with a VIF each.
	vm := n.vm(t, "vm")
	vif1, vif2 := n.mustVIF(t, vm, net1, "0"), n.mustVIF(t, vm, net2, "1")
	v10a, v10b := n.network(t, "v10a"), n.network(t, "v10b")
	vlanA := n.do(t, "VLAN.create", eth1, 10, v10a).Str
	n.do(t, "VLAN.create", eth2, 10, v10b)
	vifA, vifB := n.mustVIF(t, vm, v10a, "2"), n.mustVIF(t, vm, v10b, "3")
	n.do(t, "PIF.reconfigure_ip", n.get(t, "VLAN", vlanA, "untagged_PIF"), "Static", "10.10.0.1", "255.255.255.0", "", "")
	bondNet := n.network(t, "bond")

	bond := n.do(t, "Bond.create", bondNet, []string{eth1, eth2, eth1}, "", "active-backup", map[string]string{}).Str
	master := n.get(t, "Bond", bond, "master")
	if got := n.getRefs(t, "Bond", bond, "slaves"); !slices.Equal(got, sortedRefs(eth1, eth2)) {
		t.Errorf("Bond.slaves = %v", got)
	}
	if got := n.getRefs(t, "PIF", master, "bond_master_of"); !slices.Equal(got, []string{bond}) {
		t.Errorf("PIF.bond_master_of = %v", got)
	}
	for name, want := range map[string]string{"mode": "active-backup", "primary_slave": eth1, "auto_update_mac": "true", "links_up": "2"} {
		if got := n.get(t, "Bond", bond, name); got != want {
			t.Errorf("Bond.%s = %s, want %s", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"device": "bond0", "MAC": "52:54:00:00:00:01", "network": bondNet, "host": host, "VLAN": "-1",
		"physical": "false", "currently_attached": "true", "ip_configuration_mode": "Static",
		"IP": "10.0.0.1", "netmask": "255.255.255.0", "gateway": "10.0.0.254", "DNS": "10.0.0.53",
	} {
		if got := n.get(t, "PIF", master, name); got != want {
			t.Errorf("master PIF %s = %q, want %q", name, got, want)
		}
	}
	for _, m := range []string{eth1, eth2} {
		if got := n.get(t, "PIF", m, "bond_slave_of"); got != bond {
			t.Errorf("member bond_slave_of = %s", got)
		}
		if got := n.get(t, "PIF", m, "currently_attached"); got != "false" {
			t.Errorf("member currently_attached = %s, want false (the bond owns it)", got)
		}
		if got := n.getRefs(t, "PIF", m, "VLAN_slave_of"); len(got) != 0 {
			t.Errorf("member still carries VLANs %v", got)
		}
	}
	if got := n.get(t, "PIF", eth1, "ip_configuration_mode"); got != "None" {
		t.Errorf("primary member kept its IP configuration (%s)", got)
	}
	if got := n.getRefs(t, "network", bondNet, "PIFs"); !slices.Equal(got, []string{master}) {
		t.Errorf("bond network PIFs = %v", got)
	}
	if got := n.getRefs(t, "network", bondNet, "VIFs"); !slices.Equal(got, sortedRefs(vif1, vif2)) {
		t.Errorf("bond network VIFs = %v, want the members' VIFs", got)
	}
	// VLAN 10 moved onto the bond: one VLAN, on v10a, with v10b's VIF moved to it.
	vlans := n.getRefs(t, "PIF", master, "VLAN_slave_of")
	if len(vlans) != 1 {
		t.Fatalf("bond master VLANs = %v", vlans)
	}
	newUntagged := n.get(t, "VLAN", vlans[0], "untagged_PIF")
	for name, want := range map[string]string{"device": "bond0", "VLAN": "10", "network": v10a, "currently_attached": "true",
		"IP": "10.10.0.1", "metrics": n.get(t, "PIF", master, "metrics")} {
		if got := n.get(t, "PIF", newUntagged, name); got != want {
			t.Errorf("moved VLAN PIF %s = %q, want %q", name, got, want)
		}
	}
	if n.exists(api.ClassVLAN, vlanA) {
		t.Error("the old VLAN survived its move")
	}
	if got := n.getRefs(t, "network", v10a, "VIFs"); !slices.Equal(got, sortedRefs(vifA, vifB)) {
		t.Errorf("v10a VIFs = %v", got)
	}

	// What a bond forbids.
	eth3, _ := n.phys(t, "eth3", "52:54:00:00:00:03")
	for _, tc := range []struct {
		name   string
		call   func() error
		code   string
		params []string
	}{
		{"member bonded again", func() error {
			_, err := n.call("Bond.create", n.network(t, "x"), []string{eth1, eth3}, "", "balance-slb", map[string]string{})
			return err
		}, api.ErrPIFAlreadyBonded, []string{eth1}},
		{"master as member", func() error {
			_, err := n.call("Bond.create", n.network(t, "x"), []string{master, eth3}, "", "balance-slb", map[string]string{})
			return err
		}, api.ErrPIFAlreadyBonded, []string{master}},
		{"VLAN on a member", func() error { _, err := n.call("VLAN.create", eth1, 20, n.network(t, "x")); return err },
			api.ErrCannotAddVLANToBondSlave, []string{eth1}},
		{"plug a member", func() error { _, err := n.call("PIF.plug", eth2); return err }, api.ErrCannotPlugBondSlave, []string{eth2}},
		{"forget a member", func() error { _, err := n.call("PIF.forget", eth2); return err }, api.ErrPIFAlreadyBonded, []string{eth2}},
		{"forget the master", func() error { _, err := n.call("PIF.forget", master); return err }, api.ErrPIFAlreadyBonded, []string{master}},
		{"property on a member", func() error { _, err := n.call("PIF.set_property", eth2, "gro", "off"); return err },
			api.ErrCannotChangePIFProperties, []string{eth2}},
	} {
		wantErr2(t, tc.name, tc.call(), tc.code, tc.params)
	}
	// A property set on the master reaches the members.
	n.do(t, "PIF.set_property", master, "gro", "off")
	for _, p := range []string{master, eth1, eth2} {
		if got := n.getMap(t, "PIF", p, "properties"); got["gro"] != "off" {
			t.Errorf("properties of %s = %v", p, got)
		}
	}
	// A VLAN on the bond is fine.
	n.do(t, "VLAN.create", master, 30, n.network(t, "v30"))

	// A second bond is bond1; a given MAC stops MAC updates.
	eth4, _ := n.phys(t, "eth4", "52:54:00:00:00:04")
	bond2 := n.do(t, "Bond.create", n.network(t, "bond2"), []string{eth3, eth4}, "02:00:00:00:00:01", "balance-slb", map[string]string{}).Str
	master2 := n.get(t, "Bond", bond2, "master")
	if got := n.get(t, "PIF", master2, "device"); got != "bond1" {
		t.Errorf("second bond device = %s", got)
	}
	if got := n.get(t, "PIF", master2, "MAC"); got != "02:00:00:00:00:01" {
		t.Errorf("second bond MAC = %s", got)
	}
	if got := n.get(t, "Bond", bond2, "auto_update_mac"); got != "false" {
		t.Errorf("auto_update_mac = %s with a given MAC", got)
	}

	// Bond.destroy gives everything back to the primary member.
	masterMetrics := n.get(t, "PIF", master, "metrics")
	n.do(t, "Bond.destroy", bond)
	if n.exists(api.ClassBond, bond) || n.exists(api.ClassPIF, master) || n.exists(api.ClassPIFMetrics, masterMetrics) {
		t.Error("Bond.destroy left the bond, its master or the master's metrics")
	}
	for _, m := range []string{eth1, eth2} {
		if got := n.get(t, "PIF", m, "bond_slave_of"); got != string(xenapi.NullRef) {
			t.Errorf("member bond_slave_of = %s after destroy", got)
		}
		if got := n.get(t, "PIF", m, "currently_attached"); got != "true" {
			t.Errorf("member not plugged again after destroy")
		}
	}
	for name, want := range map[string]string{"ip_configuration_mode": "Static", "IP": "10.0.0.1", "gateway": "10.0.0.254"} {
		if got := n.get(t, "PIF", eth1, name); got != want {
			t.Errorf("primary %s = %q after destroy, want %q", name, got, want)
		}
	}
	if got := n.getRefs(t, "network", net1, "VIFs"); !slices.Equal(got, sortedRefs(vif1, vif2)) {
		t.Errorf("primary network VIFs = %v after destroy", got)
	}
	if got := n.getRefs(t, "network", bondNet, "PIFs"); len(got) != 0 {
		t.Errorf("bond network PIFs = %v after destroy", got)
	}
	vlans = n.getRefs(t, "PIF", eth1, "VLAN_slave_of")
	if len(vlans) != 2 {
		t.Fatalf("primary VLANs after destroy = %v, want tags 10 and 30", vlans)
	}
	tags := []string{n.get(t, "VLAN", vlans[0], "tag"), n.get(t, "VLAN", vlans[1], "tag")}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"10", "30"}) {
		t.Errorf("VLAN tags on the primary = %v", tags)
	}
	_, err := n.call("Bond.destroy", bond)
	wantErr(t, err, api.ErrHandleInvalid, "Bond", bond)
}

func TestBondManagement(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	eth0 := n.mgmtPIF(t)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")
	n.do(t, "PIF.set_disallow_unplug", eth1, true)
	bond := n.do(t, "Bond.create", n.network(t, "bond"), []string{eth1, eth0}, "", "balance-slb", map[string]string{}).Str
	master := n.get(t, "Bond", bond, "master")
	for name, want := range map[string]string{"management": "true", "IP": "192.0.2.10", "ip_configuration_mode": "Static",
		"MAC": "52:54:00:12:34:56", "currently_attached": "true", "disallow_unplug": "true"} {
		if got := n.get(t, "PIF", master, name); got != want {
			t.Errorf("master %s = %q, want %q", name, got, want)
		}
	}
	if got := n.get(t, "Bond", bond, "primary_slave"); got != eth0 {
		t.Errorf("primary_slave = %s, want the management PIF", got)
	}
	for name, want := range map[string]string{"management": "false", "ip_configuration_mode": "None"} {
		if got := n.get(t, "PIF", eth0, name); got != want {
			t.Errorf("old management PIF %s = %q, want %q", name, got, want)
		}
	}
	if got := n.get(t, "PIF", eth1, "disallow_unplug"); got != "false" {
		t.Errorf("member disallow_unplug = %s", got)
	}
	_, err := n.call("PIF.unplug", master)
	wantErr(t, err, api.ErrPIFIsManagementInterface, master)
	n.setHA(t, true)
	_, err = n.call("Bond.destroy", bond)
	wantErr(t, err, api.ErrHACannotChangeBondStatusOfMgmtIface)
	n.setHA(t, false)
	n.do(t, "Bond.destroy", bond)
	for name, want := range map[string]string{"management": "true", "IP": "192.0.2.10", "currently_attached": "true", "disallow_unplug": "true"} {
		if got := n.get(t, "PIF", eth0, name); got != want {
			t.Errorf("management PIF %s = %q after destroy, want %q", name, got, want)
		}
	}
	if got := n.get(t, "PIF", eth1, "currently_attached"); got != "true" {
		t.Errorf("other member currently_attached = %s after destroy", got)
	}
}

func TestBondModeAndProperties(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")
	eth2, _ := n.phys(t, "eth2", "52:54:00:00:00:02")
	// One member is enough, as in xapi.
	single := n.do(t, "Bond.create", n.network(t, "single"), []string{eth2}, "", "active-backup", map[string]string{}).Str
	if got := n.getRefs(t, "Bond", single, "slaves"); !slices.Equal(got, []string{eth2}) {
		t.Errorf("single-member bond slaves = %v", got)
	}
	bond := n.do(t, "Bond.create", n.network(t, "lacp"), []string{eth1}, "", "lacp", map[string]string{"lacp-aggregation-key": "5"}).Str
	lacpDefaults := map[string]string{"hashing_algorithm": "tcpudp_ports", "lacp-time": "slow", "lacp-fallback-ab": "true"}
	want := maps.Clone(lacpDefaults)
	want["lacp-aggregation-key"] = "5"
	if got := n.getMap(t, "Bond", bond, "properties"); !maps.Equal(got, want) {
		t.Errorf("properties = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name   string
		method string
		args   []any
		code   string
		params []string
	}{
		{"set lacp-time", "Bond.set_property", []any{"lacp-time", "fast"}, "", nil},
		{"bad lacp-time", "Bond.set_property", []any{"lacp-time", "never"}, api.ErrInvalidValue, []string{"properties", "lacp-time = never"}},
		{"unknown property", "Bond.set_property", []any{"speed", "fast"}, api.ErrInvalidValue, []string{"properties", "speed = fast"}},
		{"to active-backup", "Bond.set_mode", []any{"active-backup"}, "", nil},
		{"no properties in active-backup", "Bond.set_property", []any{"hashing_algorithm", "src_mac"}, api.ErrInvalidValue, []string{"properties", "hashing_algorithm = src_mac"}},
		{"bad mode", "Bond.set_mode", []any{"broadcast"}, api.ErrFieldTypeError, nil},
	} {
		_, err := n.call(tc.method, append([]any{bond}, tc.args...)...)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		wantErr2(t, tc.name, err, tc.code, tc.params)
	}
	if got := n.getMap(t, "Bond", bond, "properties"); len(got) != 0 {
		t.Errorf("active-backup properties = %v, want none", got)
	}
	n.do(t, "Bond.set_mode", bond, "lacp")
	if got := n.getMap(t, "Bond", bond, "properties"); !maps.Equal(got, lacpDefaults) {
		t.Errorf("lacp properties = %v, want the defaults", got)
	}
	if got := n.get(t, "Bond", bond, "mode"); got != "lacp" {
		t.Errorf("mode = %s", got)
	}
}
