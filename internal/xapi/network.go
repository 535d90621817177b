package xapi

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Network messages (network, VIF records, VLAN, Bond, PIF) are registered
// here; the implementations live in this file and vif.go, vlan.go, bond.go
// and pif.go.
//
// Networking is simulated for now: the messages keep the records and their
// state (currently_attached, carrier, IP configuration) as xapi does, but
// no bridge or interface on the machine is touched yet.
//
// A note on bound fields: the store fills the bound sets (network.VIFs,
// PIF.VLAN_slave_of, Bond.slaves, ...) when a transaction commits, so code
// that reads them after changing the forward references in the same
// transaction would see stale values. The helpers below therefore find
// related objects by scanning the forward references (VIF.network,
// VLAN.tagged_PIF, PIF.bond_slave_of, Bond.master, ...).

func (s *Server) registerNetworkHandlers() {
	s.registerNetworkHooks()
	s.handle("network.set_MTU", s.networkSetMTU, -1)
	s.handle("network.set_default_locking_mode", s.networkSetDefaultLockingMode, -1)
	s.handle("network.add_purpose", s.networkPurpose(true), -1)
	s.handle("network.remove_purpose", s.networkPurpose(false), -1)
	s.registerVIFHandlers()
	s.registerVLANHandlers()
	s.registerBondHandlers()
	s.registerPIFHandlers()
}

// Network MTUs: xapi replaces a missing or non-positive MTU by 1500.
// xenith also refuses MTUs no Linux bridge accepts (xapi has no such check
// and fails later, when the bridge is brought up).
const (
	netDefaultMTU = 1500
	netMinMTU     = 68
	netMaxMTU     = 65535
)

func checkNetworkMTU(mtu int64) error {
	if mtu < netMinMTU || mtu > netMaxMTU {
		return xenapi.NewError(api.ErrInvalidValue, "MTU", strconv.FormatInt(mtu, 10))
	}
	return nil
}

// bridgeStem is the prefix of generated bridge names (xapi: "xapi<N>").
const bridgeStem = "xapi"

// reservedBridgePrefixes are refused in client-chosen bridge names, as
// xapi refuses them: they belong to xapi, Xen and the kernel.
var reservedBridgePrefixes = []string{"xen", "xapi", "vif", "tap", "eth"}

// isHostInternalManagementNetwork is the other_config key marking the
// host-internal management network, which cannot be destroyed.
const isHostInternalManagementNetwork = "is_host_internal_management_network"

func (s *Server) registerNetworkHooks() {
	s.hooks[api.ClassNetwork] = classHooks{
		beforeCreate: func(tx *store.Tx, rec xenapi.Record) error {
			n := rec.(*api.Network)
			if n.MTU <= 0 {
				n.MTU = netDefaultMTU
			}
			if err := checkNetworkMTU(n.MTU); err != nil {
				return err
			}
			bridges := map[string]bool{}
			for _, r := range tx.All(api.ClassNetwork) {
				bridges[r.(*api.Network).Bridge] = true
			}
			if n.Bridge == "" {
				n.Bridge = chooseBridgeName(bridges)
				return nil
			}
			if len(n.Bridge) > 15 || slices.ContainsFunc(reservedBridgePrefixes, func(p string) bool { return strings.HasPrefix(n.Bridge, p) }) {
				return xenapi.NewError(api.ErrInvalidValue, "bridge", n.Bridge)
			}
			if bridges[n.Bridge] {
				return xenapi.NewError(api.ErrBridgeNameExists, n.Bridge)
			}
			return nil
		},
		beforeDestroy: func(tx *store.Tx, ref xenapi.Ref, rec xenapi.Record) error {
			n := rec.(*api.Network)
			vifs := netRefsWhere(tx, api.ClassVIF, func(r xenapi.Record) bool { return r.(*api.VIF).Network == ref })
			var attached []string
			for _, v := range vifs {
				if r, err := tx.Get(api.ClassVIF, v); err == nil && r.(*api.VIF).CurrentlyAttached {
					attached = append(attached, string(v))
				}
			}
			if len(attached) > 0 {
				return xenapi.NewError(api.ErrNetworkContainsVIF, attached...)
			}
			if pifs := networkPIFs(tx, ref); len(pifs) > 0 {
				return xenapi.NewError(api.ErrNetworkContainsPIF, netRefStrings(pifs)...)
			}
			if b, err := strconv.ParseBool(n.OtherConfig.Get(isHostInternalManagementNetwork)); err == nil && b {
				return xenapi.NewError(api.ErrCannotDestroySystemNetwork, string(ref))
			}
			// The network's VIFs go with it, as in xapi.
			for _, v := range vifs {
				if err := deleteVIF(tx, v); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// chooseBridgeName returns the first "xapi<N>" not in use. xapi counts
// upwards from 0 within one process; the smallest free number is as unique.
func chooseBridgeName(used map[string]bool) string {
	for n := 0; ; n++ {
		if name := bridgeStem + strconv.Itoa(n); !used[name] {
			return name
		}
	}
}

func (s *Server) networkSetMTU(ctx context.Context, c *Call) (Result, error) {
	mtu := c.Int(1)
	if err := checkNetworkMTU(mtu); err != nil {
		return nil, err
	}
	return nil, s.store.Update(ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassNetwork, c.Ref(0), func(r xenapi.Record) error {
			r.(*api.Network).MTU = mtu
			return nil
		})
	})
}

// networkSetDefaultLockingMode refuses a change while a VIF of the network
// is attached (VIF_IN_USE), as xapi does.
func (s *Server) networkSetDefaultLockingMode(ctx context.Context, c *Call) (Result, error) {
	ref, value := c.Ref(0), api.NetworkDefaultLockingMode(c.Str(1))
	return nil, s.store.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Get(api.ClassNetwork, ref); err != nil {
			return err
		}
		for _, v := range netRefsWhere(tx, api.ClassVIF, func(r xenapi.Record) bool {
			vif := r.(*api.VIF)
			return vif.Network == ref && vif.CurrentlyAttached
		}) {
			return xenapi.NewError(api.ErrVIFInUse, string(ref), string(v))
		}
		return tx.Modify(api.ClassNetwork, ref, func(r xenapi.Record) error {
			r.(*api.Network).DefaultLockingMode = value
			return nil
		})
	})
}

// networkPurpose serves network.add_purpose and remove_purpose. nbd and
// insecure_nbd exclude each other across all networks.
func (s *Server) networkPurpose(add bool) handlerFunc {
	return func(ctx context.Context, c *Call) (Result, error) {
		ref, value := c.Ref(0), api.NetworkPurpose(c.Str(1))
		return nil, s.store.Update(ctx, func(tx *store.Tx) error {
			cur, err := tx.Get(api.ClassNetwork, ref)
			if err != nil {
				return err
			}
			n := cur.(*api.Network)
			if !add {
				if !slices.Contains(n.Purpose, value) {
					return nil
				}
				return tx.Modify(api.ClassNetwork, ref, func(r xenapi.Record) error {
					net := r.(*api.Network)
					net.Purpose = slices.DeleteFunc(slices.Clone(net.Purpose), func(p api.NetworkPurpose) bool { return p == value })
					return nil
				})
			}
			if !n.Managed {
				return xenapi.NewError(api.ErrNetworkUnmanaged, string(ref))
			}
			if slices.Contains(n.Purpose, value) {
				return nil
			}
			conflict := map[api.NetworkPurpose]api.NetworkPurpose{
				api.NetworkPurposeNBD:         api.NetworkPurposeInsecureNBD,
				api.NetworkPurposeInsecureNBD: api.NetworkPurposeNBD,
			}[value]
			for _, r := range tx.All(api.ClassNetwork) {
				if slices.Contains(r.(*api.Network).Purpose, conflict) {
					return xenapi.NewError(api.ErrNetworkIncompatiblePurposes, string(value), string(conflict))
				}
			}
			return tx.Modify(api.ClassNetwork, ref, func(r xenapi.Record) error {
				net := r.(*api.Network)
				net.Purpose = append(slices.Clone(net.Purpose), value)
				return nil
			})
		})
	}
}

// assertNetworkManaged answers NETWORK_UNMANAGED for a network xapi does
// not manage (its bridge is configured by other means).
func assertNetworkManaged(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassNetwork, ref)
	if err != nil {
		return err
	}
	if !r.(*api.Network).Managed {
		return xenapi.NewError(api.ErrNetworkUnmanaged, string(ref))
	}
	return nil
}

// assertCanSeeNetworks checks that a VM could use the networks on host, as
// xapi checks before starting or moving a VM: a network with PIFs must
// have one on the host, not enslaved to a bond; a network without PIFs
// (internal) is usable unless running VMs pin it to another host. It
// answers VM_REQUIRES_NETWORK or HOST_CANNOT_ATTACH_NETWORK. The VM
// lifecycle may call it for VM.start and VM.assert_can_boot_here.
func assertCanSeeNetworks(tx *store.Tx, vm, host xenapi.Ref, nets []xenapi.Ref) error {
	for _, net := range nets {
		r, err := tx.Get(api.ClassNetwork, net)
		if err != nil {
			return err
		}
		n := r.(*api.Network)
		pifs := networkPIFs(tx, net)
		available := false
		switch {
		case len(pifs) > 0:
			for _, p := range pifs {
				if pr, err := tx.Get(api.ClassPIF, p); err == nil && pr.(*api.PIF).Host == host {
					available = true
				}
			}
		case n.OtherConfig.Get("assume_network_is_shared") == "true", !n.Managed:
			available = true
		default:
			pinned := false
			for _, v := range netRefsWhere(tx, api.ClassVIF, func(r xenapi.Record) bool { return r.(*api.VIF).Network == net }) {
				vr, _ := tx.Get(api.ClassVIF, v)
				m, err := tx.Get(api.ClassVM, vr.(*api.VIF).VM)
				if err != nil || m.(*api.VM).PowerState != api.VMPowerStateRunning {
					continue
				}
				pinned = true
				if m.(*api.VM).ResidentOn == host {
					available = true
				}
			}
			available = available || !pinned
		}
		if !available {
			return xenapi.NewError(api.ErrVMRequiresNetwork, string(vm), string(net))
		}
	}
	for _, net := range nets {
		for _, p := range networkPIFs(tx, net) {
			pr, _ := tx.Get(api.ClassPIF, p)
			if pif := pr.(*api.PIF); pif.Host == host && !pif.BondSlaveOf.IsNull() {
				return xenapi.NewError(api.ErrHostCannotAttachNetwork, string(host), string(net))
			}
		}
	}
	return nil
}

// netRefsWhere returns, sorted, the references of the objects of a class (as
// the transaction sees them) for which keep is true.
func netRefsWhere(tx *store.Tx, c *xenapi.Class, keep func(xenapi.Record) bool) []xenapi.Ref {
	var out []xenapi.Ref
	for ref, r := range tx.All(c) {
		if keep(r) {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}

func netRefStrings(refs []xenapi.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = string(r)
	}
	return out
}

// networkPIFs returns the PIFs on a network.
func networkPIFs(tx *store.Tx, net xenapi.Ref) []xenapi.Ref {
	return netRefsWhere(tx, api.ClassPIF, func(r xenapi.Record) bool { return r.(*api.PIF).Network == net })
}

// moveVIFs moves the VIFs of the networks from to the network to, as xapi
// moves a host's VIFs when a bond or VLAN takes over their network. xapi
// moves only the VIFs of VMs that run on (or can only start on) the host;
// with one host that is every VIF.
func moveVIFs(tx *store.Tx, from []xenapi.Ref, to xenapi.Ref) error {
	for _, v := range netRefsWhere(tx, api.ClassVIF, func(r xenapi.Record) bool {
		n := r.(*api.VIF).Network
		return n != to && slices.Contains(from, n)
	}) {
		if err := tx.Modify(api.ClassVIF, v, func(r xenapi.Record) error {
			r.(*api.VIF).Network = to
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// netPool returns the pool record (nil before the inventory made it).
func netPool(tx *store.Tx) *api.Pool {
	for _, r := range tx.All(api.ClassPool) {
		return r.(*api.Pool)
	}
	return nil
}

// netNow is the time stamp written into metrics objects.
func netNow() time.Time { return time.Now().UTC().Truncate(time.Second) }
