package xapi

import (
	"maps"
	"slices"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/xenapi"
)

// carrier reads a PIF's link state from its metrics.
func (n *netT) carrier(t *testing.T, pif string) string {
	t.Helper()
	return n.get(t, "PIF_metrics", n.get(t, "PIF", pif, "metrics"), "carrier")
}

func TestPIFPlugUnplug(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	eth0 := n.mgmtPIF(t)
	eth1, net1 := n.phys(t, "eth1", "52:54:00:00:00:01")
	if n.get(t, "PIF", eth1, "currently_attached") != "false" || n.carrier(t, eth1) != "false" {
		t.Fatal("an introduced PIF starts attached or with a carrier")
	}
	n.do(t, "PIF.plug", eth1)
	n.do(t, "PIF.plug", eth1) // again: no error
	if n.get(t, "PIF", eth1, "currently_attached") != "true" || n.carrier(t, eth1) != "true" {
		t.Error("PIF.plug did not attach the PIF and raise its carrier")
	}
	// A VLAN PIF shares its tagged PIF's metrics and leaves the carrier alone.
	vlanPIF := n.do(t, "PIF.create_VLAN", "eth1", n.network(t, "v5"), n.host(t), 5).Str
	n.do(t, "PIF.unplug", vlanPIF)
	if n.get(t, "PIF", vlanPIF, "currently_attached") != "false" || n.carrier(t, eth1) != "true" {
		t.Error("unplugging a VLAN PIF: wrong attachment or carrier")
	}
	n.do(t, "PIF.plug", vlanPIF)

	vm := n.vm(t, "vm")
	vif := n.mustVIF(t, vm, net1, "0")
	unmanaged, _ := n.physOn(t, "eth2", "52:54:00:00:00:02", n.host(t), false)
	for _, tc := range []struct {
		name   string
		setup  func()
		undo   func()
		method string
		pif    string
		code   string
		params []string
	}{
		{name: "management", method: "PIF.unplug", pif: eth0, code: api.ErrPIFIsManagementInterface, params: []string{eth0}},
		{name: "VIF in use", setup: func() { n.runVM(t, vm, vif) }, undo: func() { n.haltVM(t, vm, vif) },
			method: "PIF.unplug", pif: eth1, code: api.ErrVIFInUse, params: []string{net1, vif}},
		{name: "disallow_unplug", setup: func() { n.do(t, "PIF.set_disallow_unplug", eth1, true) },
			undo: func() { n.do(t, "PIF.set_disallow_unplug", eth1, false) }, method: "PIF.unplug", pif: eth1,
			code: api.ErrPIFDoesNotAllowUnplug, params: []string{eth1}},
		{name: "HA", setup: func() { n.setHA(t, true) }, undo: func() { n.setHA(t, false) },
			method: "PIF.unplug", pif: eth1, code: api.ErrHAIsEnabled, params: []string{}},
		{name: "unmanaged plug", method: "PIF.plug", pif: unmanaged, code: api.ErrPIFUnmanaged, params: []string{unmanaged}},
		{name: "unmanaged unplug", method: "PIF.unplug", pif: unmanaged, code: api.ErrPIFUnmanaged, params: []string{unmanaged}},
		{name: "bad reference", method: "PIF.plug", pif: "OpaqueRef:nonesuch", code: api.ErrHandleInvalid, params: []string{"PIF", "OpaqueRef:nonesuch"}},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		_, err := n.call(tc.method, tc.pif)
		if tc.undo != nil {
			tc.undo()
		}
		wantErr2(t, tc.name, err, tc.code, tc.params)
	}
	n.do(t, "PIF.unplug", eth1)
	if n.get(t, "PIF", eth1, "currently_attached") != "false" || n.carrier(t, eth1) != "false" {
		t.Error("PIF.unplug did not detach the PIF and drop its carrier")
	}
	n.do(t, "PIF.unplug", eth1) // again: no error
}

func TestPIFReconfigureIP(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.XMLRPC)
	eth0 := n.mgmtPIF(t)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")
	type want map[string]string
	for _, tc := range []struct {
		name   string
		pif    string
		method string
		args   []any
		code   string
		params []string
		want   want
	}{
		{name: "static", pif: eth1, method: "PIF.reconfigure_ip", args: []any{"Static", "10.0.0.2", "255.255.255.0", "10.0.0.1", "8.8.8.8,2001:db8::53,bogus"},
			want: want{"ip_configuration_mode": "Static", "IP": "10.0.0.2", "netmask": "255.255.255.0", "gateway": "10.0.0.1", "DNS": "8.8.8.8"}},
		{name: "static without netmask", pif: eth1, method: "PIF.reconfigure_ip", args: []any{"Static", "10.0.0.2", "", "", ""},
			code: api.ErrInvalidIPAddressSpecified, params: []string{"netmask"}},
		{name: "bad IP", pif: eth1, method: "PIF.reconfigure_ip", args: []any{"Static", "10.0.0.300", "255.255.255.0", "", ""},
			code: api.ErrInvalidIPAddressSpecified, params: []string{"IP"}},
		{name: "IPv6 as IP", pif: eth1, method: "PIF.reconfigure_ip", args: []any{"Static", "2001:db8::2", "255.255.255.0", "", ""},
			code: api.ErrInvalidIPAddressSpecified, params: []string{"IP"}},
		{name: "bad gateway", pif: eth1, method: "PIF.reconfigure_ip", args: []any{"DHCP", "", "", "router", ""},
			code: api.ErrInvalidIPAddressSpecified, params: []string{"gateway"}},
		{name: "bad mode", pif: eth1, method: "PIF.reconfigure_ip", args: []any{"Magic", "", "", "", ""}, code: api.ErrFieldTypeError},
		{name: "ipv6 static", pif: eth1, method: "PIF.reconfigure_ipv6", args: []any{"Static", "2001:db8::2/64", "2001:db8::1", "2001:db8::53,9.9.9.9"},
			want: want{"ipv6_configuration_mode": "Static", "ipv6_gateway": "2001:db8::1", "DNS": "2001:db8::53,8.8.8.8"}},
		{name: "ipv6 without prefix", pif: eth1, method: "PIF.reconfigure_ipv6", args: []any{"Static", "2001:db8::2", "", ""},
			code: api.ErrInvalidCidrAddressSpecified, params: []string{"IPv6"}},
		{name: "ipv6 bad gateway", pif: eth1, method: "PIF.reconfigure_ipv6", args: []any{"Static", "2001:db8::2/64", "10.0.0.1", ""},
			code: api.ErrInvalidIPAddressSpecified, params: []string{"gateway"}},
		{name: "dhcp", pif: eth1, method: "PIF.reconfigure_ip", args: []any{"DHCP", "", "", "", ""},
			want: want{"ip_configuration_mode": "DHCP", "IP": "", "DNS": "2001:db8::53"}},
		{name: "management loses its address", pif: eth0, method: "PIF.reconfigure_ip", args: []any{"None", "", "", "", ""},
			code: api.ErrPIFIsManagementInterface, params: []string{eth0}},
		{name: "management to DHCP", pif: eth0, method: "PIF.reconfigure_ip", args: []any{"DHCP", "", "", "", ""},
			want: want{"ip_configuration_mode": "DHCP", "management": "true"}},
		{name: "unknown PIF", pif: "OpaqueRef:nonesuch", method: "PIF.reconfigure_ip", args: []any{"DHCP", "", "", "", ""},
			code: api.ErrHandleInvalid, params: []string{"PIF", "OpaqueRef:nonesuch"}},
	} {
		_, err := n.call(tc.method, append([]any{tc.pif}, tc.args...)...)
		if tc.code != "" {
			wantErr2(t, tc.name, err, tc.code, tc.params)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for k, v := range tc.want {
			if got := n.get(t, "PIF", tc.pif, k); got != v {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, got, v)
			}
		}
	}
	if got := n.getRefs(t, "PIF", eth1, "IPv6"); !slices.Equal(got, []string{"2001:db8::2/64"}) {
		t.Errorf("IPv6 = %v", got)
	}

	// HA and clustering protect an attached interface's addressing; only the
	// DNS of an unchanged static configuration may change.
	n.do(t, "PIF.plug", eth1)
	n.do(t, "PIF.reconfigure_ip", eth1, "Static", "10.0.0.2", "255.255.255.0", "", "")
	n.setHA(t, true)
	_, err := n.call("PIF.reconfigure_ip", eth1, "Static", "10.0.0.3", "255.255.255.0", "", "")
	wantErr(t, err, api.ErrHAIsEnabled)
	n.do(t, "PIF.reconfigure_ip", eth1, "Static", "10.0.0.2", "255.255.255.0", "", "1.1.1.1")
	n.setHA(t, false)
	ch := api.NewClusterHost()
	ch.PIF, ch.Enabled = xenapi.Ref(eth1), true
	chRef := n.insert(t, ch)
	_, err = n.call("PIF.reconfigure_ip", eth1, "DHCP", "", "", "", "")
	wantErr(t, err, api.ErrClusteringEnabled, chRef)
	_, err = n.call("PIF.set_disallow_unplug", eth1, false)
	if err != nil {
		t.Errorf("set_disallow_unplug to its current value: %v", err)
	}
	n.modify(t, api.ClassPIF, eth1, func(r xenapi.Record) { r.(*api.PIF).DisallowUnplug = true })
	_, err = n.call("PIF.set_disallow_unplug", eth1, false)
	wantErr(t, err, api.ErrClusteringEnabled, chRef)
}

func TestPIFPropertiesAndAddressType(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	eth0 := n.mgmtPIF(t)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")
	vlanPIF := n.do(t, "PIF.create_VLAN", "eth1", n.network(t, "v5"), n.host(t), 5).Str
	for _, tc := range []struct {
		name   string
		method string
		args   []any
		code   string
		params []string
	}{
		{"gro off", "PIF.set_property", []any{eth1, "gro", "off"}, "", nil},
		{"unknown property", "PIF.set_property", []any{eth1, "mtu", "on"}, api.ErrInvalidValue, []string{"properties", "mtu = on"}},
		{"bad value", "PIF.set_property", []any{eth1, "gro", "maybe"}, api.ErrInvalidValue, []string{"properties", "gro = maybe"}},
		{"VLAN PIF", "PIF.set_property", []any{vlanPIF, "gro", "on"}, api.ErrCannotChangePIFProperties, []string{vlanPIF}},
		{"IPv6 primary", "PIF.set_primary_address_type", []any{eth1, "IPv6"}, "", nil},
		{"management address type", "PIF.set_primary_address_type", []any{eth0, "IPv6"}, api.ErrPIFIsManagementInterface, []string{eth0}},
		{"scan needs real interfaces", "PIF.scan", []any{n.host(t)}, api.ErrNotImplemented, nil},
		{"introduce needs real interfaces", "PIF.introduce", []any{n.host(t), "", "eth9", true}, api.ErrNotImplemented, nil},
	} {
		_, err := n.call(tc.method, tc.args...)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		wantErr2(t, tc.name, err, tc.code, tc.params)
	}
	if got := n.getMap(t, "PIF", eth1, "properties"); !maps.Equal(got, map[string]string{"gro": "off"}) {
		t.Errorf("properties = %v", got)
	}
	if got := n.get(t, "PIF", eth1, "primary_address_type"); got != "IPv6" {
		t.Errorf("primary_address_type = %s", got)
	}
}

func TestPIFForgetAndIntroduce(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	host := n.host(t)
	eth0 := n.mgmtPIF(t)
	eth1, net1 := n.phys(t, "eth1", "52:54:00:00:00:01")
	if got := n.getRefs(t, "network", net1, "PIFs"); !slices.Equal(got, []string{eth1}) {
		t.Errorf("network.PIFs = %v", got)
	}
	if got := n.getRefs(t, "host", host, "PIFs"); !slices.Contains(got, eth1) {
		t.Errorf("host.PIFs = %v", got)
	}
	for name, want := range map[string]string{"device": "eth1", "MAC": "52:54:00:00:00:01", "physical": "true", "VLAN": "-1", "managed": "true"} {
		if got := n.get(t, "PIF", eth1, name); got != want {
			t.Errorf("introduced PIF %s = %q, want %q", name, got, want)
		}
	}
	vlanPIF := n.do(t, "PIF.create_VLAN", "eth1", n.network(t, "v5"), host, 5).Str
	_, err := n.call("PIF.forget", eth0)
	wantErr(t, err, api.ErrPIFIsManagementInterface, eth0)
	_, err = n.call("PIF.forget", eth1)
	wantErr(t, err, api.ErrPIFVLANStillExists, eth1)
	_, err = n.call("PIF.forget", vlanPIF)
	wantErr(t, err, api.ErrPIFVLANStillExists, vlanPIF)
	n.do(t, "PIF.destroy", vlanPIF)
	metrics := n.get(t, "PIF", eth1, "metrics")
	n.do(t, "PIF.forget", eth1)
	if n.exists(api.ClassPIF, eth1) || n.exists(api.ClassPIFMetrics, metrics) {
		t.Error("PIF.forget left the PIF or its metrics")
	}
	if !n.exists(api.ClassNetwork, net1) {
		t.Error("PIF.forget took the network")
	}
	if got := n.getRefs(t, "network", net1, "PIFs"); len(got) != 0 {
		t.Errorf("network.PIFs = %v after forget", got)
	}
	eth2, _ := n.phys(t, "eth2", "52:54:00:00:00:02")
	n.do(t, "PIF.db_forget", eth2)
	if n.exists(api.ClassPIF, eth2) {
		t.Error("PIF.db_forget left the PIF")
	}
	_, err = n.call("PIF.db_introduce", "eth3", "OpaqueRef:nonesuch", host, "", 1500, -1, true, "None", "", "", "", "",
		string(xenapi.NullRef), string(xenapi.NullRef), false, map[string]string{}, false, "None", []string{}, "", "IPv4", true,
		map[string]string{})
	wantErr(t, err, api.ErrHandleInvalid, "network", "OpaqueRef:nonesuch")
}

func TestPIFStackedPlug(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	host := n.host(t)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")
	eth2, _ := n.phys(t, "eth2", "52:54:00:00:00:02")

	// A bond master carries its members' links.
	bond := n.do(t, "Bond.create", n.network(t, "bond"), []string{eth1, eth2}, "", "balance-slb", map[string]string{}).Str
	master := n.get(t, "Bond", bond, "master")
	n.do(t, "PIF.unplug", master)
	if n.get(t, "PIF", master, "currently_attached") != "false" || n.get(t, "Bond", bond, "links_up") != "0" ||
		n.carrier(t, eth1) != "false" || n.carrier(t, master) != "false" {
		t.Error("unplugging a bond master left it attached or its links up")
	}
	n.do(t, "PIF.plug", master)
	if n.get(t, "PIF", master, "currently_attached") != "true" || n.get(t, "Bond", bond, "links_up") != "2" ||
		n.carrier(t, eth2) != "true" || n.carrier(t, master) != "true" {
		t.Error("plugging a bond master left it detached or its links down")
	}
	n.do(t, "PIF.unplug", eth1) // a member: no change, its bond owns it
	if n.get(t, "PIF", master, "currently_attached") != "true" {
		t.Error("unplugging a member took the bond down")
	}

	// A tunnel's access PIF needs a configured transport PIF, which comes
	// up with it and takes it down with it.
	eth3, _ := n.phys(t, "eth3", "52:54:00:00:00:03")
	access := api.NewPIF()
	access.Device, access.Host, access.Network, access.VLAN = "tunnel0", xenapi.Ref(host), xenapi.Ref(n.network(t, "tun")), -1
	access.CurrentlyAttached = false
	accessRef := n.insert(t, access)
	tun := api.NewTunnel()
	tun.AccessPIF, tun.TransportPIF = xenapi.Ref(accessRef), xenapi.Ref(eth3)
	n.insert(t, tun)
	_, err := n.call("PIF.plug", accessRef)
	wantErr(t, err, api.ErrTransportPIFNotConfigured, eth3)
	n.do(t, "PIF.reconfigure_ip", eth3, "DHCP", "", "", "", "")
	n.do(t, "PIF.plug", accessRef)
	if n.get(t, "PIF", accessRef, "currently_attached") != "true" || n.get(t, "PIF", eth3, "currently_attached") != "true" {
		t.Error("plugging a tunnel did not bring up its PIFs")
	}
	n.do(t, "PIF.unplug", eth3)
	if n.get(t, "PIF", accessRef, "currently_attached") != "false" {
		t.Error("unplugging a transport PIF left its tunnel up")
	}
	for _, tc := range []struct {
		name   string
		method string
		args   []any
		code   string
		params []string
	}{
		{"forget a transport PIF", "PIF.forget", []any{eth3}, api.ErrPIFTunnelStillExists, []string{eth3}},
		{"VLAN on a tunnel", "VLAN.create", []any{accessRef, 5, n.network(t, "x")}, api.ErrIsTunnelAccessPIF, []string{accessRef}},
		{"bond a tunnel", "Bond.create", []any{n.network(t, "x"), []string{accessRef}, "", "balance-slb", map[string]string{}},
			api.ErrIsTunnelAccessPIF, []string{accessRef}},
	} {
		_, err := n.call(tc.method, tc.args...)
		wantErr2(t, tc.name, err, tc.code, tc.params)
	}

	// A PIF that is nothing xapi knows (not physical, no bond, VLAN or
	// tunnel) is an internal error, as in xapi.
	odd, _ := n.phys(t, "odd0", "52:54:00:00:00:04")
	n.modify(t, api.ClassPIF, odd, func(r xenapi.Record) { r.(*api.PIF).Physical = false })
	_, err = n.call("VLAN.create", odd, 5, n.network(t, "x"))
	wantErr(t, err, api.ErrInternalError)
}
