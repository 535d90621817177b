package xend

import (
	"context"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/sexpr"
	"github.com/xenith/xenith/internal/vdiloc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xenops"
)

// unmanagedKey marks VMs made by op=create: xend forgets them when they
// are destroyed.
const (
	unmanagedKey = "xend:unmanaged"
	saveFileKey  = "xend:save_file"
)

// config is a parsed domain configuration.
type config struct {
	uuid, name                      string
	memory, maxmem                  int64 // bytes
	vcpus, vcpusMax                 int64
	onPoweroff, onReboot, onCrash   string
	hvm                             bool
	kernel, ramdisk, args, bootArgs string
	bootloader, boot                string
	weight, cap                     string
	disks                           []disk
	nics                            []nic
}

type disk struct {
	dev      string // userdevice
	vdi      xenapi.Ref
	readOnly bool
	cd       bool
}

type nic struct {
	mac     string
	network xenapi.Ref
}

func (s *Service) atoi(v sexpr.Value, field string, min, max int64) (int64, error) {
	a, ok := v.Get(field)
	if !ok {
		return 0, badRequest("(%s) needs a value", field)
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil || n < min || n > max {
		return 0, badRequest("(%s %s): expected a whole number between %d and %d", field, a, min, max)
	}
	return n, nil
}

var actionNames = map[string]string{
	"destroy": "destroy", "restart": "restart", "preserve": "preserve", "rename-restart": "rename_restart",
	"coredump-destroy": "coredump_and_destroy", "coredump-restart": "coredump_and_restart",
}

// parseConfig reads (vm ...) / (domain ...) as xm create sends it.
func (s *Service) parseConfig(text string) (*config, error) {
	if strings.TrimSpace(text) == "" {
		return nil, badRequest("missing config")
	}
	v, err := sexpr.Parse([]byte(text))
	if err != nil {
		return nil, badRequest("bad config: %v", err)
	}
	if n := v.Name(); n != "vm" && n != "domain" {
		return nil, badRequest("bad config: expected (vm ...) or (domain ...)")
	}
	for _, f := range v.List[1:] {
		if !f.IsList || f.Name() == "" {
			return nil, badRequest("bad config: %s is not a (field value) list", f.String())
		}
	}
	c := &config{vcpus: 1, onPoweroff: "destroy", onReboot: "restart", onCrash: "restart", boot: "cd"}
	c.name, _ = v.Get("name")
	if c.name == "" {
		return nil, badRequest("bad config: (name ...) is required")
	}
	c.uuid, _ = v.Get("uuid")
	if c.uuid != "" && !xenapi.IsUUID(c.uuid) {
		return nil, badRequest("bad config: (uuid %q) is not a UUID", c.uuid)
	}
	mem := int64(128)
	if _, ok := v.Child("memory"); ok {
		if mem, err = s.atoi(v, "memory", 1, 1<<24); err != nil {
			return nil, err
		}
	}
	maxmem := mem
	if _, ok := v.Child("maxmem"); ok {
		if maxmem, err = s.atoi(v, "maxmem", mem, 1<<24); err != nil {
			return nil, err
		}
	}
	c.memory, c.maxmem = mem*mib, maxmem*mib
	if _, ok := v.Child("vcpus"); ok {
		if c.vcpus, err = s.atoi(v, "vcpus", 1, 512); err != nil {
			return nil, err
		}
	}
	c.vcpusMax = c.vcpus
	if _, ok := v.Child("vcpus_max"); ok {
		if c.vcpusMax, err = s.atoi(v, "vcpus_max", c.vcpus, 512); err != nil {
			return nil, err
		}
	}
	for _, a := range []struct {
		field string
		dst   *string
	}{{"on_poweroff", &c.onPoweroff}, {"on_reboot", &c.onReboot}, {"on_crash", &c.onCrash}} {
		if x, ok := v.Get(a.field); ok {
			n, known := actionNames[x]
			if !known {
				return nil, badRequest("(%s %s): expected destroy, restart, preserve, rename-restart, coredump-destroy or coredump-restart", a.field, x)
			}
			if a.field != "on_crash" && n != "destroy" && n != "restart" {
				return nil, badRequest("(%s %s): expected destroy or restart", a.field, x)
			}
			*a.dst = n
		}
	}
	if _, ok := v.Child("cpu_weight"); ok {
		n, err := s.atoi(v, "cpu_weight", 1, 65535)
		if err != nil {
			return nil, err
		}
		c.weight = strconv.FormatInt(n, 10)
	}
	if _, ok := v.Child("cpu_cap"); ok {
		n, err := s.atoi(v, "cpu_cap", 0, 100*512)
		if err != nil {
			return nil, err
		}
		c.cap = strconv.FormatInt(n, 10)
	}
	c.bootloader, _ = v.Get("bootloader")
	c.bootArgs, _ = v.Get("bootloader_args")
	c.hvm = true
	if img, ok := v.Child("image"); ok {
		if len(img.List) != 2 || !img.List[1].IsList {
			return nil, badRequest("bad config: (image (linux ...)) or (image (hvm ...))")
		}
		kind := img.List[1]
		switch kind.Name() {
		case "linux":
			c.hvm = false
			c.kernel, _ = kind.Get("kernel")
			c.ramdisk, _ = kind.Get("ramdisk")
			c.args, _ = kind.Get("args")
			if root, ok := kind.Get("root"); ok {
				c.args = strings.TrimSpace("root=" + root + " " + c.args)
			}
			if c.kernel == "" && c.bootloader == "" {
				return nil, badRequest("bad config: a linux image needs (kernel ...) or a (bootloader ...)")
			}
		case "hvm":
			if b, ok := kind.Get("boot"); ok {
				c.boot = b
			}
		default:
			return nil, badRequest("bad config: unknown image type %q", kind.Name())
		}
	} else if c.bootloader != "" {
		c.hvm = false
	}
	used := map[string]bool{}
	for _, d := range v.Children("device") {
		if len(d.List) != 2 || !d.List[1].IsList {
			return nil, badRequest("bad config: %s: expected (device (TYPE ...))", d.String())
		}
		dev := d.List[1]
		switch dev.Name() {
		case "vbd", "tap", "tap2":
			k, err := s.parseDisk(dev, used)
			if err != nil {
				return nil, err
			}
			c.disks = append(c.disks, k)
		case "vif":
			n, err := s.parseNIC(dev)
			if err != nil {
				return nil, err
			}
			c.nics = append(c.nics, n)
		default:
			return nil, badRequest("device type %q is not supported", dev.Name())
		}
	}
	return c, nil
}

// userdevice maps a guest device name (xvda, hdb, sdc, xvda1) to the
// XenAPI disk position.
func userdevice(dev string) (string, bool) {
	if n, err := strconv.Atoi(dev); err == nil && n >= 0 && n < 256 {
		return dev, true
	}
	for _, prefix := range []string{"xvd", "hd", "sd"} {
		rest, ok := strings.CutPrefix(dev, prefix)
		if !ok || rest == "" || rest[0] < 'a' || rest[0] > 'z' {
			continue
		}
		tail := strings.TrimLeft(rest[1:], "0123456789")
		if tail != "" {
			return "", false
		}
		return strconv.Itoa(int(rest[0] - 'a')), true
	}
	return "", false
}

func (s *Service) parseDisk(dev sexpr.Value, used map[string]bool) (disk, error) {
	var k disk
	name, _ := dev.Get("dev")
	name, kind, _ := strings.Cut(name, ":")
	k.cd = kind == "cdrom"
	pos, ok := userdevice(name)
	if !ok {
		return k, badRequest("vbd (dev %q): expected a device such as xvda, hda or sda", name)
	}
	if used[pos] {
		return k, badRequest("vbd (dev %s): two disks at the same position", name)
	}
	used[pos] = true
	k.dev = pos
	switch mode, _ := dev.Get("mode"); mode {
	case "w", "w!", "":
	case "r":
		k.readOnly = true
	default:
		return k, badRequest("vbd (mode %s): expected r or w", mode)
	}
	k.vdi = xenapi.NullRef
	uname, _ := dev.Get("uname")
	if uname == "" {
		if !k.cd {
			return k, badRequest("vbd %s: (uname ...) is required for a disk", name)
		}
		return k, nil
	}
	ref, ok := s.resolve(uname)
	if !ok {
		return k, badRequest("vbd %s: no VDI found for %s (name a VDI file of a file or ISO SR, or vdi:UUID)", name, uname)
	}
	k.vdi = ref
	return k, nil
}

// resolve finds the VDI of a uname: file:, tap:aio:, tap:qcow2:,
// tap2:aio:, phy: (a path) or vdi: (a uuid).
func (s *Service) resolve(uname string) (xenapi.Ref, bool) {
	if id, ok := strings.CutPrefix(uname, "vdi:"); ok {
		return vdiloc.ByUUID(s.st, id)
	}
	path := uname
	for _, p := range []string{"tap2:aio:", "tap2:qcow2:", "tap:aio:", "tap:qcow2:", "tap:qcow:", "file:", "phy:"} {
		if rest, ok := strings.CutPrefix(uname, p); ok {
			path = rest
			break
		}
	}
	return vdiloc.ByPath(s.st, path)
}

func (s *Service) parseNIC(dev sexpr.Value) (nic, error) {
	var n nic
	n.mac, _ = dev.Get("mac")
	bridge, _ := dev.Get("bridge")
	for _, row := range s.st.All(api.ClassNetwork) {
		net := row.Rec.(*api.Network)
		if (bridge != "" && net.Bridge == bridge) || (bridge == "" && len(net.PIFs) > 0) {
			n.network = row.Ref
			return n, nil
		}
	}
	if bridge == "" {
		return n, badRequest("vif: no (bridge ...) given and no default network")
	}
	return n, badRequest("vif (bridge %s): no such network", bridge)
}

func (c *config) record() wire.Value {
	m := func(name string, v wire.Value) wire.Member { return wire.Member{Name: name, Value: v} }
	params := []wire.Member{}
	if c.cap != "" {
		params = append(params, m("cap", wire.String(c.cap)))
	}
	if c.weight != "" {
		params = append(params, m("weight", wire.String(c.weight)))
	}
	rec := []wire.Member{
		m("name_label", wire.String(c.name)),
		m("name_description", wire.String("created through xend")),
		m("user_version", wire.Int(1)),
		m("is_a_template", wire.Bool(false)),
		m("memory_static_max", wire.Int(c.maxmem)),
		m("memory_dynamic_max", wire.Int(c.memory)),
		m("memory_dynamic_min", wire.Int(c.memory)),
		m("memory_static_min", wire.Int(c.memory)),
		m("VCPUs_max", wire.Int(c.vcpusMax)),
		m("VCPUs_at_startup", wire.Int(c.vcpus)),
		m("VCPUs_params", wire.Struct(params...)),
		m("actions_after_shutdown", wire.String(c.onPoweroff)),
		m("actions_after_reboot", wire.String(c.onReboot)),
		m("actions_after_crash", wire.String(c.onCrash)),
		m("PV_bootloader", wire.String(c.bootloader)),
		m("PV_bootloader_args", wire.String(c.bootArgs)),
		m("other_config", wire.Struct(m(unmanagedKey, wire.String("true")))),
	}
	if c.hvm {
		rec = append(rec,
			m("HVM_boot_policy", wire.String("BIOS order")),
			m("HVM_boot_params", wire.Struct(m("order", wire.String(c.boot)))),
			m("domain_type", wire.String("hvm")),
			m("platform", wire.Struct(m("acpi", wire.String("1")), m("apic", wire.String("true")), m("pae", wire.String("true")))))
	} else {
		rec = append(rec,
			m("HVM_boot_policy", wire.String("")),
			m("PV_kernel", wire.String(c.kernel)),
			m("PV_ramdisk", wire.String(c.ramdisk)),
			m("PV_args", wire.String(c.args)),
			m("domain_type", wire.String("pv")))
	}
	return wire.Struct(rec...)
}

// create makes the VM, its disks and NICs, and starts it paused, as xend's
// op=create did; on any failure nothing is left behind.
func (s *Service) create(ctx context.Context, sess xenapi.Ref, text string) (sexpr.Value, error) {
	c, err := s.parseConfig(text)
	if err != nil {
		return sexpr.Value{}, err
	}
	for _, vm := range s.listed() {
		if domainName(vm) == c.name && !vm.IsControlDomain {
			return sexpr.Value{}, badRequest("a domain named %s already exists (uuid %s)", c.name, vm.UUID)
		}
	}
	if c.uuid != "" {
		if _, err := s.st.ByUUID(api.ClassVM, c.uuid); err == nil {
			return sexpr.Value{}, badRequest("a VM with uuid %s already exists", c.uuid)
		}
	}
	ref, err := s.front.CreateWithUUID(ctx, sess, "VM", c.uuid, c.record())
	if err != nil {
		return sexpr.Value{}, fromXenAPI(err)
	}
	undo := func(err error) (sexpr.Value, error) {
		if _, derr := s.front.Call(context.WithoutCancel(ctx), sess, "VM.destroy", wire.String(string(ref))); derr != nil {
			s.log.Warn("op=create: removing the half-made VM", "vm", ref, "err", derr)
		}
		return sexpr.Value{}, fromXenAPI(err)
	}
	for i, d := range c.disks {
		rec := xenops.VBDRecord(ref, d.vdi, d.dev, i == 0 && !d.cd, d.readOnly, d.cd, true)
		if _, err := s.front.Call(ctx, sess, "VBD.create", rec); err != nil {
			return undo(err)
		}
	}
	for i, n := range c.nics {
		rec := xenops.VIFRecord(ref, n.network, strconv.Itoa(i), n.mac, 0, nil)
		if _, err := s.front.Call(ctx, sess, "VIF.create", rec); err != nil {
			return undo(err)
		}
	}
	if _, err := s.front.Call(ctx, sess, "VM.start", wire.String(string(ref)), wire.Bool(true), wire.Bool(false)); err != nil {
		return undo(err)
	}
	row, err := s.st.Get(api.ClassVM, ref)
	if err != nil {
		return sexpr.Value{}, fromXenAPI(err)
	}
	s.log.Info("domain created", "name", c.name, "vm", ref)
	return s.domain(ref, row.Rec.(*api.VM)), nil
}
