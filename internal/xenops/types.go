package xenops

import (
	"fmt"

	"github.com/xenith/xenith/internal/wire"
)

// HVMInfo is hvm_info: hardware options of HVM VMs.
type HVMInfo struct {
	HAP              bool
	ShadowMultiplier float64
	TimeOffset       string
	VideoMiB         int64
	Video            string // Cirrus or Standard_VGA
	ACPI             bool
	Serial           *string
	Keymap           *string
	VNCIP            *string
	PCIEmulations    []string
	PCIPassthrough   bool
	BootOrder        string
	QemuDiskCmdline  bool
	QemuStubdom      bool
}

// PVInfo is pv_info: how a PV VM boots.
type PVInfo struct {
	Indirect bool // a bootloader (pv_indirect_boot) rather than a kernel
	// Direct
	Kernel  string
	Cmdline string
	Ramdisk *string
	// Indirect
	Bootloader     string
	ExtraArgs      string
	LegacyArgs     string
	BootloaderArgs string
	Devices        []Disk

	Framebuffer bool
	VNCTerm     bool
	VNCTermIP   *string
}

// Disk is the disk variant: Local path or VDI "SR/VDI".
type Disk struct {
	Kind string // Local or VDI
	Name string
}

func (d Disk) value() wire.Value { return variant(d.Kind, wire.String(d.Name)) }

func (dec *decoder) disk(v wire.Value, path string) Disk {
	k, arg := dec.variant(v, path, "Local", "VDI")
	return Disk{Kind: k, Name: dec.str(arg, path)}
}

// WeightCap is the credit scheduler's weight and cap.
type WeightCap struct{ Weight, Cap int64 }

// VM is t/Vm, a VM configuration.
type VM struct {
	ID                         string
	Name                       string
	SSIDRef                    int64
	XSData                     map[string]string
	PlatformData               map[string]string
	BIOSStrings                map[string]string
	HVM                        *HVMInfo // exactly one of HVM and PV is set
	PV                         *PVInfo
	SuppressSpuriousPageFaults bool
	MachineAddressSize         *int64
	MemoryStaticMax            int64
	MemoryDynamicMax           int64
	MemoryDynamicMin           int64
	VCPUMax                    int64
	VCPUs                      int64
	Priority                   *WeightCap
	Affinity                   [][]int64
	OnCrash                    []string // Coredump, Shutdown, Start
	OnShutdown                 []string
	OnReboot                   []string
	Transient                  bool
	PCIMSITranslate            bool
	PCIPowerMgmt               bool
}

var actions = []string{"Coredump", "Shutdown", "Start"}

func actionList(as []string) wire.Value {
	out := make([]wire.Value, 0, len(as))
	for _, a := range as {
		out = append(out, variant(a))
	}
	return list(out)
}

func int64List(ns []int64) wire.Value {
	out := make([]wire.Value, 0, len(ns))
	for _, n := range ns {
		out = append(out, wire.Int(n))
	}
	return list(out)
}

// Value encodes the configuration.
func (vm *VM) Value() wire.Value {
	var ty wire.Value
	if vm.HVM != nil {
		h := vm.HVM
		ty = variant("HVM", record(
			mem("hap", wire.Bool(h.HAP)),
			mem("shadow_multiplier", wire.Float(h.ShadowMultiplier)),
			mem("timeoffset", wire.String(h.TimeOffset)),
			mem("video_mib", wire.Int(h.VideoMiB)),
			mem("video", variant(h.Video)),
			mem("acpi", wire.Bool(h.ACPI)),
			mem("serial", optString(h.Serial)),
			mem("keymap", optString(h.Keymap)),
			mem("vnc_ip", optString(h.VNCIP)),
			mem("pci_emulations", strList(h.PCIEmulations)),
			mem("pci_passthrough", wire.Bool(h.PCIPassthrough)),
			mem("boot_order", wire.String(h.BootOrder)),
			mem("qemu_disk_cmdline", wire.Bool(h.QemuDiskCmdline)),
			mem("qemu_stubdom", wire.Bool(h.QemuStubdom)),
		))
	} else {
		p := vm.PV
		if p == nil {
			p = &PVInfo{}
		}
		var boot wire.Value
		if p.Indirect {
			devs := make([]wire.Value, 0, len(p.Devices))
			for _, d := range p.Devices {
				devs = append(devs, d.value())
			}
			boot = variant("Indirect", record(
				mem("bootloader", wire.String(p.Bootloader)),
				mem("extra_args", wire.String(p.ExtraArgs)),
				mem("legacy_args", wire.String(p.LegacyArgs)),
				mem("bootloader_args", wire.String(p.BootloaderArgs)),
				mem("devices", list(devs)),
			))
		} else {
			boot = variant("Direct", record(
				mem("kernel", wire.String(p.Kernel)),
				mem("cmdline", wire.String(p.Cmdline)),
				mem("ramdisk", optString(p.Ramdisk)),
			))
		}
		ty = variant("PV", record(
			mem("boot", boot),
			mem("framebuffer", wire.Bool(p.Framebuffer)),
			mem("vncterm", wire.Bool(p.VNCTerm)),
			mem("vncterm_ip", optString(p.VNCTermIP)),
		))
	}
	prio := none()
	if vm.Priority != nil {
		prio = some(record(mem("weight", wire.Int(vm.Priority.Weight)), mem("cap", wire.Int(vm.Priority.Cap))))
	}
	aff := make([]wire.Value, 0, len(vm.Affinity))
	for _, a := range vm.Affinity {
		aff = append(aff, int64List(a))
	}
	return record(
		mem("id", wire.String(vm.ID)),
		mem("name", wire.String(vm.Name)),
		mem("ssidref", wire.Int(vm.SSIDRef)),
		mem("xsdata", dict(vm.XSData)),
		mem("platformdata", dict(vm.PlatformData)),
		mem("bios_strings", dict(vm.BIOSStrings)),
		mem("ty", ty),
		mem("suppress_spurious_page_faults", wire.Bool(vm.SuppressSpuriousPageFaults)),
		mem("machine_address_size", optInt(vm.MachineAddressSize)),
		mem("memory_static_max", wire.Int(vm.MemoryStaticMax)),
		mem("memory_dynamic_max", wire.Int(vm.MemoryDynamicMax)),
		mem("memory_dynamic_min", wire.Int(vm.MemoryDynamicMin)),
		mem("vcpu_max", wire.Int(vm.VCPUMax)),
		mem("vcpus", wire.Int(vm.VCPUs)),
		mem("scheduler_params", record(mem("priority", prio), mem("affinity", list(aff)))),
		mem("on_crash", actionList(vm.OnCrash)),
		mem("on_shutdown", actionList(vm.OnShutdown)),
		mem("on_reboot", actionList(vm.OnReboot)),
		mem("transient", wire.Bool(vm.Transient)),
		mem("pci_msitranslate", wire.Bool(vm.PCIMSITranslate)),
		mem("pci_power_mgmt", wire.Bool(vm.PCIPowerMgmt)),
	)
}

// decodeVM reads a t/Vm. Missing fields take defaults: an HVM VM with
// one vCPU, dynamic memory equal to static, restart on reboot, destroy on
// shutdown and crash.
func decodeVM(v wire.Value, path string) (*VM, error) {
	d := &decoder{}
	vm := d.vm(v, path)
	if d.err != nil {
		return nil, d.err
	}
	return vm, nil
}

func (d *decoder) vm(v wire.Value, path string) *VM {
	vm := &VM{
		VCPUs:        1,
		OnCrash:      []string{"Shutdown"},
		OnShutdown:   []string{"Shutdown"},
		OnReboot:     []string{"Start"},
		XSData:       map[string]string{},
		PlatformData: map[string]string{},
		BIOSStrings:  map[string]string{},
	}
	if v.Kind != wire.KindStruct {
		d.fail(path, "expected a VM configuration (struct), got %s", v.Kind)
		return vm
	}
	get := func(name string) (wire.Value, bool) { return d.field(v, path, name) }
	if f, ok := get("id"); ok {
		vm.ID = d.str(f, path+".id")
	}
	if f, ok := get("name"); ok {
		vm.Name = d.str(f, path+".name")
	}
	if f, ok := get("ssidref"); ok {
		vm.SSIDRef = d.int(f, path+".ssidref")
	}
	if f, ok := get("xsdata"); ok {
		vm.XSData = d.assoc(f, path+".xsdata")
	}
	if f, ok := get("platformdata"); ok {
		vm.PlatformData = d.assoc(f, path+".platformdata")
	}
	if f, ok := get("bios_strings"); ok {
		vm.BIOSStrings = d.assoc(f, path+".bios_strings")
	}
	if f, ok := get("ty"); ok {
		d.builder(vm, f, path+".ty")
	} else {
		vm.HVM = defaultHVM()
	}
	if f, ok := get("suppress_spurious_page_faults"); ok {
		vm.SuppressSpuriousPageFaults = d.bool(f, path+".suppress_spurious_page_faults")
	}
	if f, ok := get("machine_address_size"); ok {
		if x, ok := d.option(f); ok {
			n := d.int(x, path+".machine_address_size")
			vm.MachineAddressSize = &n
		}
	}
	if f, ok := get("memory_static_max"); ok {
		vm.MemoryStaticMax = d.int(f, path+".memory_static_max")
	}
	vm.MemoryDynamicMax, vm.MemoryDynamicMin = vm.MemoryStaticMax, vm.MemoryStaticMax
	if f, ok := get("memory_dynamic_max"); ok {
		vm.MemoryDynamicMax = d.int(f, path+".memory_dynamic_max")
	}
	if f, ok := get("memory_dynamic_min"); ok {
		vm.MemoryDynamicMin = d.int(f, path+".memory_dynamic_min")
	}
	if f, ok := get("vcpus"); ok {
		vm.VCPUs = d.int(f, path+".vcpus")
	}
	vm.VCPUMax = vm.VCPUs
	if f, ok := get("vcpu_max"); ok {
		vm.VCPUMax = d.int(f, path+".vcpu_max")
	}
	if f, ok := get("scheduler_params"); ok {
		sp := path + ".scheduler_params"
		if p, ok := d.field(f, sp, "priority"); ok {
			if x, ok := d.option(p); ok {
				wc := &WeightCap{}
				if w, ok := d.field(x, sp+".priority", "weight"); ok {
					wc.Weight = d.int(w, sp+".priority.weight")
				}
				if c, ok := d.field(x, sp+".priority", "cap"); ok {
					wc.Cap = d.int(c, sp+".priority.cap")
				}
				vm.Priority = wc
			}
		}
		if a, ok := d.field(f, sp, "affinity"); ok {
			for i, cpus := range d.list(a, sp+".affinity") {
				var set []int64
				for _, c := range d.list(cpus, fmt.Sprintf("%s.affinity[%d]", sp, i)) {
					set = append(set, d.int(c, sp+".affinity"))
				}
				vm.Affinity = append(vm.Affinity, set)
			}
		}
	}
	for _, a := range []struct {
		name string
		dst  *[]string
	}{{"on_crash", &vm.OnCrash}, {"on_shutdown", &vm.OnShutdown}, {"on_reboot", &vm.OnReboot}} {
		if f, ok := get(a.name); ok {
			*a.dst = []string{}
			for _, x := range d.list(f, path+"."+a.name) {
				n, _ := d.variant(x, path+"."+a.name, actions...)
				*a.dst = append(*a.dst, n)
			}
		}
	}
	if f, ok := get("transient"); ok {
		vm.Transient = d.bool(f, path+".transient")
	}
	if f, ok := get("pci_msitranslate"); ok {
		vm.PCIMSITranslate = d.bool(f, path+".pci_msitranslate")
	}
	if f, ok := get("pci_power_mgmt"); ok {
		vm.PCIPowerMgmt = d.bool(f, path+".pci_power_mgmt")
	}
	return vm
}

func defaultHVM() *HVMInfo {
	return &HVMInfo{HAP: true, ShadowMultiplier: 1, TimeOffset: "0", VideoMiB: 4, Video: "Cirrus", ACPI: true, BootOrder: "cd"}
}

func (d *decoder) builder(vm *VM, v wire.Value, path string) {
	kind, arg := d.variant(v, path, "HVM", "PV")
	switch kind {
	case "HVM":
		h := defaultHVM()
		vm.HVM = h
		p := path + ".HVM"
		if arg.Kind == wire.KindNil {
			return
		}
		get := func(name string) (wire.Value, bool) { return d.field(arg, p, name) }
		if f, ok := get("hap"); ok {
			h.HAP = d.bool(f, p+".hap")
		}
		if f, ok := get("shadow_multiplier"); ok {
			h.ShadowMultiplier = d.float(f, p+".shadow_multiplier")
		}
		if f, ok := get("timeoffset"); ok {
			h.TimeOffset = d.str(f, p+".timeoffset")
		}
		if f, ok := get("video_mib"); ok {
			h.VideoMiB = d.int(f, p+".video_mib")
		}
		if f, ok := get("video"); ok {
			h.Video, _ = d.variant(f, p+".video", "Cirrus", "Standard_VGA")
		}
		if f, ok := get("acpi"); ok {
			h.ACPI = d.bool(f, p+".acpi")
		}
		for _, o := range []struct {
			name string
			dst  **string
		}{{"serial", &h.Serial}, {"keymap", &h.Keymap}, {"vnc_ip", &h.VNCIP}} {
			if f, ok := get(o.name); ok {
				if x, ok := d.option(f); ok {
					s := d.str(x, p+"."+o.name)
					*o.dst = &s
				}
			}
		}
		if f, ok := get("pci_emulations"); ok {
			for _, x := range d.list(f, p+".pci_emulations") {
				h.PCIEmulations = append(h.PCIEmulations, d.str(x, p+".pci_emulations"))
			}
		}
		if f, ok := get("pci_passthrough"); ok {
			h.PCIPassthrough = d.bool(f, p+".pci_passthrough")
		}
		if f, ok := get("boot_order"); ok {
			h.BootOrder = d.str(f, p+".boot_order")
		}
		if f, ok := get("qemu_disk_cmdline"); ok {
			h.QemuDiskCmdline = d.bool(f, p+".qemu_disk_cmdline")
		}
		if f, ok := get("qemu_stubdom"); ok {
			h.QemuStubdom = d.bool(f, p+".qemu_stubdom")
		}
	case "PV":
		pv := &PVInfo{VNCTerm: true}
		vm.PV = pv
		p := path + ".PV"
		if arg.Kind == wire.KindNil {
			d.fail(p, "missing pv_info")
			return
		}
		get := func(name string) (wire.Value, bool) { return d.field(arg, p, name) }
		if f, ok := get("boot"); ok {
			bk, barg := d.variant(f, p+".boot", "Direct", "Indirect")
			bp := p + ".boot." + bk
			bget := func(name string) (wire.Value, bool) {
				if barg.Kind == wire.KindNil {
					return wire.Value{}, false
				}
				return d.field(barg, bp, name)
			}
			switch bk {
			case "Direct":
				if f, ok := bget("kernel"); ok {
					pv.Kernel = d.str(f, bp+".kernel")
				}
				if f, ok := bget("cmdline"); ok {
					pv.Cmdline = d.str(f, bp+".cmdline")
				}
				if f, ok := bget("ramdisk"); ok {
					if x, ok := d.option(f); ok {
						s := d.str(x, bp+".ramdisk")
						pv.Ramdisk = &s
					}
				}
			case "Indirect":
				pv.Indirect = true
				if f, ok := bget("bootloader"); ok {
					pv.Bootloader = d.str(f, bp+".bootloader")
				}
				if f, ok := bget("extra_args"); ok {
					pv.ExtraArgs = d.str(f, bp+".extra_args")
				}
				if f, ok := bget("legacy_args"); ok {
					pv.LegacyArgs = d.str(f, bp+".legacy_args")
				}
				if f, ok := bget("bootloader_args"); ok {
					pv.BootloaderArgs = d.str(f, bp+".bootloader_args")
				}
				if f, ok := bget("devices"); ok {
					for _, x := range d.list(f, bp+".devices") {
						pv.Devices = append(pv.Devices, d.disk(x, bp+".devices"))
					}
				}
			}
		}
		if f, ok := get("framebuffer"); ok {
			pv.Framebuffer = d.bool(f, p+".framebuffer")
		}
		if f, ok := get("vncterm"); ok {
			pv.VNCTerm = d.bool(f, p+".vncterm")
		}
		if f, ok := get("vncterm_ip"); ok {
			if x, ok := d.option(f); ok {
				s := d.str(x, p+".vncterm_ip")
				pv.VNCTermIP = &s
			}
		}
	}
}

// Console is a console of a running VM.
type Console struct {
	Protocol string // Rfb or Vt100
	Port     int64
}

// State is state/Vm, a VM's run-time state.
type State struct {
	PowerState       string
	Domids           []int64
	Consoles         []Console
	MemoryTarget     int64
	VCPUTarget       int64
	ShadowMultiplier float64
	RTCTimeOffset    string
	Uncooperative    bool
	GuestAgent       map[string]string
	LastStartTime    float64
}

// Value encodes the state.
func (s *State) Value() wire.Value {
	cons := make([]wire.Value, 0, len(s.Consoles))
	for _, c := range s.Consoles {
		cons = append(cons, record(mem("protocol", variant(c.Protocol)), mem("port", wire.Int(c.Port))))
	}
	return record(
		mem("power_state", variant(s.PowerState)),
		mem("domids", int64List(s.Domids)),
		mem("consoles", list(cons)),
		mem("memory_target", wire.Int(s.MemoryTarget)),
		mem("vcpu_target", wire.Int(s.VCPUTarget)),
		mem("shadow_multiplier_target", wire.Float(s.ShadowMultiplier)),
		mem("rtc_timeoffset", wire.String(s.RTCTimeOffset)),
		mem("uncooperative_balloon_driver", wire.Bool(s.Uncooperative)),
		mem("guest_agent", dict(s.GuestAgent)),
		mem("last_start_time", wire.Float(s.LastStartTime)),
	)
}

// VBD is t/Vbd.
type VBD struct {
	VM, Device        string // the id: (VM id, device)
	Position          *int64
	ReadOnly          bool
	Backend           *Disk
	CDROM             bool
	Unpluggable       bool
	ExtraBackendKeys  map[string]string
	ExtraPrivateKeys  map[string]string
	Plugged           bool // state
	MediaPresent      bool // state
	currentlyAttached bool
}

func idPair(vm, dev string) wire.Value { return wire.Array(wire.String(vm), wire.String(dev)) }

// Value encodes t/Vbd.
func (b *VBD) Value() wire.Value {
	mode, ty := "ReadWrite", "Disk"
	if b.ReadOnly {
		mode = "ReadOnly"
	}
	if b.CDROM {
		ty = "CDROM"
	}
	backend := none()
	if b.Backend != nil {
		backend = some(b.Backend.value())
	}
	return record(
		mem("id", idPair(b.VM, b.Device)),
		mem("position", optInt(b.Position)),
		mem("mode", variant(mode)),
		mem("backend", backend),
		mem("ty", variant(ty)),
		mem("unpluggable", wire.Bool(b.Unpluggable)),
		mem("extra_backend_keys", dict(b.ExtraBackendKeys)),
		mem("extra_private_keys", dict(b.ExtraPrivateKeys)),
		mem("qos", none()),
	)
}

// StateValue encodes state/Vbd.
func (b *VBD) StateValue() wire.Value {
	return record(
		mem("id", idPair(b.VM, b.Device)),
		mem("qos_target", none()),
		mem("media_present", wire.Bool(b.MediaPresent)),
		mem("plugged", wire.Bool(b.Plugged)),
	)
}

func (d *decoder) id(v wire.Value, path string) (string, string) {
	l := d.list(v, path)
	if len(l) != 2 {
		d.fail(path, "expected an id (VM id, device)")
		return "", ""
	}
	return d.str(l[0], path+"[0]"), d.str(l[1], path+"[1]")
}

func (d *decoder) vbd(v wire.Value, path string) *VBD {
	b := &VBD{Unpluggable: true}
	get := func(name string) (wire.Value, bool) { return d.field(v, path, name) }
	if f, ok := get("id"); ok {
		b.VM, b.Device = d.id(f, path+".id")
	}
	if f, ok := get("position"); ok {
		if x, ok := d.option(f); ok {
			n := d.int(x, path+".position")
			b.Position = &n
		}
	}
	if f, ok := get("mode"); ok {
		m, _ := d.variant(f, path+".mode", "ReadOnly", "ReadWrite")
		b.ReadOnly = m == "ReadOnly"
	}
	if f, ok := get("backend"); ok {
		if x, ok := d.option(f); ok {
			disk := d.disk(x, path+".backend")
			b.Backend = &disk
		}
	}
	if f, ok := get("ty"); ok {
		t, _ := d.variant(f, path+".ty", "CDROM", "Disk")
		b.CDROM = t == "CDROM"
	}
	if f, ok := get("unpluggable"); ok {
		b.Unpluggable = d.bool(f, path+".unpluggable")
	}
	if f, ok := get("extra_backend_keys"); ok {
		b.ExtraBackendKeys = d.assoc(f, path+".extra_backend_keys")
	}
	if f, ok := get("extra_private_keys"); ok {
		b.ExtraPrivateKeys = d.assoc(f, path+".extra_private_keys")
	}
	return b
}

// VIF is t/Vif.
type VIF struct {
	VM, Device       string
	Position         int64
	MAC              string
	Carrier          bool
	MTU              int64
	Rate             *[2]int64 // kbytes_per_sec, timeslice_us
	Network          Disk      // the network variant: Local bridge or Remote
	OtherConfig      map[string]string
	ExtraPrivateKeys map[string]string
	Plugged          bool
}

// Value encodes t/Vif.
func (f *VIF) Value() wire.Value {
	rate := none()
	if f.Rate != nil {
		rate = some(record(mem("kbytes_per_sec", wire.Int(f.Rate[0])), mem("timeslice_us", wire.Int(f.Rate[1]))))
	}
	return record(
		mem("id", idPair(f.VM, f.Device)),
		mem("position", wire.Int(f.Position)),
		mem("mac", wire.String(f.MAC)),
		mem("carrier", wire.Bool(f.Carrier)),
		mem("mtu", wire.Int(f.MTU)),
		mem("rate", rate),
		mem("backend", variant(f.Network.Kind, wire.String(f.Network.Name))),
		mem("other_config", dict(f.OtherConfig)),
		mem("extra_private_keys", dict(f.ExtraPrivateKeys)),
	)
}

// StateValue encodes state/Vif.
func (f *VIF) StateValue() wire.Value {
	return record(
		mem("plugged", wire.Bool(f.Plugged)),
		mem("kthread_pid", wire.Int(0)),
		mem("media_present", wire.Bool(f.Plugged)),
	)
}

func (d *decoder) vif(v wire.Value, path string) *VIF {
	f := &VIF{Carrier: true, MTU: 1500, Network: Disk{Kind: "Local"}}
	get := func(name string) (wire.Value, bool) { return d.field(v, path, name) }
	if x, ok := get("id"); ok {
		f.VM, f.Device = d.id(x, path+".id")
	}
	if x, ok := get("position"); ok {
		f.Position = d.int(x, path+".position")
	}
	if x, ok := get("mac"); ok {
		f.MAC = d.str(x, path+".mac")
	}
	if x, ok := get("carrier"); ok {
		f.Carrier = d.bool(x, path+".carrier")
	}
	if x, ok := get("mtu"); ok {
		f.MTU = d.int(x, path+".mtu")
	}
	if x, ok := get("rate"); ok {
		if r, ok := d.option(x); ok {
			var rate [2]int64
			if k, ok := d.field(r, path+".rate", "kbytes_per_sec"); ok {
				rate[0] = d.int(k, path+".rate.kbytes_per_sec")
			}
			if t, ok := d.field(r, path+".rate", "timeslice_us"); ok {
				rate[1] = d.int(t, path+".rate.timeslice_us")
			}
			f.Rate = &rate
		}
	}
	if x, ok := get("backend"); ok {
		k, arg := d.variant(x, path+".backend", "Local", "Remote")
		f.Network = Disk{Kind: k, Name: d.str(arg, path+".backend")}
	}
	if x, ok := get("other_config"); ok {
		f.OtherConfig = d.assoc(x, path+".other_config")
	}
	if x, ok := get("extra_private_keys"); ok {
		f.ExtraPrivateKeys = d.assoc(x, path+".extra_private_keys")
	}
	return f
}

// Metadata is Metadata.t: a whole VM configuration for export and import.
type Metadata struct {
	VM      *VM
	VBDs    []*VBD
	VIFs    []*VIF
	PCIs    []wire.Value
	Domains *string
}

// Value encodes the metadata.
func (m *Metadata) Value() wire.Value {
	vbds := make([]wire.Value, 0, len(m.VBDs))
	for _, b := range m.VBDs {
		vbds = append(vbds, b.Value())
	}
	vifs := make([]wire.Value, 0, len(m.VIFs))
	for _, f := range m.VIFs {
		vifs = append(vifs, f.Value())
	}
	return record(
		mem("vm", m.VM.Value()),
		mem("vbds", list(vbds)),
		mem("vifs", list(vifs)),
		mem("pcis", list(m.PCIs)),
		mem("domains", optString(m.Domains)),
	)
}

func decodeMetadata(v wire.Value) (*Metadata, error) {
	d := &decoder{}
	m := &Metadata{}
	vmv, ok := d.field(v, "config", "vm")
	if !ok && d.err == nil {
		d.fail("config", "missing vm")
	}
	m.VM = d.vm(vmv, "config.vm")
	if f, ok := d.field(v, "config", "vbds"); ok {
		for _, x := range d.list(f, "config.vbds") {
			m.VBDs = append(m.VBDs, d.vbd(x, "config.vbds"))
		}
	}
	if f, ok := d.field(v, "config", "vifs"); ok {
		for _, x := range d.list(f, "config.vifs") {
			m.VIFs = append(m.VIFs, d.vif(x, "config.vifs"))
		}
	}
	if f, ok := d.field(v, "config", "pcis"); ok {
		m.PCIs = d.list(f, "config.pcis")
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// TaskResult is Task.result.
type TaskResult struct {
	Kind     string // Pending, Completed, Failed
	Fraction float64
	Error    string // Failed: the error variant as JSON
}

// Task is t/Task.
type Task struct {
	ID       string
	Result   TaskResult
	Subtasks map[string]string
}

// Value encodes t/Task.
func (t *Task) Value() wire.Value {
	var res wire.Value
	switch t.Result.Kind {
	case "Failed":
		res = variant("Failed", wire.String(t.Result.Error))
	default:
		res = variant(t.Result.Kind, wire.Float(t.Result.Fraction))
	}
	return record(mem("id", wire.String(t.ID)), mem("result", res), mem("subtasks", dict(t.Subtasks)))
}
