package xecli

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// builtinCommands is every hand-written command.
func builtinCommands() []*Command {
	var out []*Command
	out = append(out, helpCommand())
	out = append(out, vmCommands()...)
	out = append(out, storageCommands()...)
	out = append(out, networkCommands()...)
	out = append(out, miscCommands()...)
	return out
}

// uuidCommand acts on one object named by uuid= with one call.
func uuidCommand(name, class, method, help string, async bool) *Command {
	return &Command{
		Name: name, Reqd: []string{"uuid"}, Help: help,
		Run: func(x *Ctx) error {
			ref, err := x.refOf(class, x.param("uuid"))
			if err != nil {
				return err
			}
			if async {
				_, err = x.async(method, wire.String(ref))
			} else {
				_, err = x.s.Do(x.ctx, method, wire.String(ref))
			}
			return err
		},
	}
}

// member builds a record member.
func member(name string, v wire.Value) wire.Member { return wire.Member{Name: name, Value: v} }

// mapArg turns the prefix:key=value arguments into a XenAPI map.
func (x *Ctx) mapArg(prefix string) wire.Value {
	var ms []wire.Member
	for _, p := range x.args.Params {
		if k, ok := cutPrefixColon(p.Name, prefix); ok {
			ms = append(ms, member(k, wire.String(p.Value)))
		}
	}
	return wire.Struct(ms...)
}

func cutPrefixColon(name, prefix string) (string, bool) {
	if len(name) > len(prefix)+1 && name[:len(prefix)] == prefix && name[len(prefix)] == ':' {
		return name[len(prefix)+1:], true
	}
	return "", false
}

// printUUID prints the uuid of a new object.
func (x *Ctx) printUUID(class string, ref wire.Value) error {
	u, err := x.s.Do(x.ctx, class+".get_uuid", ref)
	if err != nil {
		return err
	}
	x.out.list(u.Str)
	return nil
}

// refArg looks up the object a uuid argument names.
func (x *Ctx) refArg(class, arg string) (wire.Value, error) {
	r, err := x.refOf(class, x.param(arg))
	return wire.String(r), err
}

func storageCommands() []*Command {
	return []*Command{
		{
			Name: "vdi-create", Std: true,
			Reqd: []string{"sr-uuid", "name-label", "virtual-size"},
			Optn: []string{"name-description", "type", "sharable", "read-only", "sm-config:", "other-config:", "tags"},
			Help: "Create a disk of virtual-size= (bytes, or with KiB/MiB/GiB suffixes) on the SR and print its uuid. type= is user (default), system, ephemeral, suspend, crashdump...",
			Run: func(x *Ctx) error {
				sr, err := x.refArg("SR", "sr-uuid")
				if err != nil {
					return err
				}
				size, err := x.sizeArg("virtual-size")
				if err != nil {
					return err
				}
				typ := "user"
				if t, ok := x.args.Get("type"); ok {
					typ = t
				}
				tv, err := x.toWire("type", vdiType(), typ)
				if err != nil {
					return err
				}
				sharable, err := x.boolArg("sharable", false)
				if err != nil {
					return err
				}
				ro, err := x.boolArg("read-only", false)
				if err != nil {
					return err
				}
				tags := wire.Array()
				for _, t := range splitList(x.param("tags")) {
					tags.Array = append(tags.Array, wire.String(t))
				}
				v, err := x.s.Do(x.ctx, "VDI.create", wire.Struct(
					member("name_label", wire.String(x.param("name-label"))),
					member("name_description", wire.String(x.param("name-description"))),
					member("SR", sr),
					member("virtual_size", wire.Int(size)),
					member("type", tv),
					member("sharable", wire.Bool(sharable)),
					member("read_only", wire.Bool(ro)),
					member("other_config", x.mapArg("other-config")),
					member("sm_config", x.mapArg("sm-config")),
					member("xenstore_data", wire.Struct()),
					member("tags", tags),
				))
				if err != nil {
					return err
				}
				return x.printUUID("VDI", v)
			},
		},
		uuidCommand("vdi-destroy", "VDI", "VDI.destroy", "Destroy the disk with this uuid (its data is lost).", false),
		uuidCommand("vdi-forget", "VDI", "VDI.forget", "Remove the disk's record, leaving its data on the SR (an sr-scan finds it again).", false),
		{
			Name: "vdi-resize", Reqd: []string{"uuid", "disk-size"},
			Help: "Grow the disk to disk-size= (bytes, or with KiB/MiB/GiB suffixes).",
			Run: func(x *Ctx) error {
				vdi, err := x.refArg("VDI", "uuid")
				if err != nil {
					return err
				}
				size, err := x.sizeArg("disk-size")
				if err != nil {
					return err
				}
				_, err = x.async("VDI.resize", vdi, wire.Int(size))
				return err
			},
		},
		{
			Name: "vdi-clone", Reqd: []string{"uuid"}, Optn: []string{"new-name-label", "new-name-description", "driver-params:"},
			Help: "Clone the disk (on the same SR) and print the new disk's uuid.",
			Run:  func(x *Ctx) error { return x.vdiCopyLike("VDI.clone") },
		},
		{
			Name: "vdi-snapshot", Reqd: []string{"uuid"}, Optn: []string{"driver-params:"},
			Help: "Snapshot the disk and print the snapshot's uuid.",
			Run:  func(x *Ctx) error { return x.vdiCopyLike("VDI.snapshot") },
		},
		{
			Name: "vdi-copy", Reqd: []string{"uuid", "sr-uuid"},
			Help: "Copy the disk to the SR and print the copy's uuid.",
			Run: func(x *Ctx) error {
				vdi, err := x.refArg("VDI", "uuid")
				if err != nil {
					return err
				}
				sr, err := x.refArg("SR", "sr-uuid")
				if err != nil {
					return err
				}
				null := wire.String(string(xenapi.NullRef))
				v, err := x.async("VDI.copy", vdi, sr, null, null)
				if err != nil {
					return err
				}
				return x.printUUID("VDI", v)
			},
		},
		{
			Name: "vbd-create", Reqd: []string{"vm-uuid", "device"},
			Optn: []string{"vdi-uuid", "bootable", "type", "mode", "unpluggable", "other-config:"},
			Help: "Create a virtual block device joining the VM to the disk vdi-uuid= as device= (e.g. 0, xvdb, autodetect) and print its uuid. type=CD without vdi-uuid makes an empty CD drive.",
			Run:  func(x *Ctx) error { return x.vbdCreate() },
		},
		uuidCommand("vbd-plug", "VBD", "VBD.plug", "Attach the virtual block device to its running VM.", true),
		uuidCommand("vbd-unplug", "VBD", "VBD.unplug", "Detach the virtual block device from its running VM.", true),
		uuidCommand("vbd-destroy", "VBD", "VBD.destroy", "Destroy the virtual block device (the disk stays).", false),
		uuidCommand("vbd-eject", "VBD", "VBD.eject", "Eject the medium of the CD drive.", false),
		{
			Name: "vbd-insert", Reqd: []string{"uuid", "vdi-uuid"},
			Help: "Insert the disk vdi-uuid= into the empty CD drive.",
			Run: func(x *Ctx) error {
				vbd, err := x.refArg("VBD", "uuid")
				if err != nil {
					return err
				}
				vdi, err := x.refArg("VDI", "vdi-uuid")
				if err != nil {
					return err
				}
				_, err = x.s.Do(x.ctx, "VBD.insert", vbd, vdi)
				return err
			},
		},
		{
			Name: "sr-create", Std: true, Reqd: []string{"name-label", "type"},
			Optn: []string{"name-description", "content-type", "shared", "physical-size", "host-uuid", "device-config:", "sm-config:"},
			Help: "Create a storage repository of type= (file, iso, ...) with its device-config:key=value settings, and print its uuid.",
			Run:  func(x *Ctx) error { return x.srCreate() },
		},
		uuidCommand("sr-scan", "SR", "SR.scan", "Rescan the SR: disks added or removed behind the server's back are found.", true),
		uuidCommand("sr-destroy", "SR", "SR.destroy", "Destroy the SR and every disk on it.", true),
		uuidCommand("sr-forget", "SR", "SR.forget", "Forget the SR: its record goes, its data stays.", false),
		uuidCommand("pbd-plug", "PBD", "PBD.plug", "Attach the SR to the host through this PBD.", false),
		uuidCommand("pbd-unplug", "PBD", "PBD.unplug", "Detach the SR from the host through this PBD.", false),
		{
			Name: "cd-list", Std: true, Optn: []string{"params"},
			Help: "List the ISOs available to CD drives (the disks of ISO SRs).",
			Run: func(x *Ctx) error {
				c := lookupClass("vdi")
				fields, err := x.chosenFields(c, []string{"uuid", "name-label"})
				if err != nil {
					return err
				}
				vdis, err := fetchAll(x.ctx, x.s, x.rs, c)
				if err != nil {
					return err
				}
				srs, err := fetchAll(x.ctx, x.s, x.rs, lookupClass("sr"))
				if err != nil {
					return err
				}
				iso := map[string]bool{}
				for _, sr := range srs {
					if sr.raw("content_type").Str == "iso" || sr.raw("type").Str == "iso" {
						iso[sr.ref] = true
					}
				}
				var out []*record
				for _, v := range vdis {
					if iso[v.raw("SR").Str] {
						out = append(out, v)
					}
				}
				sortRecords(out)
				x.printRecords(out, fields)
				return nil
			},
		},
	}
}

// vdiType is the schema type of VDI.type (for checking type=).
func vdiType() *xenapi.Type {
	return lookupClass("vdi").API.Field("type").Type
}

func (x *Ctx) vdiCopyLike(method string) error {
	vdi, err := x.refArg("VDI", "uuid")
	if err != nil {
		return err
	}
	v, err := x.async(method, vdi, x.mapArg("driver-params"))
	if err != nil {
		return err
	}
	if n, ok := x.args.Get("new-name-label"); ok {
		if _, err := x.s.Do(x.ctx, "VDI.set_name_label", v, wire.String(n)); err != nil {
			return err
		}
	}
	if d, ok := x.args.Get("new-name-description"); ok {
		if _, err := x.s.Do(x.ctx, "VDI.set_name_description", v, wire.String(d)); err != nil {
			return err
		}
	}
	return x.printUUID("VDI", v)
}

func (x *Ctx) vbdCreate() error {
	vm, err := x.refArg("VM", "vm-uuid")
	if err != nil {
		return err
	}
	vbdClass := lookupClass("vbd").API
	typ := "Disk"
	if t, ok := x.args.Get("type"); ok {
		typ = t
	}
	tv, err := x.toWire("type", vbdClass.Field("type").Type, typ)
	if err != nil {
		return err
	}
	mode := "RW"
	if tv.Str == "CD" {
		mode = "RO"
	}
	if m, ok := x.args.Get("mode"); ok {
		mode = m
	}
	mv, err := x.toWire("mode", vbdClass.Field("mode").Type, mode)
	if err != nil {
		return err
	}
	bootable, err := x.boolArg("bootable", false)
	if err != nil {
		return err
	}
	unpluggable, err := x.boolArg("unpluggable", true)
	if err != nil {
		return err
	}
	vdi, empty := wire.String(string(xenapi.NullRef)), true
	if x.args.Has("vdi-uuid") {
		if vdi, err = x.refArg("VDI", "vdi-uuid"); err != nil {
			return err
		}
		empty = false
	} else if tv.Str != "CD" {
		return usagef(x.cmd.Name, "vdi-uuid= is required unless type=CD (an empty CD drive)")
	}
	v, err := x.s.Do(x.ctx, "VBD.create", wire.Struct(
		member("VM", vm),
		member("VDI", vdi),
		member("userdevice", wire.String(x.param("device"))),
		member("bootable", wire.Bool(bootable)),
		member("mode", mv),
		member("type", tv),
		member("empty", wire.Bool(empty)),
		member("unpluggable", wire.Bool(unpluggable)),
		member("other_config", x.mapArg("other-config")),
		member("qos_algorithm_type", wire.String("")),
		member("qos_algorithm_params", wire.Struct()),
	))
	if err != nil {
		return err
	}
	return x.printUUID("VBD", v)
}

func (x *Ctx) srCreate() error {
	var host string
	if u, ok := x.args.Get("host-uuid"); ok {
		var err error
		if host, err = x.refOf("host", u); err != nil {
			return err
		}
	} else {
		hosts, err := x.s.Do(x.ctx, "host.get_all")
		if err != nil {
			return err
		}
		if len(hosts.Array) != 1 {
			return usagef(x.cmd.Name, "There are %d hosts: give host-uuid=", len(hosts.Array))
		}
		host = hosts.Array[0].Str
	}
	var size int64
	if x.args.Has("physical-size") {
		var err error
		if size, err = x.sizeArg("physical-size"); err != nil {
			return err
		}
	}
	shared, err := x.boolArg("shared", false)
	if err != nil {
		return err
	}
	v, err := x.async("SR.create", wire.String(host), x.mapArg("device-config"), wire.Int(size),
		wire.String(x.param("name-label")), wire.String(x.param("name-description")),
		wire.String(x.param("type")), wire.String(x.param("content-type")), wire.Bool(shared), x.mapArg("sm-config"))
	if err != nil {
		return err
	}
	return x.printUUID("SR", v)
}

func networkCommands() []*Command {
	return []*Command{
		{
			Name: "network-create", Std: true, Reqd: []string{"name-label"},
			Optn: []string{"name-description", "MTU", "bridge", "other-config:"},
			Help: "Create a network and print its uuid.",
			Run: func(x *Ctx) error {
				rec := []wire.Member{
					member("name_label", wire.String(x.param("name-label"))),
					member("name_description", wire.String(x.param("name-description"))),
					member("other_config", x.mapArg("other-config")),
				}
				if m, ok := x.args.Get("MTU"); ok {
					n, err := strconv.ParseInt(m, 10, 64)
					if err != nil {
						return usagef(x.cmd.Name, "MTU must be an integer, not '%s'", m)
					}
					rec = append(rec, member("MTU", wire.Int(n)))
				}
				if b, ok := x.args.Get("bridge"); ok {
					rec = append(rec, member("bridge", wire.String(b)))
				}
				v, err := x.s.Do(x.ctx, "network.create", wire.Struct(rec...))
				if err != nil {
					return err
				}
				return x.printUUID("network", v)
			},
		},
		uuidCommand("network-destroy", "network", "network.destroy", "Destroy the network.", false),
		{
			Name: "vif-create", Reqd: []string{"vm-uuid", "network-uuid", "device"},
			Optn: []string{"mac", "MTU", "other-config:"},
			Help: "Create a virtual network interface joining the VM to the network as device= (0, 1, ...) and print its uuid; mac= defaults to a generated one.",
			Run: func(x *Ctx) error {
				vm, err := x.refArg("VM", "vm-uuid")
				if err != nil {
					return err
				}
				net, err := x.refArg("network", "network-uuid")
				if err != nil {
					return err
				}
				rec := []wire.Member{
					member("VM", vm), member("network", net),
					member("device", wire.String(x.param("device"))),
					member("MAC", wire.String(x.param("mac"))),
					member("other_config", x.mapArg("other-config")),
					member("qos_algorithm_type", wire.String("")),
					member("qos_algorithm_params", wire.Struct()),
				}
				if m, ok := x.args.Get("MTU"); ok {
					n, err := strconv.ParseInt(m, 10, 64)
					if err != nil {
						return usagef(x.cmd.Name, "MTU must be an integer, not '%s'", m)
					}
					rec = append(rec, member("MTU", wire.Int(n)))
				}
				v, err := x.s.Do(x.ctx, "VIF.create", wire.Struct(rec...))
				if err != nil {
					return err
				}
				return x.printUUID("VIF", v)
			},
		},
		uuidCommand("vif-plug", "VIF", "VIF.plug", "Attach the virtual network interface to its running VM.", true),
		uuidCommand("vif-unplug", "VIF", "VIF.unplug", "Detach the virtual network interface from its running VM.", true),
		uuidCommand("vif-destroy", "VIF", "VIF.destroy", "Destroy the virtual network interface.", false),
		{
			Name: "vlan-create", Reqd: []string{"pif-uuid", "vlan", "network-uuid"},
			Help: "Create a VLAN with tag vlan= on the physical interface, carrying the network, and print the VLAN's uuid.",
			Run: func(x *Ctx) error {
				pif, err := x.refArg("PIF", "pif-uuid")
				if err != nil {
					return err
				}
				net, err := x.refArg("network", "network-uuid")
				if err != nil {
					return err
				}
				tag, err := strconv.ParseInt(x.param("vlan"), 10, 64)
				if err != nil {
					return usagef(x.cmd.Name, "vlan= must be an integer tag, not '%s'", x.param("vlan"))
				}
				v, err := x.s.Do(x.ctx, "VLAN.create", pif, wire.Int(tag), net)
				if err != nil {
					return err
				}
				return x.printUUID("VLAN", v)
			},
		},
		uuidCommand("vlan-destroy", "VLAN", "VLAN.destroy", "Destroy the VLAN and its interface.", false),
		{
			Name: "bond-create", Reqd: []string{"network-uuid", "pif-uuids"},
			Optn: []string{"mac", "mode", "properties:"},
			Help: "Bond the physical interfaces pif-uuids= (comma-separated) into one carrying the network, and print the bond's uuid. mode= is balance-slb (default), active-backup or lacp.",
			Run: func(x *Ctx) error {
				net, err := x.refArg("network", "network-uuid")
				if err != nil {
					return err
				}
				var members []wire.Value
				for _, u := range splitList(x.param("pif-uuids")) {
					r, err := x.refOf("PIF", u)
					if err != nil {
						return err
					}
					members = append(members, wire.String(r))
				}
				mode := "balance-slb"
				if m, ok := x.args.Get("mode"); ok {
					mode = m
				}
				mv, err := x.toWire("mode", lookupClass("bond").API.Field("mode").Type, mode)
				if err != nil {
					return err
				}
				v, err := x.async("Bond.create", net, wire.Array(members...), wire.String(x.param("mac")), mv, x.mapArg("properties"))
				if err != nil {
					return err
				}
				return x.printUUID("Bond", v)
			},
		},
		uuidCommand("bond-destroy", "Bond", "Bond.destroy", "Destroy the bond, giving its interfaces back their own configuration.", true),
		uuidCommand("pif-plug", "PIF", "PIF.plug", "Bring the physical interface up.", false),
		uuidCommand("pif-unplug", "PIF", "PIF.unplug", "Bring the physical interface down.", false),
	}
}

func miscCommands() []*Command {
	return []*Command{
		{
			Name: "task-cancel", Reqd: []string{"uuid"},
			Help: "Cancel the running task.",
			Run: func(x *Ctx) error {
				t, err := x.refArg("task", "uuid")
				if err != nil {
					return err
				}
				_, err = x.s.Do(x.ctx, "task.cancel", t)
				return err
			},
		},
		{
			Name: "user-password-change", Reqd: []string{"new"}, Optn: []string{"old"},
			Help: "Change the password of the logged-in user (old= is needed except for root on the local socket).",
			Run: func(x *Ctx) error {
				_, err := x.s.Do(x.ctx, "session.change_password", wire.String(x.param("old")), wire.String(x.param("new")))
				return err
			},
		},
		{
			Name: "event-wait", Reqd: []string{"class"}, Optn: []string{"timeout"}, AnyParams: true,
			Help: "Wait until an object of class= (vm, host, task...) matches every field=value condition given (field=/=value means 'differs from'). timeout= gives up after that many seconds.",
			Run:  func(x *Ctx) error { return x.eventWait() },
		},
	}
}

// eventWait waits with event.from until a record of the class matches the
// conditions.
func (x *Ctx) eventWait() error {
	c := lookupClass(x.param("class"))
	if c == nil {
		return usagef(x.cmd.Name, "Unknown class '%s'", x.param("class"))
	}
	filters := classFilters(c)
	for _, p := range x.args.Params {
		if p.Name == "class" || p.Name == "timeout" {
			continue
		}
		not := false
		if v, ok := cutNotEqual(p.Value); ok {
			p.Value, not = v, true
		}
		f, err := parseFilter(c, p)
		if err != nil {
			return err
		}
		f.not = not
		filters = append(filters, f)
	}
	ctx, cancel := context.WithCancel(x.ctx)
	defer cancel()
	if t, ok := x.args.Get("timeout"); ok {
		secs, err := strconv.ParseFloat(t, 64)
		if err != nil || secs < 0 {
			return usagef(x.cmd.Name, "timeout= must be a number of seconds, not '%s'", t)
		}
		var tcancel context.CancelFunc
		ctx, tcancel = context.WithTimeout(ctx, time.Duration(secs*float64(time.Second)))
		defer tcancel()
	}
	classes := wire.Array(wire.String(xenapi.LowerClass(c.API.Name)))
	token := ""
	// wait takes the next token; the first call (timeout 0) is taken before
	// looking at the records, so that no change slips between the look and
	// the wait.
	wait := func(timeout float64) error {
		ev, err := x.s.Do(ctx, "event.from", classes, wire.String(token), wire.Float(timeout))
		if err != nil {
			return err
		}
		t, _ := ev.Field("token")
		token = t.Str
		return nil
	}
	err := wait(0)
	for err == nil {
		var recs []*record
		if recs, err = fetchAll(ctx, x.s, x.rs, c); err != nil {
			break
		}
		if len(filterRecords(ctx, x.rs, recs, filters)) > 0 {
			return nil
		}
		err = wait(30)
	}
	switch {
	case x.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return failf("Timed out waiting for a %s matching the conditions", c.Name)
	case ctx.Err() != nil:
		return &interruptedError{"Interrupted."}
	}
	return err
}

// cutNotEqual recognises event-wait's name=/=value.
func cutNotEqual(v string) (string, bool) {
	if len(v) >= 2 && v[:2] == "/=" {
		return v[2:], true
	}
	return v, false
}
