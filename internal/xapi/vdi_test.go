package xapi

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

func TestVDICreate(t *testing.T) {
	t.Parallel()
	for _, pc := range protocols {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			e := newStorageEnv(t).withProtocol(pc.p)
			sr := e.localSR()
			allocBefore := e.getInt("SR", sr, "virtual_allocation")
			vdi := e.createVDI(sr, 10*stGiB, wire.Member{Name: "tags", Value: wire.Array(wstr("t"))})
			p := e.path(vdi)
			if filepath.Base(p) != e.get("VDI", vdi, "uuid")+".raw" {
				t.Errorf("file %s", p)
			}
			if fileSize(t, p) != 10*stGiB || fileBlocks(t, p) > 1<<20 {
				t.Errorf("raw VDI: size %d, %d bytes allocated", fileSize(t, p), fileBlocks(t, p))
			}
			for field, want := range map[string]string{
				"name_label": "disk", "name_description": "test disk", "SR": sr.Str, "virtual_size": strconv.Itoa(10 * stGiB),
				"type": "user", "managed": "true", "read_only": "false", "is_a_snapshot": "false",
				"location": e.get("VDI", vdi, "uuid") + ".raw", "physical_utilisation": strconv.FormatInt(fileBlocks(t, p), 10),
			} {
				if got := e.get("VDI", vdi, field); got != want {
					t.Errorf("VDI.%s = %q, want %q", field, got, want)
				}
			}
			if f, _ := e.do("VDI.get_sm_config", vdi).Field("image-format"); f.Str != "raw" {
				t.Errorf("sm_config image-format = %q", f.Str)
			}
			if oc, _ := e.do("VDI.get_other_config", vdi).Field("k"); oc.Str != "v" {
				t.Error("other_config not kept")
			}
			if tags := e.getStrings("VDI", vdi, "tags"); !slices.Equal(tags, []string{"t"}) {
				t.Errorf("tags = %v", tags)
			}
			if ops := e.getStrings("VDI", vdi, "allowed_operations"); !slices.Equal(ops, []string{"clone", "copy", "resize", "snapshot", "destroy", "forget", "update"}) {
				t.Errorf("allowed_operations = %v", ops)
			}
			if got := e.getInt("SR", sr, "virtual_allocation"); got != allocBefore+10*stGiB {
				t.Errorf("virtual_allocation %d, want %d", got, allocBefore+10*stGiB)
			}
			if !slices.Contains(e.getStrings("SR", sr, "VDIs"), vdi.Str) {
				t.Error("SR.VDIs lacks the VDI")
			}
			if ops := e.getStrings("SR", sr, "allowed_operations"); slices.Contains(ops, "destroy") {
				t.Error("an SR with a VDI may be destroyed")
			}
			// Types other than user.
			for _, typ := range []string{"system", "suspend", "ephemeral"} {
				v := e.createVDI(sr, 1<<20, wire.Member{Name: "type", Value: wstr(typ)})
				if e.get("VDI", v, "type") != typ {
					t.Errorf("type %s not kept", typ)
				}
			}
			ro := e.createVDI(sr, 1<<20, wire.Member{Name: "read_only", Value: wire.Bool(true)}, wire.Member{Name: "sharable", Value: wire.Bool(true)})
			if e.get("VDI", ro, "read_only") != "true" || e.get("VDI", ro, "sharable") != "true" {
				t.Error("read_only/sharable not kept")
			}
		})
	}
}

func TestVDICreateErrors(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	for _, tc := range []struct {
		name   string
		rec    wire.Value
		code   string
		params []string
	}{
		{"cbt_metadata", vdiRecord(sr, "x", 1, wire.Member{Name: "type", Value: wstr("cbt_metadata")}), api.ErrVDIIncompatibleType, []string{"", "cbt_metadata"}},
		{"unknown image format", vdiRecord(sr, "x", 1, wire.Member{Name: "sm_config", Value: wmap("image-format", "vhd")}), api.ErrSRBackendFailure + "_66", nil},
		{"negative size", vdiRecord(sr, "x", -1), api.ErrSRBackendFailure + "_79", nil},
		{"bad SR", vdiRecord(wstr("OpaqueRef:none"), "x", 1), api.ErrHandleInvalid, []string{"SR", "OpaqueRef:none"}},
		{"bad type", vdiRecord(sr, "x", 1, wire.Member{Name: "type", Value: wstr("scratch")}), api.ErrFieldTypeError, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.getStrings("SR", sr, "VDIs"))
			e.wantCall(tc.code, tc.params, "VDI.create", tc.rec)
			if len(e.getStrings("SR", sr, "VDIs")) != before {
				t.Error("a failed create left a record")
			}
		})
	}
	if _, err := e.call("VDI.create", vdiRecord(sr, "x", 1, wire.Member{Name: "sm_config", Value: wmap("image-format", "vhd")})); err != nil {
		if _, p := errCode(err); len(p) != 3 || p[0] != "" || p[2] != "" || !bytes.Contains([]byte(p[1]), []byte("vhd")) {
			t.Errorf("SR_BACKEND_FAILURE params = %q", p)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(e.path(e.createVDI(sr, 1))))
	if len(entries) != 1 {
		t.Errorf("failed creates left files: %d entries", len(entries))
	}
}

func TestVDICreateQcow2(t *testing.T) {
	t.Parallel()
	if !storage.QemuImgAvailable() {
		t.Skip("qemu-img is not installed (Debian package qemu-utils): qcow2 VDIs are not tested")
	}
	e := newStorageEnv(t)
	sr := e.localSR()
	for _, sm := range []wire.Value{wmap("image-format", "qcow2"), wmap("type", "qcow2")} {
		vdi := e.createVDI(sr, 5*stGiB, wire.Member{Name: "sm_config", Value: sm})
		p := e.path(vdi)
		if filepath.Ext(p) != ".qcow2" || e.getInt("VDI", vdi, "virtual_size") != 5*stGiB || fileSize(t, p) > 1<<20 {
			t.Errorf("qcow2 VDI: %s, size %d", p, e.getInt("VDI", vdi, "virtual_size"))
		}
		if f, _ := e.do("VDI.get_sm_config", vdi).Field("image-format"); f.Str != "qcow2" {
			t.Errorf("image-format = %q", f.Str)
		}
		e.do("VDI.resize", vdi, wire.String(strconv.Itoa(6*stGiB)))
		if e.getInt("VDI", vdi, "virtual_size") != 6*stGiB {
			t.Error("qcow2 resize")
		}
		snap := e.do("VDI.snapshot", vdi, wmap())
		if filepath.Ext(e.path(snap)) != ".qcow2" || e.getInt("VDI", snap, "virtual_size") != 6*stGiB {
			t.Error("qcow2 snapshot")
		}
	}
}

func TestVDIDestroy(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	vdi := e.createVDI(sr, stGiB)
	p := e.path(vdi)
	vm := e.createVM("destroy")
	vbd := e.createDisk(vm, vdi, "0")
	e.setVM(vm, func(v *api.VM) { v.SuspendVDI = xenapi.Ref(vdi.Str) })

	for _, ps := range []api.VMPowerState{api.VMPowerStateRunning, api.VMPowerStatePaused, api.VMPowerStateSuspended} {
		e.setPower(vm, ps)
		e.wantCall(api.ErrVDIInUse, []string{vdi.Str, "destroy"}, "VDI.destroy", vdi)
		if slices.Contains(e.getStrings("VDI", vdi, "allowed_operations"), "destroy") {
			t.Errorf("%s: destroy allowed", ps)
		}
		// Live operations stay allowed.
		if ops := e.getStrings("VDI", vdi, "allowed_operations"); !slices.Contains(ops, "snapshot") || !slices.Contains(ops, "clone") {
			t.Errorf("%s: allowed_operations %v", ps, ops)
		}
	}
	e.setPower(vm, api.VMPowerStateHalted)
	e.setAttached(vbd, true)
	e.wantCall(api.ErrVDIInUse, []string{vdi.Str, "destroy"}, "VDI.destroy", vdi)
	e.setAttached(vbd, false)

	e.do("VDI.destroy", vdi)
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Error("the file survived VDI.destroy")
	}
	if e.exists("VDI", vdi) || e.exists("VBD", vbd) {
		t.Error("records survived VDI.destroy")
	}
	if e.get("VM", vm, "suspend_VDI") != string(xenapi.NullRef) {
		t.Error("VM.suspend_VDI still names the destroyed VDI")
	}
	e.wantCall(api.ErrHandleInvalid, []string{"VDI", vdi.Str}, "VDI.destroy", vdi)

	// An unmanaged VDI cannot be destroyed.
	um := e.createVDI(sr, 1)
	e.store.Update(e.ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassVDI, xenapi.Ref(um.Str), func(r xenapi.Record) error { r.(*api.VDI).Managed = false; return nil })
	})
	e.wantCall(api.ErrVDINotManaged, []string{um.Str}, "VDI.destroy", um)
}

func TestVDICloneAndSnapshot(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	src := e.createVDI(sr, 4*stGiB, wire.Member{Name: "type", Value: wstr("system")})
	f, _ := os.OpenFile(e.path(src), os.O_RDWR, 0)
	f.WriteAt([]byte("MBR!"), 0)
	f.Close()
	vm := e.createVM("live")
	e.createDisk(vm, src, "0")
	e.setPower(vm, api.VMPowerStateRunning) // clone and snapshot are live operations

	before := time.Now().UTC().Truncate(time.Second)
	snap := e.do("VDI.snapshot", src, wmap("hint", "x"))
	clone := e.do("VDI.clone", src, wmap())
	for name, v := range map[string]wire.Value{"snapshot": snap, "clone": clone} {
		p := e.path(v)
		if p == e.path(src) || fileSize(t, p) != 4*stGiB || fileBlocks(t, p) > 1<<20 {
			t.Errorf("%s: file %s size %d blocks %d", name, p, fileSize(t, p), fileBlocks(t, p))
		}
		b := make([]byte, 4)
		if g, err := os.Open(p); err == nil {
			g.ReadAt(b, 0)
			g.Close()
		}
		if string(b) != "MBR!" {
			t.Errorf("%s: data not copied", name)
		}
		for _, field := range []string{"name_label", "name_description", "type", "SR", "virtual_size", "sharable"} {
			if e.get("VDI", v, field) != e.get("VDI", src, field) {
				t.Errorf("%s: %s not copied", name, field)
			}
		}
		if len(e.getStrings("VDI", v, "VBDs")) != 0 {
			t.Errorf("%s has VBDs", name)
		}
	}
	if e.get("VDI", snap, "is_a_snapshot") != "true" || e.get("VDI", snap, "snapshot_of") != src.Str {
		t.Error("snapshot fields")
	}
	st := e.do("VDI.get_snapshot_time", snap)
	if ts, err := wire.ParseDateTime(st.Str); err != nil || ts.Before(before) {
		t.Errorf("snapshot_time = %q (%v)", st.Str, err)
	}
	if e.get("VDI", clone, "is_a_snapshot") != "false" || e.get("VDI", clone, "snapshot_of") != string(xenapi.NullRef) {
		t.Error("a clone is marked as a snapshot")
	}
	if snaps := e.getStrings("VDI", src, "snapshots"); !slices.Equal(snaps, []string{snap.Str}) {
		t.Errorf("VDI.snapshots = %v", snaps)
	}
	// Snapshots of sharable VDIs are refused.
	sh := e.createVDI(sr, 1<<20, wire.Member{Name: "sharable", Value: wire.Bool(true)})
	e.wantCall(api.ErrVDIIsSharable, []string{sh.Str}, "VDI.snapshot", sh, wmap())
	// Destroying the source leaves the snapshot alone.
	e.setPower(vm, api.VMPowerStateHalted)
	e.do("VDI.destroy", src)
	if !e.exists("VDI", snap) || e.get("VDI", snap, "snapshot_of") != src.Str {
		t.Error("the snapshot changed when its source went")
	}

	// Async.VDI.clone runs in a task whose result is the new VDI.
	task := e.do("Async.VDI.clone", clone, wmap())
	for i := 0; i < 200 && e.get("task", task, "status") == "pending"; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if e.get("task", task, "status") != "success" {
		t.Fatalf("task %+v", e.do("task.get_record", task))
	}
}

func TestVDIResize(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	vdi := e.createVDI(sr, stGiB)
	e.do("VDI.resize", vdi, wire.String(strconv.Itoa(3*stGiB)))
	if e.getInt("VDI", vdi, "virtual_size") != 3*stGiB || fileSize(t, e.path(vdi)) != 3*stGiB {
		t.Error("resize did not grow")
	}
	e.wantCall(api.ErrSRBackendFailure+"_79", []string{"", "VDI Invalid size [opterr=shrinking not allowed]", ""}, "VDI.resize", vdi, wire.String(strconv.Itoa(stGiB)))
	if e.getInt("VDI", vdi, "virtual_size") != 3*stGiB {
		t.Error("a refused shrink changed the size")
	}
	vm := e.createVM("resize")
	e.createDisk(vm, vdi, "0")
	e.setPower(vm, api.VMPowerStateRunning)
	e.wantCall(api.ErrVDIInUse, []string{vdi.Str, "resize"}, "VDI.resize", vdi, wire.String(strconv.Itoa(4*stGiB)))
	e.setPower(vm, api.VMPowerStateHalted)
	e.do("PBD.unplug", e.myPBDOf(sr))
	e.wantCall(api.ErrSRHasNoPbds, []string{sr.Str}, "VDI.resize", vdi, wire.String(strconv.Itoa(4*stGiB)))
	if slices.Contains(e.getStrings("VDI", vdi, "allowed_operations"), "resize") {
		t.Error("resize allowed with the SR unplugged")
	}
}

func TestVDIUpdate(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	vdi := e.createVDI(sr, stGiB)
	p := e.path(vdi)
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt(bytes.Repeat([]byte{7}, 3<<20), 10<<20)
	f.Close()
	e.do("VDI.update", vdi)
	if got := e.getInt("VDI", vdi, "physical_utilisation"); got != fileBlocks(t, p) || got < 3<<20 {
		t.Errorf("physical_utilisation = %d, blocks %d", got, fileBlocks(t, p))
	}
	os.Remove(p)
	e.wantCall(api.ErrVDIMissing, []string{sr.Str, vdi.Str}, "VDI.update", vdi)
}

func TestVDIForget(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	vdi := e.createVDI(sr, stGiB)
	id, p := e.get("VDI", vdi, "uuid"), e.path(vdi)
	vm := e.createVM("forget")
	cd := e.do("VBD.create", vbdRecord(vm, vdi, "3", "CD", "RO", false))
	e.do("VDI.forget", vdi)
	if e.exists("VDI", vdi) {
		t.Fatal("record survived VDI.forget")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("VDI.forget removed the file")
	}
	if e.get("VBD", cd, "empty") != "true" {
		t.Error("the CD drive was not emptied")
	}
	e.do("SR.scan", sr)
	if r := e.do("VDI.get_by_uuid", wstr(id)); !e.exists("VDI", r) {
		t.Error("scan did not find the forgotten VDI")
	}
}

func TestVDICopy(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	local := e.localSR()
	other := e.createSR("file", wmap("path", filepath.Join(t.TempDir(), "other")))
	src := e.createVDI(local, 64<<20, wire.Member{Name: "tags", Value: wire.Array(wstr("gold"))})
	f, _ := os.OpenFile(e.path(src), os.O_RDWR, 0)
	f.WriteAt([]byte("payload"), 32<<20)
	f.Close()

	dst := e.do("VDI.copy", src, other, wnull, wnull)
	if e.get("VDI", dst, "SR") != other.Str || e.getInt("VDI", dst, "virtual_size") != 64<<20 || e.get("VDI", dst, "name_label") != "disk" {
		t.Fatalf("copy = %+v", e.do("VDI.get_record", dst))
	}
	if !slices.Equal(e.getStrings("VDI", dst, "tags"), []string{"gold"}) {
		t.Error("tags not copied")
	}
	b, _ := os.ReadFile(e.path(dst))
	if len(b) != 64<<20 || string(b[32<<20:32<<20+7]) != "payload" {
		t.Fatal("data not copied")
	}
	if fileBlocks(t, e.path(dst)) > 1<<20 {
		t.Errorf("the copy is not sparse: %d bytes", fileBlocks(t, e.path(dst)))
	}
	if got := e.getInt("VDI", dst, "physical_utilisation"); got != fileBlocks(t, e.path(dst)) {
		t.Errorf("physical_utilisation = %d", got)
	}

	// Into an existing VDI.
	into := e.createVDI(other, 128<<20)
	if r := e.do("VDI.copy", src, wnull, wnull, into); r.Str != into.Str {
		t.Errorf("copy into returned %s", r.Str)
	}
	b, _ = os.ReadFile(e.path(into))
	if len(b) != 128<<20 || string(b[32<<20:32<<20+7]) != "payload" {
		t.Error("copy into: data")
	}
	small := e.createVDI(other, 1<<20)
	e.wantCall(api.ErrVDITooSmall, []string{small.Str, strconv.Itoa(64 << 20)}, "VDI.copy", src, wnull, wnull, small)
	ro := e.createVDI(other, 128<<20, wire.Member{Name: "read_only", Value: wire.Bool(true)})
	e.wantCall(api.ErrVDIReadonly, []string{ro.Str}, "VDI.copy", src, wnull, wnull, ro)

	// A writer keeps the VDI from being copied; a reader does not.
	vm := e.createVM("copy")
	vbd := e.createDisk(vm, src, "0")
	e.setPower(vm, api.VMPowerStateRunning)
	e.wantCall(api.ErrVDIInUse, []string{src.Str, "copy"}, "VDI.copy", src, other, wnull, wnull)
	e.setPower(vm, api.VMPowerStateHalted)
	e.do("VBD.set_mode", vbd, wstr("RO"))
	e.setPower(vm, api.VMPowerStateRunning)
	e.do("VDI.copy", src, other, wnull, wnull)

	// From an ISO library into a file SR.
	isoDir := t.TempDir()
	os.WriteFile(filepath.Join(isoDir, "tools.iso"), bytes.Repeat([]byte("iso9660!"), 1024), 0o644)
	isr := e.createSR("iso", wmap("location", isoDir))
	iso := wstr(e.getStrings("SR", isr, "VDIs")[0])
	fromISO := e.do("VDI.copy", iso, other, wnull, wnull)
	if e.get("VDI", fromISO, "read_only") != "false" || e.getInt("VDI", fromISO, "virtual_size") != 8192 {
		t.Errorf("copy of an ISO = %+v", e.do("VDI.get_record", fromISO))
	}
	if b, _ := os.ReadFile(e.path(fromISO)); !bytes.Equal(b, bytes.Repeat([]byte("iso9660!"), 1024)) {
		t.Error("ISO data not copied")
	}
	// Into an ISO SR: no VDIs can be made there.
	e.wantCall(api.ErrSROperationNotSupported, []string{isr.Str}, "VDI.copy", src, isr, wnull, wnull)
	e.wantCall(api.ErrHandleInvalid, []string{"SR", "OpaqueRef:gone"}, "VDI.copy", fromISO, wstr("OpaqueRef:gone"), wnull, wnull)
}

func TestVDISetters(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t).withProtocol(client.XMLRPC)
	sr := e.localSR()
	vdi := e.createVDI(sr, 1<<20)
	e.do("VDI.set_name_label", vdi, wstr("n"))
	e.do("VDI.set_name_description", vdi, wstr("d"))
	if e.get("VDI", vdi, "name_label") != "n" || e.get("VDI", vdi, "name_description") != "d" {
		t.Error("name setters")
	}
	e.do("VDI.set_allow_caching", vdi, wire.Bool(true))
	if e.get("VDI", vdi, "allow_caching") != "true" {
		t.Error("set_allow_caching")
	}
	e.wantCall(api.ErrPermissionDenied, []string{""}, "VDI.set_read_only", vdi, wire.Bool(true))
	e.wantCall(api.ErrPermissionDenied, []string{""}, "VDI.set_sharable", vdi, wire.Bool(true))
	e.wantCall(api.ErrSROperationNotSupported, []string{sr.Str}, "VDI.set_on_boot", vdi, wstr("reset"))
	vm := e.createVM("setters")
	e.createDisk(vm, vdi, "0")
	e.setPower(vm, api.VMPowerStateRunning)
	e.wantCall(api.ErrVMBadPowerState, []string{vm.Str, "halted", "running"}, "VDI.set_on_boot", vdi, wstr("persist"))
	e.wantCall(api.ErrVMBadPowerState, []string{vm.Str, "halted", "running"}, "VDI.set_allow_caching", vdi, wire.Bool(false))
}
