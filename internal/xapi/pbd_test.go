package xapi

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/wire"
)

func pbdRecord(host, sr wire.Value, dc wire.Value) wire.Value {
	return wire.Struct(
		wire.Member{Name: "host", Value: host},
		wire.Member{Name: "SR", Value: sr},
		wire.Member{Name: "device_config", Value: dc},
		wire.Member{Name: "other_config", Value: wmap()},
	)
}

func TestPBDLifecycle(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	dir := filepath.Join(t.TempDir(), "sr")
	sr := e.createSR("file", wmap("path", dir))
	pbd := e.myPBDOf(sr)

	e.wantCall(api.ErrPBDExists, []string{sr.Str, string(e.srv.hostRef), pbd.Str}, "PBD.create", pbdRecord(e.host(), sr, wmap("path", dir)))
	e.wantCall(api.ErrOperationNotAllowed, []string{"PBD is currently attached"}, "PBD.destroy", pbd)
	e.wantCall(api.ErrPermissionDenied, []string{""}, "PBD.set_device_config", pbd, wmap("path", "/elsewhere"))
	e.do("PBD.plug", pbd) // plugging a plugged PBD changes nothing

	e.do("PBD.unplug", pbd)
	e.do("PBD.unplug", pbd) // nor does unplugging an unplugged one
	if e.get("PBD", pbd, "currently_attached") != "false" {
		t.Fatal("unplug")
	}
	ops := e.getStrings("SR", sr, "allowed_operations")
	if !slices.Contains(ops, "destroy") || !slices.Contains(ops, "forget") {
		t.Errorf("unplugged empty SR: allowed_operations %v", ops)
	}
	// Storage operations need a plugged PBD.
	for _, c := range []struct {
		method string
		args   []wire.Value
	}{
		{"SR.scan", []wire.Value{sr}},
		{"SR.update", []wire.Value{sr}},
		{"VDI.create", []wire.Value{vdiRecord(sr, "x", 1)}},
	} {
		e.wantCall(api.ErrSRHasNoPbds, []string{sr.Str}, c.method, c.args...)
	}

	e.do("PBD.destroy", pbd)
	if e.exists("PBD", pbd) || len(e.getStrings("SR", sr, "PBDs")) != 0 {
		t.Fatal("PBD.destroy")
	}
	if slices.Contains(e.getStrings("SR", sr, "allowed_operations"), "destroy") {
		t.Error("an SR without PBDs may be destroyed")
	}
	e.wantCall(api.ErrSRHasNoPbds, []string{sr.Str}, "SR.scan", sr)
	e.wantCall(api.ErrValueNotSupported, []string{"SRmaster", "x", "This key is for internal use only"}, "PBD.create", pbdRecord(e.host(), sr, wmap("path", dir, "SRmaster", "x")))
	e.wantCall(api.ErrHandleInvalid, []string{"host", "OpaqueRef:nohost"}, "PBD.create", pbdRecord(wstr("OpaqueRef:nohost"), sr, wmap("path", dir)))
	e.wantCall(api.ErrHandleInvalid, []string{"SR", "OpaqueRef:nosr"}, "PBD.create", pbdRecord(e.host(), wstr("OpaqueRef:nosr"), wmap("path", dir)))

	// A PBD whose directory vanished does not plug.
	pbd2 := e.do("PBD.create", pbdRecord(e.host(), sr, wmap("path", dir)))
	if e.get("PBD", pbd2, "currently_attached") != "false" {
		t.Error("a new PBD is plugged")
	}
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	e.wantCall(api.ErrSRBackendFailure+"_47", nil, "PBD.plug", pbd2)
	if err := os.Rename(dir+".moved", dir); err != nil {
		t.Fatal(err)
	}
	e.do("PBD.plug", pbd2)
	if e.get("PBD", pbd2, "currently_attached") != "true" {
		t.Error("plug")
	}
	e.do("SR.scan", sr)
}

func TestPBDUnknownDriver(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.do("SR.introduce", wstr(""), wstr("nfs"), wstr(""), wstr("NFS"), wstr("user"), wire.Bool(true), wmap())
	if e.get("SR", sr, "type") != "nfs" {
		t.Error("SR.introduce does not lower the type")
	}
	pbd := e.do("PBD.create", pbdRecord(e.host(), sr, wmap("server", "filer")))
	e.wantCall(api.ErrSRUnknownDriver, []string{"nfs"}, "PBD.plug", pbd)
	if ops := e.getStrings("SR", sr, "allowed_operations"); slices.Contains(ops, "vdi_create") {
		t.Errorf("an SR of an unknown type allows %v", ops)
	}
}

func TestPBDUnplugInUse(t *testing.T) {
	t.Parallel()
	e := newStorageEnv(t)
	sr := e.localSR()
	pbd := e.myPBDOf(sr)
	used, idle := e.createVDI(sr, 1<<20), e.createVDI(sr, 1<<20)
	vm := e.createVM("running")
	e.createDisk(vm, used, "0")
	e.createDisk(e.createVM("halted"), idle, "0")
	e.setPower(vm, api.VMPowerStateRunning)
	e.wantCall(api.ErrVDIInUse, []string{used.Str}, "PBD.unplug", pbd)
	if e.get("PBD", pbd, "currently_attached") != "true" {
		t.Fatal("a refused unplug unplugged")
	}
	e.setPower(vm, api.VMPowerStateHalted)
	e.do("PBD.unplug", pbd)
	if ops := e.getStrings("VDI", idle, "allowed_operations"); slices.Contains(ops, "resize") {
		t.Errorf("VDI of an unplugged SR: %v", ops)
	}
	e.do("PBD.plug", pbd)
	if ops := e.getStrings("VDI", idle, "allowed_operations"); !slices.Contains(ops, "resize") {
		t.Errorf("VDI of a replugged SR: %v", ops)
	}
}
