package xecli

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// vmCommand is a command acting on the VMs picked by selectors.
func vmCommand(name, help string, optn []string, o selectOpts, many bool, op func(x *Ctx, r *record) error) *Command {
	return &Command{
		Name: name, Optn: optn, Help: help, Std: true, Select: "vm",
		Run: func(x *Ctx) error {
			return x.doEach("vm", o, many, func(r *record) error { return op(x, r) })
		},
	}
}

func vmCommands() []*Command {
	ref := func(r *record) wire.Value { return wire.String(r.ref) }
	cmds := []*Command{
		vmInstallCommand(),
		vmCommand("vm-start", "Start the VM(s); paused=true leaves them paused, on=HOST picks the host, --force ignores the checks a start may be refused for.",
			[]string{"force", "paused", "on"}, selectOpts{}, true, func(x *Ctx, r *record) error {
				paused, err := x.boolArg("paused", false)
				if err != nil {
					return err
				}
				force := wire.Bool(x.args.Flag("force"))
				if on, ok := x.args.Get("on"); ok {
					host, err := x.hostRef(on)
					if err != nil {
						return err
					}
					_, err = x.async("VM.start_on", ref(r), wire.String(host), wire.Bool(paused), force)
					return err
				}
				_, err = x.async("VM.start", ref(r), wire.Bool(paused), force)
				return err
			}),
		vmCommand("vm-shutdown", "Shut the VM(s) down cleanly (the guest is asked to power off); --force powers off at once.",
			[]string{"force"}, selectOpts{}, true, func(x *Ctx, r *record) error {
				m := "VM.clean_shutdown"
				if x.args.Flag("force") {
					m = "VM.hard_shutdown"
				}
				_, err := x.async(m, ref(r))
				return err
			}),
		vmCommand("vm-reboot", "Reboot the VM(s) cleanly; --force resets them at once.",
			[]string{"force"}, selectOpts{}, true, func(x *Ctx, r *record) error {
				m := "VM.clean_reboot"
				if x.args.Flag("force") {
					m = "VM.hard_reboot"
				}
				_, err := x.async(m, ref(r))
				return err
			}),
		vmCommand("vm-suspend", "Suspend the VM(s) to disk.", nil, selectOpts{}, true, func(x *Ctx, r *record) error {
			_, err := x.async("VM.suspend", ref(r))
			return err
		}),
		vmCommand("vm-resume", "Resume suspended VM(s); on=HOST picks the host, --force ignores the checks a resume may be refused for.",
			[]string{"force", "on"}, selectOpts{}, true, func(x *Ctx, r *record) error {
				force := wire.Bool(x.args.Flag("force"))
				if on, ok := x.args.Get("on"); ok {
					host, err := x.hostRef(on)
					if err != nil {
						return err
					}
					_, err = x.async("VM.resume_on", ref(r), wire.String(host), wire.Bool(false), force)
					return err
				}
				_, err := x.async("VM.resume", ref(r), wire.Bool(false), force)
				return err
			}),
		vmCommand("vm-pause", "Pause the running VM(s).", nil, selectOpts{}, true, func(x *Ctx, r *record) error {
			_, err := x.s.Do(x.ctx, "VM.pause", ref(r))
			return err
		}),
		vmCommand("vm-unpause", "Unpause the paused VM(s).", nil, selectOpts{}, true, func(x *Ctx, r *record) error {
			_, err := x.s.Do(x.ctx, "VM.unpause", ref(r))
			return err
		}),
		vmCloneCommand("vm-clone", "Clone a VM or template (disks cloned on the same SR where the storage allows it) and print the new VM's uuid.", nil, true,
			func(x *Ctx, r *record) (wire.Value, error) {
				return x.async("VM.clone", ref(r), wire.String(x.param("new-name-label")))
			}),
		vmCloneCommand("vm-copy", "Copy a VM or template with full copies of its disks (on sr-uuid=, else where they are) and print the new VM's uuid.", []string{"sr-uuid"}, true,
			func(x *Ctx, r *record) (wire.Value, error) {
				sr := string(xenapi.NullRef)
				if u, ok := x.args.Get("sr-uuid"); ok {
					var err error
					if sr, err = x.refOf("SR", u); err != nil {
						return wire.Value{}, err
					}
				}
				return x.async("VM.copy", ref(r), wire.String(x.param("new-name-label")), wire.String(sr))
			}),
		vmCloneCommand("vm-snapshot", "Snapshot a VM (its disks snapshotted) and print the snapshot's uuid.", nil, false,
			func(x *Ctx, r *record) (wire.Value, error) {
				return x.async("VM.snapshot", ref(r), wire.String(x.param("new-name-label")), wire.Array())
			}),
		{
			Name: "vm-uninstall", Optn: []string{"force"}, Std: true, Select: "vm",
			Help: "Destroy the VM(s) and the disks they own (the ones vm-install created), shutting them down first. Asks for confirmation unless --force.",
			Run:  func(x *Ctx) error { return x.vmUninstall() },
		},
		{
			Name: "template-uninstall", Reqd: []string{"template-uuid"}, Optn: []string{"force"},
			Help: "Destroy the template and the disks it owns. Asks for confirmation unless --force.",
			Run:  func(x *Ctx) error { return x.uninstallOne("template-uuid", "template", "is_a_template") },
		},
		{
			Name: "snapshot-uninstall", Optn: []string{"snapshot-uuid", "uuid", "force"},
			Help: "Destroy the VM snapshot (snapshot-uuid= or uuid=) and the disks it owns. Asks for confirmation unless --force.",
			Run:  func(x *Ctx) error { return x.uninstallOne("snapshot-uuid", "snapshot", "is_a_snapshot") },
		},
		{
			Name: "vm-destroy", Reqd: []string{"uuid"},
			Help: "Destroy the VM record with this uuid, leaving its disks (see vm-uninstall to remove those too).",
			Run: func(x *Ctx) error {
				r, err := x.refOf("VM", x.param("uuid"))
				if err != nil {
					return err
				}
				_, err = x.s.Do(x.ctx, "VM.destroy", wire.String(r))
				return err
			},
		},
		vmCommand("vm-memory-limits-set", "Set the four memory limits of the VM(s) (sizes in bytes, or with KiB/MiB/GiB suffixes).",
			nil, selectOpts{}, true, func(x *Ctx, r *record) error {
				var vals []wire.Value
				for _, n := range []string{"static-min", "static-max", "dynamic-min", "dynamic-max"} {
					v, err := x.sizeArg(n)
					if err != nil {
						return err
					}
					vals = append(vals, wire.Int(v))
				}
				_, err := x.s.Do(x.ctx, "VM.set_memory_limits", append([]wire.Value{ref(r)}, vals...)...)
				return err
			}),
		vmCommand("vm-memory-set", "Set the VM's memory (static-max, dynamic-min and dynamic-max) to memory= (bytes, or with KiB/MiB/GiB suffixes).",
			nil, selectOpts{}, true, func(x *Ctx, r *record) error {
				v, err := x.sizeArg("memory")
				if err != nil {
					return err
				}
				_, err = x.s.Do(x.ctx, "VM.set_memory", ref(r), wire.Int(v))
				return err
			}),
		vmCommand("vm-vcpu-hotplug", "Change the number of VCPUs of a running VM to new-vcpus= (up to VCPUs-max).",
			nil, selectOpts{}, true, func(x *Ctx, r *record) error {
				n, err := x.sizeArg("new-vcpus")
				if err != nil {
					return err
				}
				_, err = x.s.Do(x.ctx, "VM.set_VCPUs_number_live", ref(r), wire.Int(n))
				return err
			}),
		vmCommand("vm-disk-list", "List the disks of the VM(s): each VBD and its VDI. vbd-params= and vdi-params= choose the fields shown.",
			[]string{"vbd-params", "vdi-params"}, selectOpts{templates: true}, true, func(x *Ctx, r *record) error {
				return x.vmDiskList(r, false)
			}),
		vmCommand("vm-cd-list", "List the CD drives of the VM(s) and the ISO in each. vbd-params= and vdi-params= choose the fields shown.",
			[]string{"vbd-params", "vdi-params"}, selectOpts{templates: true}, true, func(x *Ctx, r *record) error {
				return x.vmDiskList(r, true)
			}),
		vmCommand("vm-vif-list", "List the network interfaces of the VM(s). params= chooses the fields shown.",
			[]string{"params"}, selectOpts{templates: true}, true, func(x *Ctx, r *record) error {
				return x.vmDevices(r, "VIFs", "vif")
			}),
		vmCommand("vm-disk-add", "Add a new disk of disk-size= (bytes, or with KiB/MiB/GiB suffixes) to the VM as device= (e.g. 1), on sr-uuid= or the pool's default SR.",
			[]string{"sr-uuid"}, selectOpts{}, false, func(x *Ctx, r *record) error {
				return x.vmDiskAdd(r)
			}),
		vmCommand("vm-cd-add", "Add a CD drive as device= holding the ISO named cd-name= (its VDI name-label in an ISO SR).",
			nil, selectOpts{}, false, func(x *Ctx, r *record) error {
				return x.vmCDAdd(r)
			}),
		vmCommand("vm-cd-insert", "Insert the ISO named cd-name= in the VM's empty CD drive.",
			nil, selectOpts{}, false, func(x *Ctx, r *record) error {
				return x.vmCDInsert(r)
			}),
		vmCommand("vm-cd-eject", "Eject the ISO from the VM's CD drive.",
			nil, selectOpts{}, false, func(x *Ctx, r *record) error {
				vbd, err := x.vmCD(r, func(v wire.Value) bool { e, _ := v.Field("empty"); return !e.Bool })
				if err != nil {
					return err
				}
				_, err = x.s.Do(x.ctx, "VBD.eject", wire.String(vbd))
				return err
			}),
		vmCommand("vm-cd-remove", "Remove the CD drive holding the ISO named cd-name= (cd-name=<EMPTY> for an empty drive).",
			nil, selectOpts{}, false, func(x *Ctx, r *record) error {
				return x.vmCDRemove(r)
			}),
	}
	// Required arguments other than the selectors, kept apart so that the
	// table above stays readable.
	reqd := map[string][]string{
		"vm-clone": {"new-name-label"}, "vm-copy": {"new-name-label"}, "vm-snapshot": {"new-name-label"},
		"vm-memory-limits-set": {"static-min", "static-max", "dynamic-min", "dynamic-max"},
		"vm-memory-set":        {"memory"}, "vm-vcpu-hotplug": {"new-vcpus"},
		"vm-disk-add": {"disk-size", "device"}, "vm-cd-add": {"cd-name", "device"},
		"vm-cd-insert": {"cd-name"}, "vm-cd-remove": {"cd-name"},
	}
	for _, c := range cmds {
		if r, ok := reqd[c.Name]; ok {
			c.Reqd = r
		}
	}
	return cmds
}

// vmCloneCommand makes clone/copy/snapshot: one VM in, one uuid out.
func vmCloneCommand(name, help string, optn []string, templates bool, op func(x *Ctx, r *record) (wire.Value, error)) *Command {
	return &Command{
		Name: name, Optn: append([]string{"new-name-description"}, optn...), Help: help, Std: true, Select: "vm",
		Run: func(x *Ctx) error {
			return x.doEach("vm", selectOpts{templates: templates}, false, func(r *record) error {
				v, err := op(x, r)
				if err != nil {
					return err
				}
				if d, ok := x.args.Get("new-name-description"); ok {
					if _, err := x.s.Do(x.ctx, "VM.set_name_description", v, wire.String(d)); err != nil {
						return err
					}
				}
				u, err := x.s.Do(x.ctx, "VM.get_uuid", v)
				if err != nil {
					return err
				}
				x.out.list(u.Str)
				return nil
			})
		},
	}
}

func (x *Ctx) boolArg(name string, def bool) (bool, error) {
	if x.args.Flags[name] {
		return true, nil
	}
	v, ok := x.args.Get(name)
	if !ok {
		return def, nil
	}
	b, err := parseBool(name, v)
	if err != nil {
		return false, usagef(x.cmd.Name, "%v", err)
	}
	return b, nil
}

// hostRef finds a host by uuid, name-label or hostname.
func (x *Ctx) hostRef(s string) (string, error) {
	recs, err := fetchAll(x.ctx, x.s, x.rs, lookupClass("host"))
	if err != nil {
		return "", err
	}
	for _, r := range recs {
		if r.uuid() == s || r.nameLabel() == s || r.raw("hostname").Str == s {
			return r.ref, nil
		}
	}
	return "", failf("No host named '%s'", s)
}

// --- vm-install -------------------------------------------------------------

func vmInstallCommand() *Command {
	return &Command{
		Name: "vm-install", Std: true,
		Reqd: []string{"new-name-label"},
		Optn: []string{"template", "template-uuid", "template-name", "template-name-label", "sr-uuid", "sr-name-label"},
		Help: "Install a new VM from a template (template= takes a uuid or name-label): clone or copy it, then create the disks its recipe asks for, on sr-uuid= / sr-name-label= or the pool's default SR. Prints the new VM's uuid.",
		Run:  func(x *Ctx) error { return x.vmInstall() },
	}
}

func (x *Ctx) findTemplate() (*record, error) {
	vm := lookupClass("vm")
	if u, ok := x.args.Get("template-uuid"); ok {
		return fetchByUUID(x.ctx, x.s, x.rs, vm, u)
	}
	name, byName := x.args.Get("template-name-label")
	if !byName {
		name, byName = x.args.Get("template-name")
	}
	any, hasAny := x.args.Get("template")
	if !byName && !hasAny {
		return nil, usagef(x.cmd.Name, "The template must be given by template=, template-uuid= or template-name-label=")
	}
	recs, err := fetchAll(x.ctx, x.s, x.rs, vm)
	if err != nil {
		return nil, err
	}
	var matches []*record
	for _, r := range recs {
		t, _ := r.v.Field("is_a_template")
		if !t.Bool {
			continue
		}
		if (byName && r.nameLabel() == name) || (hasAny && (r.uuid() == any || r.nameLabel() == any)) {
			matches = append(matches, r)
		}
	}
	switch {
	case len(matches) == 0:
		return nil, failf("No templates matched")
	case len(matches) > 1:
		return nil, failf("More than one matching template found; give its uuid with template-uuid=")
	}
	return matches[0], nil
}

func (x *Ctx) vmInstall() error {
	tmpl, err := x.findTemplate()
	if err != nil {
		return err
	}
	if t, _ := tmpl.v.Field("is_a_template"); !t.Bool {
		return failf("Can only install from templates (%s is a VM)", tmpl.uuid())
	}
	srUUID, srGiven := x.args.Get("sr-uuid")
	if n, ok := x.args.Get("sr-name-label"); ok {
		var found []*record
		recs, err := fetchAll(x.ctx, x.s, x.rs, lookupClass("sr"))
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.nameLabel() == n && (!srGiven || r.uuid() == srUUID) {
				found = append(found, r)
			}
		}
		switch {
		case len(found) == 0:
			return failf("No SR with that name-label found")
		case len(found) > 1:
			return failf("Multiple SRs with that name-label found; give sr-uuid=")
		}
		srUUID, srGiven = found[0].uuid(), true
	}
	name := wire.String(x.param("new-name-label"))
	var newVM wire.Value
	if srGiven {
		sr, err := x.refOf("SR", srUUID)
		if err != nil {
			return err
		}
		newVM, err = x.async("VM.copy", wire.String(tmpl.ref), name, wire.String(sr))
		if err != nil {
			return err
		}
	} else if newVM, err = x.async("VM.clone", wire.String(tmpl.ref), name); err != nil {
		return err
	}
	if err := x.finishInstall(newVM, srUUID, tmpl); err != nil {
		// Leave nothing half-made behind.
		if _, derr := x.s.Do(x.ctx, "VM.destroy", newVM); derr != nil {
			x.log.Warn("removing the half-installed VM", "vm", newVM.Str, "err", derr)
		}
		return err
	}
	u, err := x.s.Do(x.ctx, "VM.get_uuid", newVM)
	if err != nil {
		return err
	}
	x.out.list(u.Str)
	return nil
}

func (x *Ctx) finishInstall(vm wire.Value, srUUID string, tmpl *record) error {
	desc := tmpl.raw("name_description").Str
	if desc == "" {
		desc = "Installed by xe from " + tmpl.nameLabel()
	}
	if _, err := x.s.Do(x.ctx, "VM.set_name_description", vm, wire.String(desc)); err != nil {
		return err
	}
	if srUUID != "" {
		oc, err := x.s.Do(x.ctx, "VM.get_other_config", vm)
		if err != nil {
			return err
		}
		if disks, ok := oc.Field("disks"); ok && disks.Str != "" {
			rewritten, err := recipeOnSR(disks.Str, srUUID)
			if err != nil {
				return failf("The template's disk recipe (other-config:disks) is malformed: %v", err)
			}
			if _, err := x.s.Do(x.ctx, "VM.remove_from_other_config", vm, wire.String("disks")); err != nil {
				return err
			}
			if _, err := x.s.Do(x.ctx, "VM.add_to_other_config", vm, wire.String("disks"), wire.String(rewritten)); err != nil {
				return err
			}
		}
	}
	if _, err := x.async("VM.provision", vm); err != nil {
		return err
	}
	// xapi's VM.provision turns the clone into a VM; say it explicitly for
	// servers whose provision leaves is_a_template alone.
	_, err := x.s.Do(x.ctx, "VM.set_is_a_template", vm, wire.Bool(false))
	return err
}

// recipeOnSR rewrites a provisioning recipe so that every disk is made on
// the given SR.
func recipeOnSR(recipe, srUUID string) (string, error) {
	dec := xml.NewDecoder(strings.NewReader(recipe))
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "disk" {
			se.Attr = slices.DeleteFunc(slices.Clone(se.Attr), func(a xml.Attr) bool { return a.Name.Local == "sr" })
			se.Attr = append(se.Attr, xml.Attr{Name: xml.Name{Local: "sr"}, Value: srUUID})
			tok = se
		}
		if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
			return "", err
		}
	}
	if err := enc.Flush(); err != nil {
		return "", err
	}
	return out.String(), nil
}

// --- vm-uninstall -----------------------------------------------------------

func (x *Ctx) vmUninstall() error {
	vms, err := x.selectObjects("vm", selectOpts{})
	if err != nil {
		return err
	}
	switch {
	case len(vms) == 0:
		return failf("No matching VMs found")
	case len(vms) > 1 && !x.args.Flag("multiple"):
		return failf("Multiple matching VMs found. --multiple required to complete the operation")
	}
	return x.uninstall(vms)
}

// uninstallOne is template-uninstall and snapshot-uninstall: the object
// named by uuid, which must be of the kind the command is about.
func (x *Ctx) uninstallOne(arg, kind, field string) error {
	uuid, ok := x.args.Get(arg)
	if !ok {
		uuid, ok = x.args.Get("uuid")
	}
	if !ok {
		return usagef(x.cmd.Name, "Required parameter not found: %s", arg)
	}
	r, err := fetchByUUID(x.ctx, x.s, x.rs, lookupClass("vm"), uuid)
	if err != nil {
		return err
	}
	if !r.raw(field).Bool {
		return failf("This operation can only be performed on a VM %s. %s is not a VM %s.", kind, uuid, kind)
	}
	return x.uninstall([]*record{r})
}

// uninstall destroys VMs and the disks they own, after showing the list
// and getting confirmation (or --force).
func (x *Ctx) uninstall(vms []*record) error {
	type plan struct {
		vm   *record
		vdis []*record
	}
	var plans []plan
	var lines []string
	vdiClass := lookupClass("vdi")
	for _, vm := range vms {
		p := plan{vm: vm}
		lines = append(lines, fmt.Sprintf("VM : %s (%s)", vm.uuid(), vm.nameLabel()))
		for _, vbd := range vm.raw("VBDs").Array {
			rec, err := x.s.Do(x.ctx, "VBD.get_record", vbd)
			if err != nil {
				continue // gone meanwhile
			}
			oc, _ := rec.Field("other_config")
			if _, owned := oc.Field("owner"); !owned {
				continue
			}
			vdiRef, _ := rec.Field("VDI")
			if xenapi.Ref(vdiRef.Str).IsNull() {
				continue
			}
			vdi, err := fetchByRef(x.ctx, x.s, x.rs, vdiClass, vdiRef.Str)
			if err != nil {
				continue
			}
			p.vdis = append(p.vdis, vdi)
			line := fmt.Sprintf("VDI: %s (%s)", vdi.uuid(), vdi.nameLabel())
			if len(vdi.raw("VBDs").Array) > 1 {
				line += " ** WARNING: disk is shared by other VMs"
			}
			lines = append(lines, line)
		}
		plans = append(plans, p)
	}
	x.out.msg("The following items are about to be destroyed")
	for _, l := range lines {
		x.out.msg(l)
	}
	if !x.args.Flag("force") && !x.confirm() {
		return failf("Not confirmed; nothing was destroyed (use --force to skip the question)")
	}
	for _, p := range plans {
		if ps := p.vm.raw("power_state").Str; !strings.EqualFold(ps, "halted") {
			if _, err := x.async("VM.hard_shutdown", wire.String(p.vm.ref)); err != nil {
				return err
			}
		}
		if _, err := x.s.Do(x.ctx, "VM.destroy", wire.String(p.vm.ref)); err != nil {
			return err
		}
		for _, vdi := range p.vdis {
			if _, err := x.s.Do(x.ctx, "VDI.destroy", wire.String(vdi.ref)); err != nil {
				return err
			}
		}
	}
	x.out.msg("All objects destroyed")
	return nil
}

// confirm asks for "yes" on stdin.
func (x *Ctx) confirm() bool {
	fmt.Fprint(x.env.Stdout, "Type 'yes' to continue\n")
	if x.env.Stdin == nil {
		return false
	}
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := x.env.Stdin.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			line = append(line, buf[0])
		}
		if err != nil {
			break
		}
	}
	return strings.TrimSpace(string(line)) == "yes"
}

// --- disks and CDs ----------------------------------------------------------

func (x *Ctx) vmDiskList(vm *record, cds bool) error {
	vbdClass, vdiClass := lookupClass("vbd"), lookupClass("vdi")
	vbdDefaults := []string{"uuid", "vm-name-label", "userdevice"}
	kind, want := "Disk", "Disk"
	if cds {
		vbdDefaults = append(vbdDefaults, "empty")
		kind, want = "CD", "CD"
	}
	vbdFields, err := x.namedFields(vbdClass, "vbd-params", vbdDefaults)
	if err != nil {
		return err
	}
	vdiFields, err := x.namedFields(vdiClass, "vdi-params", []string{"uuid", "name-label", "virtual-size", "sr-name-label"})
	if err != nil {
		return err
	}
	var vbds []*record
	for _, ref := range vm.raw("VBDs").Array {
		r, err := fetchByRef(x.ctx, x.s, x.rs, vbdClass, ref.Str)
		if err != nil {
			continue
		}
		if r.raw("type").Str == want {
			vbds = append(vbds, r)
		}
	}
	slices.SortFunc(vbds, func(a, b *record) int { return strings.Compare(a.raw("userdevice").Str, b.raw("userdevice").Str) })
	for i, vbd := range vbds {
		x.out.msg(fmt.Sprintf("%s %d VBD:", kind, i))
		x.printRecords([]*record{vbd}, vbdFields)
		if vbd.raw("empty").Bool {
			continue
		}
		vdi, err := fetchByRef(x.ctx, x.s, x.rs, vdiClass, vbd.raw("VDI").Str)
		if err != nil {
			continue
		}
		x.out.msg(fmt.Sprintf("%s %d VDI:", kind, i))
		x.printRecords([]*record{vdi}, vdiFields)
	}
	return nil
}

// namedFields is chosenFields for a differently named params= argument.
func (x *Ctx) namedFields(c *xeClass, arg string, defaults []string) ([]*xeField, error) {
	want := defaults
	if ps, ok := x.args.Get(arg); ok {
		want = nil
		if ps != "all" {
			want = splitList(ps)
			for _, n := range want {
				if c.field(n) == nil {
					return nil, usagef(x.cmd.Name, "Unknown field '%s' in %s=", n, arg)
				}
			}
		}
	}
	if len(want) == 0 {
		return c.Fields, nil
	}
	var out []*xeField
	for _, f := range c.Fields {
		if slices.Contains(want, f.Name) {
			out = append(out, f)
		}
	}
	return out, nil
}

// vmDevices lists the VIFs (or other device set) of a VM.
func (x *Ctx) vmDevices(vm *record, field, class string) error {
	c := lookupClass(class)
	fields, err := x.chosenFields(c, c.Defaults)
	if err != nil {
		return err
	}
	var recs []*record
	for _, ref := range vm.raw(field).Array {
		if r, err := fetchByRef(x.ctx, x.s, x.rs, c, ref.Str); err == nil {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *record) int { return strings.Compare(a.raw("device").Str, b.raw("device").Str) })
	x.printRecords(recs, fields)
	return nil
}

func (x *Ctx) defaultSR() (string, error) {
	pools, err := x.s.Do(x.ctx, "pool.get_all_records")
	if err != nil {
		return "", err
	}
	for _, p := range pools.Struct {
		if sr, ok := p.Value.Field("default_SR"); ok && !xenapi.Ref(sr.Str).IsNull() {
			return sr.Str, nil
		}
	}
	return "", failf("No default SR is set on the pool; give sr-uuid=")
}

func (x *Ctx) vmDiskAdd(vm *record) error {
	size, err := x.sizeArg("disk-size")
	if err != nil {
		return err
	}
	var sr string
	if u, ok := x.args.Get("sr-uuid"); ok {
		sr, err = x.refOf("SR", u)
	} else {
		sr, err = x.defaultSR()
	}
	if err != nil {
		return err
	}
	vdi, err := x.s.Do(x.ctx, "VDI.create", wire.Struct(
		wire.Member{Name: "name_label", Value: wire.String(vm.nameLabel() + " " + x.param("device"))},
		wire.Member{Name: "name_description", Value: wire.String("Created by xe vm-disk-add")},
		wire.Member{Name: "SR", Value: wire.String(sr)},
		wire.Member{Name: "virtual_size", Value: wire.Int(size)},
		wire.Member{Name: "type", Value: wire.String("user")},
	))
	if err != nil {
		return err
	}
	_, err = x.s.Do(x.ctx, "VBD.create", wire.Struct(
		wire.Member{Name: "VM", Value: wire.String(vm.ref)},
		wire.Member{Name: "VDI", Value: vdi},
		wire.Member{Name: "userdevice", Value: wire.String(x.param("device"))},
		wire.Member{Name: "mode", Value: wire.String("RW")},
		wire.Member{Name: "type", Value: wire.String("Disk")},
		wire.Member{Name: "other_config", Value: wire.Struct(wire.Member{Name: "owner", Value: wire.String("")})},
	))
	if err != nil {
		if _, derr := x.s.Do(x.ctx, "VDI.destroy", vdi); derr != nil {
			x.log.Warn("removing the new disk", "vdi", vdi.Str, "err", derr)
		}
		return err
	}
	return nil
}

// isoVDI finds the ISO named cd-name in the ISO SRs.
func (x *Ctx) isoVDI(name string) (string, error) {
	vdis, err := fetchAll(x.ctx, x.s, x.rs, lookupClass("vdi"))
	if err != nil {
		return "", err
	}
	srs, err := fetchAll(x.ctx, x.s, x.rs, lookupClass("sr"))
	if err != nil {
		return "", err
	}
	iso := map[string]bool{}
	for _, sr := range srs {
		if sr.raw("content_type").Str == "iso" || sr.raw("type").Str == "iso" {
			iso[sr.ref] = true
		}
	}
	var found []string
	for _, v := range vdis {
		if iso[v.raw("SR").Str] && v.nameLabel() == name {
			found = append(found, v.ref)
		}
	}
	switch len(found) {
	case 0:
		return "", failf("No ISO named '%s' in any ISO SR (see cd-list)", name)
	case 1:
		return found[0], nil
	}
	return "", failf("Several ISOs are named '%s'", name)
}

func (x *Ctx) vmCDAdd(vm *record) error {
	vdi, err := x.isoVDI(x.param("cd-name"))
	if err != nil {
		return err
	}
	_, err = x.s.Do(x.ctx, "VBD.create", wire.Struct(
		wire.Member{Name: "VM", Value: wire.String(vm.ref)},
		wire.Member{Name: "VDI", Value: wire.String(vdi)},
		wire.Member{Name: "userdevice", Value: wire.String(x.param("device"))},
		wire.Member{Name: "mode", Value: wire.String("RO")},
		wire.Member{Name: "type", Value: wire.String("CD")},
	))
	return err
}

// vmCD finds the VM's CD drive accepted by want.
func (x *Ctx) vmCD(vm *record, want func(wire.Value) bool) (string, error) {
	var found []string
	for _, ref := range vm.raw("VBDs").Array {
		rec, err := x.s.Do(x.ctx, "VBD.get_record", ref)
		if err != nil {
			continue
		}
		if t, _ := rec.Field("type"); t.Str == "CD" && want(rec) {
			found = append(found, ref.Str)
		}
	}
	switch len(found) {
	case 0:
		return "", failf("No suitable CD drive found on VM %s", vm.nameLabel())
	case 1:
		return found[0], nil
	}
	return "", failf("The VM has several such CD drives; use vbd-eject/vbd-insert with the VBD's uuid")
}

func (x *Ctx) vmCDInsert(vm *record) error {
	vdi, err := x.isoVDI(x.param("cd-name"))
	if err != nil {
		return err
	}
	vbd, err := x.vmCD(vm, func(v wire.Value) bool { e, _ := v.Field("empty"); return e.Bool })
	if err != nil {
		return err
	}
	_, err = x.s.Do(x.ctx, "VBD.insert", wire.String(vbd), wire.String(vdi))
	return err
}

func (x *Ctx) vmCDRemove(vm *record) error {
	name := x.param("cd-name")
	vbd, err := x.vmCD(vm, func(v wire.Value) bool {
		if e, _ := v.Field("empty"); e.Bool {
			return name == "<EMPTY>"
		}
		vdi, _ := v.Field("VDI")
		n, err := x.s.Do(x.ctx, "VDI.get_name_label", vdi)
		return err == nil && n.Str == name
	})
	if err != nil {
		return err
	}
	_, err = x.s.Do(x.ctx, "VBD.destroy", wire.String(vbd))
	return err
}
