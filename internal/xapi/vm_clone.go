package xapi

import (
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// VM.clone, VM.copy, VM.snapshot and VM.provision: new VMs from existing
// ones and disks from a template's recipe.

func (s *Server) registerVMCloneHandlers() {
	s.handle("VM.clone", func(ctx context.Context, c *Call) (Result, error) {
		ref, err := s.cloneVM(ctx, c.Ref(0), c.Str(1), diskClone, xenapi.NullRef, nil)
		return refResult(ref), err
	}, -1)
	s.handle("VM.copy", func(ctx context.Context, c *Call) (Result, error) {
		ref, err := s.cloneVM(ctx, c.Ref(0), c.Str(1), diskCopy, c.Ref(2), nil)
		return refResult(ref), err
	}, -1)
	s.handle("VM.snapshot", func(ctx context.Context, c *Call) (Result, error) {
		ignore := map[xenapi.Ref]bool{}
		for _, v := range c.Arg(2).Array {
			ignore[xenapi.Ref(v.Str)] = true
		}
		ref, err := s.cloneVM(ctx, c.Ref(0), c.Str(1), diskSnapshot, xenapi.NullRef, ignore)
		return refResult(ref), err
	}, 3)
	s.handle("VM.revert", func(ctx context.Context, c *Call) (Result, error) {
		return nil, s.revertVM(ctx, c.Ref(0))
	}, -1)
	s.handle("VM.provision", func(ctx context.Context, c *Call) (Result, error) {
		return nil, s.provisionVM(ctx, c.Ref(0))
	}, -1)
	s.handle("VM.get_allowed_VBD_devices", func(ctx context.Context, c *Call) (Result, error) {
		free, err := s.allowedVBDDevicesOf(c.Ref(0))
		if err != nil {
			return nil, err
		}
		return func(e wire.Encoder) { xenapi.EncSet(e, free, xenapi.EncStr[string]) }, nil
	}, -1)
}

type diskMode int

const (
	diskClone diskMode = iota
	diskCopy
	diskSnapshot
)

// cloneVM makes a new VM from src: its configuration, its disks (cloned,
// copied to sr, or snapshotted) and its NICs (with new MACs).
func (s *Server) cloneVM(ctx context.Context, src xenapi.Ref, name string, mode diskMode, sr xenapi.Ref, ignore map[xenapi.Ref]bool) (xenapi.Ref, error) {
	row, err := s.store.Get(api.ClassVM, src)
	if err != nil {
		return "", err
	}
	vm := row.Rec.(*api.VM)
	op := api.VMOperationsClone
	switch mode {
	case diskCopy:
		op = api.VMOperationsCopy
		if _, err := s.store.Get(api.ClassSR, sr); err != nil && !sr.IsNull() {
			return "", err
		}
	case diskSnapshot:
		op = api.VMOperationsSnapshot
	}
	if err := domain.CheckOperation(src, vm, op); err != nil {
		return "", err
	}
	// The new record: the source's configuration (create keeps the
	// writable and constructor fields), a new name, no default-template
	// marks.
	var b wire.Builder
	vm.Encode(&b)
	args := b.Value()
	for i := range args.Struct {
		m := &args.Struct[i]
		switch m.Name {
		case "name_label":
			m.Value = wire.String(name)
		case "uuid":
			m.Value = wire.String("")
		case "other_config":
			kept := m.Value.Struct[:0:0]
			for _, kv := range m.Value.Struct {
				if kv.Name != "default_template" {
					kept = append(kept, kv)
				}
			}
			m.Value.Struct = kept
		}
	}
	newRef, err := s.create(ctx, api.ClassVM, args)
	if err != nil {
		return "", err
	}
	cleanup := func() { _ = s.destroyVMAndDisks(context.WithoutCancel(ctx), newRef) }
	now := time.Now().UTC().Truncate(time.Second)
	err = s.store.Update(ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassVM, newRef, func(r xenapi.Record) error {
			n := r.(*api.VM)
			n.IsDefaultTemplate = false
			switch mode {
			case diskSnapshot:
				n.IsASnapshot, n.IsATemplate, n.SnapshotOf, n.SnapshotTime = true, true, src, now
			default:
				n.Parent = src
			}
			n.AllowedOperations = domain.AllowedOperations(n)
			return nil
		})
	})
	if err != nil {
		cleanup()
		return "", err
	}
	for _, vbdRef := range vm.VBDs {
		r, err := s.store.Get(api.ClassVBD, vbdRef)
		if err != nil {
			continue
		}
		vbd := r.Rec.(*api.VBD)
		vdi := vbd.VDI
		if !vbd.Empty && !vdi.IsNull() && vbd.Type == api.VBDTypeDisk && !ignore[vdi] {
			if vdi, err = s.cloneDisk(ctx, vdi, mode, sr); err != nil {
				cleanup()
				return "", err
			}
		}
		if ignore[vbd.VDI] {
			continue
		}
		if err := s.copyVBD(ctx, vbd, newRef, vdi); err != nil {
			cleanup()
			return "", err
		}
	}
	for _, vifRef := range vm.VIFs {
		r, err := s.store.Get(api.ClassVIF, vifRef)
		if err != nil {
			continue
		}
		var vb wire.Builder
		r.Rec.Encode(&vb)
		vargs := vb.Value()
		setMember(&vargs, "VM", wire.String(string(newRef)))
		setMember(&vargs, "uuid", wire.String(""))
		if mode != diskSnapshot {
			setMember(&vargs, "MAC", wire.String("")) // a clone gets its own MAC
		}
		if _, err := s.create(ctx, api.ClassVIF, vargs); err != nil {
			cleanup()
			return "", err
		}
	}
	s.log.Info("VM cloned", "from", src, "to", newRef, "mode", mode)
	return newRef, nil
}

func setMember(v *wire.Value, name string, x wire.Value) {
	for i := range v.Struct {
		if v.Struct[i].Name == name {
			v.Struct[i].Value = x
			return
		}
	}
	v.Struct = append(v.Struct, wire.Member{Name: name, Value: x})
}

// cloneDisk runs the VDI message the mode calls for and returns the new VDI.
func (s *Server) cloneDisk(ctx context.Context, vdi xenapi.Ref, mode diskMode, sr xenapi.Ref) (xenapi.Ref, error) {
	var h handlerFunc
	var args []wire.Value
	switch mode {
	case diskCopy:
		if sr.IsNull() {
			r, err := s.store.Get(api.ClassVDI, vdi)
			if err != nil {
				return "", err
			}
			sr = r.Rec.(*api.VDI).SR
		}
		h, args = s.vdiCopy, []wire.Value{wire.String(string(vdi)), wire.String(string(sr)),
			wire.String(string(xenapi.NullRef)), wire.String(string(xenapi.NullRef))}
	case diskSnapshot:
		h, args = s.vdiCloneOrSnapshot(true), []wire.Value{wire.String(string(vdi)), wire.Struct()}
	default:
		h, args = s.vdiCloneOrSnapshot(false), []wire.Value{wire.String(string(vdi)), wire.Struct()}
	}
	res, err := h(ctx, &Call{Args: args})
	if err != nil {
		return "", err
	}
	var b wire.Builder
	res(&b)
	return xenapi.Ref(b.Value().Str), nil
}

// destroyVMAndDisks undoes a half-made clone.
func (s *Server) destroyVMAndDisks(ctx context.Context, ref xenapi.Ref) error {
	row, err := s.store.Get(api.ClassVM, ref)
	if err != nil {
		return err
	}
	for _, vbdRef := range row.Rec.(*api.VM).VBDs {
		if r, err := s.store.Get(api.ClassVBD, vbdRef); err == nil {
			if vdi := r.Rec.(*api.VBD).VDI; !vdi.IsNull() && r.Rec.(*api.VBD).Type == api.VBDTypeDisk {
				_, _ = s.vdiDestroy(ctx, &Call{Args: []wire.Value{wire.String(string(vdi))}})
			}
		}
	}
	return s.destroy(ctx, api.ClassVM, ref)
}

// provisionSpec is the other_config:disks recipe of a template.
type provisionSpec struct {
	Disks []struct {
		Device   string `xml:"device,attr"`
		Size     int64  `xml:"size,attr"`
		SR       string `xml:"sr,attr"`
		Bootable bool   `xml:"bootable,attr"`
		Type     string `xml:"type,attr"`
	} `xml:"disk"`
}

// provisionVM creates the disks a VM's other_config:disks asks for (in
// the named SR, else the pool's default SR) and removes the recipe, as
// xapi does after provisioning.
func (s *Server) provisionVM(ctx context.Context, ref xenapi.Ref) error {
	row, err := s.store.Get(api.ClassVM, ref)
	if err != nil {
		return err
	}
	vm := row.Rec.(*api.VM)
	if err := domain.CheckOperation(ref, vm, api.VMOperationsProvision); err != nil {
		return err
	}
	recipe := vm.OtherConfig.Get("disks")
	if recipe == "" {
		return nil
	}
	var spec provisionSpec
	if err := xml.Unmarshal([]byte(recipe), &spec); err != nil {
		return xenapi.NewError(api.ErrInvalidValue, "other_config:disks", fmt.Sprintf("not a provisioning recipe: %v", err))
	}
	defaultSR := xenapi.NullRef
	for _, p := range s.store.All(api.ClassPool) {
		defaultSR = p.Rec.(*api.Pool).DefaultSR
	}
	for _, d := range spec.Disks {
		sr := defaultSR
		if d.SR != "" {
			r, err := s.store.ByUUID(api.ClassSR, d.SR)
			if err != nil {
				return err
			}
			sr = r.Ref
		}
		if sr.IsNull() {
			return xenapi.NewError(api.ErrVMRequiresSR, string(ref), string(sr))
		}
		want := api.NewVDI()
		want.NameLabel = vm.NameLabel + " " + d.Device
		want.NameDescription = "Created by template provisioner"
		want.SR, want.VirtualSize = sr, d.Size
		if t, ok := api.ParseVDIType(d.Type); ok {
			want.Type = t
		} else {
			want.Type = api.VDITypeSystem
		}
		vdi, err := s.createVDI(ctx, want)
		if err != nil {
			return err
		}
		vbd := wire.Struct(
			wire.Member{Name: "VM", Value: wire.String(string(ref))},
			wire.Member{Name: "VDI", Value: wire.String(string(vdi))},
			wire.Member{Name: "userdevice", Value: wire.String(d.Device)},
			wire.Member{Name: "bootable", Value: wire.Bool(d.Bootable)},
			wire.Member{Name: "mode", Value: wire.String("RW")},
			wire.Member{Name: "type", Value: wire.String("Disk")},
			wire.Member{Name: "other_config", Value: wire.Struct(wire.Member{Name: "owner", Value: wire.String("")})}, // xe vm-uninstall destroys the disks the VM owns
		)
		if _, err := s.vbdCreate(ctx, &Call{Args: []wire.Value{vbd}}); err != nil {
			return err
		}
	}
	return s.store.Update(ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			v := r.(*api.VM)
			v.OtherConfig = v.OtherConfig.Without("disks")
			return nil
		})
	})
}

// revertVM brings a VM back to a snapshot: the VM stops if it runs, its
// disks are replaced by clones of the snapshot's and its configuration by
// the snapshot's. The VM keeps its identity (ref, uuid, name) and NICs.
func (s *Server) revertVM(ctx context.Context, snapRef xenapi.Ref) error {
	row, err := s.store.Get(api.ClassVM, snapRef)
	if err != nil {
		return err
	}
	snap := row.Rec.(*api.VM)
	if !snap.IsASnapshot {
		return xenapi.NewError(api.ErrRevertOnlyAllowedOnSnapshot)
	}
	vmRef := snap.SnapshotOf
	vmRow, err := s.store.Get(api.ClassVM, vmRef)
	if err != nil {
		return xenapi.NewError(api.ErrVMRevertFailed, string(vmRef), string(snapRef))
	}
	if vm := vmRow.Rec.(*api.VM); vm.PowerState != api.VMPowerStateHalted && s.domains != nil {
		if err := s.domains.HardShutdown(ctx, vmRef); err != nil {
			return err
		}
		vmRow, _ = s.store.Get(api.ClassVM, vmRef)
	}
	vm := vmRow.Rec.(*api.VM)
	// Drop the VM's current disks (their VDIs too: the snapshot holds the
	// state to return to), then attach clones of the snapshot's.
	for vbdRef, vbd := range s.diskVBDs(vm.VBDs) {
		if _, err := s.vbdDestroy(ctx, &Call{Args: []wire.Value{wire.String(string(vbdRef))}}); err != nil {
			return err
		}
		if _, err := s.vdiDestroy(ctx, &Call{Args: []wire.Value{wire.String(string(vbd.VDI))}}); err != nil {
			return err
		}
	}
	for _, vbd := range s.diskVBDs(snap.VBDs) {
		vdi, err := s.cloneDisk(ctx, vbd.VDI, diskClone, xenapi.NullRef)
		if err != nil {
			return err
		}
		if err := s.copyVBD(ctx, vbd, vmRef, vdi); err != nil {
			return err
		}
	}
	return s.store.Update(ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassVM, vmRef, func(r xenapi.Record) error {
			v := r.(*api.VM)
			v.MemoryStaticMin, v.MemoryDynamicMin = snap.MemoryStaticMin, snap.MemoryDynamicMin
			v.MemoryDynamicMax, v.MemoryStaticMax = snap.MemoryDynamicMax, snap.MemoryStaticMax
			v.VCPUsMax, v.VCPUsAtStartup, v.VCPUsParams = snap.VCPUsMax, snap.VCPUsAtStartup, snap.VCPUsParams
			v.Platform, v.OtherConfig = snap.Platform, snap.OtherConfig
			v.HVMBootPolicy, v.HVMBootParams = snap.HVMBootPolicy, snap.HVMBootParams
			v.PVKernel, v.PVRamdisk, v.PVArgs = snap.PVKernel, snap.PVRamdisk, snap.PVArgs
			v.ActionsAfterShutdown, v.ActionsAfterReboot, v.ActionsAfterCrash = snap.ActionsAfterShutdown, snap.ActionsAfterReboot, snap.ActionsAfterCrash
			v.Parent = snapRef
			return nil
		})
	})
}

// diskVBDs returns the VBDs among refs that are disks with a VDI.
func (s *Server) diskVBDs(refs []xenapi.Ref) map[xenapi.Ref]*api.VBD {
	out := make(map[xenapi.Ref]*api.VBD)
	for _, ref := range refs {
		if r, err := s.store.Get(api.ClassVBD, ref); err == nil {
			if vbd := r.Rec.(*api.VBD); vbd.Type == api.VBDTypeDisk && !vbd.VDI.IsNull() {
				out[ref] = vbd
			}
		}
	}
	return out
}

// copyVBD creates a VBD like vbd on vm, pointing at vdi.
func (s *Server) copyVBD(ctx context.Context, vbd *api.VBD, vm, vdi xenapi.Ref) error {
	var b wire.Builder
	vbd.Encode(&b)
	args := b.Value()
	setMember(&args, "VM", wire.String(string(vm)))
	setMember(&args, "VDI", wire.String(string(vdi)))
	setMember(&args, "uuid", wire.String(""))
	_, err := s.vbdCreate(ctx, &Call{Args: []wire.Value{args}})
	return err
}
