package xend

import (
	"context"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/sexpr"
	"github.com/xenith/xenith/internal/xenapi"
)

const mib = 1 << 20

// domainName is how xend names a VM: the control domain is Domain-0.
func domainName(vm *api.VM) string {
	if vm.IsControlDomain {
		return "Domain-0"
	}
	return vm.NameLabel
}

// shown tells whether xend lists a VM: the control domain and every VM
// that is not a template or snapshot.
func shown(vm *api.VM) bool { return !vm.IsATemplate && !vm.IsASnapshot }

// listed returns the VMs xend shows, Domain-0 first, then by name.
func (s *Service) listed() []*api.VM {
	var vms []*api.VM
	for _, row := range s.st.All(api.ClassVM) {
		if vm := row.Rec.(*api.VM); shown(vm) {
			vms = append(vms, vm)
		}
	}
	sort.Slice(vms, func(i, j int) bool {
		if vms[i].IsControlDomain != vms[j].IsControlDomain {
			return vms[i].IsControlDomain
		}
		if a, b := domainName(vms[i]), domainName(vms[j]); a != b {
			return a < b
		}
		return vms[i].UUID < vms[j].UUID
	})
	return vms
}

// lookup finds a domain by name, domid (of a domain that exists) or uuid.
func (s *Service) lookup(name string) (xenapi.Ref, *api.VM, error) {
	if name == "" {
		return "", nil, notFound("no domain named")
	}
	var byName []*api.VM
	refs := map[*api.VM]xenapi.Ref{}
	domid, isNum := strconv.ParseInt(name, 10, 64)
	for _, row := range s.st.All(api.ClassVM) {
		vm := row.Rec.(*api.VM)
		if !shown(vm) {
			continue
		}
		refs[vm] = row.Ref
		switch {
		case vm.UUID == name:
			return row.Ref, vm, nil
		case isNum == nil && vm.Domid == domid && hasDomain(vm):
			return row.Ref, vm, nil
		case domainName(vm) == name:
			byName = append(byName, vm)
		}
	}
	switch len(byName) {
	case 0:
		return "", nil, notFound("no such domain %s", name)
	case 1:
		return refs[byName[0]], byName[0], nil
	}
	return "", nil, badRequest("%d domains are named %s; use the uuid or domid", len(byName), name)
}

func hasDomain(vm *api.VM) bool {
	return vm.PowerState == api.VMPowerStateRunning || vm.PowerState == api.VMPowerStatePaused || vm.IsControlDomain
}

func (s *Service) domains(detail bool) sexpr.Value {
	out := sexpr.List()
	for _, vm := range s.listed() {
		if detail {
			row, err := s.st.ByUUID(api.ClassVM, vm.UUID)
			if err == nil {
				out.List = append(out.List, s.domain(row.Ref, vm))
			}
			continue
		}
		out.List = append(out.List, sexpr.Atom(domainName(vm)))
	}
	return out
}

// state is xend's six-letter state: running, blocked, paused, shutdown,
// crashed, dying.
func state(vm *api.VM) string {
	b := []byte("------")
	switch vm.PowerState {
	case api.VMPowerStateRunning:
		b[0] = 'r'
	case api.VMPowerStatePaused:
		b[2] = 'p'
	case api.VMPowerStateSuspended:
		b[3] = 's'
	}
	return string(b)
}

// onAction spells actions_after_* as xend's on_poweroff/on_reboot/on_crash.
func onAction(a string) string {
	switch a {
	case "coredump_and_destroy":
		return "coredump-destroy"
	case "coredump_and_restart":
		return "coredump-restart"
	case "rename_restart":
		return "rename-restart"
	}
	return a
}

func (s *Service) domain(ref xenapi.Ref, vm *api.VM) sexpr.Value {
	d := sexpr.List(sexpr.Atom("domain"))
	add := func(v sexpr.Value) { d.List = append(d.List, v) }
	if hasDomain(vm) {
		add(sexpr.Int("domid", vm.Domid))
	}
	add(sexpr.Pair("uuid", vm.UUID))
	add(sexpr.Pair("name", domainName(vm)))
	add(sexpr.Int("vcpus", vm.VCPUsAtStartup))
	add(sexpr.Int("vcpus_max", vm.VCPUsMax))
	params := vm.VCPUsParams
	weight, cap := "256", "0"
	if w, ok := params.Lookup("weight"); ok {
		weight = w
	}
	if c, ok := params.Lookup("cap"); ok {
		cap = c
	}
	add(sexpr.Pair("cpu_weight", weight))
	add(sexpr.Pair("cpu_cap", cap))
	add(sexpr.Int("memory", vm.MemoryDynamicMax/mib))
	add(sexpr.Int("maxmem", vm.MemoryStaticMax/mib))
	add(sexpr.Pair("on_poweroff", onAction(string(vm.ActionsAfterShutdown))))
	add(sexpr.Pair("on_reboot", onAction(string(vm.ActionsAfterReboot))))
	add(sexpr.Pair("on_crash", onAction(string(vm.ActionsAfterCrash))))
	if vm.PVBootloader != "" {
		add(sexpr.Pair("bootloader", vm.PVBootloader))
		if vm.PVBootloaderArgs != "" {
			add(sexpr.Pair("bootloader_args", vm.PVBootloaderArgs))
		}
	}
	if !vm.IsControlDomain {
		add(image(vm))
	}
	for _, v := range s.vbds(vm) {
		add(sexpr.List(sexpr.Atom("device"), v))
	}
	for _, v := range s.vifs(vm) {
		add(sexpr.List(sexpr.Atom("device"), v))
	}
	add(sexpr.Pair("state", state(vm)))
	if row, err := s.st.Get(api.ClassVMMetrics, vm.Metrics); err == nil && hasDomain(vm) {
		m := row.Rec.(*api.VMMetrics)
		add(sexpr.Int("online_vcpus", m.VCPUsNumber))
		if !m.StartTime.IsZero() && m.StartTime.Unix() > 0 {
			add(sexpr.Pair("start_time", strconv.FormatFloat(float64(m.StartTime.UnixNano())/1e9, 'f', 2, 64)))
		}
	}
	if f, ok := vm.OtherConfig.Lookup(saveFileKey); ok && vm.PowerState == api.VMPowerStateSuspended {
		add(sexpr.Pair("save_file", f))
	}
	return d
}

func image(vm *api.VM) sexpr.Value {
	if vm.HVMBootPolicy != "" {
		h := sexpr.List(sexpr.Atom("hvm"))
		order, _ := vm.HVMBootParams.Lookup("order")
		h.List = append(h.List, sexpr.Pair("boot", order))
		for _, k := range []string{"acpi", "apic", "pae", "vga", "videoram", "timeoffset"} {
			if v, ok := vm.Platform.Lookup(k); ok {
				h.List = append(h.List, sexpr.Pair(k, v))
			}
		}
		return sexpr.List(sexpr.Atom("image"), h)
	}
	l := sexpr.List(sexpr.Atom("linux"))
	if vm.PVKernel != "" {
		l.List = append(l.List, sexpr.Pair("kernel", vm.PVKernel))
	}
	if vm.PVRamdisk != "" {
		l.List = append(l.List, sexpr.Pair("ramdisk", vm.PVRamdisk))
	}
	if vm.PVArgs != "" {
		l.List = append(l.List, sexpr.Pair("args", vm.PVArgs))
	}
	return sexpr.List(sexpr.Atom("image"), l)
}

// vdiFile returns the file behind a VDI of a directory SR.
func (s *Service) vdiFile(ref xenapi.Ref) (string, bool) {
	row, err := s.st.Get(api.ClassVDI, ref)
	if err != nil {
		return "", false
	}
	vdi := row.Rec.(*api.VDI)
	srRow, err := s.st.Get(api.ClassSR, vdi.SR)
	if err != nil {
		return "", false
	}
	for _, p := range srRow.Rec.(*api.SR).PBDs {
		pr, err := s.st.Get(api.ClassPBD, p)
		if err != nil {
			continue
		}
		conf := pr.Rec.(*api.PBD).DeviceConfig
		for _, k := range []string{"path", "location"} {
			if dir, ok := conf.Lookup(k); ok && filepath.IsAbs(dir) {
				return filepath.Join(dir, vdi.Location), true
			}
		}
	}
	return "", false
}

func (s *Service) vbds(vm *api.VM) []sexpr.Value {
	type dev struct {
		key string
		v   sexpr.Value
	}
	var devs []dev
	for _, r := range vm.VBDs {
		row, err := s.st.Get(api.ClassVBD, r)
		if err != nil {
			continue
		}
		b := row.Rec.(*api.VBD)
		name := b.Device
		if name == "" {
			name = b.Userdevice
		}
		if b.Type == api.VBDTypeCD {
			name += ":cdrom"
		}
		v := sexpr.List(sexpr.Atom("vbd"), sexpr.Pair("uuid", b.UUID), sexpr.Pair("dev", name))
		if !b.Empty {
			if path, ok := s.vdiFile(b.VDI); ok {
				v.List = append(v.List, sexpr.Pair("uname", "file:"+path))
			} else if vr, err := s.st.Get(api.ClassVDI, b.VDI); err == nil {
				v.List = append(v.List, sexpr.Pair("uname", "vdi:"+vr.Rec.(*api.VDI).UUID))
			}
		}
		mode := "w"
		if b.Mode == api.VBDModeRO {
			mode = "r"
		}
		v.List = append(v.List, sexpr.Pair("mode", mode), sexpr.Pair("bootable", boolInt(b.Bootable)))
		devs = append(devs, dev{b.Userdevice, v})
	}
	sort.SliceStable(devs, func(i, j int) bool { return devLess(devs[i].key, devs[j].key) })
	out := make([]sexpr.Value, len(devs))
	for i, d := range devs {
		out[i] = d.v
	}
	return out
}

func boolInt(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func devLess(a, b string) bool {
	x, e1 := strconv.Atoi(a)
	y, e2 := strconv.Atoi(b)
	if e1 == nil && e2 == nil {
		return x < y
	}
	return a < b
}

func (s *Service) vifs(vm *api.VM) []sexpr.Value {
	type dev struct {
		key string
		v   sexpr.Value
	}
	var devs []dev
	for _, r := range vm.VIFs {
		row, err := s.st.Get(api.ClassVIF, r)
		if err != nil {
			continue
		}
		f := row.Rec.(*api.VIF)
		v := sexpr.List(sexpr.Atom("vif"), sexpr.Pair("uuid", f.UUID), sexpr.Pair("devid", f.Device), sexpr.Pair("mac", f.MAC))
		if nr, err := s.st.Get(api.ClassNetwork, f.Network); err == nil {
			v.List = append(v.List, sexpr.Pair("bridge", nr.Rec.(*api.Network).Bridge))
		}
		v.List = append(v.List, sexpr.Int("mtu", f.MTU))
		devs = append(devs, dev{f.Device, v})
	}
	sort.SliceStable(devs, func(i, j int) bool { return devLess(devs[i].key, devs[j].key) })
	out := make([]sexpr.Value, len(devs))
	for i, d := range devs {
		out[i] = d.v
	}
	return out
}

// node answers xm info's facts from the host record and the hypervisor.
func (s *Service) node(ctx context.Context) (sexpr.Value, error) {
	row, err := s.st.Get(api.ClassHost, s.front.Host())
	if err != nil {
		return sexpr.Value{}, fromXenAPI(err)
	}
	h := row.Rec.(*api.Host)
	n := sexpr.List(sexpr.Atom("node"))
	add := func(v sexpr.Value) { n.List = append(n.List, v) }
	sv := h.SoftwareVersion
	add(sexpr.Pair("host", h.Hostname))
	add(sexpr.Pair("release", sv.Get("linux")))
	add(sexpr.Pair("machine", machine()))
	cpus := parseIntOr(h.CPUInfo.Get("cpu_count"), 0)
	var total, free int64
	if d := s.front.Domains(); d != nil {
		hi, err := d.Driver().Host(ctx)
		if err != nil {
			return sexpr.Value{}, fromXenAPI(err)
		}
		total, free = hi.TotalMemory, hi.FreeMemory
		if hi.CPUs > 0 {
			cpus = int64(hi.CPUs)
		}
	} else if mr, err := s.st.Get(api.ClassHostMetrics, h.Metrics); err == nil {
		m := mr.Rec.(*api.HostMetrics)
		total, free = m.MemoryTotal, m.MemoryFree
	}
	add(sexpr.Int("nr_cpus", cpus))
	add(sexpr.Int("nr_nodes", 1))
	add(sexpr.Int("sockets_per_node", parseIntOr(h.CPUInfo.Get("socket_count"), 1)))
	add(sexpr.Int("cores_per_socket", max(cpus/max(parseIntOr(h.CPUInfo.Get("socket_count"), 1), 1), 1)))
	add(sexpr.Int("threads_per_core", 1))
	if mhz, err := strconv.ParseFloat(h.CPUInfo.Get("speed"), 64); err == nil {
		add(sexpr.Int("cpu_mhz", int64(mhz)))
	}
	add(sexpr.Int("total_memory", total/mib))
	add(sexpr.Int("free_memory", free/mib))
	// Xen's version, when the hypervisor is Xen; the simulator has none.
	major, minor, extra := "0", "0", ""
	if xv := sv.Get("xen"); xv != "" {
		parts := strings.SplitN(xv, ".", 3)
		major = parts[0]
		if len(parts) > 1 {
			minor = parts[1]
		}
		if len(parts) > 2 {
			extra = "." + parts[2]
		}
	} else if hv := sv.Get("hypervisor"); hv != "" {
		extra = "-" + hv
	}
	add(sexpr.Pair("xen_major", major))
	add(sexpr.Pair("xen_minor", minor))
	add(sexpr.Pair("xen_extra", extra))
	add(sexpr.Pair("xen_scheduler", "credit"))
	add(sexpr.Pair("hypervisor", sv.Get("hypervisor")))
	add(sexpr.Pair("xend_config_format", "4"))
	add(sexpr.Pair("xenith_version", s.version))
	return n, nil
}

// machine is the host's architecture as uname -m spells it.
func machine() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	}
	return runtime.GOARCH
}

func parseIntOr(s string, def int64) int64 {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return def
}
