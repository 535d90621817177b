package xapi

import (
	"context"
	"slices"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// PIF messages: plugging (currently_attached, and the link state in the
// PIF_metrics carrier), IP configuration, properties, and the database
// calls of pool joins (db_introduce, db_forget, forget). PIF.introduce and
// PIF.scan read the machine's interfaces and stay NOT_IMPLEMENTED until
// networking is real.

func (s *Server) registerPIFHandlers() {
	s.handle("PIF.plug", s.pifUpdate(func(tx *store.Tx, c *Call) error { return plugPIF(tx, c.Ref(0)) }), -1)
	s.handle("PIF.unplug", s.pifUpdate(func(tx *store.Tx, c *Call) error { return unplugPIF(tx, c.Ref(0)) }), -1)
	s.handle("PIF.reconfigure_ip", s.pifUpdate(reconfigureIP), -1)
	s.handle("PIF.reconfigure_ipv6", s.pifUpdate(reconfigureIPv6), -1)
	s.handle("PIF.set_primary_address_type", s.pifUpdate(setPrimaryAddressType), -1)
	s.handle("PIF.set_property", s.pifUpdate(setPIFProperty), -1)
	s.handle("PIF.set_disallow_unplug", s.pifUpdate(setDisallowUnplug), -1)
	s.handle("PIF.forget", s.pifUpdate(forgetPIF), -1)
	s.handle("PIF.db_forget", s.pifUpdate(func(tx *store.Tx, c *Call) error { return deletePIF(tx, c.Ref(0)) }), -1)
	s.handle("PIF.db_introduce", s.pifDBIntroduce, -1)
}

func (s *Server) pifUpdate(fn func(tx *store.Tx, c *Call) error) handlerFunc {
	return func(ctx context.Context, c *Call) (Result, error) {
		return nil, s.store.Update(ctx, func(tx *store.Tx) error { return fn(tx, c) })
	}
}

func getPIF(tx *store.Tx, ref xenapi.Ref) (*api.PIF, error) {
	r, err := tx.Get(api.ClassPIF, ref)
	if err != nil {
		return nil, err
	}
	return r.(*api.PIF), nil
}

func modifyPIF(tx *store.Tx, ref xenapi.Ref, fn func(p *api.PIF)) error {
	return tx.Modify(api.ClassPIF, ref, func(r xenapi.Record) error {
		fn(r.(*api.PIF))
		return nil
	})
}

// pifKind is what a PIF is, as xapi's Xapi_pif_helpers.get_pif_type says.
type pifKind int

const (
	pifUnknown pifKind = iota
	pifTunnelAccess
	pifVLAN
	pifSRIOVLogical
	pifBondMaster
	pifPhysical
)

func pifKindOf(tx *store.Tx, ref xenapi.Ref, p *api.PIF) pifKind {
	switch {
	case len(p.TunnelAccessPIFOf) > 0:
		return pifTunnelAccess
	case !p.VLANMasterOf.IsNull():
		return pifVLAN
	case len(p.SRIOVLogicalPIFOf) > 0:
		return pifSRIOVLogical
	case !bondOfMaster(tx, ref).IsNull():
		return pifBondMaster
	case p.Physical:
		return pifPhysical
	}
	return pifUnknown
}

// unknownPIFKind is xapi's answer for a PIF that is none of the kinds.
func unknownPIFKind(p *api.PIF) error {
	return xenapi.NewError(api.ErrInternalError, "Cannot calculate PIF type of "+p.UUID)
}

// bondOfMaster returns the bond whose master is the PIF, or NullRef.
func bondOfMaster(tx *store.Tx, pif xenapi.Ref) xenapi.Ref {
	for _, b := range netRefsWhere(tx, api.ClassBond, func(r xenapi.Record) bool { return r.(*api.Bond).Master == pif }) {
		return b
	}
	return xenapi.NullRef
}

// bondSlaves returns the members of a bond.
func bondSlaves(tx *store.Tx, bond xenapi.Ref) []xenapi.Ref {
	return netRefsWhere(tx, api.ClassPIF, func(r xenapi.Record) bool { return r.(*api.PIF).BondSlaveOf == bond })
}

// vlansOn returns the VLANs whose tagged PIF is pif.
func vlansOn(tx *store.Tx, pif xenapi.Ref) []xenapi.Ref {
	return netRefsWhere(tx, api.ClassVLAN, func(r xenapi.Record) bool { return r.(*api.VLAN).TaggedPIF == pif })
}

func assertPIFManaged(ref xenapi.Ref, p *api.PIF) error {
	if !p.Managed {
		return xenapi.NewError(api.ErrPIFUnmanaged, string(ref))
	}
	return nil
}

// assertNoProtection refuses to reconfigure an attached PIF while HA or
// the redo log relies on the network (HA_IS_ENABLED, REDO_LOG_IS_ENABLED).
func assertNoProtection(tx *store.Tx, p *api.PIF) error {
	if !p.CurrentlyAttached {
		return nil
	}
	if pool := netPool(tx); pool != nil {
		if pool.HAEnabled {
			return xenapi.NewError(api.ErrHAIsEnabled)
		}
		if pool.RedoLogEnabled {
			return xenapi.NewError(api.ErrRedoLogIsEnabled)
		}
	}
	return nil
}

// assertNoClustering refuses changes to a PIF an enabled cluster host uses
// (CLUSTERING_ENABLED).
func assertNoClustering(tx *store.Tx, ref xenapi.Ref) error {
	for _, ch := range netRefsWhere(tx, api.ClassClusterHost, func(r xenapi.Record) bool { return r.(*api.ClusterHost).PIF == ref }) {
		if r, _ := tx.Get(api.ClassClusterHost, ch); r.(*api.ClusterHost).Enabled {
			return xenapi.NewError(api.ErrClusteringEnabled, string(ch))
		}
	}
	return nil
}

// assertNoOtherLocalPIFs refuses a second PIF of one network on one host
// (NETWORK_ALREADY_CONNECTED, with the host and the PIF, as xapi).
func assertNoOtherLocalPIFs(tx *store.Tx, host, net xenapi.Ref) error {
	for _, p := range networkPIFs(tx, net) {
		if pif, _ := getPIF(tx, p); pif.Host == host {
			return xenapi.NewError(api.ErrNetworkAlreadyConnected, string(host), string(p))
		}
	}
	return nil
}

func assertNotManagement(ref xenapi.Ref, p *api.PIF) error {
	if p.Management {
		return xenapi.NewError(api.ErrPIFIsManagementInterface, string(ref))
	}
	return nil
}

// setCarrier records a PIF's link state in its metrics.
func setCarrier(tx *store.Tx, metrics xenapi.Ref, up bool) error {
	if metrics.IsNull() || !tx.Exists(api.ClassPIFMetrics, metrics) {
		return nil
	}
	return tx.Modify(api.ClassPIFMetrics, metrics, func(r xenapi.Record) error {
		m := r.(*api.PIFMetrics)
		m.Carrier, m.LastUpdated = up, netNow()
		return nil
	})
}

// bringPIFUp is what bringing an interface up changes in the database
// (xapi's Nm.bring_pif_up): the PIF is attached; a bond master's members
// are no longer attached on their own, their links are up and counted in
// links_up. Physical PIFs and bond masters own their link state (carrier);
// a VLAN PIF shares its tagged PIF's metrics and leaves them alone.
func bringPIFUp(tx *store.Tx, ref xenapi.Ref) error {
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	kind := pifKindOf(tx, ref, p)
	if bond := bondOfMaster(tx, ref); !bond.IsNull() {
		slaves := bondSlaves(tx, bond)
		for _, sl := range slaves {
			sp, _ := getPIF(tx, sl)
			if err := modifyPIF(tx, sl, func(p *api.PIF) { p.CurrentlyAttached = false }); err != nil {
				return err
			}
			if err := setCarrier(tx, sp.Metrics, true); err != nil {
				return err
			}
		}
		if err := tx.Modify(api.ClassBond, bond, func(r xenapi.Record) error {
			r.(*api.Bond).LinksUp = int64(len(slaves))
			return nil
		}); err != nil {
			return err
		}
	}
	if err := modifyPIF(tx, ref, func(p *api.PIF) { p.CurrentlyAttached = true }); err != nil {
		return err
	}
	// A bond member brought up on its own takes the bond down.
	if !p.BondSlaveOf.IsNull() {
		if r, err := tx.Get(api.ClassBond, p.BondSlaveOf); err == nil && tx.Exists(api.ClassPIF, r.(*api.Bond).Master) {
			if err := modifyPIF(tx, r.(*api.Bond).Master, func(p *api.PIF) { p.CurrentlyAttached = false }); err != nil {
				return err
			}
		}
	}
	if kind == pifPhysical || kind == pifBondMaster {
		return setCarrier(tx, p.Metrics, true)
	}
	return nil
}

// bringPIFDown undoes bringPIFUp.
func bringPIFDown(tx *store.Tx, ref xenapi.Ref) error {
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	kind := pifKindOf(tx, ref, p)
	if err := modifyPIF(tx, ref, func(p *api.PIF) { p.CurrentlyAttached = false }); err != nil {
		return err
	}
	if bond := bondOfMaster(tx, ref); !bond.IsNull() {
		for _, sl := range bondSlaves(tx, bond) {
			sp, _ := getPIF(tx, sl)
			if err := setCarrier(tx, sp.Metrics, false); err != nil {
				return err
			}
		}
		if err := tx.Modify(api.ClassBond, bond, func(r xenapi.Record) error {
			r.(*api.Bond).LinksUp = 0
			return nil
		}); err != nil {
			return err
		}
	}
	if kind == pifPhysical || kind == pifBondMaster {
		return setCarrier(tx, p.Metrics, false)
	}
	return nil
}

// plugPIF is PIF.plug: what a PIF stands on comes up first (a tunnel's
// transport PIF, which needs an IP configuration:
// TRANSPORT_PIF_NOT_CONFIGURED; an SR-IOV logical PIF's physical one); a
// bond member cannot be plugged on its own (CANNOT_PLUG_BOND_SLAVE).
// Plugging an attached PIF is no error.
func plugPIF(tx *store.Tx, ref xenapi.Ref) error {
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if err := assertPIFManaged(ref, p); err != nil {
		return err
	}
	switch pifKindOf(tx, ref, p) {
	case pifTunnelAccess:
		r, err := tx.Get(api.ClassTunnel, p.TunnelAccessPIFOf[0])
		if err != nil {
			return err
		}
		transport := r.(*api.Tunnel).TransportPIF
		tp, err := getPIF(tx, transport)
		if err != nil {
			return err
		}
		if tp.IPConfigurationMode == api.IPConfigurationModeNone {
			return xenapi.NewError(api.ErrTransportPIFNotConfigured, string(transport))
		}
		if err := plugPIF(tx, transport); err != nil {
			return err
		}
	case pifVLAN:
		r, err := tx.Get(api.ClassVLAN, p.VLANMasterOf)
		if err != nil {
			return err
		}
		tagged := r.(*api.VLAN).TaggedPIF
		if tp, err := getPIF(tx, tagged); err == nil && len(tp.SRIOVLogicalPIFOf) > 0 {
			if err := plugPIF(tx, tagged); err != nil {
				return err
			}
		}
	case pifSRIOVLogical:
		r, err := tx.Get(api.ClassNetworkSRIOV, p.SRIOVLogicalPIFOf[0])
		if err != nil {
			return err
		}
		if err := plugPIF(tx, r.(*api.NetworkSRIOV).PhysicalPIF); err != nil {
			return err
		}
	case pifPhysical:
		if !p.BondSlaveOf.IsNull() {
			if len(p.SRIOVPhysicalPIFOf) == 0 {
				return xenapi.NewError(api.ErrCannotPlugBondSlave, string(ref))
			}
			r, err := tx.Get(api.ClassBond, p.BondSlaveOf)
			if err != nil {
				return err
			}
			if err := plugPIF(tx, r.(*api.Bond).Master); err != nil {
				return err
			}
		}
	}
	if p.BondSlaveOf.IsNull() {
		return bringPIFUp(tx, ref)
	}
	return nil
}

// unplugPIF is PIF.unplug. Refused for the management interface
// (PIF_IS_MANAGEMENT_INTERFACE), while a live VM on the host has a VIF
// attached to the network (VIF_IN_USE), for a PIF marked disallow_unplug
// (PIF_DOES_NOT_ALLOW_UNPLUG) and under HA or the redo log. Tunnels on the
// PIF go down with it; a bond member stays as it is (its bond owns it).
func unplugPIF(tx *store.Tx, ref xenapi.Ref) error {
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if err := assertPIFManaged(ref, p); err != nil {
		return err
	}
	if err := assertNoProtection(tx, p); err != nil {
		return err
	}
	if err := assertNotManagement(ref, p); err != nil {
		return err
	}
	if err := assertNetworkHasNoVIFsInUse(tx, p.Host, p.Network); err != nil {
		return err
	}
	if p.DisallowUnplug {
		return xenapi.NewError(api.ErrPIFDoesNotAllowUnplug, string(ref))
	}
	for _, t := range p.TunnelTransportPIFOf {
		if r, err := tx.Get(api.ClassTunnel, t); err == nil {
			if err := unplugPIF(tx, r.(*api.Tunnel).AccessPIF); err != nil {
				return err
			}
		}
	}
	if p.BondSlaveOf.IsNull() {
		return bringPIFDown(tx, ref)
	}
	return nil
}

// assertNetworkHasNoVIFsInUse answers VIF_IN_USE when a VIF of the network
// is being attached on the host or is attached to a live VM there.
func assertNetworkHasNoVIFsInUse(tx *store.Tx, host, net xenapi.Ref) error {
	for _, v := range netRefsWhere(tx, api.ClassVIF, func(r xenapi.Record) bool { return r.(*api.VIF).Network == net }) {
		r, _ := tx.Get(api.ClassVIF, v)
		vif := r.(*api.VIF)
		m, err := tx.Get(api.ClassVM, vif.VM)
		if err != nil {
			continue
		}
		vm := m.(*api.VM)
		for _, op := range vif.CurrentOperations.All() {
			if op == api.VIFOperationsAttach && (vm.ResidentOn == host || vm.ScheduledToBeResidentOn == host) {
				return xenapi.NewError(api.ErrVIFInUse, string(net), string(v))
			}
		}
		live := vm.PowerState == api.VMPowerStateRunning || vm.PowerState == api.VMPowerStatePaused
		if vif.CurrentlyAttached && vm.ResidentOn == host && live {
			return xenapi.NewError(api.ErrVIFInUse, string(net), string(v))
		}
	}
	return nil
}

// restrictDNS keeps the addresses of one family from a comma-separated
// DNS list.
func restrictDNS(dns string, f netIPFamily) []string {
	var out []string
	for _, a := range strings.Split(dns, ",") {
		if a != "" && validIPOf(f, a) {
			out = append(out, a)
		}
	}
	return out
}

// reconfigureIP is PIF.reconfigure_ip(self, mode, IP, netmask, gateway,
// DNS), with xapi's checks: Static needs an IPv4 address and netmask, any
// given address must be IPv4 (INVALID_IP_ADDRESS_SPECIFIED naming the
// parameter), the management interface cannot lose its address
// (PIF_IS_MANAGEMENT_INTERFACE), and only a DNS change of an unchanged
// static configuration is allowed under HA or clustering. DNS keeps the
// given IPv4 servers and the PIF's IPv6 ones.
func reconfigureIP(tx *store.Tx, c *Call) error {
	ref := c.Ref(0)
	mode, ip, netmask, gateway, dns := api.IPConfigurationMode(c.Str(1)), c.Str(2), c.Str(3), c.Str(4), c.Str(5)
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if err := assertPIFManaged(ref, p); err != nil {
		return err
	}
	unchanged := mode == api.IPConfigurationModeStatic && p.IPConfigurationMode == mode &&
		p.IP == ip && p.Netmask == netmask && p.Gateway == gateway
	if !unchanged {
		if err := assertNoProtection(tx, p); err != nil {
			return err
		}
		if err := assertNoClustering(tx, ref); err != nil {
			return err
		}
	}
	if mode == api.IPConfigurationModeStatic {
		for _, a := range []struct{ name, v string }{{"IP", ip}, {"netmask", netmask}} {
			if !validIPOf(famIPv4, a.v) {
				return xenapi.NewError(api.ErrInvalidIPAddressSpecified, a.name)
			}
		}
	}
	for _, a := range []struct{ name, v string }{{"IP", ip}, {"netmask", netmask}, {"gateway", gateway}} {
		if a.v != "" && !validIPOf(famIPv4, a.v) {
			return xenapi.NewError(api.ErrInvalidIPAddressSpecified, a.name)
		}
	}
	if p.Management && mode == api.IPConfigurationModeNone && p.PrimaryAddressType == api.PrimaryAddressTypeIPv4 {
		return xenapi.NewError(api.ErrPIFIsManagementInterface, string(ref))
	}
	servers := append(restrictDNS(dns, famIPv4), restrictDNS(p.DNS, famIPv6)...)
	return modifyPIF(tx, ref, func(p *api.PIF) {
		p.IPConfigurationMode, p.IP, p.Netmask, p.Gateway = mode, ip, netmask, gateway
		p.DNS = strings.Join(servers, ",")
	})
}

// reconfigureIPv6 is PIF.reconfigure_ipv6(self, mode, IPv6, gateway, DNS):
// the address must be a CIDR (INVALID_CIDR_ADDRESS_SPECIFIED), the gateway
// an IPv6 address (INVALID_IP_ADDRESS_SPECIFIED).
func reconfigureIPv6(tx *store.Tx, c *Call) error {
	ref := c.Ref(0)
	mode, addr, gateway, dns := api.IPv6ConfigurationMode(c.Str(1)), c.Str(2), c.Str(3), c.Str(4)
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if err := assertPIFManaged(ref, p); err != nil {
		return err
	}
	unchanged := mode == api.IPv6ConfigurationModeStatic && p.IPv6ConfigurationMode == mode &&
		slices.Equal(p.IPv6, []string{addr}) && p.IPv6Gateway == gateway
	if !unchanged {
		if err := assertNoProtection(tx, p); err != nil {
			return err
		}
		if err := assertNoClustering(tx, ref); err != nil {
			return err
		}
	}
	if gateway != "" && !validIPOf(famIPv6, gateway) {
		return xenapi.NewError(api.ErrInvalidIPAddressSpecified, "gateway")
	}
	if addr != "" && !validCIDROf(famIPv6, addr) {
		return xenapi.NewError(api.ErrInvalidCidrAddressSpecified, "IPv6")
	}
	if p.Management && mode == api.IPv6ConfigurationModeNone && p.PrimaryAddressType == api.PrimaryAddressTypeIPv6 {
		return xenapi.NewError(api.ErrPIFIsManagementInterface, string(ref))
	}
	servers := append(restrictDNS(dns, famIPv6), restrictDNS(p.DNS, famIPv4)...)
	return modifyPIF(tx, ref, func(p *api.PIF) {
		p.IPv6ConfigurationMode, p.IPv6Gateway, p.IPv6 = mode, gateway, []string{addr}
		p.DNS = strings.Join(servers, ",")
	})
}

func setPrimaryAddressType(tx *store.Tx, c *Call) error {
	ref, t := c.Ref(0), api.PrimaryAddressType(c.Str(1))
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if err := assertNoProtection(tx, p); err != nil {
		return err
	}
	if err := assertNotManagement(ref, p); err != nil {
		return err
	}
	return modifyPIF(tx, ref, func(p *api.PIF) { p.PrimaryAddressType = t })
}

// pifPropertyValues are the PIF properties xapi knows and their values.
var pifPropertyValues = map[string][]string{"gro": {"on", "off"}}

// setPIFProperty is PIF.set_property: a known property and value
// (INVALID_VALUE "properties"), on a physical PIF outside a bond or a bond
// master (CANNOT_CHANGE_PIF_PROPERTIES); a bond master passes it to its
// members.
func setPIFProperty(tx *store.Tx, c *Call) error {
	ref, name, value := c.Ref(0), c.Str(1), c.Str(2)
	if !slices.Contains(pifPropertyValues[name], value) {
		return xenapi.NewError(api.ErrInvalidValue, "properties", name+" = "+value)
	}
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	bond := bondOfMaster(tx, ref)
	if (bond.IsNull() && !p.Physical) || !p.BondSlaveOf.IsNull() {
		return xenapi.NewError(api.ErrCannotChangePIFProperties, string(ref))
	}
	props := p.Properties.With(name, value)
	targets := []xenapi.Ref{ref}
	if !bond.IsNull() {
		targets = append(targets, bondSlaves(tx, bond)...)
	}
	for _, t := range targets {
		if err := modifyPIF(tx, t, func(p *api.PIF) { p.Properties = props }); err != nil {
			return err
		}
	}
	return nil
}

// setDisallowUnplug clears the flag only when no enabled cluster host uses
// the PIF (CLUSTERING_ENABLED).
func setDisallowUnplug(tx *store.Tx, c *Call) error {
	ref, v := c.Ref(0), c.Bool(1)
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if p.DisallowUnplug == v {
		return nil
	}
	if !v {
		if err := assertNoClustering(tx, ref); err != nil {
			return err
		}
	}
	return modifyPIF(tx, ref, func(p *api.PIF) { p.DisallowUnplug = v })
}

// forgetPIF is PIF.forget: the record goes (the interface stays). Refused
// for the management interface, bond members and masters
// (PIF_ALREADY_BONDED), PIFs with VLANs or VLAN PIFs
// (PIF_VLAN_STILL_EXISTS), tunnels (PIF_TUNNEL_STILL_EXISTS), SR-IOV, and
// under HA or clustering.
func forgetPIF(tx *store.Tx, c *Call) error {
	ref := c.Ref(0)
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if err := assertNotManagement(ref, p); err != nil {
		return err
	}
	if err := assertNotInBond(tx, ref, p); err != nil {
		return err
	}
	if len(vlansOn(tx, ref)) > 0 || p.VLAN != -1 {
		return xenapi.NewError(api.ErrPIFVLANStillExists, string(ref))
	}
	if len(p.TunnelTransportPIFOf) > 0 || len(p.TunnelAccessPIFOf) > 0 {
		return xenapi.NewError(api.ErrPIFTunnelStillExists, string(ref))
	}
	if err := assertNoProtection(tx, p); err != nil {
		return err
	}
	if len(p.SRIOVLogicalPIFOf) > 0 {
		return xenapi.NewError(api.ErrCannotForgetSRIOVLogical, string(ref))
	}
	if len(p.SRIOVPhysicalPIFOf) > 0 {
		return xenapi.NewError(api.ErrPIFSRIOVStillExists, string(ref))
	}
	if err := assertNoClustering(tx, ref); err != nil {
		return err
	}
	return deletePIF(tx, ref)
}

// assertNotInBond answers PIF_ALREADY_BONDED for a bond member or master.
func assertNotInBond(tx *store.Tx, ref xenapi.Ref, p *api.PIF) error {
	if tx.Exists(api.ClassBond, p.BondSlaveOf) || !bondOfMaster(tx, ref).IsNull() {
		return xenapi.NewError(api.ErrPIFAlreadyBonded, string(ref))
	}
	return nil
}

// deletePIF removes a PIF record and its metrics unless another PIF (a
// VLAN on it) shares them.
func deletePIF(tx *store.Tx, ref xenapi.Ref) error {
	p, err := getPIF(tx, ref)
	if err != nil {
		return err
	}
	if err := tx.Delete(api.ClassPIF, ref); err != nil {
		return err
	}
	if p.Metrics.IsNull() || !tx.Exists(api.ClassPIFMetrics, p.Metrics) {
		return nil
	}
	if len(netRefsWhere(tx, api.ClassPIF, func(r xenapi.Record) bool { return r.(*api.PIF).Metrics == p.Metrics })) > 0 {
		return nil
	}
	return tx.Delete(api.ClassPIFMetrics, p.Metrics)
}

// moveIPConfiguration moves the IPv4 configuration of one PIF to another
// (bond creation and destruction, VLAN moves).
func moveIPConfiguration(tx *store.Tx, from, to xenapi.Ref) error {
	src, err := getPIF(tx, from)
	if err != nil {
		return err
	}
	if err := modifyPIF(tx, to, func(p *api.PIF) {
		p.IPConfigurationMode, p.IP, p.Netmask, p.Gateway, p.DNS = src.IPConfigurationMode, src.IP, src.Netmask, src.Gateway, src.DNS
	}); err != nil {
		return err
	}
	return modifyPIF(tx, from, func(p *api.PIF) {
		p.IPConfigurationMode, p.IP, p.Netmask, p.Gateway, p.DNS = api.IPConfigurationModeNone, "", "", "", ""
	})
}

// moveManagement makes to the management interface in place of from (which
// may be gone already) and brings it up.
func moveManagement(tx *store.Tx, from, to xenapi.Ref) error {
	if tx.Exists(api.ClassPIF, from) {
		if err := modifyPIF(tx, from, func(p *api.PIF) { p.Management = false }); err != nil {
			return err
		}
	}
	if err := modifyPIF(tx, to, func(p *api.PIF) { p.Management = true }); err != nil {
		return err
	}
	return bringPIFUp(tx, to)
}

// pifDBIntroduce is PIF.db_introduce: a PIF record from its fields, with a
// fresh metrics object, detached, as xapi's pool_introduce makes it
// (bond_slave_of is ignored, as in xapi).
func (s *Server) pifDBIntroduce(ctx context.Context, c *Call) (Result, error) {
	p := api.NewPIF()
	p.Device, p.Network, p.Host, p.MAC = c.Str(0), c.Ref(1), c.Ref(2), c.Str(3)
	p.MTU, p.VLAN, p.Physical = c.Int(4), c.Int(5), c.Bool(6)
	p.IPConfigurationMode = api.IPConfigurationMode(c.Str(7))
	p.IP, p.Netmask, p.Gateway, p.DNS = c.Str(8), c.Str(9), c.Str(10), c.Str(11)
	p.VLANMasterOf, p.Management = c.Ref(13), c.Bool(14)
	p.OtherConfig = netStringMap(c.Arg(15))
	p.DisallowUnplug = c.Bool(16)
	p.IPv6ConfigurationMode = api.IPv6ConfigurationMode(c.Str(17))
	for _, v := range c.Arg(18).Array {
		p.IPv6 = append(p.IPv6, v.Str)
	}
	p.IPv6Gateway, p.PrimaryAddressType = c.Str(19), api.PrimaryAddressType(c.Str(20))
	p.Managed, p.Properties = c.Bool(21), netStringMap(c.Arg(22))
	p.CurrentlyAttached = false
	var ref xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Get(api.ClassNetwork, p.Network); err != nil {
			return err
		}
		if _, err := tx.Get(api.ClassHost, p.Host); err != nil {
			return err
		}
		m, err := tx.Create(api.NewPIFMetrics())
		if err != nil {
			return err
		}
		p.Metrics = m
		ref, err = tx.Create(p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

// netStringMap reads a (string -> string) map argument.
func netStringMap(v wire.Value) xenapi.Map[string, string] {
	m, _ := xenapi.DecStringMap(v)
	return m
}
