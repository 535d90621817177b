package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// A realistic VM, modelled on what XCP-ng 8.3 reports for a guest installed
// from a Linux template: the maps and sets xapi fills in, the memory and
// vCPU settings, two disks on the local SR, one VIF and a VM_metrics object.
// Two in three VMs are running on the host. Every string that differs
// between real VMs (uuids, MACs, names, mac_seed) differs here too, so
// nothing is shared that a real pool would not share.

var runningOps = []api.VMOperations{
	api.VMOperationsSnapshot, api.VMOperationsClone, api.VMOperationsCopy, api.VMOperationsCheckpoint,
	api.VMOperationsSnapshotWithQuiesce, api.VMOperationsPause, api.VMOperationsCleanShutdown,
	api.VMOperationsCleanReboot, api.VMOperationsHardShutdown, api.VMOperationsHardReboot,
	api.VMOperationsSuspend, api.VMOperationsPoolMigrate, api.VMOperationsMigrateSend,
	api.VMOperationsChangingDynamicRange, api.VMOperationsChangingVCPUsLive, api.VMOperationsExport,
}

var haltedOps = []api.VMOperations{
	api.VMOperationsSnapshot, api.VMOperationsClone, api.VMOperationsCopy, api.VMOperationsCreateTemplate,
	api.VMOperationsProvision, api.VMOperationsStart, api.VMOperationsStartOn, api.VMOperationsExport,
	api.VMOperationsChangingStaticRange, api.VMOperationsChangingDynamicRange, api.VMOperationsChangingVCPUs,
	api.VMOperationsChangingShadowMemory, api.VMOperationsChangingNVRAM, api.VMOperationsMakeIntoTemplate,
	api.VMOperationsMetadataExport, api.VMOperationsDestroy, api.VMOperationsCreateVTPM,
}

// vmSet is the records of one VM: the VM, its metrics, two VDIs with their
// VBDs, one VIF and, while it runs, its serial console (as the simulator
// gives every running guest). References between them are filled in by
// AddVMs, which knows the new refs.
type vmSet struct {
	vm      *api.VM
	metrics *api.VMMetrics
	vdis    [2]*api.VDI
	vbds    [2]*api.VBD
	vif     *api.VIF
	console *api.Console // nil for a halted VM
}

func newVMSet(i int, in Infra, now time.Time) vmSet {
	gib := int64(1) << 30
	running := i%3 != 2
	name := fmt.Sprintf("vm-%05d", i)

	vm := api.NewVM()
	vm.UUID = uuid.NewString()
	vm.NameLabel = name
	vm.NameDescription = "Debian Bookworm 12 guest " + name + " (web tier)"
	vm.UserVersion = 1
	vm.MemoryOverhead = 11534336
	vm.MemoryStaticMax, vm.MemoryDynamicMax, vm.MemoryTarget = 4*gib, 4*gib, 4*gib
	vm.MemoryDynamicMin, vm.MemoryStaticMin = 2*gib, gib/2
	vm.VCPUsMax, vm.VCPUsAtStartup = 4, 2
	vm.VCPUsParams = xenapi.MapOf(map[string]string{"weight": "256", "cap": "0"})
	vm.ActionsAfterShutdown = api.OnNormalExitDestroy
	vm.ActionsAfterReboot = api.OnNormalExitRestart
	vm.ActionsAfterCrash = api.OnCrashBehaviourRestart
	vm.HVMBootPolicy = "BIOS order"
	vm.HVMBootParams = xenapi.MapOf(map[string]string{"order": "cdn", "firmware": "uefi"})
	vm.Platform = xenapi.MapOf(map[string]string{
		"timeoffset": "0", "videoram": "8", "hpet": "true", "secureboot": "false", "device-model": "qemu-upstream-uefi",
		"apic": "true", "device_id": "0001", "vga": "std", "nx": "true", "pae": "true", "viridian": "false", "acpi": "1",
		"cores-per-socket": "2",
	})
	vm.OtherConfig = xenapi.MapOf(map[string]string{
		"base_template_name": "Debian Bookworm 12",
		"import_task":        "OpaqueRef:" + uuid.NewString(),
		"mac_seed":           uuid.NewString(),
		"install-methods":    "cdrom,nfs,http,ftp",
		"linux_template":     "true",
		"xo:resource_set":    "null",
	})
	vm.Recommendations = `<restrictions><restriction field="memory-static-max" max="1649267441664"/>` +
		`<restriction field="vcpus-max" max="32"/><restriction field="has-vendor-device" value="false"/>` +
		`<restriction field="allow-gpu-passthrough" value="1"/><restriction field="allow-vgpu" value="1"/>` +
		`<restriction field="allow-vtpm" value="1"/><restriction max="255" property="number-of-vbds"/>` +
		`<restriction max="7" property="number-of-vifs"/></restrictions>`
	vm.BIOSStrings = xenapi.MapOf(map[string]string{
		"bios-vendor": "Xen", "bios-version": "", "system-manufacturer": "Xen", "system-product-name": "HVM domU",
		"system-version": "", "system-serial-number": "", "baseboard-manufacturer": "", "baseboard-product-name": "",
		"baseboard-version": "", "baseboard-serial-number": "", "baseboard-asset-tag": "", "baseboard-location-in-chassis": "",
		"enclosure-asset-tag": "", "hp-rombios": "", "oem-1": "Xen", "oem-2": "MS_VM_CERT/SHA1/bdbeb6e0a816d43fa6d3fe8aaef04c2bad9d3e3d",
	})
	vm.Tags = []string{"web", "production"}
	vm.HardwarePlatformVersion = 2
	vm.DomainType = api.DomainTypeHVM
	vm.GenerationID = "0:0"
	vm.NVRAM = xenapi.MapOf(map[string]string{"EFI-variables": "AAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="})

	m := api.NewVMMetrics()
	m.UUID = uuid.NewString()
	m.MemoryActual = vm.MemoryTarget
	m.VCPUsNumber = vm.VCPUsAtStartup
	m.InstallTime = now.Add(-time.Duration(i) * time.Hour)
	m.LastUpdated = xenapi.Epoch
	m.StartTime = xenapi.Epoch
	m.CurrentDomainType = api.DomainTypeUnspecified

	if running {
		vm.PowerState = api.VMPowerStateRunning
		vm.ResidentOn = in.Host
		vm.Domid = int64(i + 1)
		vm.AllowedOperations = slices.Clone(runningOps)
		vm.LastBootCPUFlags = xenapi.MapOf(map[string]string{"vendor": "AuthenticAMD",
			"features": "1fcbfbff-f6f83203-2e500800-040001f3-0000000f-f1bf07a9-00405f4e-00000000-711ed005-10000010"})
		vm.LastBootedRecord = ""
		m.StartTime = now.Add(-time.Duration(i) * time.Minute)
		m.LastUpdated = now
		m.State = []string{}
		m.HVM = true
		m.CurrentDomainType = api.DomainTypeHVM
		m.VCPUsUtilisation = xenapi.MapOf(map[int64]float64{0: 0.021, 1: 0.013})
		m.VCPUsCPU = xenapi.MapOf(map[int64]int64{0: 1, 1: 0})
	} else {
		vm.PowerState = api.VMPowerStateHalted
		vm.Domid = -1
		vm.AllowedOperations = slices.Clone(haltedOps)
	}

	set := vmSet{vm: vm, metrics: m}
	for d := range 2 {
		vdi := api.NewVDI()
		vdi.UUID = uuid.NewString()
		vdi.NameLabel = fmt.Sprintf("%s disk %d", name, d)
		vdi.NameDescription = "Created by template provisioner"
		vdi.SR = in.SR
		vdi.VirtualSize = int64(20+d*80) * gib
		vdi.PhysicalUtilisation = vdi.VirtualSize / 3
		vdi.Type = api.VDITypeSystem
		if d == 1 {
			vdi.Type = api.VDITypeUser
		}
		vdi.Location = vdi.UUID
		vdi.Managed = true
		vdi.SMConfig = xenapi.MapOf(map[string]string{"vdi_type": "vhd", "host_OpaqueRef:" + string(in.Host): "RW"})
		vdi.OtherConfig = xenapi.MapOf(map[string]string{"content_id": uuid.NewString()})
		vdi.AllowedOperations = []api.VDIOperations{api.VDIOperationsClone, api.VDIOperationsCopy,
			api.VDIOperationsSnapshot, api.VDIOperationsMirror, api.VDIOperationsEnableCbt}
		vdi.SnapshotTime = xenapi.Epoch
		vdi.OnBoot = api.OnBootPersist
		set.vdis[d] = vdi

		vbd := api.NewVBD()
		vbd.UUID = uuid.NewString()
		vbd.Device = fmt.Sprintf("xvd%c", 'a'+d)
		vbd.Userdevice = fmt.Sprint(d)
		vbd.Bootable = d == 0
		vbd.Mode = api.VBDModeRW
		vbd.Type = api.VBDTypeDisk
		vbd.Unpluggable = true
		vbd.OtherConfig = xenapi.MapOf(map[string]string{"owner": "true"})
		vbd.QosSupportedAlgorithms = []string{}
		if running {
			vbd.CurrentlyAttached = true
			vbd.AllowedOperations = []api.VBDOperations{api.VBDOperationsAttach, api.VBDOperationsUnplug,
				api.VBDOperationsUnplugForce}
		} else {
			vbd.AllowedOperations = []api.VBDOperations{api.VBDOperationsAttach}
		}
		set.vbds[d] = vbd
	}

	vif := api.NewVIF()
	vif.UUID = uuid.NewString()
	vif.Device = "0"
	vif.Network = in.Network
	vif.MAC = fmt.Sprintf("b6:%02x:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i), 0x42)
	vif.MTU = 1500
	vif.MACAutogenerated = true
	vif.LockingMode = api.VIFLockingModeNetworkDefault
	vif.OtherConfig = xenapi.MapOf(map[string]string{})
	if running {
		vif.CurrentlyAttached = true
		vif.AllowedOperations = []api.VIFOperations{api.VIFOperationsAttach, api.VIFOperationsUnplug}
	} else {
		vif.AllowedOperations = []api.VIFOperations{api.VIFOperationsAttach}
	}
	set.vif = vif
	if running {
		c := api.NewConsole()
		c.UUID = uuid.NewString()
		c.Protocol = api.ConsoleProtocolVt100
		c.Location = "https://192.0.2.10:8443/console?uuid=" + c.UUID
		c.OtherConfig = xenapi.MapOf(map[string]string{"sim": "serial"})
		set.console = c
	}
	return set
}

// AddVMs creates n VMs numbered from first, each with its VM_metrics, two
// VDIs on the SR, two VBDs, one VIF and a console if it runs, batch VMs per
// store transaction.
// The bound fields (VM.VBDs, VM.VIFs, VDI.VBDs, SR.VDIs, network.VIFs,
// host.resident_VMs) are filled in by the store, as for any API client.
// It returns the VM references in order.
func AddVMs(ctx context.Context, st *store.Store, in Infra, first, n, batch int) ([]xenapi.Ref, error) {
	if batch < 1 {
		batch = 1
	}
	now := time.Now().UTC().Truncate(time.Second)
	refs := make([]xenapi.Ref, 0, n)
	for lo := first; lo < first+n; lo += batch {
		hi := min(lo+batch, first+n)
		err := st.Update(ctx, func(tx *store.Tx) error {
			for i := lo; i < hi; i++ {
				s := newVMSet(i, in, now)
				mref, err := tx.Create(s.metrics)
				if err != nil {
					return err
				}
				s.vm.Metrics = mref
				vmref, err := tx.Create(s.vm)
				if err != nil {
					return err
				}
				refs = append(refs, vmref)
				for d := range 2 {
					vdiref, err := tx.Create(s.vdis[d])
					if err != nil {
						return err
					}
					s.vbds[d].VM, s.vbds[d].VDI = vmref, vdiref
					if _, err := tx.Create(s.vbds[d]); err != nil {
						return err
					}
				}
				s.vif.VM = vmref
				if _, err := tx.Create(s.vif); err != nil {
					return err
				}
				if s.console != nil {
					s.console.VM = vmref
					if _, err := tx.Create(s.console); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return refs, nil
}
