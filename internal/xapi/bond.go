package xapi

import (
	"context"
	"maps"
	"slices"
	"strconv"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Bonds: Bond.create makes a master PIF ("bond<N>") on a network over
// member PIFs of one host and moves onto it what the members carried (IP
// configuration, management, VLANs, VIFs); Bond.destroy moves it all back
// to the primary member. Mode and properties follow xapi's rules.

func (s *Server) registerBondHandlers() {
	s.handle("Bond.create", s.bondCreate, -1)
	s.handle("Bond.destroy", s.pifUpdate(func(tx *store.Tx, c *Call) error { return destroyBond(tx, c.Ref(0)) }), -1)
	s.handle("Bond.set_mode", s.pifUpdate(setBondMode), -1)
	s.handle("Bond.set_property", s.pifUpdate(setBondProperty), -1)
}

// bondProperty is a property a bond mode accepts, with its default.
type bondProperty struct {
	key, def string
	valid    func(string) bool
}

func bondOneOf(values ...string) func(string) bool {
	return func(v string) bool { return slices.Contains(values, v) }
}

// bondProperties lists the properties of a mode: only lacp has any (as in
// xapi), other modes accept none.
func bondProperties(mode api.BondMode) []bondProperty {
	if mode != api.BondModeLacp {
		return nil
	}
	return []bondProperty{
		{"hashing_algorithm", "tcpudp_ports", bondOneOf("src_mac", "tcpudp_ports")},
		{"lacp-time", "slow", bondOneOf("fast", "slow")},
		{"lacp-aggregation-key", "", func(v string) bool { _, err := strconv.Atoi(v); return err == nil }},
		{"lacp-fallback-ab", "true", bondOneOf("true", "false")},
	}
}

// checkBondProperty answers INVALID_VALUE ("properties", "key = value") for
// a property the mode does not take, or a value it does not allow.
func checkBondProperty(reqs []bondProperty, k, v string) error {
	for _, r := range reqs {
		if r.key == k && r.valid(v) {
			return nil
		}
	}
	return xenapi.NewError(api.ErrInvalidValue, "properties", k+" = "+v)
}

func addBondDefaults(reqs []bondProperty, props map[string]string) map[string]string {
	out := maps.Clone(props)
	if out == nil {
		out = map[string]string{}
	}
	for _, r := range reqs {
		if _, ok := out[r.key]; !ok && r.def != "" {
			out[r.key] = r.def
		}
	}
	return out
}

// bondCreate is Bond.create(network, members, MAC, mode, properties). As in
// xapi, one member is enough (none is PIF_BOND_NEEDS_MORE_MEMBERS).
func (s *Server) bondCreate(ctx context.Context, c *Call) (Result, error) {
	net, mac, mode := c.Ref(0), c.Str(2), api.BondMode(c.Str(3))
	var members []xenapi.Ref
	for _, v := range c.Arg(1).Array {
		if r := xenapi.Ref(v.Str); !slices.Contains(members, r) {
			members = append(members, r)
		}
	}
	if len(members) == 0 {
		return nil, xenapi.NewError(api.ErrPIFBondNeedsMoreMembers)
	}
	var bond xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		bond, err = createBond(tx, net, members, mac, mode, netStringMap(c.Arg(4)).Go())
		return err
	})
	if err != nil {
		return nil, err
	}
	return refResult(bond), nil
}

// createBond checks the request as xapi does: a managed network
// (NETWORK_UNMANAGED) without a PIF on the host (NETWORK_ALREADY_CONNECTED),
// a valid MAC if given (MAC_INVALID), properties valid for the mode
// (INVALID_VALUE), members with one primary address type
// (PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE), each managed (PIF_UNMANAGED),
// not bonded (PIF_ALREADY_BONDED), not a VLAN (PIF_VLAN_EXISTS), tunnel or
// SR-IOV PIF, on one host (PIF_CANNOT_BOND_CROSS_HOST), with equal
// properties (INCOMPATIBLE_PIF_PROPERTIES) and at most one IP
// configuration (PIF_BOND_MORE_THAN_ONE_IP).
func createBond(tx *store.Tx, net xenapi.Ref, members []xenapi.Ref, mac string, mode api.BondMode, props map[string]string) (xenapi.Ref, error) {
	if err := assertNetworkManaged(tx, net); err != nil {
		return "", err
	}
	pifs := make([]*api.PIF, len(members))
	for i, m := range members {
		p, err := getPIF(tx, m)
		if err != nil {
			return "", err
		}
		pifs[i] = p
	}
	host := pifs[0].Host
	if err := assertNoOtherLocalPIFs(tx, host, net); err != nil {
		return "", err
	}
	userMAC := mac != ""
	if userMAC && !validMAC(mac) {
		return "", xenapi.NewError(api.ErrMACInvalid, mac)
	}
	reqs := bondProperties(mode)
	for _, k := range slices.Sorted(maps.Keys(props)) {
		if err := checkBondProperty(reqs, k, props[k]); err != nil {
			return "", err
		}
	}
	props = addBondDefaults(reqs, props)

	// The primary member is the management PIF, else the first with an IP
	// configuration, else the first.
	primary, mgmt := -1, -1
	var withIP []int
	for i, p := range pifs {
		if p.Management && mgmt < 0 {
			mgmt = i
		}
		if hasIPConfiguration(p) {
			withIP = append(withIP, i)
		}
	}
	switch {
	case mgmt >= 0:
		primary = mgmt
	case len(withIP) > 0:
		primary = withIP[0]
	default:
		primary = 0
	}
	addrType := pifs[primary].PrimaryAddressType
	for i, p := range pifs {
		if p.PrimaryAddressType != addrType {
			return "", xenapi.NewError(api.ErrPIFIncompatiblePrimaryAddressType, string(members[i]))
		}
	}
	autoUpdateMAC := !userMAC
	if !userMAC {
		mac = pifs[primary].MAC
	}
	disallowUnplug := false
	ha := netPool(tx) != nil && netPool(tx).HAEnabled
	for i, p := range pifs {
		if err := assertPIFManaged(members[i], p); err != nil {
			return "", err
		}
		if err := bondAllowedOn(tx, members[i], p); err != nil {
			return "", err
		}
		if ha && p.Management {
			return "", xenapi.NewError(api.ErrHACannotChangeBondStatusOfMgmtIface)
		}
		disallowUnplug = disallowUnplug || p.DisallowUnplug
	}
	for _, p := range pifs {
		if p.Host != host {
			return "", xenapi.NewError(api.ErrPIFCannotBondCrossHost)
		}
	}
	for _, p := range pifs[1:] {
		if !slices.Equal(p.Properties, pifs[0].Properties) {
			return "", xenapi.NewError(api.ErrIncompatiblePIFProperties)
		}
	}
	if len(withIP) > 1 {
		return "", xenapi.NewError(api.ErrPIFBondMoreThanOneIP)
	}

	// The VLANs on the members, before the members change.
	var memberVLANs []xenapi.Ref
	mgmtOnVLAN := false
	for _, m := range members {
		for _, v := range vlansOn(tx, m) {
			memberVLANs = append(memberVLANs, v)
			if r, _ := tx.Get(api.ClassVLAN, v); r != nil {
				if u, err := getPIF(tx, r.(*api.VLAN).UntaggedPIF); err == nil && u.Management {
					mgmtOnVLAN = true
				}
			}
		}
	}
	mtu := int64(netDefaultMTU)
	if r, err := tx.Get(api.ClassNetwork, net); err == nil {
		mtu = r.(*api.Network).MTU
	}
	metrics, err := tx.Create(api.NewPIFMetrics())
	if err != nil {
		return "", err
	}
	mp := api.NewPIF()
	mp.Device, mp.Network, mp.Host, mp.MAC = chooseBondDevice(tx, host), net, host, mac
	mp.MTU, mp.VLAN, mp.Metrics = mtu, -1, metrics
	mp.Physical, mp.CurrentlyAttached = false, false
	mp.PrimaryAddressType = addrType
	mp.Properties = pifs[0].Properties
	master, err := tx.Create(mp)
	if err != nil {
		return "", err
	}
	b := api.NewBond()
	b.Master, b.PrimarySlave, b.Mode, b.Properties = master, members[primary], mode, xenapi.MapOf(props)
	b.AutoUpdateMAC = autoUpdateMAC
	bond, err := tx.Create(b)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if err := modifyPIF(tx, m, func(p *api.PIF) { p.BondSlaveOf = bond }); err != nil {
			return "", err
		}
	}
	if err := moveIPConfiguration(tx, members[primary], master); err != nil {
		return "", err
	}
	switch {
	case mgmt >= 0:
		if err := moveManagement(tx, members[mgmt], master); err != nil {
			return "", err
		}
	case !mgmtOnVLAN:
		if err := bringPIFUp(tx, master); err != nil {
			return "", err
		}
	}
	for _, v := range memberVLANs {
		if err := moveVLAN(tx, master, v); err != nil {
			return "", err
		}
	}
	if mgmtOnVLAN && mgmt < 0 {
		if err := bringPIFUp(tx, master); err != nil {
			return "", err
		}
	}
	var memberNets []xenapi.Ref
	for _, p := range pifs {
		memberNets = append(memberNets, p.Network)
	}
	if err := moveVIFs(tx, memberNets, net); err != nil {
		return "", err
	}
	if disallowUnplug {
		if err := modifyPIF(tx, master, func(p *api.PIF) { p.DisallowUnplug = true }); err != nil {
			return "", err
		}
		for _, m := range members {
			if err := modifyPIF(tx, m, func(p *api.PIF) { p.DisallowUnplug = false }); err != nil {
				return "", err
			}
		}
	}
	return bond, nil
}

func hasIPConfiguration(p *api.PIF) bool {
	if p.PrimaryAddressType == api.PrimaryAddressTypeIPv6 {
		return p.IPv6ConfigurationMode != api.IPv6ConfigurationModeNone
	}
	return p.IPConfigurationMode != api.IPConfigurationModeNone
}

// bondAllowedOn refuses members that cannot be bonded. xapi lets a bond
// master into another bond; xenith refuses it (PIF_ALREADY_BONDED), as no
// switch backend stacks bonds.
func bondAllowedOn(tx *store.Tx, ref xenapi.Ref, p *api.PIF) error {
	switch pifKindOf(tx, ref, p) {
	case pifPhysical:
		if tx.Exists(api.ClassBond, p.BondSlaveOf) {
			return xenapi.NewError(api.ErrPIFAlreadyBonded, string(ref))
		}
	case pifBondMaster:
		return xenapi.NewError(api.ErrPIFAlreadyBonded, string(ref))
	case pifVLAN:
		return xenapi.NewError(api.ErrPIFVLANExists, p.Device)
	case pifTunnelAccess:
		return xenapi.NewError(api.ErrIsTunnelAccessPIF, string(ref))
	case pifSRIOVLogical:
		return xenapi.NewError(api.ErrPIFIsSRIOVLogical, string(ref))
	case pifUnknown:
		return unknownPIFKind(p)
	}
	return nil
}

// chooseBondDevice names a new bond master "bond<N>", N the smallest number
// no bond master of the host uses.
func chooseBondDevice(tx *store.Tx, host xenapi.Ref) string {
	used := map[string]bool{}
	for _, r := range tx.All(api.ClassBond) {
		if p, err := getPIF(tx, r.(*api.Bond).Master); err == nil && p.Host == host {
			used[p.Device] = true
		}
	}
	for n := 0; ; n++ {
		if d := "bond" + strconv.Itoa(n); !used[d] {
			return d
		}
	}
}

// moveVLAN moves a VLAN onto another tagged PIF (a new bond master, or a
// bond's primary member when the bond goes), as xapi does: a new VLAN and
// untagged PIF on the same network take over the old one's IP
// configuration, management role and plugged state; if the new PIF
// already has a VLAN with that tag, the old network's VIFs move to it.
func moveVLAN(tx *store.Tx, newTagged, oldVLAN xenapi.Ref) error {
	r, err := tx.Get(api.ClassVLAN, oldVLAN)
	if err != nil {
		return err
	}
	ov := r.(*api.VLAN)
	old, err := getPIF(tx, ov.UntaggedPIF)
	if err != nil {
		return tx.Delete(api.ClassVLAN, oldVLAN)
	}
	tp, err := getPIF(tx, newTagged)
	if err != nil {
		return err
	}
	var newUntagged xenapi.Ref
	created := false
	for _, v := range vlansOn(tx, newTagged) {
		if vr, _ := tx.Get(api.ClassVLAN, v); v != oldVLAN && vr.(*api.VLAN).Tag == ov.Tag {
			newUntagged = vr.(*api.VLAN).UntaggedPIF
		}
	}
	if newUntagged != "" {
		np, err := getPIF(tx, newUntagged)
		if err != nil {
			return err
		}
		if err := moveVIFs(tx, []xenapi.Ref{old.Network}, np.Network); err != nil {
			return err
		}
	} else {
		if _, newUntagged, err = newVLAN(tx, newTagged, tp, ov.Tag, old.Network); err != nil {
			return err
		}
		created = true
	}
	// The IP configuration moves along (xapi copies it even over the one
	// of a VLAN already on the new PIF, erasing it; xenith keeps that).
	if created || old.IPConfigurationMode != api.IPConfigurationModeNone {
		if err := moveIPConfiguration(tx, ov.UntaggedPIF, newUntagged); err != nil {
			return err
		}
	}
	if err := tx.Delete(api.ClassVLAN, oldVLAN); err != nil {
		return err
	}
	if err := tx.Delete(api.ClassPIF, ov.UntaggedPIF); err != nil {
		return err
	}
	switch {
	case !old.CurrentlyAttached:
		return nil
	case old.Management:
		return moveManagement(tx, ov.UntaggedPIF, newUntagged)
	default:
		return bringPIFUp(tx, newUntagged)
	}
}

// destroyBond is Bond.destroy: the master's IP configuration, management
// role, VLANs and VIFs go back to the primary member (its disallow_unplug
// too), the members come up if the master was up, and the master PIF
// goes with the bond. A bond holding the management interface cannot go
// while HA is on (HA_CANNOT_CHANGE_BOND_STATUS_OF_MGMT_IFACE).
func destroyBond(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassBond, ref)
	if err != nil {
		return err
	}
	b := r.(*api.Bond)
	members := bondSlaves(tx, ref)
	clearMembers := func() error {
		for _, m := range members {
			if err := modifyPIF(tx, m, func(p *api.PIF) { p.BondSlaveOf = xenapi.NullRef }); err != nil {
				return err
			}
		}
		return nil
	}
	master, err := getPIF(tx, b.Master)
	if err != nil || len(members) == 0 {
		// A broken bond: remove what is left.
		if err := tx.Delete(api.ClassBond, ref); err != nil {
			return err
		}
		if master != nil {
			if err := deletePIF(tx, b.Master); err != nil {
				return err
			}
		}
		return clearMembers()
	}
	if pool := netPool(tx); pool != nil && pool.HAEnabled && master.Management {
		return xenapi.NewError(api.ErrHACannotChangeBondStatusOfMgmtIface)
	}
	primary := b.PrimarySlave
	if !slices.Contains(members, primary) {
		primary = members[0]
	}
	pp, _ := getPIF(tx, primary)
	masterVLANs := vlansOn(tx, b.Master)
	mgmtOnVLAN := false
	for _, v := range masterVLANs {
		if vr, _ := tx.Get(api.ClassVLAN, v); vr != nil {
			if u, err := getPIF(tx, vr.(*api.VLAN).UntaggedPIF); err == nil && u.Management {
				mgmtOnVLAN = true
			}
		}
	}
	if err := moveIPConfiguration(tx, b.Master, primary); err != nil {
		return err
	}
	bringUp := func(only func(xenapi.Ref) bool) error {
		for _, m := range members {
			if only(m) {
				if err := bringPIFUp(tx, m); err != nil {
					return err
				}
			}
		}
		return nil
	}
	switch {
	case master.Management:
		if err := moveManagement(tx, b.Master, primary); err != nil {
			return err
		}
		if err := bringUp(func(m xenapi.Ref) bool { return m != primary }); err != nil {
			return err
		}
	case master.CurrentlyAttached && !mgmtOnVLAN:
		if err := bringUp(func(xenapi.Ref) bool { return true }); err != nil {
			return err
		}
	}
	for _, v := range masterVLANs {
		if err := moveVLAN(tx, primary, v); err != nil {
			return err
		}
	}
	if mgmtOnVLAN {
		if err := bringUp(func(xenapi.Ref) bool { return true }); err != nil {
			return err
		}
	}
	if err := moveVIFs(tx, []xenapi.Ref{master.Network}, pp.Network); err != nil {
		return err
	}
	if master.DisallowUnplug {
		if err := modifyPIF(tx, primary, func(p *api.PIF) { p.DisallowUnplug = true }); err != nil {
			return err
		}
	}
	if err := tx.Delete(api.ClassBond, ref); err != nil {
		return err
	}
	if err := deletePIF(tx, b.Master); err != nil {
		return err
	}
	return clearMembers()
}

// setBondMode is Bond.set_mode: the properties the new mode does not take
// are dropped and its defaults added.
func setBondMode(tx *store.Tx, c *Call) error {
	mode := api.BondMode(c.Str(1))
	return tx.Modify(api.ClassBond, c.Ref(0), func(r xenapi.Record) error {
		b := r.(*api.Bond)
		reqs := bondProperties(mode)
		kept := map[string]string{}
		for k, v := range b.Properties.All() {
			if checkBondProperty(reqs, k, v) == nil {
				kept[k] = v
			}
		}
		b.Mode, b.Properties = mode, xenapi.MapOf(addBondDefaults(reqs, kept))
		return nil
	})
}

// setBondProperty is Bond.set_property, checked against the bond's mode.
func setBondProperty(tx *store.Tx, c *Call) error {
	name, value := c.Str(1), c.Str(2)
	return tx.Modify(api.ClassBond, c.Ref(0), func(r xenapi.Record) error {
		b := r.(*api.Bond)
		if err := checkBondProperty(bondProperties(b.Mode), name, value); err != nil {
			return err
		}
		b.Properties = b.Properties.With(name, value)
		return nil
	})
}
