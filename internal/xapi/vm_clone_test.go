package xapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/domain"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// The xe vm-install flow: clone a default template, make it a VM,
// provision its disks, start it; then snapshot and copy it.
func TestVMInstallFromTemplate(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	tmpls := h.must("VM.get_by_name_label", wire.String("Debian Bookworm 12"))
	if len(tmpls.Array) != 1 {
		t.Fatalf("Debian template: %+v", tmpls)
	}
	vm := h.must("VM.clone", tmpls.Array[0], wire.String("web1"))
	rec := h.must("VM.get_record", vm)
	if field(rec, "is_a_template") != "true" || field(rec, "is_default_template") != "false" || strings.Contains(field(rec, "other_config"), "default_template") {
		t.Fatalf("clone of a template: %+v", rec)
	}
	h.must("VM.set_is_a_template", vm, wire.Bool(false))
	h.must("VM.provision", vm)
	vbds := h.must("VM.get_VBDs", vm)
	if len(vbds.Array) != 1 {
		t.Fatalf("provision made %d VBDs", len(vbds.Array))
	}
	vdi := h.must("VBD.get_VDI", vbds.Array[0])
	if size := h.must("VDI.get_virtual_size", vdi); scalarString(size) != "10737418240" {
		t.Fatalf("provisioned disk size %s", scalarString(size))
	}
	if oc := h.must("VM.get_other_config", vm); strings.Contains(scalarString(oc), "provision") {
		t.Fatalf("recipe left after provisioning: %s", scalarString(oc))
	}
	nets := h.must("network.get_all")
	h.must("VIF.create", wire.Struct(
		wire.Member{Name: "device", Value: wire.String("0")}, wire.Member{Name: "network", Value: nets.Array[0]},
		wire.Member{Name: "VM", Value: vm}, wire.Member{Name: "MAC", Value: wire.String("")},
		wire.Member{Name: "MTU", Value: wire.String("1500")}, wire.Member{Name: "other_config", Value: wire.Struct()},
		wire.Member{Name: "qos_algorithm_type", Value: wire.String("")}, wire.Member{Name: "qos_algorithm_params", Value: wire.Struct()}))
	h.must("VM.start", vm, wire.Bool(false), wire.Bool(false))
	if a := h.must("VBD.get_currently_attached", vbds.Array[0]); !a.Bool {
		t.Fatal("disk not attached to the running VM")
	}
	_, err := h.do("VDI.destroy", vdi)
	wantErr(t, err, api.ErrVDIInUse)

	snap := h.must("VM.snapshot", vm, wire.String("web1-snap"))
	srec := h.must("VM.get_record", snap)
	if field(srec, "is_a_snapshot") != "true" || field(srec, "snapshot_of") != vm.Str {
		t.Fatalf("snapshot record: %+v", srec)
	}
	if snaps := h.must("VM.get_snapshots", vm); len(snaps.Array) != 1 || snaps.Array[0].Str != snap.Str {
		t.Fatalf("VM.snapshots = %+v", snaps)
	}
	_, err = h.do("VM.clone", vm, wire.String("nope"))
	wantErr(t, err, api.ErrVMBadPowerState)

	// Revert: a disk changed after the snapshot comes back as it was.
	h.must("VM.add_to_other_config", vm, wire.String("after-snapshot"), wire.String("x"))
	h.must("VM.revert", snap)
	if h.power(vm) != "Halted" {
		t.Fatalf("after revert the VM is %s", h.power(vm))
	}
	if oc := h.must("VM.get_other_config", vm); strings.Contains(scalarString(oc), "after-snapshot") {
		t.Fatalf("revert kept a change made after the snapshot: %s", scalarString(oc))
	}
	vbds = h.must("VM.get_VBDs", vm)
	if len(vbds.Array) != 1 || h.must("VBD.get_VDI", vbds.Array[0]).Str == vdi.Str {
		t.Fatal("revert did not replace the disk with a clone of the snapshot's")
	}
	vdi = h.must("VBD.get_VDI", vbds.Array[0])
	_, err = h.do("VM.revert", vm)
	wantErr(t, err, api.ErrRevertOnlyAllowedOnSnapshot)
	cp := h.must("VM.copy", vm, wire.String("web2"), wire.String(string(xenapi.NullRef)))
	cvbds := h.must("VM.get_VBDs", cp)
	if len(cvbds.Array) != 1 || h.must("VBD.get_VDI", cvbds.Array[0]).Str == vdi.Str {
		t.Fatal("VM.copy did not copy the disk")
	}
	cvifs := h.must("VM.get_VIFs", cp)
	ovifs := h.must("VM.get_VIFs", vm)
	if len(cvifs.Array) != 1 || h.must("VIF.get_MAC", cvifs.Array[0]).Str == h.must("VIF.get_MAC", ovifs.Array[0]).Str {
		t.Fatal("the copy's NIC kept the original MAC")
	}
	h.must("VM.destroy", vm)
	if _, err := h.do("VBD.get_record", vbds.Array[0]); err == nil {
		t.Fatal("VM.destroy left its VBD")
	}
	if _, err := h.do("VDI.get_record", vdi); err != nil {
		t.Fatalf("VM.destroy took the VDI along: %v", err)
	}
}

// Installing from an ISO: an ISO SR, a VM from "Other install media" with
// the ISO in its CD drive, booted on the simulator, then the CD ejected.
func TestVMInstallFromISO(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "installer.iso"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	host := h.must("host.get_all").Array[0]
	sr := h.must("SR.create", host, wire.Struct(wire.Member{Name: "location", Value: wire.String(dir)}),
		wire.String("0"), wire.String("ISOs"), wire.String(""), wire.String("iso"), wire.String("iso"),
		wire.Bool(false), wire.Struct())
	vdis := h.must("SR.get_VDIs", sr)
	if len(vdis.Array) != 1 {
		t.Fatalf("ISO SR shows %d images", len(vdis.Array))
	}
	tmpl := h.must("VM.get_by_name_label", wire.String("Other install media")).Array[0]
	vm := h.must("VM.clone", tmpl, wire.String("from-iso"))
	h.must("VM.set_is_a_template", vm, wire.Bool(false))
	h.must("VM.provision", vm)
	cd := h.must("VBD.create", wire.Struct(
		wire.Member{Name: "VM", Value: vm}, wire.Member{Name: "VDI", Value: vdis.Array[0]},
		wire.Member{Name: "userdevice", Value: wire.String("3")}, wire.Member{Name: "bootable", Value: wire.Bool(true)},
		wire.Member{Name: "mode", Value: wire.String("RO")}, wire.Member{Name: "type", Value: wire.String("CD")},
		wire.Member{Name: "empty", Value: wire.Bool(false)}, wire.Member{Name: "other_config", Value: wire.Struct()},
		wire.Member{Name: "qos_algorithm_type", Value: wire.String("")}, wire.Member{Name: "qos_algorithm_params", Value: wire.Struct()}))
	h.must("VM.start", vm, wire.Bool(false), wire.Bool(false))
	disks, _, err := h.e.srv.domains.Driver().(interface {
		Devices(string) ([]domain.Disk, []domain.NIC, error)
	}).Devices(h.must("VM.get_uuid", vm).Str)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range disks {
		if d.CD && strings.HasSuffix(d.Path, "installer.iso") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the guest has no CD with the ISO: %+v", disks)
	}
	// Eject and insert while the guest runs: the domain's drive follows.
	cdPath := func() string {
		disks, _, err := h.e.srv.domains.Driver().(interface {
			Devices(string) ([]domain.Disk, []domain.NIC, error)
		}).Devices(h.must("VM.get_uuid", vm).Str)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range disks {
			if d.CD {
				return d.Path
			}
		}
		t.Fatal("no CD drive in the domain")
		return ""
	}
	h.must("VBD.eject", cd)
	if e := h.must("VBD.get_empty", cd); !e.Bool || cdPath() != "" {
		t.Fatalf("after a live eject: empty=%v, domain CD %q", e.Bool, cdPath())
	}
	h.must("VBD.insert", cd, vdis.Array[0])
	if !strings.HasSuffix(cdPath(), "installer.iso") {
		t.Fatalf("after a live insert the domain CD is %q", cdPath())
	}
	h.must("VM.hard_shutdown", vm)
	h.must("VBD.eject", cd)
	if e := h.must("VBD.get_empty", cd); !e.Bool {
		t.Fatal("CD not empty after eject")
	}
}
