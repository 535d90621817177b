// Package inventory creates the objects a fresh xenithd starts with, from
// facts read off the real machine: the pool, this host and its metrics and
// CPUs, the management PIF and its network, a local file SR with its PBD
// and SM records, the control domain, and the RBAC roles. On later starts it
// refreshes the facts that change (memory, versions) and keeps every object
// and reference.
package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// API version xenithd implements (XenAPI 2.21 is XenServer 8 / XCP-ng 8.3).
const (
	APIVersionMajor = 2
	APIVersionMinor = 21
)

// ReadOnlyRole is the fixed reference xapi gives the read-only role; the
// schema uses it as the default of subject.roles.
const ReadOnlyRole xenapi.Ref = "OpaqueRef:0165f154-ba3e-034e-6b27-5d271af109ba"

// Options are the inputs of Ensure.
type Options struct {
	DataDir string
	Version string // xenithd's version
	Info    hostinfo.Info
}

// namespace makes stable uuids from the machine's identity, so a host keeps
// its uuid if its database is rebuilt.
var namespace = uuid.MustParse("6f1d6b4e-5f0a-4f7e-9a5e-2c1b9d6e0b11")

func stableUUID(seed, what string) string {
	return uuid.NewSHA1(namespace, []byte(seed+"/"+what)).String()
}

// Ensure makes sure the inventory exists and returns this host's reference.
func Ensure(ctx context.Context, st *store.Store, opts Options) (xenapi.Ref, error) {
	if hosts := st.All(api.ClassHost); len(hosts) > 0 {
		ref := hosts[0].Ref
		return ref, refresh(ctx, st, ref, opts)
	}
	return create(ctx, st, opts)
}

func softwareVersion(opts Options) map[string]string {
	return map[string]string{
		"product_brand":    "Xenith",
		"product_version":  opts.Version,
		"platform_name":    "Xenith",
		"platform_version": opts.Version,
		"xapi":             fmt.Sprintf("%d.%d", APIVersionMajor, APIVersionMinor),
		"xenith":           opts.Version,
		"hostname":         opts.Info.Hostname,
		"linux":            opts.Info.KernelVersion,
		"date":             time.Now().UTC().Format("2006-01-02"),
		"hypervisor":       "sim",
	}
}

func cpuInfo(info hostinfo.Info) map[string]string {
	return map[string]string{
		"cpu_count":    strconv.Itoa(info.CPUCount),
		"socket_count": "1",
		"vendor":       info.CPUVendor,
		"speed":        strconv.FormatFloat(info.CPUSpeedMHz, 'f', 3, 64),
		"modelname":    info.CPUModel,
		"family":       info.CPUFamily,
		"model":        info.CPUModelNumber,
		"stepping":     info.CPUStepping,
		"flags":        strings.Join(info.CPUFlags, " "),
	}
}

func managementInterface(info hostinfo.Info) hostinfo.Interface {
	var fallback hostinfo.Interface
	for _, i := range info.Interfaces {
		if i.Name == "lo" {
			fallback = i
			continue
		}
		if i.IPv4 == info.Address {
			return i
		}
	}
	for _, i := range info.Interfaces {
		if i.Name != "lo" && i.Up {
			return i
		}
	}
	if fallback.Name == "" {
		fallback = hostinfo.Interface{Name: "eth0", MTU: 1500, IPv4: info.Address}
	}
	return fallback
}

func diskSize(path string) (total, free int64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize)
}

func create(ctx context.Context, st *store.Store, opts Options) (xenapi.Ref, error) {
	info := opts.Info
	seed := info.UUIDSeed
	if seed == "" {
		seed = info.Hostname
	}
	now := time.Now().UTC().Truncate(time.Second)
	srUUID := stableUUID(seed, "sr/local")
	srDir := filepath.Join(opts.DataDir, "sr", srUUID)
	if err := os.MkdirAll(srDir, 0o755); err != nil {
		return "", err
	}
	srTotal, srFree := diskSize(srDir)
	var hostRef xenapi.Ref
	err := st.Update(ctx, func(tx *store.Tx) error {
		for _, r := range []struct{ name, desc string }{
			{"pool-admin", "The Pool Administrator role has full access to all features and settings"},
			{"pool-operator", "The Pool Operator role manages host- and pool-wide resources"},
			{"vm-power-admin", "The VM Power Administrator role has full access to VM and template management"},
			{"vm-admin", "The VM Administrator role can manage VMs and snapshots"},
			{"vm-operator", "The VM Operator role can use VMs and interact with VM consoles"},
			{"read-only", "The Read-Only role can log in with basic read-only access"},
		} {
			role := api.NewRole()
			role.UUID = stableUUID("roles", r.name)
			role.NameLabel, role.NameDescription = r.name, r.desc
			ref := xenapi.Ref("OpaqueRef:" + role.UUID)
			if r.name == "read-only" {
				ref = ReadOnlyRole
			}
			if _, err := tx.CreateWithRef(ref, role); err != nil {
				return err
			}
		}

		hm := api.NewHostMetrics()
		hm.UUID = stableUUID(seed, "host_metrics")
		hm.MemoryTotal, hm.MemoryFree = info.MemoryTotal, info.MemoryFree
		hm.Live, hm.LastUpdated = true, now
		hmRef, err := tx.Create(hm)
		if err != nil {
			return err
		}

		host := api.NewHost()
		host.UUID = stableUUID(seed, "host")
		host.NameLabel = info.Hostname
		host.Hostname = info.Hostname
		host.Address = info.Address
		host.APIVersionMajor, host.APIVersionMinor = APIVersionMajor, APIVersionMinor
		host.APIVersionVendor = "XenSource"
		host.Enabled = true
		host.SoftwareVersion = xenapi.MapOf(softwareVersion(opts))
		host.CPUInfo = xenapi.MapOf(cpuInfo(info))
		host.Metrics = hmRef
		host.Capabilities = []string{"xen-3.0-x86_64", "xen-3.0-x86_32p", "hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64"}
		host.SchedPolicy = "credit"
		host.SupportedBootloaders = []string{"pygrub", "eliloader"}
		host.OtherConfig = xenapi.MapOf(map[string]string{"agent_start_time": strconv.FormatInt(now.Unix(), 10) + "."})
		host.Edition = "xenith"
		host.BIOSStrings = xenapi.MapOf(map[string]string{"system-manufacturer": "Xenith", "system-product-name": "Xenith host"})
		hostRef, err = tx.Create(host)
		if err != nil {
			return err
		}

		for _, c := range info.CPUs {
			hc := api.NewHostCPU()
			hc.UUID = stableUUID(seed, "cpu/"+strconv.Itoa(c.Number))
			hc.Host = hostRef
			hc.Number = int64(c.Number)
			hc.Vendor, hc.Modelname = c.Vendor, c.ModelName
			hc.Speed = int64(c.SpeedMHz)
			hc.Family, _ = strconv.ParseInt(c.Family, 10, 64)
			hc.Model, _ = strconv.ParseInt(c.Model, 10, 64)
			hc.Stepping = c.Stepping
			hc.Flags = strings.Join(c.Flags, " ")
			if _, err := tx.Create(hc); err != nil {
				return err
			}
		}

		mgmt := managementInterface(info)
		network := api.NewNetwork()
		network.UUID = stableUUID(seed, "network/"+mgmt.Name)
		network.NameLabel = "Pool-wide network associated with " + mgmt.Name
		network.Bridge = "xenbr0"
		network.MTU = int64(max(mgmt.MTU, 1500))
		network.Managed = true
		netRef, err := tx.Create(network)
		if err != nil {
			return err
		}
		pm := api.NewPIFMetrics()
		pm.UUID = stableUUID(seed, "pif_metrics/"+mgmt.Name)
		pm.Carrier = mgmt.Up
		pm.Speed, pm.Duplex = 1000, true
		pm.LastUpdated = now
		pmRef, err := tx.Create(pm)
		if err != nil {
			return err
		}
		pif := api.NewPIF()
		pif.UUID = stableUUID(seed, "pif/"+mgmt.Name)
		pif.Device = mgmt.Name
		pif.Network, pif.Host, pif.Metrics = netRef, hostRef, pmRef
		pif.MAC = mgmt.MAC
		pif.MTU = int64(max(mgmt.MTU, 1500))
		pif.VLAN = -1
		pif.Physical, pif.CurrentlyAttached, pif.Management = true, true, true
		pif.IPConfigurationMode = api.IPConfigurationModeStatic
		pif.IP, pif.Netmask, pif.Gateway = mgmt.IPv4, mgmt.Netmask, mgmt.Gateway
		pif.Managed = true
		if _, err := tx.Create(pif); err != nil {
			return err
		}

		for _, sm := range []struct{ typ, label, desc string }{
			{"file", "Local file SR", "SR plugin storing each VDI as a sparse file (raw or qcow2) in a local directory"},
			{"iso", "ISO library", "SR plugin exposing a directory of ISO images as read-only VDIs"},
		} {
			rec := api.NewSM()
			rec.UUID = stableUUID("sm", sm.typ)
			rec.NameLabel, rec.NameDescription, rec.Type = sm.label, sm.desc, sm.typ
			rec.Vendor, rec.Copyright, rec.Version, rec.RequiredAPIVersion = "Xenith", "Xenith authors", opts.Version, "1.0"
			rec.Capabilities = []string{"SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE"}
			if sm.typ == "iso" {
				rec.Capabilities = []string{"SR_SCAN", "VDI_ATTACH", "VDI_DETACH"}
			}
			rec.DriverFilename = "builtin:" + sm.typ
			if _, err := tx.Create(rec); err != nil {
				return err
			}
		}
		sr := api.NewSR()
		sr.UUID = srUUID
		sr.NameLabel, sr.NameDescription = "Local storage", "Files in "+srDir
		sr.Type, sr.ContentType = "file", "user"
		sr.PhysicalSize, sr.PhysicalUtilisation = srTotal, srTotal-srFree
		sr.OtherConfig = xenapi.MapOf(map[string]string{"i18n-key": "local-storage"})
		srRef, err := tx.Create(sr)
		if err != nil {
			return err
		}
		pbd := api.NewPBD()
		pbd.UUID = stableUUID(seed, "pbd/local")
		pbd.Host, pbd.SR = hostRef, srRef
		pbd.DeviceConfig = xenapi.MapOf(map[string]string{"path": srDir})
		pbd.CurrentlyAttached = true
		if _, err := tx.Create(pbd); err != nil {
			return err
		}

		vmm := api.NewVMMetrics()
		vmm.UUID = stableUUID(seed, "dom0/metrics")
		vmm.MemoryActual = info.MemoryTotal
		vmm.VCPUsNumber = int64(info.CPUCount)
		vmm.StartTime, vmm.LastUpdated = now, now
		vmmRef, err := tx.Create(vmm)
		if err != nil {
			return err
		}
		dom0 := api.NewVM()
		dom0.UUID = stableUUID(seed, "dom0")
		dom0.NameLabel = "Control domain on host: " + info.Hostname
		dom0.NameDescription = "The domain which manages physical devices and manages other domains"
		dom0.IsControlDomain = true
		dom0.PowerState = api.VMPowerStateRunning
		dom0.Domid = 0
		dom0.ResidentOn = hostRef
		dom0.Metrics = vmmRef
		dom0.MemoryStaticMax, dom0.MemoryDynamicMax = info.MemoryTotal, info.MemoryTotal
		dom0.MemoryDynamicMin, dom0.MemoryStaticMin = info.MemoryTotal, info.MemoryTotal
		dom0.MemoryTarget = info.MemoryTotal
		dom0.VCPUsMax, dom0.VCPUsAtStartup = int64(info.CPUCount), int64(info.CPUCount)
		dom0.UserVersion = 1
		dom0.ActionsAfterShutdown, dom0.ActionsAfterReboot = api.OnNormalExitDestroy, api.OnNormalExitRestart
		dom0.ActionsAfterCrash = api.OnCrashBehaviourRestart
		dom0.DomainType = api.DomainTypePV
		dom0Ref, err := tx.Create(dom0)
		if err != nil {
			return err
		}
		if err := tx.Modify(api.ClassHost, hostRef, func(r xenapi.Record) error {
			r.(*api.Host).ControlDomain = dom0Ref
			return nil
		}); err != nil {
			return err
		}

		pool := api.NewPool()
		pool.UUID = stableUUID(seed, "pool")
		pool.Master = hostRef
		pool.DefaultSR, pool.SuspendImageSR, pool.CrashDumpSR = srRef, srRef, srRef
		pool.CPUInfo = xenapi.MapOf(cpuInfo(info))
		pool.OtherConfig = xenapi.MapOf(map[string]string{"memory-ratio-hvm": "0.25", "memory-ratio-pv": "0.25"})
		if _, err = tx.Create(pool); err != nil {
			return err
		}
		return ensureTemplates(tx)
	})
	return hostRef, err
}

// refresh updates what changes between starts: memory, software version,
// address. Everything else, and every reference, is kept.
func refresh(ctx context.Context, st *store.Store, hostRef xenapi.Ref, opts Options) error {
	return st.Update(ctx, func(tx *store.Tx) error {
		var metrics xenapi.Ref
		if err := tx.Modify(api.ClassHost, hostRef, func(r xenapi.Record) error {
			h := r.(*api.Host)
			h.SoftwareVersion = xenapi.MapOf(softwareVersion(opts))
			if opts.Info.Address != "" {
				h.Address = opts.Info.Address
			}
			h.OtherConfig = h.OtherConfig.With("agent_start_time", strconv.FormatInt(time.Now().Unix(), 10)+".")
			metrics = h.Metrics
			return nil
		}); err != nil {
			return err
		}
		if err := ensureTemplates(tx); err != nil {
			return err
		}
		if !tx.Exists(api.ClassHostMetrics, metrics) {
			return nil
		}
		return tx.Modify(api.ClassHostMetrics, metrics, func(r xenapi.Record) error {
			m := r.(*api.HostMetrics)
			m.MemoryTotal, m.MemoryFree = opts.Info.MemoryTotal, opts.Info.MemoryFree
			m.Live, m.LastUpdated = true, time.Now().UTC().Truncate(time.Second)
			return nil
		})
	})
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}
