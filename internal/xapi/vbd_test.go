package xapi

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

func TestVBDCreateDevices(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	disk := func() wire.Value { return e.createVDI(sr, 1<<20) }
	vm := e.createVM("devices")

	for _, ud := range []string{"0", "2"} {
		e.createDisk(vm, disk(), ud)
	}
	for _, want := range []string{"1", "3"} {
		v := e.createDisk(vm, disk(), "autodetect")
		if got := e.get("VBD", v, "userdevice"); got != want {
			t.Errorf("autodetect chose %s, want %s", got, want)
		}
	}
	// Names and numbers of one position clash (PV guest: 0 is xvda).
	e.wantCall(api.ErrDeviceAlreadyExists, []string{"0"}, "VBD.create", vbdRecord(vm, disk(), "0", "Disk", "RW", false))
	e.wantCall(api.ErrDeviceAlreadyExists, []string{"xvda"}, "VBD.create", vbdRecord(vm, disk(), "xvda", "Disk", "RW", false))
	e.wantCall(api.ErrDeviceAlreadyExists, []string{"xvdb"}, "VBD.create", vbdRecord(vm, disk(), "xvdb", "Disk", "RW", false))
	e.wantCall(api.ErrInvalidDevice, []string{"nonsense"}, "VBD.create", vbdRecord(vm, disk(), "nonsense", "Disk", "RW", false))
	e.createDisk(vm, disk(), "xvdf")
	if got := e.get("VBD", e.createDisk(vm, disk(), "autodetect"), "userdevice"); got != "4" {
		t.Errorf("after xvdf, autodetect chose %s", got)
	}
	if got := e.get("VBD", e.createDisk(vm, disk(), "autodetect"), "userdevice"); got != "6" {
		t.Errorf("autodetect skipped nothing: %s", got)
	}

	// An HVM guest: the first four are IDE (hda..hdd); "1" and "hdb" clash.
	hvm := e.createVM("hvm")
	e.setVM(hvm, func(v *api.VM) { v.DomainType = api.DomainTypeHVM })
	e.createDisk(hvm, disk(), "hdb")
	e.wantCall(api.ErrDeviceAlreadyExists, []string{"1"}, "VBD.create", vbdRecord(hvm, disk(), "1", "Disk", "RW", false))
	if got := e.get("VBD", e.createDisk(hvm, disk(), "autodetect"), "userdevice"); got != "0" {
		t.Errorf("HVM autodetect = %s", got)
	}
	fl := e.do("VBD.create", vbdRecord(hvm, disk(), "autodetect", "Floppy", "RW", false))
	if got := e.get("VBD", fl, "userdevice"); got != "fda" {
		t.Errorf("floppy autodetect = %s", got)
	}
	e.wantCall(api.ErrNotImplemented, []string{"VBD of type 'floppy' is not supported on PV domain"},
		"VBD.create", vbdRecord(vm, disk(), "autodetect", "Floppy", "RW", false))

	// A VM with every position taken.
	full := e.createVM("full")
	e.setVM(full, func(v *api.VM) { v.DomainType = api.DomainTypePV })
	shared := disk()
	for n := 0; n <= 254; n++ {
		e.createDisk(full, shared, strconv.Itoa(n))
	}
	e.wantCall(api.ErrInvalidDevice, []string{"autodetect"}, "VBD.create", vbdRecord(full, shared, "autodetect", "Disk", "RW", false))
}

func TestVBDCreateChecks(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	vm := e.createVM("checks")
	rw := e.createVDI(sr, 1<<20)
	ro := e.createVDI(sr, 1<<20, wire.Member{Name: "read_only", Value: wire.Bool(true)})
	ha := e.createVDI(sr, 1<<20, wire.Member{Name: "type", Value: wstr("ha_statefile")})
	for _, tc := range []struct {
		name   string
		rec    wire.Value
		code   string
		params []string
	}{
		{"no VDI for a disk", vbdRecord(vm, wnull, "1", "Disk", "RW", false), api.ErrHandleInvalid, []string{"VDI", string(xenapi.NullRef)}},
		{"bad VM", vbdRecord(wstr("OpaqueRef:novm"), rw, "1", "Disk", "RW", false), api.ErrHandleInvalid, []string{"VM", "OpaqueRef:novm"}},
		{"HA statefile", vbdRecord(vm, ha, "1", "Disk", "RW", false), api.ErrVDIIncompatibleType, []string{ha.Str, "ha_statefile"}},
		{"RW CD", vbdRecord(vm, wnull, "3", "CD", "RW", true), api.ErrVBDCdsMustBeReadonly, []string{}},
		{"empty disk", vbdRecord(vm, wnull, "1", "Disk", "RO", true), api.ErrVBDNotRemovableMedia, []string{"in constructor"}},
		{"RW on a read-only VDI", vbdRecord(vm, ro, "1", "Disk", "RW", false), api.ErrVDIReadonly, []string{ro.Str}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.wantCall(tc.code, tc.params, "VBD.create", tc.rec)
		})
	}
	if len(e.getStrings("VM", vm, "VBDs")) != 0 {
		t.Error("failed creates left VBDs")
	}
	e.do("VBD.create", vbdRecord(vm, ro, "1", "Disk", "RO", false))
	// A VM being migrated takes no new VBDs.
	e.setVM(vm, func(v *api.VM) {
		v.CurrentOperations = xenapi.MapOf(map[string]api.VMOperations{"OpaqueRef:mig": api.VMOperationsPoolMigrate})
	})
	e.wantCall(api.ErrOtherOperationInProgress, []string{"VM", vm.Str, "pool_migrate", "OpaqueRef:mig"}, "VBD.create", vbdRecord(vm, rw, "2", "Disk", "RW", false))
	e.setVM(vm, func(v *api.VM) { v.CurrentOperations = nil })

	// device and currently_attached are taken only for a suspended VM.
	rec := vbdRecord(vm, rw, "5", "Disk", "RW", false)
	rec.Struct = append(rec.Struct, wire.Member{Name: "device", Value: wstr("xvdf")}, wire.Member{Name: "currently_attached", Value: wire.Bool(true)})
	v := e.do("VBD.create", rec)
	if e.get("VBD", v, "device") != "" || e.get("VBD", v, "currently_attached") != "false" {
		t.Error("runtime fields taken for a halted VM")
	}
	susp := e.createVM("suspended")
	e.setPower(susp, api.VMPowerStateSuspended)
	rec.Struct[0].Value = susp
	v = e.do("VBD.create", rec)
	if e.get("VBD", v, "device") != "xvdf" || e.get("VBD", v, "currently_attached") != "true" {
		t.Error("runtime fields not taken for a suspended VM")
	}
	// The SR may name the backend of its VBDs.
	bk := e.createVDI(sr, 1, wire.Member{Name: "sm_config", Value: wmap("backend-kind", "vbd3")})
	v = e.createDisk(vm, bk, "7")
	if k, _ := e.do("VBD.get_other_config", v).Field("backend-kind"); k.Str != "vbd3" {
		t.Errorf("backend-kind = %q", k.Str)
	}
}

func TestVBDDestroy(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	vm := e.createVM("vbd-destroy")
	vdi := e.createVDI(sr, 1<<20)
	vbd := e.createDisk(vm, vdi, "0")
	if !slices.Contains(e.getStrings("VDI", vdi, "VBDs"), vbd.Str) || !slices.Contains(e.getStrings("VM", vm, "VBDs"), vbd.Str) {
		t.Fatal("bound fields")
	}
	e.setAttached(vbd, true)
	e.wantCall(api.ErrOperationNotAllowed, []string{"VBD '" + e.get("VBD", vbd, "uuid") + "' still attached to '" + e.get("VM", vm, "uuid") + "'"}, "VBD.destroy", vbd)
	e.setAttached(vbd, false)
	e.do("VBD.destroy", vbd)
	if len(e.getStrings("VDI", vdi, "VBDs")) != 0 || len(e.getStrings("VM", vm, "VBDs")) != 0 {
		t.Error("VBD still listed")
	}
	if _, err := os.Stat(e.path(vdi)); err != nil {
		t.Error("VBD.destroy touched the VDI")
	}
}

func TestVBDInsertEject(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	isoDir := t.TempDir()
	os.WriteFile(filepath.Join(isoDir, "a.iso"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(isoDir, "b.iso"), []byte("b"), 0o644)
	e.createSR("iso", wmap("location", isoDir))
	a := e.do("VDI.get_by_name_label", wstr("a.iso")).Array[0]
	b := e.do("VDI.get_by_name_label", wstr("b.iso")).Array[0]
	vm := e.createVM("cd")
	cd := e.do("VBD.create", vbdRecord(vm, wnull, "3", "CD", "RO", true))
	if ops := e.getStrings("VBD", cd, "allowed_operations"); !slices.Equal(ops, []string{"attach", "insert"}) {
		t.Errorf("empty CD allowed_operations = %v", ops)
	}
	e.wantCall(api.ErrVBDIsEmpty, []string{cd.Str}, "VBD.eject", cd)
	e.do("VBD.insert", cd, a)
	if e.get("VBD", cd, "empty") != "false" || e.get("VBD", cd, "VDI") != a.Str {
		t.Fatal("insert")
	}
	if !slices.Contains(e.getStrings("VDI", a, "VBDs"), cd.Str) {
		t.Error("VDI.VBDs lacks the CD")
	}
	if ops := e.getStrings("VBD", cd, "allowed_operations"); !slices.Equal(ops, []string{"attach", "eject"}) {
		t.Errorf("full CD allowed_operations = %v", ops)
	}
	e.wantCall(api.ErrVBDNotEmpty, []string{cd.Str}, "VBD.insert", cd, b)
	e.do("VBD.eject", cd)
	if e.get("VBD", cd, "empty") != "true" || e.get("VBD", cd, "VDI") != string(xenapi.NullRef) {
		t.Fatal("eject")
	}
	e.wantCall(api.ErrHandleInvalid, []string{"VDI", "OpaqueRef:none"}, "VBD.insert", cd, wstr("OpaqueRef:none"))

	// Disks are not removable.
	disk := e.createDisk(vm, e.createVDI(e.localSR(), 1<<20), "0")
	e.wantCall(api.ErrVBDNotRemovableMedia, []string{disk.Str}, "VBD.eject", disk)
	e.wantCall(api.ErrVBDNotRemovableMedia, []string{disk.Str}, "VBD.insert", disk, b)

	// A suspended VM's CD cannot change.
	e.setPower(vm, api.VMPowerStateSuspended)
	e.wantCall(api.ErrVMBadPowerState, []string{vm.Str, "halted, running", "suspended"}, "VBD.insert", cd, b)
	// A running VM's unplugged drive changes on the records alone (a
	// plugged one changes in the domain too: TestVMInstallFromISO).
	e.setPower(vm, api.VMPowerStateRunning)
	e.do("VBD.insert", cd, b)
}

func TestVBDSetModeAndAttachable(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	vdi := e.createVDI(sr, 1<<20)
	a, b := e.createVM("a"), e.createVM("b")
	va := e.createDisk(a, vdi, "0")
	vb := e.createDisk(b, vdi, "0")
	if ops := e.getStrings("VBD", va, "allowed_operations"); !slices.Equal(ops, []string{"attach"}) {
		t.Errorf("halted disk allowed_operations = %v", ops)
	}
	e.do("VBD.assert_attachable", vb)
	// a writes to the disk: b may not attach it, even read-only.
	e.setPower(a, api.VMPowerStateRunning)
	e.setAttached(va, true)
	if ops := e.getStrings("VBD", va, "allowed_operations"); !slices.Contains(ops, "unplug") || slices.Contains(ops, "plug") {
		t.Errorf("plugged disk of a running VM: %v", ops)
	}
	e.wantCall(api.ErrVDIInUse, []string{vdi.Str}, "VBD.assert_attachable", vb)
	e.do("VBD.set_mode", vb, wstr("RO"))
	e.wantCall(api.ErrVDIInUse, []string{vdi.Str}, "VBD.assert_attachable", vb)
	e.wantCall(api.ErrVMBadPowerState, []string{a.Str, "halted", "running"}, "VBD.set_mode", va, wstr("RO"))
	e.setAttached(va, false)
	e.setPower(a, api.VMPowerStateHalted)
	e.do("VBD.assert_attachable", vb)
	if e.get("VBD", vb, "mode") != "RO" {
		t.Error("set_mode")
	}
	// A read-only VDI in an RW VBD (made before the VDI became RO).
	e.store.Update(e.ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassVDI, xenapi.Ref(vdi.Str), func(r xenapi.Record) error { r.(*api.VDI).ReadOnly = true; return nil })
	})
	e.wantCall(api.ErrVDIReadonly, []string{vdi.Str}, "VBD.assert_attachable", va)
}

func TestVBDDeviceNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		hvm  bool
		want vbdDevice
		ok   bool
	}{
		{"0", false, vbdDevice{busXen, 0, 0}, true},
		{"0", true, vbdDevice{busIDE, 0, 0}, true},
		{"3", true, vbdDevice{busIDE, 3, 0}, true},
		{"4", true, vbdDevice{busXen, 4, 0}, true},
		{"xvda", false, vbdDevice{busXen, 0, 0}, true},
		{"xvdz", false, vbdDevice{busXen, 25, 0}, true},
		{"xvdaa", false, vbdDevice{busXen, 26, 0}, true},
		{"xvdb3", false, vbdDevice{busXen, 1, 3}, true},
		{"hdc", false, vbdDevice{busIDE, 2, 0}, true},
		{"sdb", false, vbdDevice{busSCSI, 1, 0}, true},
		{"fda", false, vbdDevice{busFloppy, 0, 0}, true},
		{"d5p2", false, vbdDevice{busXen, 5, 2}, true},
		{"d5", false, vbdDevice{busXen, 5, 0}, true},
		{"-1", false, vbdDevice{}, false},
		{"xvd", false, vbdDevice{}, false},
		{"xvda1x", false, vbdDevice{}, false},
		{"cdrom", false, vbdDevice{}, false},
	} {
		got, ok := vbdOfString(tc.hvm, tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("vbdOfString(%v, %q) = %+v %v, want %+v %v", tc.hvm, tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for d, want := range map[vbdDevice]string{{busXen, 0, 0}: "xvda", {busXen, 26, 0}: "xvdaa", {busIDE, 2, 0}: "xvdc", {busFloppy, 1, 0}: "fdb", {busXen, 1, 2}: "xvdb2"} {
		if got := d.linux(); got != want {
			t.Errorf("%+v.linux() = %q, want %q", d, got, want)
		}
	}
	for _, tc := range []struct {
		dev string
		typ api.VBDType
		ok  bool
	}{{"autodetect", api.VBDTypeDisk, true}, {"300", api.VBDTypeDisk, true}, {"-1", api.VBDTypeFloppy, false}, {"-1", api.VBDTypeDisk, true}, {"fdb", api.VBDTypeFloppy, true}, {"x", api.VBDTypeCD, false}} {
		if got := vbdValidDevice(tc.dev, tc.typ); got != tc.ok {
			t.Errorf("vbdValidDevice(%q, %s) = %v", tc.dev, tc.typ, got)
		}
	}
}

func TestAllowedVBDDevices(t *testing.T) {
	t.Parallel()
	seq := func(from, to int, skip ...int) []string {
		var out []string
		for n := from; n <= to; n++ {
			if !slices.Contains(skip, n) {
				out = append(out, strconv.Itoa(n))
			}
		}
		return out
	}
	pv := api.NewVM()
	pv.DomainType = api.DomainTypePV
	hvm := api.NewVM()
	hvm.DomainType = api.DomainTypeHVM
	legacyHVM := api.NewVM()
	legacyHVM.HVMBootPolicy = "BIOS order"
	dom0 := api.NewVM()
	dom0.IsControlDomain = true
	vbd := func(userdevice, device string) *api.VBD {
		v := api.NewVBD()
		v.Userdevice, v.Device = userdevice, device
		return v
	}
	for _, tc := range []struct {
		name string
		vm   *api.VM
		vbds []*api.VBD
		want []string
	}{
		{"PV, none used", pv, nil, seq(0, 254)},
		{"PV, some used", pv, []*api.VBD{vbd("0", "xvda"), vbd("3", ""), vbd("autodetect", "xvdc")}, seq(0, 254, 0, 2, 3)},
		{"HVM", hvm, []*api.VBD{vbd("hdb", "")}, seq(0, 254, 1)},
		{"HVM by boot policy", legacyHVM, []*api.VBD{vbd("1", "")}, seq(0, 254, 1)},
		{"control domain", dom0, []*api.VBD{vbd("0", "")}, seq(1, 255)},
	} {
		if got := allowedVBDDevices(tc.vm, tc.vbds); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %d devices %v..., want %d", tc.name, len(got), got[:min(5, len(got))], len(tc.want))
		}
	}
	e := newStorageEnv(t)
	vm := e.createVM("allowed")
	e.createDisk(vm, e.createVDI(e.localSR(), 1), "0")
	got, err := e.srv.allowedVBDDevicesOf(xenapi.Ref(vm.Str))
	if err != nil || len(got) != 254 || got[0] != "1" {
		t.Errorf("allowedVBDDevicesOf = %v..., %v", got[:3], err)
	}
	if _, err := e.srv.allowedVBDDevicesOf("OpaqueRef:x"); err == nil {
		t.Error("an unknown VM has devices")
	}
}
