package xapi

import (
	"slices"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/xenapi"
)

func TestVLANCreate(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	host := n.host(t)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")
	v10 := n.network(t, "vlan10")
	vlan := n.do(t, "VLAN.create", eth1, 10, v10).Str

	// The VLAN, its untagged PIF and the bound fields, through the API.
	if got := n.get(t, "VLAN", vlan, "tag"); got != "10" {
		t.Errorf("tag = %s", got)
	}
	if got := n.get(t, "VLAN", vlan, "tagged_PIF"); got != eth1 {
		t.Errorf("tagged_PIF = %s", got)
	}
	untagged := n.get(t, "VLAN", vlan, "untagged_PIF")
	for name, want := range map[string]string{
		"device": "eth1", "VLAN": "10", "MAC": "fe:ff:ff:ff:ff:ff", "network": v10, "host": host,
		"physical": "false", "currently_attached": "true", "VLAN_master_of": vlan, "MTU": "1500",
		"metrics": n.get(t, "PIF", eth1, "metrics"),
	} {
		if got := n.get(t, "PIF", untagged, name); got != want {
			t.Errorf("untagged PIF %s = %q, want %q", name, got, want)
		}
	}
	if got := n.getRefs(t, "PIF", eth1, "VLAN_slave_of"); !slices.Equal(got, []string{vlan}) {
		t.Errorf("PIF.VLAN_slave_of = %v", got)
	}
	if got := n.getRefs(t, "network", v10, "PIFs"); !slices.Equal(got, []string{untagged}) {
		t.Errorf("network.PIFs = %v", got)
	}
	if got := n.getRefs(t, "host", host, "PIFs"); !slices.Contains(got, untagged) {
		t.Errorf("host.PIFs = %v lacks the VLAN PIF", got)
	}

	unmanagedNet := n.do(t, "network.create", map[string]string{"bridge": "ext0", "managed": "false"}).Str
	unmanagedPIF, _ := n.physOn(t, "eth2", "52:54:00:00:00:02", host, false)
	for _, tc := range []struct {
		name   string
		tagged string
		tag    int
		net    func() string
		code   string
		params []string
	}{
		{"tag in use on the PIF", eth1, 10, func() string { return n.network(t, "x") }, api.ErrPIFVLANExists, []string{"eth1"}},
		{"tag too large", eth1, 4095, func() string { return n.network(t, "x") }, api.ErrVLANTagInvalid, []string{"4095"}},
		{"negative tag", eth1, -1, func() string { return n.network(t, "x") }, api.ErrVLANTagInvalid, []string{"-1"}},
		{"VLAN on a VLAN", untagged, 11, func() string { return n.network(t, "x") }, api.ErrPIFIsVLAN, []string{untagged}},
		{"network already on the host", eth1, 12, func() string { return v10 }, api.ErrNetworkAlreadyConnected, []string{host, untagged}},
		{"unmanaged network", eth1, 13, func() string { return unmanagedNet }, api.ErrNetworkUnmanaged, []string{unmanagedNet}},
		{"unmanaged PIF", unmanagedPIF, 14, func() string { return n.network(t, "x") }, api.ErrPIFUnmanaged, []string{unmanagedPIF}},
		{"bad PIF", "OpaqueRef:nonesuch", 15, func() string { return n.network(t, "x") }, api.ErrHandleInvalid, []string{"PIF", "OpaqueRef:nonesuch"}},
	} {
		_, err := n.call("VLAN.create", tc.tagged, tc.tag, tc.net())
		if err == nil {
			t.Errorf("%s: succeeded, want %s", tc.name, tc.code)
			continue
		}
		wantErr(t, err, tc.code, tc.params...)
	}
	// Tags 0 and 4094 are valid; other tags live beside 10 on one PIF.
	for _, tag := range []int{0, 4094, 11} {
		n.do(t, "VLAN.create", eth1, tag, n.network(t, "ok"))
	}
	if got := len(n.getRefs(t, "PIF", eth1, "VLAN_slave_of")); got != 4 {
		t.Errorf("%d VLANs on eth1, want 4", got)
	}
	// A VLAN on the management PIF.
	n.do(t, "VLAN.create", n.mgmtPIF(t), 10, n.network(t, "mgmt10"))
}

func TestVLANDestroy(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.XMLRPC)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")
	net := n.network(t, "vlan20")
	vlan := n.do(t, "VLAN.create", eth1, 20, net).Str
	untagged := n.get(t, "VLAN", vlan, "untagged_PIF")
	metrics := n.get(t, "PIF", eth1, "metrics")

	// A running VM with a VIF on the VLAN's network keeps it.
	vm := n.vm(t, "vm")
	vif := n.mustVIF(t, vm, net, "0")
	n.runVM(t, vm, vif)
	_, err := n.call("VLAN.destroy", vlan)
	wantErr(t, err, api.ErrVIFInUse, net, vif)
	n.haltVM(t, vm, vif)

	// So does the management role, and disallow_unplug.
	n.modify(t, api.ClassPIF, untagged, func(r xenapi.Record) { r.(*api.PIF).Management = true })
	_, err = n.call("VLAN.destroy", vlan)
	wantErr(t, err, api.ErrPIFIsManagementInterface, untagged)
	n.modify(t, api.ClassPIF, untagged, func(r xenapi.Record) { r.(*api.PIF).Management = false })
	n.do(t, "PIF.set_disallow_unplug", untagged, true)
	_, err = n.call("VLAN.destroy", vlan)
	wantErr(t, err, api.ErrPIFDoesNotAllowUnplug, untagged)
	n.do(t, "PIF.set_disallow_unplug", untagged, false)

	n.do(t, "VLAN.destroy", vlan)
	if n.exists(api.ClassVLAN, vlan) || n.exists(api.ClassPIF, untagged) {
		t.Error("VLAN.destroy left the VLAN or its PIF")
	}
	if !n.exists(api.ClassPIFMetrics, metrics) {
		t.Error("VLAN.destroy took the tagged PIF's metrics")
	}
	if got := n.getRefs(t, "PIF", eth1, "VLAN_slave_of"); len(got) != 0 {
		t.Errorf("PIF.VLAN_slave_of = %v after destroy", got)
	}
	if got := n.getRefs(t, "network", net, "PIFs"); len(got) != 0 {
		t.Errorf("network.PIFs = %v after destroy", got)
	}
	_, err = n.call("VLAN.destroy", vlan)
	wantErr(t, err, api.ErrHandleInvalid, "VLAN", vlan)
	// The network is free again.
	n.do(t, "VLAN.create", eth1, 20, net)
}

func TestVLANDeprecatedAndPoolCalls(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	host := n.host(t)
	eth1, _ := n.phys(t, "eth1", "52:54:00:00:00:01")

	pif := n.do(t, "PIF.create_VLAN", "eth1", n.network(t, "v30"), host, 30).Str
	if got := n.get(t, "PIF", pif, "VLAN"); got != "30" {
		t.Errorf("PIF.create_VLAN made VLAN %s", got)
	}
	_, err := n.call("PIF.create_VLAN", "eth9", n.network(t, "x"), host, 31)
	wantErr(t, err, api.ErrInvalidValue, "device", "eth9")
	_, err = n.call("PIF.create_VLAN", "eth1", n.network(t, "x"), host, 5000)
	wantErr(t, err, api.ErrVLANTagInvalid, "5000")
	_, err = n.call("PIF.destroy", eth1)
	wantErr(t, err, api.ErrPIFIsPhysical)
	vlan := n.get(t, "PIF", pif, "VLAN_master_of")
	n.do(t, "PIF.destroy", pif)
	if n.exists(api.ClassPIF, pif) || n.exists(api.ClassVLAN, vlan) {
		t.Error("PIF.destroy left the VLAN PIF or the VLAN")
	}

	pifs := n.do(t, "pool.create_VLAN", "eth1", n.network(t, "v40"), 40)
	if len(pifs.Array) != 1 || n.get(t, "PIF", pifs.Array[0].Str, "VLAN") != "40" {
		t.Errorf("pool.create_VLAN = %+v", pifs)
	}
	pifs = n.do(t, "pool.create_VLAN_from_PIF", n.mgmtPIF(t), n.network(t, "v50"), 50)
	if len(pifs.Array) != 1 || n.get(t, "PIF", pifs.Array[0].Str, "device") != "eth0" {
		t.Errorf("pool.create_VLAN_from_PIF = %+v", pifs)
	}
	// All or nothing: a failure leaves no VLAN behind.
	before := n.e.store.Count(api.ClassVLAN)
	_, err = n.call("pool.create_VLAN", "eth1", n.network(t, "x"), 40)
	wantErr(t, err, api.ErrPIFVLANExists, "eth1")
	if got := n.e.store.Count(api.ClassVLAN); got != before {
		t.Errorf("%d VLANs after a failed pool.create_VLAN, want %d", got, before)
	}
}
