package inventory

import (
	"fmt"
	"strconv"

	"github.com/xenith/xenith/internal/xenapi"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/store"
)

// Built-in templates, as xapi ships them: default templates users clone
// and provision (`xe vm-install`). Each recommends memory, VCPUs and
// disks; other_config:disks is the provisioning recipe VM.provision
// follows.

const (
	miB = int64(1) << 20
	giB = int64(1) << 30
)

type templateSpec struct {
	key         string // stable identity (uuid seed)
	name        string
	description string
	memMin      int64 // dynamic/static min
	memMax      int64 // static max default
	vcpus       int64
	diskSize    int64
	distro      string // other_config:install-distro / sim-os hint
	windows     bool
	viridian    bool
}

var builtinTemplates = []templateSpec{
	{"debian-12", "Debian Bookworm 12", "Debian 12 (Bookworm), 64-bit", 512 * miB, 2 * giB, 2, 10 * giB, "debian", false, false},
	{"debian-11", "Debian Bullseye 11", "Debian 11 (Bullseye), 64-bit", 512 * miB, 2 * giB, 2, 10 * giB, "debian", false, false},
	{"ubuntu-24.04", "Ubuntu Noble Numbat 24.04", "Ubuntu 24.04 LTS, 64-bit", 1 * giB, 2 * giB, 2, 20 * giB, "ubuntu", false, false},
	{"ubuntu-22.04", "Ubuntu Jammy Jellyfish 22.04", "Ubuntu 22.04 LTS, 64-bit", 1 * giB, 2 * giB, 2, 20 * giB, "ubuntu", false, false},
	{"rocky-9", "Rocky Linux 9", "Rocky Linux 9, 64-bit", 1 * giB, 2 * giB, 2, 20 * giB, "rhel", false, false},
	{"centos-stream-9", "CentOS Stream 9", "CentOS Stream 9, 64-bit", 1 * giB, 2 * giB, 2, 20 * giB, "rhel", false, false},
	{"windows-11", "Windows 11", "Windows 11, 64-bit", 4 * giB, 4 * giB, 2, 64 * giB, "windows", true, true},
	{"windows-10", "Windows 10 (64-bit)", "Windows 10, 64-bit", 2 * giB, 4 * giB, 2, 32 * giB, "windows", true, true},
	{"windows-server-2022", "Windows Server 2022 (64-bit)", "Windows Server 2022, 64-bit", 2 * giB, 4 * giB, 2, 32 * giB, "windows", true, true},
	{"other", "Other install media", "Installation from install media of any operating system", 256 * miB, 1 * giB, 1, 8 * giB, "", false, false},
}

func templateRecord(t templateSpec) *api.VM {
	vm := api.NewVM()
	vm.UUID = stableUUID("templates", t.key)
	vm.NameLabel, vm.NameDescription = t.name, t.description
	vm.IsATemplate, vm.IsDefaultTemplate = true, true
	vm.PowerState, vm.Domid = api.VMPowerStateHalted, -1
	vm.UserVersion = 1
	vm.MemoryStaticMin, vm.MemoryDynamicMin = t.memMin, t.memMin
	vm.MemoryDynamicMax, vm.MemoryStaticMax = t.memMax, t.memMax
	vm.VCPUsMax, vm.VCPUsAtStartup = t.vcpus, t.vcpus
	vm.ActionsAfterShutdown, vm.ActionsAfterReboot = api.OnNormalExitDestroy, api.OnNormalExitRestart
	vm.ActionsAfterCrash = api.OnCrashBehaviourRestart
	vm.HVMBootPolicy = "BIOS order"
	vm.HVMBootParams = xenapi.MapOf(map[string]string{"order": "cdn"})
	vm.DomainType = api.DomainTypeHVM
	vm.Platform = xenapi.MapOf(map[string]string{"acpi": "1", "apic": "true", "pae": "true", "nx": "true", "device-model": "qemu-upstream-compat"})
	if t.viridian {
		vm.Platform = vm.Platform.With("viridian", "true")
	}
	vm.OtherConfig = xenapi.MapOf(map[string]string{
		"default_template": "true",
		"install-methods":  "cdrom",
		"disks": fmt.Sprintf(`<provision><disk device="0" size="%d" sr="" bootable="true" type="system"/></provision>`,
			t.diskSize),
		"linux_template": strconv.FormatBool(!t.windows && t.distro != ""),
	})
	if t.distro != "" {
		vm.OtherConfig = vm.OtherConfig.With("install-distro", t.distro)
	}
	vm.Recommendations = fmt.Sprintf(`<restrictions><restriction field="memory-static-max" max="%d"/>`+
		`<restriction field="vcpus-max" max="32"/><restriction property="number-of-vbds" max="255"/>`+
		`<restriction property="number-of-vifs" max="7"/><restriction field="has-vendor-device" value="false"/></restrictions>`,
		1<<40)
	vm.AllowedOperations = domain.AllowedOperations(vm)
	return vm
}

// ensureTemplates adds the built-in templates that are missing (a newer
// xenithd may ship more); templates users changed or removed are left alone
// once created, except that a removed default template comes back.
func ensureTemplates(tx *store.Tx) error {
	have := map[string]bool{}
	for _, r := range tx.All(api.ClassVM) {
		have[r.RecordUUID()] = true
	}
	for _, t := range builtinTemplates {
		rec := templateRecord(t)
		if have[rec.UUID] {
			continue
		}
		m := api.NewVMMetrics()
		mref, err := tx.Create(m)
		if err != nil {
			return err
		}
		rec.Metrics = mref
		if _, err := tx.Create(rec); err != nil {
			return err
		}
	}
	return nil
}
