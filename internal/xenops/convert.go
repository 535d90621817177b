package xenops

import (
	"sort"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// A xenopsd VM is a XenAPI VM record: the fields XenAPI has are mapped
// onto it (memory, vCPUs, boot, platform, actions...); the few the XenAPI
// datamodel has no field for are kept in other_config under "xenops:".

const ocPrefix = "xenops:"

// platform keys that carry hvm_info fields.
var hvmPlatformKeys = []string{"hap", "timeoffset", "videoram", "vga", "acpi", "keymap"}

func m2map(m xenapi.Map[string, string]) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m.All() {
		out[k] = v
	}
	return out
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func truthy(s string) bool { return s == "1" || strings.EqualFold(s, "true") }

func parseIntOr(s string, def int64) int64 {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return def
}

// vmOf reads a XenAPI VM as a xenopsd configuration.
func vmOf(vm *api.VM) *VM {
	oc := m2map(vm.OtherConfig)
	pf := m2map(vm.Platform)
	x := &VM{
		ID:                         vm.UUID,
		Name:                       vm.NameLabel,
		SSIDRef:                    parseIntOr(oc[ocPrefix+"ssidref"], 0),
		XSData:                     m2map(vm.XenstoreData),
		BIOSStrings:                m2map(vm.BIOSStrings),
		SuppressSpuriousPageFaults: truthy(oc[ocPrefix+"suppress_spurious_page_faults"]),
		MemoryStaticMax:            vm.MemoryStaticMax,
		MemoryDynamicMax:           vm.MemoryDynamicMax,
		MemoryDynamicMin:           vm.MemoryDynamicMin,
		VCPUMax:                    vm.VCPUsMax,
		VCPUs:                      vm.VCPUsAtStartup,
		Transient:                  truthy(oc[ocPrefix+"transient"]),
		PCIMSITranslate:            truthy(oc[ocPrefix+"pci_msitranslate"]),
		PCIPowerMgmt:               truthy(oc[ocPrefix+"pci_power_mgmt"]),
	}
	if s, ok := oc[ocPrefix+"machine_address_size"]; ok {
		n := parseIntOr(s, 0)
		x.MachineAddressSize = &n
	}
	if vm.HVMBootPolicy != "" {
		h := defaultHVM()
		if s, ok := pf["hap"]; ok {
			h.HAP = truthy(s)
		}
		h.ShadowMultiplier = vm.HVMShadowMultiplier
		if s, ok := pf["timeoffset"]; ok {
			h.TimeOffset = s
		}
		if s, ok := pf["videoram"]; ok {
			h.VideoMiB = parseIntOr(s, 4)
		}
		if pf["vga"] == "std" {
			h.Video = "Standard_VGA"
		}
		if s, ok := pf["acpi"]; ok {
			h.ACPI = truthy(s)
		}
		if s, ok := pf["keymap"]; ok {
			h.Keymap = &s
		}
		if s, ok := oc[ocPrefix+"serial"]; ok {
			h.Serial = &s
		}
		if s, ok := oc[ocPrefix+"vnc_ip"]; ok {
			h.VNCIP = &s
		}
		if s := oc[ocPrefix+"pci_emulations"]; s != "" {
			h.PCIEmulations = strings.Split(s, ",")
		}
		h.PCIPassthrough = truthy(oc[ocPrefix+"pci_passthrough"])
		h.QemuDiskCmdline = truthy(oc[ocPrefix+"qemu_disk_cmdline"])
		h.QemuStubdom = truthy(oc[ocPrefix+"qemu_stubdom"])
		if o, ok := vm.HVMBootParams.Lookup("order"); ok {
			h.BootOrder = o
		}
		x.HVM = h
		for _, k := range hvmPlatformKeys {
			delete(pf, k)
		}
	} else {
		p := &PVInfo{VNCTerm: true}
		if vm.PVBootloader != "" {
			p.Indirect = true
			p.Bootloader, p.ExtraArgs, p.LegacyArgs, p.BootloaderArgs = vm.PVBootloader, vm.PVArgs, vm.PVLegacyArgs, vm.PVBootloaderArgs
			for _, d := range strings.Split(oc[ocPrefix+"bootloader_devices"], ",") {
				if kind, name, ok := strings.Cut(d, ":"); ok {
					p.Devices = append(p.Devices, Disk{Kind: kind, Name: name})
				}
			}
		} else {
			p.Kernel, p.Cmdline = vm.PVKernel, vm.PVArgs
			if vm.PVRamdisk != "" {
				r := vm.PVRamdisk
				p.Ramdisk = &r
			}
		}
		p.Framebuffer = truthy(oc[ocPrefix+"framebuffer"])
		if s, ok := oc[ocPrefix+"vncterm"]; ok {
			p.VNCTerm = truthy(s)
		}
		if s, ok := oc[ocPrefix+"vncterm_ip"]; ok {
			p.VNCTermIP = &s
		}
		x.PV = p
	}
	x.PlatformData = pf
	params := m2map(vm.VCPUsParams)
	_, hw := params["weight"]
	_, hc := params["cap"]
	if hw || hc {
		x.Priority = &WeightCap{Weight: parseIntOr(params["weight"], 256), Cap: parseIntOr(params["cap"], 0)}
	}
	if s := oc[ocPrefix+"affinity"]; s != "" {
		for _, set := range strings.Split(s, ";") {
			x.Affinity = append(x.Affinity, cpuList(set))
		}
	} else if mask := params["mask"]; mask != "" {
		for i := int64(0); i < vm.VCPUsMax; i++ {
			x.Affinity = append(x.Affinity, cpuList(mask))
		}
	}
	x.OnShutdown = exitActions(string(vm.ActionsAfterShutdown))
	x.OnReboot = exitActions(string(vm.ActionsAfterReboot))
	x.OnCrash = exitActions(string(vm.ActionsAfterCrash))
	return x
}

func cpuList(s string) []int64 {
	out := []int64{}
	for _, c := range strings.Split(s, ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(c), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func joinInts(ns []int64) string {
	ss := make([]string, len(ns))
	for i, n := range ns {
		ss[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(ss, ",")
}

// exitActions maps actions_after_* to the interface's action lists.
func exitActions(a string) []string {
	switch a {
	case "restart", "rename_restart":
		return []string{"Start"}
	case "coredump_and_restart":
		return []string{"Coredump", "Start"}
	case "coredump_and_destroy":
		return []string{"Coredump", "Shutdown"}
	case "preserve":
		return []string{}
	}
	return []string{"Shutdown"}
}

func hasAction(as []string, a string) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// normalExit maps an action list to actions_after_shutdown/reboot.
func normalExit(as []string) string {
	if hasAction(as, "Start") {
		return "restart"
	}
	return "destroy"
}

func crashAction(as []string) string {
	start, core := hasAction(as, "Start"), hasAction(as, "Coredump")
	switch {
	case start && core:
		return "coredump_and_restart"
	case start:
		return "restart"
	case core:
		return "coredump_and_destroy"
	case len(as) == 0:
		return "preserve"
	}
	return "destroy"
}

// check validates a configuration before it is registered.
func (x *VM) check() *Error {
	switch {
	case x.MemoryStaticMax <= 0:
		return internalError("bad VM configuration: memory_static_max must be positive")
	case x.MemoryDynamicMin < 0 || x.MemoryDynamicMin > x.MemoryDynamicMax || x.MemoryDynamicMax > x.MemoryStaticMax:
		return internalError("bad VM configuration: need 0 <= memory_dynamic_min <= memory_dynamic_max <= memory_static_max")
	case x.VCPUs < 1 || x.VCPUs > x.VCPUMax:
		return internalError("bad VM configuration: need 1 <= vcpus <= vcpu_max")
	case x.HVM != nil && (x.HVM.ShadowMultiplier < 1 || x.HVM.ShadowMultiplier > 1000):
		return internalError("bad VM configuration: shadow_multiplier must be between 1 and 1000")
	case strings.ContainsAny(x.ID, "/\x00"):
		return internalError("bad VM configuration: id may not contain '/'")
	}
	return nil
}

// record returns the XenAPI VM.create record for a configuration.
func (x *VM) record() wire.Value {
	oc := map[string]string{}
	set := func(k, v string) { oc[ocPrefix+k] = v }
	if x.SSIDRef != 0 {
		set("ssidref", strconv.FormatInt(x.SSIDRef, 10))
	}
	if x.SuppressSpuriousPageFaults {
		set("suppress_spurious_page_faults", "true")
	}
	if x.MachineAddressSize != nil {
		set("machine_address_size", strconv.FormatInt(*x.MachineAddressSize, 10))
	}
	if x.Transient {
		set("transient", "true")
	}
	if x.PCIMSITranslate {
		set("pci_msitranslate", "true")
	}
	if x.PCIPowerMgmt {
		set("pci_power_mgmt", "true")
	}
	pf := map[string]string{}
	for k, v := range x.PlatformData {
		pf[k] = v
	}
	rec := []wire.Member{
		mem("name_label", wire.String(x.Name)),
		mem("name_description", wire.String("")),
		mem("user_version", wire.Int(1)),
		mem("is_a_template", wire.Bool(false)),
		mem("memory_static_max", wire.Int(x.MemoryStaticMax)),
		mem("memory_dynamic_max", wire.Int(x.MemoryDynamicMax)),
		mem("memory_dynamic_min", wire.Int(x.MemoryDynamicMin)),
		mem("memory_static_min", wire.Int(x.MemoryDynamicMin)),
		mem("VCPUs_max", wire.Int(x.VCPUMax)),
		mem("VCPUs_at_startup", wire.Int(x.VCPUs)),
		mem("actions_after_shutdown", wire.String(normalExit(x.OnShutdown))),
		mem("actions_after_reboot", wire.String(normalExit(x.OnReboot))),
		mem("actions_after_crash", wire.String(crashAction(x.OnCrash))),
		mem("xenstore_data", dict(x.XSData)),
		mem("bios_strings", dict(x.BIOSStrings)),
	}
	params := map[string]string{}
	if x.Priority != nil {
		params["weight"] = strconv.FormatInt(x.Priority.Weight, 10)
		params["cap"] = strconv.FormatInt(x.Priority.Cap, 10)
	}
	if len(x.Affinity) > 0 {
		same := true
		for _, a := range x.Affinity[1:] {
			if joinInts(a) != joinInts(x.Affinity[0]) {
				same = false
			}
		}
		if same && int64(len(x.Affinity)) == x.VCPUMax {
			params["mask"] = joinInts(x.Affinity[0])
		} else {
			sets := make([]string, len(x.Affinity))
			for i, a := range x.Affinity {
				sets[i] = joinInts(a)
			}
			set("affinity", strings.Join(sets, ";"))
		}
	}
	rec = append(rec, mem("VCPUs_params", dict(params)))
	if h := x.HVM; h != nil {
		pf["hap"] = boolStr(h.HAP)
		pf["timeoffset"] = h.TimeOffset
		pf["videoram"] = strconv.FormatInt(h.VideoMiB, 10)
		pf["vga"] = "cirrus"
		if h.Video == "Standard_VGA" {
			pf["vga"] = "std"
		}
		pf["acpi"] = "0"
		if h.ACPI {
			pf["acpi"] = "1"
		}
		if h.Keymap != nil {
			pf["keymap"] = *h.Keymap
		}
		if h.Serial != nil {
			set("serial", *h.Serial)
		}
		if h.VNCIP != nil {
			set("vnc_ip", *h.VNCIP)
		}
		if len(h.PCIEmulations) > 0 {
			set("pci_emulations", strings.Join(h.PCIEmulations, ","))
		}
		if h.PCIPassthrough {
			set("pci_passthrough", "true")
		}
		if h.QemuDiskCmdline {
			set("qemu_disk_cmdline", "true")
		}
		if h.QemuStubdom {
			set("qemu_stubdom", "true")
		}
		order := h.BootOrder
		if order == "" {
			order = "cd"
		}
		rec = append(rec,
			mem("HVM_boot_policy", wire.String("BIOS order")),
			mem("HVM_boot_params", dict(map[string]string{"order": order})),
			mem("HVM_shadow_multiplier", wire.Float(h.ShadowMultiplier)),
			mem("domain_type", wire.String("hvm")))
	} else if p := x.PV; p != nil {
		if p.Indirect {
			devs := make([]string, len(p.Devices))
			for i, d := range p.Devices {
				devs[i] = d.Kind + ":" + d.Name
			}
			if len(devs) > 0 {
				set("bootloader_devices", strings.Join(devs, ","))
			}
			rec = append(rec,
				mem("PV_bootloader", wire.String(p.Bootloader)),
				mem("PV_args", wire.String(p.ExtraArgs)),
				mem("PV_legacy_args", wire.String(p.LegacyArgs)),
				mem("PV_bootloader_args", wire.String(p.BootloaderArgs)))
		} else {
			ramdisk := ""
			if p.Ramdisk != nil {
				ramdisk = *p.Ramdisk
			}
			rec = append(rec,
				mem("PV_kernel", wire.String(p.Kernel)),
				mem("PV_args", wire.String(p.Cmdline)),
				mem("PV_ramdisk", wire.String(ramdisk)))
		}
		if p.Framebuffer {
			set("framebuffer", "true")
		}
		if !p.VNCTerm {
			set("vncterm", "false")
		}
		if p.VNCTermIP != nil {
			set("vncterm_ip", *p.VNCTermIP)
		}
		rec = append(rec, mem("HVM_boot_policy", wire.String("")), mem("domain_type", wire.String("pv")))
	}
	rec = append(rec, mem("platform", dict(pf)), mem("other_config", dict(oc)))
	return wire.Struct(rec...)
}

// stateOf reads a VM's run-time state.
func stateOf(st *store.Store, vm *api.VM) *State {
	s := &State{
		PowerState:       powerName(string(vm.PowerState)),
		Domids:           []int64{},
		MemoryTarget:     vm.MemoryTarget,
		ShadowMultiplier: vm.HVMShadowMultiplier,
		GuestAgent:       map[string]string{},
	}
	if tz, ok := vm.Platform.Lookup("timeoffset"); ok {
		s.RTCTimeOffset = tz
	}
	if vm.Domid >= 0 && vm.PowerState != api.VMPowerStateHalted && vm.PowerState != api.VMPowerStateSuspended {
		s.Domids = append(s.Domids, vm.Domid)
	}
	if row, err := st.Get(api.ClassVMMetrics, vm.Metrics); err == nil {
		m := row.Rec.(*api.VMMetrics)
		if vm.PowerState == api.VMPowerStateRunning || vm.PowerState == api.VMPowerStatePaused {
			s.MemoryTarget = m.MemoryActual
			s.VCPUTarget = m.VCPUsNumber
			if !m.StartTime.IsZero() && m.StartTime.Unix() > 0 {
				s.LastStartTime = float64(m.StartTime.UnixNano()) / 1e9
			}
		}
	}
	if row, err := st.Get(api.ClassVMGuestMetrics, vm.GuestMetrics); err == nil {
		g := row.Rec.(*api.VMGuestMetrics)
		for prefix, m := range map[string]xenapi.Map[string, string]{
			"os_version/": g.OSVersion, "networks/": g.Networks, "PV_drivers_version/": g.PVDriversVersion, "other/": g.Other,
		} {
			for k, v := range m.All() {
				s.GuestAgent[prefix+k] = v
			}
		}
	}
	for _, c := range vm.Consoles {
		row, err := st.Get(api.ClassConsole, c)
		if err != nil {
			continue
		}
		con := row.Rec.(*api.Console)
		proto := "Vt100"
		if con.Protocol == api.ConsoleProtocolRfb {
			proto = "Rfb"
		}
		var port int64
		if i := strings.LastIndexByte(con.Location, ':'); i >= 0 {
			port = parseIntOr(strings.TrimRight(con.Location[i+1:], "/"), 0)
		}
		s.Consoles = append(s.Consoles, Console{Protocol: proto, Port: port})
	}
	return s
}

// vbdOf reads a XenAPI VBD.
func vbdOf(st *store.Store, vmID string, b *api.VBD) *VBD {
	dev := b.Userdevice
	if dev == "" {
		dev = b.Device
	}
	x := &VBD{
		VM: vmID, Device: dev, ReadOnly: b.Mode == api.VBDModeRO, CDROM: b.Type == api.VBDTypeCD,
		Unpluggable: b.Unpluggable, ExtraBackendKeys: map[string]string{}, ExtraPrivateKeys: map[string]string{},
		Plugged: b.CurrentlyAttached, MediaPresent: !b.Empty,
	}
	if n, err := strconv.ParseInt(b.Userdevice, 10, 64); err == nil {
		x.Position = &n
	}
	if !b.Empty {
		if row, err := st.Get(api.ClassVDI, b.VDI); err == nil {
			vdi := row.Rec.(*api.VDI)
			sr := ""
			if r, err := st.Get(api.ClassSR, vdi.SR); err == nil {
				sr = r.Rec.(*api.SR).UUID
			}
			x.Backend = &Disk{Kind: "VDI", Name: sr + "/" + vdi.Location}
		}
	}
	return x
}

// vifOf reads a XenAPI VIF.
func vifOf(st *store.Store, vmID string, f *api.VIF) *VIF {
	x := &VIF{
		VM: vmID, Device: f.Device, Position: parseIntOr(f.Device, 0), MAC: f.MAC, Carrier: true, MTU: f.MTU,
		Network: Disk{Kind: "Local"}, OtherConfig: m2map(f.OtherConfig), ExtraPrivateKeys: map[string]string{},
		Plugged: f.CurrentlyAttached,
	}
	if row, err := st.Get(api.ClassNetwork, f.Network); err == nil {
		x.Network.Name = row.Rec.(*api.Network).Bridge
	}
	return x
}

// devicesOf returns a VM's VBDs and VIFs, in device order.
func devicesOf(st *store.Store, vm *api.VM) ([]*VBD, []*VIF) {
	var vbds []*VBD
	for _, r := range vm.VBDs {
		if row, err := st.Get(api.ClassVBD, r); err == nil {
			vbds = append(vbds, vbdOf(st, vm.UUID, row.Rec.(*api.VBD)))
		}
	}
	var vifs []*VIF
	for _, r := range vm.VIFs {
		if row, err := st.Get(api.ClassVIF, r); err == nil {
			vifs = append(vifs, vifOf(st, vm.UUID, row.Rec.(*api.VIF)))
		}
	}
	sort.Slice(vbds, func(i, j int) bool { return devLess(vbds[i].Device, vbds[j].Device) })
	sort.Slice(vifs, func(i, j int) bool { return devLess(vifs[i].Device, vifs[j].Device) })
	return vbds, vifs
}

func devLess(a, b string) bool {
	x, e1 := strconv.Atoi(a)
	y, e2 := strconv.Atoi(b)
	if e1 == nil && e2 == nil {
		return x < y
	}
	return a < b
}
