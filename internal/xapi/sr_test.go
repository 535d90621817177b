package xapi

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// stEnv is a server with a logged-in session, for the storage tests.
type stEnv struct {
	*env
	t   *testing.T
	ctx context.Context
	s   *client.Session
}

func newStorageEnv(t *testing.T) *stEnv {
	t.Helper()
	e := newEnv(t, Config{})
	return &stEnv{env: e, t: t, ctx: context.Background(), s: e.login(t, client.JSONRPC, "root", "pw")}
}

// withProtocol returns the same server with a session of another protocol.
func (e *stEnv) withProtocol(p client.Protocol) *stEnv {
	return &stEnv{env: e.env, t: e.t, ctx: e.ctx, s: e.login(e.t, p, "root", "pw")}
}

func (e *stEnv) call(method string, args ...wire.Value) (wire.Value, error) {
	return e.s.Do(e.ctx, method, args...)
}

func (e *stEnv) do(method string, args ...wire.Value) wire.Value {
	e.t.Helper()
	v, err := e.call(method, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", method, err)
	}
	return v
}

// wantCall checks that a call fails with code (and params, when given).
func (e *stEnv) wantCall(code string, params []string, method string, args ...wire.Value) {
	e.t.Helper()
	_, err := e.call(method, args...)
	got, gotParams := errCode(err)
	if got != code || (params != nil && !slices.Equal(gotParams, params)) {
		e.t.Fatalf("%s: error = %s %q, want %s %q", method, got, gotParams, code, params)
	}
}

// get reads one field of an object's record as its string form.
func (e *stEnv) get(class string, ref wire.Value, field string) string {
	e.t.Helper()
	v, ok := e.do(class+".get_record", ref).Field(field)
	if !ok {
		e.t.Fatalf("%s record has no %s", class, field)
	}
	return scalarString(v)
}

func (e *stEnv) getInt(class string, ref wire.Value, field string) int64 {
	e.t.Helper()
	n, err := strconv.ParseInt(e.get(class, ref, field), 10, 64)
	if err != nil {
		e.t.Fatalf("%s.%s: %v", class, field, err)
	}
	return n
}

func (e *stEnv) getStrings(class string, ref wire.Value, field string) []string {
	e.t.Helper()
	v, _ := e.do(class+".get_record", ref).Field(field)
	out := []string{}
	for _, x := range v.Array {
		out = append(out, x.Str)
	}
	return out
}

func (e *stEnv) exists(class string, ref wire.Value) bool {
	_, err := e.call(class+".get_record", ref)
	return err == nil
}

func wstr(s string) wire.Value { return wire.String(s) }

func wmap(kv ...string) wire.Value {
	var m []wire.Member
	for i := 0; i+1 < len(kv); i += 2 {
		m = append(m, wire.Member{Name: kv[i], Value: wire.String(kv[i+1])})
	}
	return wire.Struct(m...)
}

func (e *stEnv) host() wire.Value { return wstr(string(e.srv.hostRef)) }

// localSR is the SR the inventory makes ("Local storage", type file).
func (e *stEnv) localSR() wire.Value {
	e.t.Helper()
	pools := e.do("pool.get_all")
	return e.do("pool.get_default_SR", pools.Array[0])
}

func (e *stEnv) srCreateArgs(typ, contentType string, dc wire.Value) []wire.Value {
	return []wire.Value{e.host(), dc, wire.Int(0), wstr(typ + " SR"), wstr("test " + typ), wstr(typ), wstr(contentType), wire.Bool(false), wmap()}
}

func (e *stEnv) createSR(typ string, dc wire.Value) wire.Value {
	e.t.Helper()
	return e.do("SR.create", e.srCreateArgs(typ, "", dc)...)
}

func (e *stEnv) myPBDOf(sr wire.Value) wire.Value {
	e.t.Helper()
	pbds := e.getStrings("SR", sr, "PBDs")
	if len(pbds) != 1 {
		e.t.Fatalf("SR has %d PBDs", len(pbds))
	}
	return wstr(pbds[0])
}

func vdiRecord(sr wire.Value, name string, size int64, extra ...wire.Member) wire.Value {
	m := []wire.Member{
		{Name: "name_label", Value: wstr(name)},
		{Name: "name_description", Value: wstr("test disk")},
		{Name: "SR", Value: sr},
		{Name: "virtual_size", Value: wire.String(strconv.FormatInt(size, 10))},
		{Name: "type", Value: wstr("user")},
		{Name: "sharable", Value: wire.Bool(false)},
		{Name: "read_only", Value: wire.Bool(false)},
		{Name: "other_config", Value: wmap("k", "v")},
		{Name: "xenstore_data", Value: wmap()},
		{Name: "sm_config", Value: wmap()},
		{Name: "tags", Value: wire.Array()},
	}
	for _, x := range extra {
		m = slices.DeleteFunc(m, func(y wire.Member) bool { return y.Name == x.Name })
		m = append(m, x)
	}
	return wire.Struct(m...)
}

func (e *stEnv) createVDI(sr wire.Value, size int64, extra ...wire.Member) wire.Value {
	e.t.Helper()
	return e.do("VDI.create", vdiRecord(sr, "disk", size, extra...))
}

// path is the file behind a VDI.
func (e *stEnv) path(vdi wire.Value) string {
	e.t.Helper()
	img, err := e.srv.vdiImage(e.ctx, xenapi.Ref(vdi.Str))
	if err != nil {
		e.t.Fatalf("vdiImage: %v", err)
	}
	return img.Path
}

func (e *stEnv) createVM(name string) wire.Value {
	e.t.Helper()
	return e.do("VM.create", vmRecord(name))
}

// setVM changes a VM record directly (power state and such belong to the
// domain manager) and refreshes the storage operations, as the VM code
// must.
func (e *stEnv) setVM(vm wire.Value, fn func(*api.VM)) {
	e.t.Helper()
	ref := xenapi.Ref(vm.Str)
	err := e.store.Update(e.ctx, func(tx *store.Tx) error {
		if err := tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error { fn(r.(*api.VM)); return nil }); err != nil {
			return err
		}
		return refreshVMStorageOps(tx, ref)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *stEnv) setPower(vm wire.Value, ps api.VMPowerState) {
	e.setVM(vm, func(v *api.VM) { v.PowerState = ps })
}

// setAttached marks a VBD plugged or not (VBD.plug is the domain manager's).
func (e *stEnv) setAttached(vbd wire.Value, on bool) {
	e.t.Helper()
	ref := xenapi.Ref(vbd.Str)
	err := e.store.Update(e.ctx, func(tx *store.Tx) error {
		if err := tx.Modify(api.ClassVBD, ref, func(r xenapi.Record) error {
			r.(*api.VBD).CurrentlyAttached = on
			return nil
		}); err != nil {
			return err
		}
		return refreshVBDAndVDIOps(tx, ref)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func vbdRecord(vm, vdi wire.Value, userdevice, typ, mode string, empty bool) wire.Value {
	return wire.Struct(
		wire.Member{Name: "VM", Value: vm},
		wire.Member{Name: "VDI", Value: vdi},
		wire.Member{Name: "userdevice", Value: wstr(userdevice)},
		wire.Member{Name: "bootable", Value: wire.Bool(false)},
		wire.Member{Name: "mode", Value: wstr(mode)},
		wire.Member{Name: "type", Value: wstr(typ)},
		wire.Member{Name: "unpluggable", Value: wire.Bool(true)},
		wire.Member{Name: "empty", Value: wire.Bool(empty)},
		wire.Member{Name: "other_config", Value: wmap()},
		wire.Member{Name: "qos_algorithm_type", Value: wstr("")},
		wire.Member{Name: "qos_algorithm_params", Value: wmap()},
	)
}

func (e *stEnv) createDisk(vm, vdi wire.Value, userdevice string) wire.Value {
	e.t.Helper()
	return e.do("VBD.create", vbdRecord(vm, vdi, userdevice, "Disk", "RW", false))
}

var wnull = wire.String(string(xenapi.NullRef))

func fileBlocks(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

const stGiB = 1 << 30

// --- SR ---------------------------------------------------------------------

func TestSRCreateFile(t *testing.T) {
	t.Parallel()
	for _, pc := range protocols {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			e := newStorageEnv(t).withProtocol(pc.p)
			dir := filepath.Join(t.TempDir(), "made", "by", "create")
			// A VDI file already in the directory is adopted.
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			old := "6c1f0a9e-1111-4222-8333-944455556666"
			if err := os.WriteFile(filepath.Join(dir, old+".raw"), make([]byte, 4096), 0o644); err != nil {
				t.Fatal(err)
			}
			sr := e.createSR("file", wmap("path", dir))
			for field, want := range map[string]string{"type": "file", "content_type": "user", "shared": "false", "name_label": "file SR"} {
				if got := e.get("SR", sr, field); got != want {
					t.Errorf("SR.%s = %q, want %q", field, got, want)
				}
			}
			if e.getInt("SR", sr, "physical_size") <= 0 || e.getInt("SR", sr, "physical_utilisation") <= 0 {
				t.Error("SR sizes not measured")
			}
			if e.getInt("SR", sr, "virtual_allocation") != 4096 {
				t.Errorf("virtual_allocation = %d", e.getInt("SR", sr, "virtual_allocation"))
			}
			ops := e.getStrings("SR", sr, "allowed_operations")
			for _, want := range []string{"scan", "vdi_create", "vdi_destroy", "vdi_clone", "vdi_snapshot", "vdi_resize", "unplug", "plug", "update"} {
				if !slices.Contains(ops, want) {
					t.Errorf("allowed_operations %v lacks %s", ops, want)
				}
			}
			for _, no := range []string{"destroy", "forget", "vdi_introduce", "vdi_mirror"} {
				if slices.Contains(ops, no) {
					t.Errorf("allowed_operations %v has %s", ops, no)
				}
			}
			pbd := e.myPBDOf(sr)
			if e.get("PBD", pbd, "currently_attached") != "true" || e.get("PBD", pbd, "host") != string(e.srv.hostRef) {
				t.Error("SR.create made no plugged PBD for the host")
			}
			if dc, _ := e.do("PBD.get_device_config", pbd).Field("path"); dc.Str != dir {
				t.Errorf("device_config path = %q", dc.Str)
			}
			vdis := e.getStrings("SR", sr, "VDIs")
			if len(vdis) != 1 || e.get("VDI", wstr(vdis[0]), "uuid") != old || e.get("VDI", wstr(vdis[0]), "location") != old+".raw" {
				t.Fatalf("VDIs of the new SR = %v", vdis)
			}
			if hostPBDs := e.do("host.get_PBDs", e.host()); !slices.ContainsFunc(hostPBDs.Array, func(v wire.Value) bool { return v.Str == pbd.Str }) {
				t.Error("host.PBDs lacks the new PBD")
			}
			types := e.do("SR.get_supported_types")
			if len(types.Array) != 2 || types.Array[0].Str != "file" || types.Array[1].Str != "iso" {
				t.Errorf("supported types = %+v", types)
			}
		})
	}
}

func TestSRCreateErrors(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	dir := t.TempDir()
	used := filepath.Join(dir, "used")
	e.createSR("file", wmap("path", used))
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	for _, tc := range []struct {
		name   string
		typ    string
		dc     wire.Value
		host   wire.Value
		code   string
		params []string
	}{
		{"unknown type", "nfs", wmap("server", "x"), wire.Value{}, api.ErrSRUnknownDriver, []string{"nfs"}},
		{"file without path", "file", wmap(), wire.Value{}, api.ErrSRBackendFailure + "_220", nil},
		{"relative path", "file", wmap("path", "rel"), wire.Value{}, api.ErrSRBackendFailure + "_222", nil},
		{"path is a file", "file", wmap("path", notDir), wire.Value{}, api.ErrSRBackendFailure + "_61", nil},
		{"directory of another SR", "file", wmap("path", used+"/"), wire.Value{}, api.ErrSRBackendFailure + "_42", nil},
		{"iso without location", "iso", wmap(), wire.Value{}, api.ErrSRBackendFailure + "_220", nil},
		{"iso directory missing", "iso", wmap("location", filepath.Join(dir, "none")), wire.Value{}, api.ErrSRBackendFailure + "_222", nil},
		{"SRmaster key", "file", wmap("path", dir, "SRmaster", "true"), wire.Value{}, api.ErrValueNotSupported, []string{"SRmaster", "true", "This key is for internal use only"}},
		{"bad host", "file", wmap("path", dir), wstr("OpaqueRef:nope"), api.ErrHandleInvalid, []string{"host", "OpaqueRef:nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := e.srCreateArgs(tc.typ, "", tc.dc)
			if tc.host.Str != "" {
				args[0] = tc.host
			}
			before := e.store.Count(api.ClassSR)
			e.wantCall(tc.code, tc.params, "SR.create", args...)
			if e.store.Count(api.ClassSR) != before {
				t.Error("a failed SR.create left an SR record")
			}
		})
	}
}

func TestSRScanFile(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	keep := e.createVDI(sr, stGiB)
	gone := e.createVDI(sr, stGiB)
	gonePath, keepPath := e.path(gone), e.path(keep)
	dir := filepath.Dir(keepPath)

	// A disk of a VM and a CD drive, both on the VDI whose file vanishes.
	vm := e.createVM("scan")
	disk := e.createDisk(vm, gone, "0")
	cd := e.do("VBD.create", vbdRecord(vm, gone, "3", "CD", "RO", false))

	if err := os.Remove(gonePath); err != nil {
		t.Fatal(err)
	}
	added := "0e0e0e0e-aaaa-4bbb-8ccc-0d0d0d0d0d0d"
	if err := os.WriteFile(filepath.Join(dir, added+".raw"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(keepPath, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 1<<20), 0) // zeros still allocate blocks
	f.WriteAt([]byte{1}, 2<<20)
	f.Close()
	if err := os.Truncate(keepPath, 2*stGiB); err != nil {
		t.Fatal(err)
	}

	e.do("SR.scan", sr)

	if e.exists("VDI", gone) {
		t.Error("the record of a vanished file survived the scan")
	}
	newVDI := e.do("VDI.get_by_uuid", wstr(added))
	if e.get("VDI", newVDI, "location") != added+".raw" || e.getInt("VDI", newVDI, "virtual_size") != 1<<20 ||
		e.get("VDI", newVDI, "managed") != "true" || e.get("VDI", newVDI, "SR") != sr.Str || e.get("VDI", newVDI, "type") != "user" {
		t.Errorf("scanned VDI = %+v", e.do("VDI.get_record", newVDI))
	}
	if got := e.getInt("VDI", keep, "virtual_size"); got != 2*stGiB {
		t.Errorf("virtual_size after growing the file = %d", got)
	}
	if got, want := e.getInt("VDI", keep, "physical_utilisation"), fileBlocks(t, keepPath); got != want || got < 1<<20 {
		t.Errorf("physical_utilisation = %d, blocks %d", got, want)
	}
	if e.exists("VBD", disk) {
		t.Error("a disk VBD of a vanished VDI survived")
	}
	if e.get("VBD", cd, "empty") != "true" || e.get("VBD", cd, "VDI") != string(xenapi.NullRef) {
		t.Error("a CD of a vanished VDI was not emptied")
	}
	if got := e.getInt("SR", sr, "virtual_allocation"); got != 2*stGiB+1<<20 {
		t.Errorf("virtual_allocation = %d", got)
	}
	if len(e.getStrings("SR", sr, "current_operations")) != 0 {
		t.Error("scan left a current operation")
	}
}

func TestSRISO(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "first.iso"), make([]byte, 2048), 0o644)
	sr := e.createSR("iso", wmap("location", dir))
	if e.get("SR", sr, "content_type") != "iso" {
		t.Errorf("content_type = %q", e.get("SR", sr, "content_type"))
	}
	vdis := e.getStrings("SR", sr, "VDIs")
	if len(vdis) != 1 {
		t.Fatalf("ISO SR VDIs = %v", vdis)
	}
	first := wstr(vdis[0])
	if e.get("VDI", first, "read_only") != "true" || e.get("VDI", first, "name_label") != "first.iso" || e.getInt("VDI", first, "virtual_size") != 2048 {
		t.Errorf("ISO VDI = %+v", e.do("VDI.get_record", first))
	}
	ops := e.getStrings("SR", sr, "allowed_operations")
	if slices.Contains(ops, "vdi_create") || slices.Contains(ops, "vdi_destroy") || !slices.Contains(ops, "scan") {
		t.Errorf("ISO SR allowed_operations = %v", ops)
	}
	if ops := e.getStrings("VDI", first, "allowed_operations"); !slices.Equal(ops, []string{"copy", "forget"}) {
		t.Errorf("ISO VDI allowed_operations = %v", ops)
	}

	os.Remove(filepath.Join(dir, "first.iso"))
	os.WriteFile(filepath.Join(dir, "second.iso"), make([]byte, 4096), 0o644)
	e.do("SR.scan", sr)
	vdis = e.getStrings("SR", sr, "VDIs")
	if len(vdis) != 1 || e.get("VDI", wstr(vdis[0]), "location") != "second.iso" {
		t.Fatalf("after rescan: %v", vdis)
	}
	second := wstr(vdis[0])

	e.wantCall(api.ErrSROperationNotSupported, []string{sr.Str}, "VDI.create", vdiRecord(sr, "x", 1))
	e.wantCall(api.ErrSROperationNotSupported, []string{sr.Str}, "VDI.destroy", second)
	e.wantCall(api.ErrSROperationNotSupported, []string{sr.Str}, "VDI.clone", second, wmap())
	e.wantCall(api.ErrSROperationNotSupported, []string{sr.Str}, "VDI.resize", second, wire.Int(1<<20))
	// A read-only ISO VDI goes in a read-only CD drive only.
	vm := e.createVM("iso")
	e.wantCall(api.ErrVDIReadonly, []string{second.Str}, "VBD.create", vbdRecord(vm, second, "1", "Disk", "RW", false))
	e.do("VBD.create", vbdRecord(vm, second, "3", "CD", "RO", false))
}

func TestSRForgetAndReintroduce(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	dir := filepath.Join(t.TempDir(), "sr")
	sr := e.createSR("file", wmap("path", dir))
	srUUID := e.get("SR", sr, "uuid")
	vdi := e.createVDI(sr, stGiB)
	vdiUUID, file := e.get("VDI", vdi, "uuid"), e.path(vdi)
	pbd := e.myPBDOf(sr)

	e.wantCall(api.ErrSRHasPBD, []string{sr.Str}, "SR.forget", sr)
	e.do("PBD.unplug", pbd)
	if ops := e.getStrings("SR", sr, "allowed_operations"); !slices.Contains(ops, "forget") || slices.Contains(ops, "destroy") {
		t.Errorf("unplugged SR with a VDI: allowed_operations %v", ops)
	}
	e.do("SR.forget", sr)
	for class, ref := range map[string]wire.Value{"SR": sr, "PBD": pbd, "VDI": vdi} {
		if e.exists(class, ref) {
			t.Errorf("%s record survived SR.forget", class)
		}
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("SR.forget touched the disk: %v", err)
	}

	// Reattach: introduce, PBD.create, PBD.plug, SR.scan.
	sr2 := e.do("SR.introduce", wstr(srUUID), wstr("back"), wstr(""), wstr("file"), wstr("user"), wire.Bool(false), wmap())
	e.wantCall(api.ErrSRUUIDExists, []string{srUUID}, "SR.introduce", wstr(srUUID), wstr("again"), wstr(""), wstr("file"), wstr("user"), wire.Bool(false), wmap())
	if e.getInt("SR", sr2, "physical_size") != -1 {
		t.Error("an introduced SR has a size")
	}
	e.wantCall(api.ErrSRHasNoPbds, []string{sr2.Str}, "SR.scan", sr2)
	pbd2 := e.do("PBD.create", wire.Struct(
		wire.Member{Name: "host", Value: e.host()},
		wire.Member{Name: "SR", Value: sr2},
		wire.Member{Name: "device_config", Value: wmap("path", dir)},
		wire.Member{Name: "other_config", Value: wmap()},
	))
	e.wantCall(api.ErrSRHasNoPbds, []string{sr2.Str}, "SR.scan", sr2)
	e.do("PBD.plug", pbd2)
	if e.getInt("SR", sr2, "physical_size") <= 0 {
		t.Error("PBD.plug did not measure the SR")
	}
	e.do("SR.scan", sr2)
	back := e.do("VDI.get_by_uuid", wstr(vdiUUID))
	if e.get("VDI", back, "SR") != sr2.Str || e.getInt("VDI", back, "virtual_size") != stGiB {
		t.Error("the VDI did not come back with its uuid")
	}
}

func TestSRDestroy(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	dir := filepath.Join(t.TempDir(), "sr")
	sr := e.createSR("file", wmap("path", dir))
	vdi := e.createVDI(sr, stGiB)
	pbd := e.myPBDOf(sr)

	e.wantCall(api.ErrSRHasPBD, []string{sr.Str}, "SR.destroy", sr)
	e.do("PBD.unplug", pbd)
	e.wantCall(api.ErrSRNotEmpty, []string{}, "SR.destroy", sr)
	// VDIs are destroyed through a plugged SR.
	e.wantCall(api.ErrSRHasNoPbds, []string{sr.Str}, "VDI.destroy", vdi)
	e.do("PBD.plug", pbd)
	e.do("VDI.destroy", vdi)
	e.do("PBD.unplug", pbd)

	e.do("SR.add_to_other_config", sr, wstr("indestructible"), wstr("true"))
	e.wantCall(api.ErrSRIndestructible, []string{sr.Str}, "SR.destroy", sr)
	e.do("SR.remove_from_other_config", sr, wstr("indestructible"))

	e.do("SR.destroy", sr)
	if e.exists("SR", sr) || e.exists("PBD", pbd) {
		t.Error("records survived SR.destroy")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the SR directory survived: %v", err)
	}

	// An SR without PBDs cannot be destroyed (there is nothing to reach the
	// storage through).
	lone := e.do("SR.introduce", wstr(""), wstr("lone"), wstr(""), wstr("file"), wstr("user"), wire.Bool(false), wmap())
	e.wantCall(api.ErrSRHasNoPbds, []string{lone.Str}, "SR.destroy", lone)
	e.do("SR.forget", lone)

	// An ISO SR keeps its images.
	isoDir := t.TempDir()
	os.WriteFile(filepath.Join(isoDir, "keep.iso"), []byte("x"), 0o644)
	isr := e.createSR("iso", wmap("location", isoDir))
	e.do("PBD.unplug", e.myPBDOf(isr))
	e.wantCall(api.ErrSRNotEmpty, []string{}, "SR.destroy", isr)
	e.do("SR.forget", isr)
	if _, err := os.Stat(filepath.Join(isoDir, "keep.iso")); err != nil {
		t.Fatal("an ISO image was removed")
	}
}

func TestSRUpdateAndSetters(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	e.do("SR.update", sr)
	if e.getInt("SR", sr, "physical_size") <= 0 {
		t.Error("SR.update measured nothing")
	}
	e.do("SR.set_name_label", sr, wstr("renamed"))
	e.do("SR.set_name_description", sr, wstr("described"))
	if e.get("SR", sr, "name_label") != "renamed" || e.get("SR", sr, "name_description") != "described" {
		t.Error("SR name setters")
	}
	e.do("SR.set_shared", sr, wire.Bool(true))
	e.do("SR.set_shared", sr, wire.Bool(false))
	if e.get("SR", sr, "shared") != "false" {
		t.Error("SR.set_shared")
	}
	e.wantCall(api.ErrPermissionDenied, []string{""}, "SR.set_physical_size", sr, wire.Int(1))
	e.wantCall(api.ErrMessageDeprecated, nil, "SR.make", e.host(), wmap(), wire.Int(0), wstr(""), wstr(""), wstr("file"), wstr(""), wmap())
	e.do("PBD.unplug", e.myPBDOf(sr))
	e.wantCall(api.ErrSRHasNoPbds, []string{sr.Str}, "SR.update", sr)
}

// TestSROperationsWait: operations on one SR wait for each other instead of
// failing with OTHER_OPERATION_IN_PROGRESS.
func TestSROperationsWait(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	src := e.createVDI(sr, 64<<20)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, errs[i] = e.call("VDI.clone", src, wmap())
			} else {
				_, errs[i] = e.call("VDI.create", vdiRecord(sr, "parallel", 1<<20))
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if n := len(e.getStrings("SR", sr, "VDIs")); n != 7 {
		t.Errorf("%d VDIs, want 7", n)
	}
	if ops := e.do("SR.get_current_operations", sr); len(ops.Struct) != 0 {
		t.Errorf("current_operations left: %+v", ops)
	}
}

// TestStaleOperationsClearedAtStart: a restart drops the marks of
// operations that were running.
func TestStaleOperationsClearedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := openEnv(t, dir, Config{}, store.Options{})
	var sr xenapi.Ref
	err := e.store.Update(context.Background(), func(tx *store.Tx) error {
		for ref := range tx.All(api.ClassSR) {
			sr = ref
		}
		if err := tx.Modify(api.ClassSR, sr, func(r xenapi.Record) error {
			r.(*api.SR).CurrentOperations = xenapi.MapOf(map[string]api.StorageOperations{"OpaqueRef:dead": api.StorageOperationsScan})
			return nil
		}); err != nil {
			return err
		}
		return refreshSROps(tx, sr)
	})
	if err != nil {
		t.Fatal(err)
	}
	row, _ := e.store.Get(api.ClassSR, sr)
	if slices.Contains(row.Rec.(*api.SR).AllowedOperations, api.StorageOperationsVDICreate) {
		t.Fatal("a running scan allows vdi_create")
	}
	e.close()
	e2 := openEnv(t, dir, Config{}, store.Options{})
	defer e2.close()
	row, _ = e2.store.Get(api.ClassSR, sr)
	rec := row.Rec.(*api.SR)
	if len(rec.CurrentOperations) != 0 || !slices.Contains(rec.AllowedOperations, api.StorageOperationsVDICreate) {
		t.Errorf("after restart: current %v, allowed %v", rec.CurrentOperations, rec.AllowedOperations)
	}
}
