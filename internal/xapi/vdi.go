package xapi

import (
	"context"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// VDI.* messages (xapi's xapi_vdi.ml and the VDI part of
// message_forwarding.ml). A VDI's data lives in its SR's driver; the
// record's location names it there.

func (s *Server) registerVDIHandlers() {
	s.handle("VDI.create", s.vdiCreate, -1)
	s.handle("VDI.destroy", s.vdiDestroy, -1)
	s.handle("VDI.forget", s.vdiForget, -1)
	s.handle("VDI.clone", s.vdiCloneOrSnapshot(false), -1)
	s.handle("VDI.snapshot", s.vdiCloneOrSnapshot(true), -1)
	s.handle("VDI.copy", s.vdiCopy, -1)
	s.handle("VDI.resize", s.vdiResize, -1)
	s.handle("VDI.update", s.vdiUpdate, -1)
	s.handle("VDI.set_name_label", s.fieldSet(api.ClassVDI, api.ClassVDI.Field("name_label")), -1)
	s.handle("VDI.set_name_description", s.fieldSet(api.ClassVDI, api.ClassVDI.Field("name_description")), -1)
	s.handle("VDI.set_on_boot", s.vdiSetOnBoot, -1)
	s.handle("VDI.set_allow_caching", s.vdiSetAllowCaching, -1)
	// Only storage backends may change these (xapi checks for an SM session).
	s.handle("VDI.set_read_only", internalStorageOnly, -1)
	s.handle("VDI.set_sharable", internalStorageOnly, -1)
	for _, name := range []string{"VDI.clone", "VDI.snapshot", "VDI.copy"} {
		s.methods[name].cancellable = true
	}
}

// vdiFormat is the image format a VDI.create asks for in its sm_config
// ("image-format", as XCP-ng names it, or "type"); "" is the SR's default.
func vdiFormat(smConfig xenapi.Map[string, string]) string {
	if f := smConfig.Get("image-format"); f != "" {
		return f
	}
	return smConfig.Get("type")
}

// vdiSMConfig is the sm_config of a VDI: base plus its image format.
func vdiSMConfig(base xenapi.Map[string, string], format string) xenapi.Map[string, string] {
	if format == "" {
		return base
	}
	return base.With("image-format", format)
}

func (s *Server) vdiCreate(ctx context.Context, c *Call) (Result, error) {
	r, err := stoDecodeRecord(api.ClassVDI, c.Arg(0))
	if err != nil {
		return nil, err
	}
	ref, err := s.createVDI(ctx, r.(*api.VDI))
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

// createVDI makes a VDI from the constructor fields of want (name_label,
// name_description, SR, virtual_size, type, sharable, read_only,
// other_config, xenstore_data, sm_config, tags): the driver makes the
// image, then the record is written.
func (s *Server) createVDI(ctx context.Context, want *api.VDI) (xenapi.Ref, error) {
	if want.Type == api.VDITypeCbtMetadata {
		return "", xenapi.NewError(api.ErrVDIIncompatibleType, "", string(api.VDITypeCbtMetadata))
	}
	var ref xenapi.Ref
	err := s.withStorageOps(ctx, []stoOp{{api.ClassSR, want.SR, string(api.StorageOperationsVDICreate)}}, func() error {
		drv, _, err := s.srDriver(want.SR, true)
		if err != nil {
			return err
		}
		id := uuid.NewString()
		info, err := drv.CreateVDI(ctx, id, want.VirtualSize, vdiFormat(want.SMConfig))
		if err != nil {
			return storageError(err, want.SR, "")
		}
		st, stErr := drv.Stat(ctx)
		err = s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			vdi := api.NewVDI()
			vdi.UUID = id
			vdi.NameLabel, vdi.NameDescription = want.NameLabel, want.NameDescription
			vdi.SR = want.SR
			vdi.Type, vdi.Sharable, vdi.ReadOnly = want.Type, want.Sharable, want.ReadOnly
			vdi.OtherConfig, vdi.XenstoreData = want.OtherConfig, want.XenstoreData
			vdi.SMConfig = vdiSMConfig(want.SMConfig, info.Format)
			vdi.Tags = want.Tags
			vdi.Location = info.Location
			vdi.VirtualSize, vdi.PhysicalUtilisation = info.VirtualSize, info.PhysicalUtilisation
			vdi.Managed = true
			var err error
			if ref, err = tx.Create(vdi); err != nil {
				return err
			}
			if err := refreshVDIOps(tx, ref); err != nil {
				return err
			}
			return srSetSizes(tx, want.SR, stoStat(st, stErr))
		})
		if err != nil {
			_ = drv.DestroyVDI(context.WithoutCancel(ctx), info.Location)
		}
		return err
	})
	return ref, err
}

// stoStat passes on an SR measurement unless taking it failed.
func stoStat(st storage.SRStat, err error) *storage.SRStat {
	if err != nil {
		return nil
	}
	return &st
}

// vdiDestroy removes the VDI's image and record, and the VBDs that refer to
// it. A VDI in use by a VM is refused (VDI_IN_USE [vdi, "destroy"]).
func (s *Server) vdiDestroy(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	return nil, s.withManagedVDI(ctx, ref, api.StorageOperationsVDIDestroy, api.VDIOperationsDestroy, func(drv storage.Driver, srRef xenapi.Ref, vdi *api.VDI) error {
		if err := s.vdiAssertNotInUse(ref, vdi, api.VDIOperationsDestroy); err != nil {
			return err
		}
		if err := drv.DestroyVDI(ctx, vdi.Location); err != nil {
			return storageError(err, srRef, ref)
		}
		st, stErr := drv.Stat(ctx)
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := vdiDeleteRecord(tx, ref, true); err != nil {
				return err
			}
			return srSetSizes(tx, srRef, stoStat(st, stErr))
		})
	})
}

// withManagedVDI runs fn on a managed VDI while its SR and itself are
// marked with the operations (see withStorageOps), with the SR's driver and
// the VDI as it is once the marks are taken.
func (s *Server) withManagedVDI(ctx context.Context, ref xenapi.Ref, srOp api.StorageOperations, vdiOp api.VDIOperations,
	fn func(drv storage.Driver, srRef xenapi.Ref, vdi *api.VDI) error) error {
	r, err := s.storeGet(api.ClassVDI, ref)
	if err != nil {
		return err
	}
	srRef := r.(*api.VDI).SR
	ops := []stoOp{{api.ClassSR, srRef, string(srOp)}, {api.ClassVDI, ref, string(vdiOp)}}
	return s.withStorageOps(ctx, ops, func() error {
		drv, _, err := s.srDriver(srRef, true)
		if err != nil {
			return err
		}
		r, err := s.storeGet(api.ClassVDI, ref)
		if err != nil {
			return err
		}
		vdi := r.(*api.VDI)
		if !vdi.Managed {
			return xenapi.NewError(api.ErrVDINotManaged, string(ref))
		}
		return fn(drv, srRef, vdi)
	})
}

// vdiAssertNotInUse re-checks, just before the image goes, that no VM uses
// the VDI.
func (s *Server) vdiAssertNotInUse(ref xenapi.Ref, vdi *api.VDI, op api.VDIOperations) error {
	var err error
	_ = s.store.Update(context.Background(), func(tx *store.Tx) error {
		for _, b := range vdi.VBDs {
			if br, e := tx.Get(api.ClassVBD, b); e == nil && vbdInUse(tx, br.(*api.VBD)) {
				err = xenapi.NewError(api.ErrVDIInUse, string(ref), string(op))
				break
			}
		}
		return nil
	})
	return err
}

// vdiDeleteRecord deletes a VDI record as VDI.destroy does: every VBD that
// refers to it goes too, and VMs suspended to it lose their suspend_VDI.
func vdiDeleteRecord(tx *store.Tx, ref xenapi.Ref, allVMs bool) error {
	r, err := tx.Get(api.ClassVDI, ref)
	if err != nil {
		return err
	}
	vdi := r.(*api.VDI)
	for _, b := range vdi.VBDs {
		if tx.Exists(api.ClassVBD, b) {
			if err := vbdDeleteRecord(tx, b); err != nil {
				return err
			}
		}
	}
	if err := vdiClearSuspendVDI(tx, ref, vdi, allVMs); err != nil {
		return err
	}
	return tx.Delete(api.ClassVDI, ref)
}

func vdiClearSuspendVDI(tx *store.Tx, ref xenapi.Ref, vdi *api.VDI, allVMs bool) error {
	if !allVMs && vdi.Type != api.VDITypeSuspend {
		return nil
	}
	for vm, vr := range tx.All(api.ClassVM) {
		if vr.(*api.VM).SuspendVDI == ref {
			if err := tx.Modify(api.ClassVM, vm, func(r xenapi.Record) error {
				r.(*api.VM).SuspendVDI = xenapi.NullRef
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// vdiDropRecord forgets a VDI record whose image is gone or no longer
// wanted (VDI.forget, SR.scan, SR.forget), handling its VBDs as xapi's
// garbage collector does: a CD drive is emptied, other VBDs go.
func vdiDropRecord(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassVDI, ref)
	if err != nil {
		return nil
	}
	vdi := r.(*api.VDI)
	for _, b := range vdi.VBDs {
		br, err := tx.Get(api.ClassVBD, b)
		if err != nil {
			continue
		}
		vbd := br.(*api.VBD)
		if vbd.Type == api.VBDTypeCD && tx.Exists(api.ClassVM, vbd.VM) {
			if err := tx.Modify(api.ClassVBD, b, func(r xenapi.Record) error {
				rec := r.(*api.VBD)
				rec.VDI, rec.Empty = xenapi.NullRef, true
				return nil
			}); err != nil {
				return err
			}
			if err := refreshVBDOps(tx, b); err != nil {
				return err
			}
			continue
		}
		if err := vbdDeleteRecord(tx, b); err != nil {
			return err
		}
	}
	if err := vdiClearSuspendVDI(tx, ref, vdi, false); err != nil {
		return err
	}
	return tx.Delete(api.ClassVDI, ref)
}

// vdiForget drops the record only; the image stays (a scan finds it again).
func (s *Server) vdiForget(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassVDI, ref, string(api.VDIOperationsForget)}}, func() error {
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			r, err := tx.Get(api.ClassVDI, ref)
			if err != nil {
				return err
			}
			srRef := r.(*api.VDI).SR
			if err := vdiDropRecord(tx, ref); err != nil {
				return err
			}
			if !tx.Exists(api.ClassSR, srRef) {
				return nil
			}
			return srSetSizes(tx, srRef, nil)
		})
	})
}

// vdiCloneOrSnapshot serves VDI.clone and VDI.snapshot: the driver copies
// the image; the new record takes the metadata xapi copies. A snapshot
// records what it is a snapshot of, and when.
func (s *Server) vdiCloneOrSnapshot(snapshot bool) handlerFunc {
	srOp, vdiOp := api.StorageOperationsVDIClone, api.VDIOperationsClone
	if snapshot {
		srOp, vdiOp = api.StorageOperationsVDISnapshot, api.VDIOperationsSnapshot
	}
	return func(ctx context.Context, c *Call) (Result, error) {
		ref := c.Ref(0)
		var newRef xenapi.Ref
		err := s.withManagedVDI(ctx, ref, srOp, vdiOp, func(drv storage.Driver, srRef xenapi.Ref, src *api.VDI) error {
			var err error
			id := uuid.NewString()
			var info storage.VDIInfo
			if snapshot {
				info, err = drv.SnapshotVDI(ctx, src.Location, id)
			} else {
				info, err = drv.CloneVDI(ctx, src.Location, id)
			}
			if err != nil {
				return storageError(err, srRef, ref)
			}
			st, stErr := drv.Stat(ctx)
			err = s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
				vdi := api.NewVDI()
				vdi.UUID = id
				vdi.SR = srRef
				vdi.NameLabel, vdi.NameDescription = src.NameLabel, src.NameDescription
				vdi.Type, vdi.Sharable, vdi.ReadOnly = src.Type, src.Sharable, src.ReadOnly
				vdi.OtherConfig = src.OtherConfig
				vdi.XenstoreData = src.XenstoreData
				vdi.OnBoot, vdi.AllowCaching = src.OnBoot, src.AllowCaching
				vdi.Tags = slices.Clone(src.Tags)
				vdi.SMConfig = vdiSMConfig(nil, info.Format)
				vdi.Location = info.Location
				vdi.VirtualSize, vdi.PhysicalUtilisation = info.VirtualSize, info.PhysicalUtilisation
				vdi.Managed = true
				if snapshot {
					vdi.IsASnapshot, vdi.SnapshotOf, vdi.SnapshotTime = true, ref, stoNow()
				}
				var err error
				if newRef, err = tx.Create(vdi); err != nil {
					return err
				}
				if err := refreshVDIOps(tx, newRef); err != nil {
					return err
				}
				return srSetSizes(tx, srRef, stoStat(st, stErr))
			})
			if err != nil {
				_ = drv.DestroyVDI(context.WithoutCancel(ctx), info.Location)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		return refResult(newRef), nil
	}
}

// vdiResize grows a VDI (shrinking is refused by the driver, as by xapi's
// file SRs).
func (s *Server) vdiResize(ctx context.Context, c *Call) (Result, error) {
	ref, size := c.Ref(0), c.Int(1)
	return nil, s.withManagedVDI(ctx, ref, api.StorageOperationsVDIResize, api.VDIOperationsResize, func(drv storage.Driver, srRef xenapi.Ref, vdi *api.VDI) error {
		info, err := drv.ResizeVDI(ctx, vdi.Location, size)
		if err != nil {
			return storageError(err, srRef, ref)
		}
		st, stErr := drv.Stat(ctx)
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := tx.Modify(api.ClassVDI, ref, func(r xenapi.Record) error {
				rec := r.(*api.VDI)
				rec.VirtualSize, rec.PhysicalUtilisation = info.VirtualSize, info.PhysicalUtilisation
				return nil
			}); err != nil {
				return err
			}
			return srSetSizes(tx, srRef, stoStat(st, stErr))
		})
	})
}

// vdiUpdate re-reads the VDI's sizes from its driver.
func (s *Server) vdiUpdate(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassVDI, ref, string(api.VDIOperationsUpdate)}}, func() error {
		r, err := s.storeGet(api.ClassVDI, ref)
		if err != nil {
			return err
		}
		vdi := r.(*api.VDI)
		drv, _, err := s.srDriver(vdi.SR, true)
		if err != nil {
			return err
		}
		info, err := drv.StatVDI(ctx, vdi.Location)
		if err != nil {
			return storageError(err, vdi.SR, ref)
		}
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := tx.Modify(api.ClassVDI, ref, func(r xenapi.Record) error {
				rec := r.(*api.VDI)
				rec.VirtualSize, rec.PhysicalUtilisation = info.VirtualSize, info.PhysicalUtilisation
				return nil
			}); err != nil {
				return err
			}
			return srSetSizes(tx, vdi.SR, nil)
		})
	})
}

// vdiCopy copies a VDI's data into a new VDI of SR sr, or into the
// existing VDI into_vdi when that is a valid reference (base_vdi is not
// used: every copy is whole). A VDI made here is destroyed again if the
// copy fails.
func (s *Server) vdiCopy(ctx context.Context, c *Call) (Result, error) {
	ref, srRef, into := c.Ref(0), c.Ref(1), c.Ref(3)
	r, err := s.storeGet(api.ClassVDI, ref)
	if err != nil {
		return nil, err
	}
	if !r.(*api.VDI).Managed {
		return nil, xenapi.NewError(api.ErrVDINotManaged, string(ref))
	}
	var dst xenapi.Ref
	err = s.withStorageOps(ctx, []stoOp{{api.ClassVDI, ref, string(api.VDIOperationsCopy)}}, func() error {
		r, err := s.storeGet(api.ClassVDI, ref)
		if err != nil {
			return err
		}
		src := r.(*api.VDI)
		srcDrv, _, err := s.srDriver(src.SR, true)
		if err != nil {
			return err
		}
		srcImg, err := srcDrv.Open(ctx, src.Location)
		if err != nil {
			return storageError(err, src.SR, ref)
		}
		created := false
		if _, err := s.storeGet(api.ClassVDI, into); err == nil {
			dst = into
		} else {
			want := api.NewVDI()
			want.NameLabel, want.NameDescription = src.NameLabel, src.NameDescription
			want.SR, want.VirtualSize, want.Type = srRef, src.VirtualSize, src.Type
			want.Sharable = src.Sharable
			want.OtherConfig, want.XenstoreData = src.OtherConfig, src.XenstoreData
			want.Tags = slices.Clone(src.Tags)
			if srcImg.Format == storage.FormatQcow2 {
				want.SMConfig = xenapi.MapOf(map[string]string{"image-format": storage.FormatQcow2})
			}
			if dst, err = s.createVDI(ctx, want); err != nil {
				return err
			}
			created = true
			if err := s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
				return tx.Modify(api.ClassVDI, dst, func(r xenapi.Record) error {
					r.(*api.VDI).AllowCaching = src.AllowCaching
					return nil
				})
			}); err != nil {
				s.vdiCleanup(ctx, dst)
				return err
			}
		}
		if err := s.vdiCopyInto(ctx, dst, src, srcImg, created); err != nil {
			if created {
				s.vdiCleanup(ctx, dst)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refResult(dst), nil
}

// vdiCopyInto checks that dst can take src's data and copies it.
func (s *Server) vdiCopyInto(ctx context.Context, dst xenapi.Ref, src *api.VDI, srcImg storage.Image, fresh bool) error {
	r, err := s.storeGet(api.ClassVDI, dst)
	if err != nil {
		return err
	}
	d := r.(*api.VDI)
	if d.ReadOnly {
		return xenapi.NewError(api.ErrVDIReadonly, string(dst))
	}
	if d.VirtualSize < src.VirtualSize {
		return xenapi.NewError(api.ErrVDITooSmall, string(dst), strconv.FormatInt(src.VirtualSize, 10))
	}
	drv, _, err := s.srDriver(d.SR, true)
	if err != nil {
		return err
	}
	dstImg, err := drv.Open(ctx, d.Location)
	if err != nil {
		return storageError(err, d.SR, dst)
	}
	if err := storage.CopyImage(ctx, dstImg, srcImg, fresh); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return xenapi.NewError(api.ErrVDICopyFailed, err.Error())
	}
	info, err := drv.StatVDI(ctx, d.Location)
	if err != nil {
		return storageError(err, d.SR, dst)
	}
	st, stErr := drv.Stat(ctx)
	return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		if err := tx.Modify(api.ClassVDI, dst, func(r xenapi.Record) error {
			r.(*api.VDI).PhysicalUtilisation = info.PhysicalUtilisation
			return nil
		}); err != nil {
			return err
		}
		return srSetSizes(tx, d.SR, stoStat(st, stErr))
	})
}

// vdiCleanup destroys a VDI made by a failed operation, image and record.
func (s *Server) vdiCleanup(ctx context.Context, ref xenapi.Ref) {
	ctx = context.WithoutCancel(ctx)
	r, err := s.storeGet(api.ClassVDI, ref)
	if err != nil {
		return
	}
	vdi := r.(*api.VDI)
	if drv, _, err := s.srDriver(vdi.SR, false); err == nil {
		_ = drv.DestroyVDI(ctx, vdi.Location)
	}
	err = s.store.Update(ctx, func(tx *store.Tx) error {
		if !tx.Exists(api.ClassVDI, ref) {
			return nil
		}
		if err := vdiDeleteRecord(tx, ref, false); err != nil {
			return err
		}
		return srSetSizes(tx, vdi.SR, nil)
	})
	if err != nil {
		s.log.Error("storage: cleaning up a VDI", "vdi", ref, "err", err)
	}
}

// vdiAssertNotOnRunningVM refuses changes while a VM that is not halted
// has the VDI (VM_BAD_POWER_STATE, as xapi).
func vdiAssertNotOnRunningVM(tx *store.Tx, vdi *api.VDI) error {
	for _, b := range vdi.VBDs {
		br, err := tx.Get(api.ClassVBD, b)
		if err != nil {
			continue
		}
		vm := br.(*api.VBD).VM
		if vr, err := tx.Get(api.ClassVM, vm); err == nil && vr.(*api.VM).PowerState != api.VMPowerStateHalted {
			return xenapi.NewError(api.ErrVMBadPowerState, string(vm), "halted", domain.LowerState(vr.(*api.VM).PowerState))
		}
	}
	return nil
}

// vdiSetOnBoot: "reset" needs a backend that can discard a VDI's writes at
// boot (SM capability VDI_RESET_ON_BOOT); xenithd's SR types have none, so
// this answers SR_OPERATION_NOT_SUPPORTED for them, as xapi does for such
// SRs.
func (s *Server) vdiSetOnBoot(ctx context.Context, c *Call) (Result, error) {
	ref, value := c.Ref(0), api.OnBoot(c.Str(1))
	r, err := s.storeGet(api.ClassVDI, ref)
	if err != nil {
		return nil, err
	}
	srRef := r.(*api.VDI).SR
	err = s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVDI, ref)
		if err != nil {
			return err
		}
		return vdiAssertNotOnRunningVM(tx, r.(*api.VDI))
	})
	if err != nil {
		return nil, err
	}
	ops := []stoOp{{api.ClassSR, srRef, string(api.StorageOperationsVDISetOnBoot)}, {api.ClassVDI, ref, string(api.VDIOperationsSetOnBoot)}}
	return nil, s.withStorageOps(ctx, ops, func() error {
		if _, _, err := s.srDriver(srRef, true); err != nil {
			return err
		}
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			return tx.Modify(api.ClassVDI, ref, func(r xenapi.Record) error {
				r.(*api.VDI).OnBoot = value
				return nil
			})
		})
	})
}

func (s *Server) vdiSetAllowCaching(ctx context.Context, c *Call) (Result, error) {
	ref, value := c.Ref(0), c.Bool(1)
	return nil, s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassVDI, ref)
		if err != nil {
			return err
		}
		if err := vdiAssertNotOnRunningVM(tx, r.(*api.VDI)); err != nil {
			return err
		}
		return tx.Modify(api.ClassVDI, ref, func(r xenapi.Record) error {
			r.(*api.VDI).AllowCaching = value
			return nil
		})
	})
}

// --- allowed operations -----------------------------------------------------

// vdiAllOps are the operations xapi lists in VDI.allowed_operations.
var vdiAllOps = []api.VDIOperations{
	api.VDIOperationsClone, api.VDIOperationsCopy, api.VDIOperationsResize,
	api.VDIOperationsResizeOnline, api.VDIOperationsSnapshot, api.VDIOperationsDestroy,
	api.VDIOperationsForget, api.VDIOperationsUpdate, api.VDIOperationsGenerateConfig,
}

// vdiOpCapability is the SM capability a VDI operation needs.
var vdiOpCapability = map[api.VDIOperations]string{
	api.VDIOperationsSnapshot:          "VDI_SNAPSHOT",
	api.VDIOperationsDestroy:           "VDI_DELETE",
	api.VDIOperationsResize:            "VDI_RESIZE",
	api.VDIOperationsUpdate:            "VDI_UPDATE",
	api.VDIOperationsResizeOnline:      "VDI_RESIZE_ONLINE",
	api.VDIOperationsGenerateConfig:    "VDI_GENERATE_CONFIG",
	api.VDIOperationsClone:             "VDI_CLONE",
	api.VDIOperationsMirror:            "VDI_MIRROR",
	api.VDIOperationsEnableCbt:         "VDI_CONFIG_CBT",
	api.VDIOperationsDisableCbt:        "VDI_CONFIG_CBT",
	api.VDIOperationsDataDestroy:       "VDI_CONFIG_CBT",
	api.VDIOperationsListChangedBlocks: "VDI_CONFIG_CBT",
	api.VDIOperationsSetOnBoot:         "VDI_RESET_ON_BOOT",
}

// vdiOpError checks one VDI operation (xapi's
// Xapi_vdi.check_operation_error).
func vdiOpError(tx *store.Tx, ref xenapi.Ref, vdi *api.VDI, op api.VDIOperations) error {
	var sr *api.SR
	if r, err := tx.Get(api.ClassSR, vdi.SR); err == nil {
		sr = r.(*api.SR)
	} else {
		sr = api.NewSR()
	}
	// Any operation but a copy holds the VDI exclusively (a destroy may
	// follow a mirror).
	mirroring := false
	for _, o := range vdi.CurrentOperations.All() {
		mirroring = mirroring || o == api.VDIOperationsMirror
	}
	if !(op == api.VDIOperationsDestroy && mirroring) {
		if key, cur, ok := firstCurrentOp(vdi.CurrentOperations, func(o api.VDIOperations) bool { return o == api.VDIOperationsCopy }); ok {
			return xenapi.NewError(api.ErrOtherOperationInProgress, "VDI", string(ref), string(cur), key)
		}
	}
	if op == api.VDIOperationsResize {
		attached := false
		for _, p := range sr.PBDs {
			if pr, err := tx.Get(api.ClassPBD, p); err == nil && pr.(*api.PBD).CurrentlyAttached {
				attached = true
			}
		}
		if !attached {
			return xenapi.NewError(api.ErrSRHasNoPbds, string(vdi.SR))
		}
	}
	// VBDs in use block the operations that cannot be done live; a copy
	// is blocked only by a writer.
	var active, activeRW bool
	var busyKey string
	var busyOp api.VBDOperations
	for _, b := range vdi.VBDs {
		br, err := tx.Get(api.ClassVBD, b)
		if err != nil {
			continue
		}
		vbd := br.(*api.VBD)
		if vbd.VDI != ref {
			continue
		}
		if vbdInUse(tx, vbd) {
			active = true
			activeRW = activeRW || vbd.Mode == api.VBDModeRW
		}
		if busyKey == "" {
			if key, o, ok := firstCurrentOp(vbd.CurrentOperations, nil); ok {
				busyKey, busyOp = key, o
			}
		}
	}
	live := false
	switch op {
	case api.VDIOperationsSnapshot, api.VDIOperationsResizeOnline, api.VDIOperationsBlocked,
		api.VDIOperationsClone, api.VDIOperationsMirror, api.VDIOperationsEnableCbt,
		api.VDIOperationsDisableCbt, api.VDIOperationsDataDestroy:
		live = true
	}
	blocked := active
	if live {
		blocked = false
	} else if op == api.VDIOperationsCopy {
		blocked = activeRW
	}
	if blocked {
		return xenapi.NewError(api.ErrVDIInUse, string(ref), string(op))
	}
	if busyKey != "" && op != api.VDIOperationsDataDestroy {
		return xenapi.NewError(api.ErrOtherOperationInProgress, "VDI", string(ref), string(busyOp), busyKey)
	}
	if c, gated := vdiOpCapability[op]; gated {
		if kind := srKinds[sr.Type]; kind == nil || !kind.Has(c) {
			return xenapi.NewError(api.ErrSROperationNotSupported, string(vdi.SR))
		}
	}
	if vdi.Type == api.VDITypeCbtMetadata {
		switch op {
		case api.VDIOperationsBlocked, api.VDIOperationsDataDestroy, api.VDIOperationsDestroy,
			api.VDIOperationsListChangedBlocks, api.VDIOperationsForceUnlock, api.VDIOperationsForget,
			api.VDIOperationsGenerateConfig, api.VDIOperationsUpdate:
		default:
			return xenapi.NewError(api.ErrVDIIncompatibleType, string(ref), string(api.VDITypeCbtMetadata))
		}
	}
	if vdi.CbtEnabled && (op == api.VDIOperationsMirror || op == api.VDIOperationsSetOnBoot) {
		return xenapi.NewError(api.ErrVDICbtEnabled, string(ref))
	}
	haFile := vdi.Type == api.VDITypeHAStatefile || vdi.Type == api.VDITypeRedoLog
	switch op {
	case api.VDIOperationsDestroy:
		switch {
		case sr.Type == "udev":
			return xenapi.NewError(api.ErrVDIIsAPhysicalDevice, string(ref))
		case sr.IsToolsSR:
			return xenapi.NewError(api.ErrSROperationNotSupported, string(vdi.SR))
		case vdi.Type == api.VDITypeRRD:
			return xenapi.NewError(api.ErrVDIHasRRDs, string(ref))
		}
	case api.VDIOperationsForget:
		if vdi.Type == api.VDITypeRRD {
			return xenapi.NewError(api.ErrVDIHasRRDs, string(ref))
		}
	case api.VDIOperationsSnapshot:
		if vdi.Sharable {
			return xenapi.NewError(api.ErrVDIIsSharable, string(ref))
		}
		if vdi.OnBoot == api.OnBootReset {
			return xenapi.NewError(api.ErrVDIOnBootModeIncompatibleWithOperation)
		}
		for _, o := range vdi.CurrentOperations.All() {
			if o == api.VDIOperationsCopy {
				return xenapi.NewError(api.ErrOperationNotAllowed, "Snapshot operation not allowed during copy.")
			}
		}
	case api.VDIOperationsCopy:
		if vdi.OnBoot == api.OnBootReset {
			return xenapi.NewError(api.ErrVDIOnBootModeIncompatibleWithOperation)
		}
		if haFile {
			return xenapi.NewError(api.ErrOperationNotAllowed,
				"VDI containing HA statefile or redo log cannot be copied (check the VDI's allowed operations).")
		}
	}
	return nil
}

// refreshVDIOps recomputes VDI.allowed_operations.
func refreshVDIOps(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassVDI, ref)
	if err != nil {
		return err
	}
	vdi := r.(*api.VDI)
	allowed := make([]api.VDIOperations, 0, len(vdiAllOps))
	for _, op := range vdiAllOps {
		if vdiOpError(tx, ref, vdi, op) == nil {
			allowed = append(allowed, op)
		}
	}
	if slices.Equal(allowed, vdi.AllowedOperations) {
		return nil
	}
	return tx.Modify(api.ClassVDI, ref, func(r xenapi.Record) error {
		r.(*api.VDI).AllowedOperations = allowed
		return nil
	})
}
