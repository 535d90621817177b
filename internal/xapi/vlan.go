package xapi

import (
	"context"
	"strconv"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// VLANs: VLAN.create puts an untagged PIF (the VLAN's interface, same
// device as the tagged PIF, VLAN = tag) on a network and plugs it;
// VLAN.destroy unplugs and removes it. The deprecated PIF.create_VLAN and
// PIF.destroy, and pool.create_VLAN and create_VLAN_from_PIF, are built on
// them, each in one transaction (all or nothing).

func (s *Server) registerVLANHandlers() {
	s.handle("VLAN.create", func(ctx context.Context, c *Call) (Result, error) {
		var vlan xenapi.Ref
		err := s.store.Update(ctx, func(tx *store.Tx) error {
			var err error
			vlan, _, err = createVLAN(tx, c.Ref(0), c.Int(1), c.Ref(2))
			return err
		})
		if err != nil {
			return nil, err
		}
		return refResult(vlan), nil
	}, -1)
	s.handle("VLAN.destroy", s.pifUpdate(func(tx *store.Tx, c *Call) error { return destroyVLAN(tx, c.Ref(0)) }), -1)
	s.handle("PIF.create_VLAN", func(ctx context.Context, c *Call) (Result, error) {
		var pif xenapi.Ref
		err := s.store.Update(ctx, func(tx *store.Tx) error {
			var err error
			pif, err = pifCreateVLAN(tx, c.Str(0), c.Ref(1), c.Ref(2), c.Int(3))
			return err
		})
		if err != nil {
			return nil, err
		}
		return refResult(pif), nil
	}, -1)
	s.handle("PIF.destroy", s.pifUpdate(func(tx *store.Tx, c *Call) error {
		p, err := getPIF(tx, c.Ref(0))
		if err != nil {
			return err
		}
		if p.VLAN < 0 {
			return xenapi.NewError(api.ErrPIFIsPhysical)
		}
		return destroyVLAN(tx, p.VLANMasterOf)
	}), -1)
	s.handle("pool.create_VLAN", s.poolCreateVLAN, -1)
	s.handle("pool.create_VLAN_from_PIF", s.poolCreateVLANFromPIF, -1)
}

// vlanMAC is the placeholder MAC xapi gives VLAN PIFs.
const vlanMAC = "fe:ff:ff:ff:ff:ff"

func checkVLANTag(tag int64) error {
	if tag < 0 || tag > 4094 {
		return xenapi.NewError(api.ErrVLANTagInvalid, strconv.FormatInt(tag, 10))
	}
	return nil
}

// createVLAN is VLAN.create(tagged_PIF, tag, network) with xapi's checks,
// in xapi's order: a managed network (NETWORK_UNMANAGED) without a PIF on
// the host yet (NETWORK_ALREADY_CONNECTED); a managed tagged PIF
// (PIF_UNMANAGED) that is physical, a bond master or SR-IOV logical, not
// a VLAN (PIF_IS_VLAN), a bond member (CANNOT_ADD_VLAN_TO_BOND_SLAVE) or a
// tunnel (IS_TUNNEL_ACCESS_PIF); a tag in 0..4094 (VLAN_TAG_INVALID) not
// yet on the PIF (PIF_VLAN_EXISTS). The untagged PIF is plugged.
func createVLAN(tx *store.Tx, tagged xenapi.Ref, tag int64, net xenapi.Ref) (vlan, untagged xenapi.Ref, err error) {
	if err := assertNetworkManaged(tx, net); err != nil {
		return "", "", err
	}
	p, err := getPIF(tx, tagged)
	if err != nil {
		return "", "", err
	}
	if err := assertNoOtherLocalPIFs(tx, p.Host, net); err != nil {
		return "", "", err
	}
	if err := assertPIFManaged(tagged, p); err != nil {
		return "", "", err
	}
	switch pifKindOf(tx, tagged, p) {
	case pifPhysical:
		if !p.BondSlaveOf.IsNull() {
			return "", "", xenapi.NewError(api.ErrCannotAddVLANToBondSlave, string(tagged))
		}
	case pifVLAN:
		return "", "", xenapi.NewError(api.ErrPIFIsVLAN, string(tagged))
	case pifTunnelAccess:
		return "", "", xenapi.NewError(api.ErrIsTunnelAccessPIF, string(tagged))
	case pifUnknown:
		return "", "", unknownPIFKind(p)
	}
	if err := checkVLANTag(tag); err != nil {
		return "", "", err
	}
	for _, v := range vlansOn(tx, tagged) {
		if r, _ := tx.Get(api.ClassVLAN, v); r.(*api.VLAN).Tag == tag {
			return "", "", xenapi.NewError(api.ErrPIFVLANExists, p.Device)
		}
	}
	vlan, untagged, err = newVLAN(tx, tagged, p, tag, net)
	if err != nil {
		return "", "", err
	}
	return vlan, untagged, plugPIF(tx, untagged)
}

// newVLAN makes the VLAN record and its untagged PIF, without checks
// (xapi's create_internal): the PIF shares the tagged PIF's device, MTU,
// metrics and primary address type, and starts detached.
func newVLAN(tx *store.Tx, tagged xenapi.Ref, tp *api.PIF, tag int64, net xenapi.Ref) (vlan, untagged xenapi.Ref, err error) {
	vlan = store.NewRef()
	u := api.NewPIF()
	u.Device, u.Network, u.Host, u.MAC = tp.Device, net, tp.Host, vlanMAC
	u.MTU, u.VLAN, u.Metrics = tp.MTU, tag, tp.Metrics
	u.Physical, u.CurrentlyAttached = false, false
	u.VLANMasterOf, u.PrimaryAddressType = vlan, tp.PrimaryAddressType
	if untagged, err = tx.Create(u); err != nil {
		return "", "", err
	}
	v := api.NewVLAN()
	v.TaggedPIF, v.UntaggedPIF, v.Tag = tagged, untagged, tag
	if _, err = tx.CreateWithRef(vlan, v); err != nil {
		return "", "", err
	}
	return vlan, untagged, nil
}

// destroyVLAN is VLAN.destroy: the untagged PIF is unplugged (with
// PIF.unplug's checks: not the management interface, no VIF in use, ...)
// and removed with the VLAN. It must not be in a bond
// (PIF_ALREADY_BONDED). An orphaned VLAN record just goes.
func destroyVLAN(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassVLAN, ref)
	if err != nil {
		return err
	}
	untagged := r.(*api.VLAN).UntaggedPIF
	u, err := getPIF(tx, untagged)
	if err != nil {
		return tx.Delete(api.ClassVLAN, ref)
	}
	if err := assertNotInBond(tx, untagged, u); err != nil {
		return err
	}
	if err := assertNoProtection(tx, u); err != nil {
		return err
	}
	if u.VLAN < 0 {
		return xenapi.NewError(api.ErrPIFIsPhysical)
	}
	if err := unplugPIF(tx, untagged); err != nil {
		return err
	}
	if err := tx.Delete(api.ClassVLAN, ref); err != nil {
		return err
	}
	return deletePIF(tx, untagged)
}

// pifCreateVLAN is the deprecated PIF.create_VLAN(device, network, host,
// VLAN): VLAN.create on the host's untagged PIF of that device
// (INVALID_VALUE "device" when there is none); it answers the new PIF.
func pifCreateVLAN(tx *store.Tx, device string, net, host xenapi.Ref, tag int64) (xenapi.Ref, error) {
	base := netRefsWhere(tx, api.ClassPIF, func(r xenapi.Record) bool {
		p := r.(*api.PIF)
		return p.Host == host && p.Device == device && p.VLAN == -1
	})
	if len(base) == 0 {
		return "", xenapi.NewError(api.ErrInvalidValue, "device", device)
	}
	_, untagged, err := createVLAN(tx, base[0], tag, net)
	return untagged, err
}

// poolCreateVLAN is pool.create_VLAN(device, network, VLAN): PIF.create_VLAN
// on every host; it answers the new PIFs.
func (s *Server) poolCreateVLAN(ctx context.Context, c *Call) (Result, error) {
	var pifs []xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		pifs = nil
		for _, h := range netRefsWhere(tx, api.ClassHost, func(xenapi.Record) bool { return true }) {
			p, err := pifCreateVLAN(tx, c.Str(0), c.Ref(1), h, c.Int(2))
			if err != nil {
				return err
			}
			pifs = append(pifs, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refListResult(pifs), nil
}

// poolCreateVLANFromPIF is pool.create_VLAN_from_PIF(pif, network, VLAN):
// VLAN.create on every PIF of the given PIF's network on a live host; it
// answers the new PIFs.
func (s *Server) poolCreateVLANFromPIF(ctx context.Context, c *Call) (Result, error) {
	var pifs []xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		pifs = nil
		p, err := getPIF(tx, c.Ref(0))
		if err != nil {
			return err
		}
		for _, t := range networkPIFs(tx, p.Network) {
			tp, _ := getPIF(tx, t)
			if !netHostLive(tx, tp.Host) {
				continue
			}
			_, u, err := createVLAN(tx, t, c.Int(2), c.Ref(1))
			if err != nil {
				return err
			}
			pifs = append(pifs, u)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refListResult(pifs), nil
}

// netHostLive reads host_metrics.live.
func netHostLive(tx *store.Tx, host xenapi.Ref) bool {
	h, err := tx.Get(api.ClassHost, host)
	if err != nil {
		return false
	}
	m, err := tx.Get(api.ClassHostMetrics, h.(*api.Host).Metrics)
	return err == nil && m.(*api.HostMetrics).Live
}
