package xapi

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/storage/drivers"
	"github.com/xenith/xenith/internal/storage/file"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// SR.* messages (xapi's xapi_sr.ml and the SR part of message_forwarding.ml).

func (s *Server) registerSRHandlers() {
	s.handle("SR.create", s.srCreate, -1)
	s.handle("SR.introduce", s.srIntroduce, -1)
	s.handle("SR.make", func(ctx context.Context, c *Call) (Result, error) {
		return nil, xenapi.NewError(api.ErrMessageDeprecated)
	}, -1)
	s.handle("SR.forget", s.srForget, -1)
	s.handle("SR.destroy", s.srDestroy, -1)
	s.handle("SR.scan", s.srScan, -1)
	s.handle("SR.update", s.srUpdate, -1)
	s.handle("SR.get_supported_types", s.srSupportedTypes, -1)
	s.handle("SR.set_shared", s.srSetShared, -1)
	s.handle("SR.set_name_label", s.fieldSet(api.ClassSR, api.ClassSR.Field("name_label")), -1)
	s.handle("SR.set_name_description", s.fieldSet(api.ClassSR, api.ClassSR.Field("name_description")), -1)
	// Only the storage backend may set the size (xapi checks for an SM
	// session); sizes come from SR.scan and SR.update here.
	s.handle("SR.set_physical_size", internalStorageOnly, -1)
}

// internalStorageOnly answers the setters xapi keeps for its storage
// backends (Sm.assert_session_has_internal_sr_access).
func internalStorageOnly(ctx context.Context, c *Call) (Result, error) {
	return nil, xenapi.NewError(api.ErrPermissionDenied, "")
}

func (s *Server) srSupportedTypes(ctx context.Context, c *Call) (Result, error) {
	types := drivers.Types()
	return func(e wire.Encoder) { xenapi.EncSet(e, types, xenapi.EncStr[string]) }, nil
}

// srCreate makes the SR on disk, its record, a plugged PBD for the host
// (for every host if shared) and records for the VDIs already there.
func (s *Server) srCreate(ctx context.Context, c *Call) (Result, error) {
	host, dc := c.Ref(0), stoMap(c.Arg(1))
	name, desc := c.Str(3), c.Str(4)
	typ, contentType := strings.ToLower(c.Str(5)), c.Str(6)
	shared, smConfig := c.Bool(7), stoMap(c.Arg(8))
	if _, err := s.store.Get(api.ClassHost, host); err != nil {
		return nil, err
	}
	if err := pbdCheckDeviceConfig(dc); err != nil {
		return nil, err
	}
	kind := srKinds[typ]
	if kind == nil {
		return nil, xenapi.NewError(api.ErrSRUnknownDriver, typ)
	}
	if contentType == "" {
		contentType = kind.ContentType
	}
	id := uuid.NewString()
	drv, err := kind.Open(storage.SR{UUID: id, DeviceConfig: dc.Go(), SMConfig: smConfig.Go()})
	if err != nil {
		return nil, storageError(err, "", "")
	}
	if err := s.srAssertNewDirectory(typ, dc); err != nil {
		return nil, err
	}
	if err := drv.Create(ctx); err != nil {
		return nil, storageError(err, "", "")
	}
	st, err := drv.Stat(ctx)
	if err != nil {
		return nil, storageError(err, "", "")
	}
	infos, err := drv.Scan(ctx)
	if err != nil {
		return nil, storageError(err, "", "")
	}
	var ref xenapi.Ref
	err = s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		sr := api.NewSR()
		sr.UUID = id
		sr.NameLabel, sr.NameDescription = name, desc
		sr.Type, sr.ContentType, sr.Shared = typ, contentType, shared
		sr.SMConfig = smConfig
		sr.OtherConfig = nil
		var err error
		if ref, err = tx.Create(sr); err != nil {
			return err
		}
		hosts := []xenapi.Ref{host}
		if shared {
			hosts = slices.Sorted(maps.Keys(tx.All(api.ClassHost)))
		}
		for _, h := range hosts {
			pbd := api.NewPBD()
			pbd.Host, pbd.SR = h, ref
			pbd.DeviceConfig = dc
			pbd.OtherConfig = nil
			pbd.CurrentlyAttached = h == s.hostRef || h == host
			if _, err := tx.Create(pbd); err != nil {
				return err
			}
		}
		return srApplyScan(tx, ref, infos, st)
	})
	if err == nil {
		// Now that SR.PBDs and SR.VDIs are filled in.
		err = s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := srSetSizes(tx, ref, nil); err != nil {
				return err
			}
			return srRefreshVDIOps(tx, ref)
		})
	}
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

// srAssertNewDirectory refuses a second file SR on a directory another SR
// uses: both would claim the same VDI files. (xapi's file SR avoids this by
// keeping each SR in a subdirectory named by its uuid.)
func (s *Server) srAssertNewDirectory(typ string, dc xenapi.Map[string, string]) error {
	if typ != file.Kind.Type {
		return nil
	}
	dir := pbdDirectory(dc)
	for _, row := range s.store.All(api.ClassPBD) {
		pbd := row.Rec.(*api.PBD)
		r, err := s.storeGet(api.ClassSR, pbd.SR)
		if err != nil || r.(*api.SR).Type != typ {
			continue
		}
		if d := pbdDirectory(pbd.DeviceConfig); d != "" && d == dir {
			return storageError(storage.Errorf(storage.CodeSRExists,
				"SR already exists [opterr=%s is the directory of SR %s]", dir, r.(*api.SR).UUID), "", "")
		}
	}
	return nil
}

// pbdDirectory is the directory a file or iso SR's device_config names.
func pbdDirectory(dc xenapi.Map[string, string]) string {
	d := dc.Get("path")
	if d == "" {
		d = dc.Get("location")
	}
	if d == "" {
		return ""
	}
	return filepath.Clean(d)
}

// srIntroduce makes an SR record only (no PBD, nothing on disk).
func (s *Server) srIntroduce(ctx context.Context, c *Call) (Result, error) {
	id := c.Str(0)
	if id == "" {
		id = uuid.NewString()
	}
	var ref xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		for _, r := range tx.All(api.ClassSR) {
			if r.(*api.SR).UUID == id {
				return xenapi.NewError(api.ErrSRUUIDExists, id)
			}
		}
		sr := api.NewSR()
		sr.UUID = id
		sr.NameLabel, sr.NameDescription = c.Str(1), c.Str(2)
		sr.Type, sr.ContentType, sr.Shared = strings.ToLower(c.Str(3)), c.Str(4), c.Bool(5)
		sr.SMConfig = stoMap(c.Arg(6))
		sr.OtherConfig = nil
		sr.PhysicalSize, sr.PhysicalUtilisation = -1, -1
		var err error
		if ref, err = tx.Create(sr); err != nil {
			return err
		}
		return refreshSROps(tx, ref)
	})
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

// srForget drops the SR's records (SR, PBDs, VDIs); the PBDs must have been
// unplugged.
func (s *Server) srForget(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassSR, ref, string(api.StorageOperationsForget)}}, func() error {
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := srAssertAllPBDsUnplugged(tx, ref); err != nil {
				return err
			}
			return srReallyForget(tx, ref)
		})
	})
}

// srDestroy removes the SR from disk, then forgets it. Its PBDs must be
// unplugged and its (managed) VDIs destroyed first.
func (s *Server) srDestroy(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassSR, ref, string(api.StorageOperationsDestroy)}}, func() error {
		err := s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := srAssertAllPBDsUnplugged(tx, ref); err != nil {
				return err
			}
			r, err := tx.Get(api.ClassSR, ref)
			if err != nil {
				return err
			}
			sr := r.(*api.SR)
			if sr.OtherConfig.Get("indestructible") == "true" {
				return xenapi.NewError(api.ErrSRIndestructible, string(ref))
			}
			for h, hr := range tx.All(api.ClassHost) {
				if hr.(*api.Host).LocalCacheSR == ref {
					return xenapi.NewError(api.ErrSRIsCacheSR, string(h))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		drv, _, err := s.srDriver(ref, false)
		if err != nil {
			return err
		}
		if err := drv.Destroy(ctx); err != nil {
			return storageError(err, ref, "")
		}
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			return srReallyForget(tx, ref)
		})
	})
}

func srAssertAllPBDsUnplugged(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassSR, ref)
	if err != nil {
		return err
	}
	for _, p := range r.(*api.SR).PBDs {
		if pr, err := tx.Get(api.ClassPBD, p); err == nil && pr.(*api.PBD).CurrentlyAttached {
			return xenapi.NewError(api.ErrSRHasPBD, string(ref))
		}
	}
	return nil
}

// srReallyForget deletes the records of an SR, its PBDs and VDIs.
func srReallyForget(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassSR, ref)
	if err != nil {
		return err
	}
	sr := r.(*api.SR)
	for _, p := range sr.PBDs {
		if tx.Exists(api.ClassPBD, p) {
			if err := tx.Delete(api.ClassPBD, p); err != nil {
				return err
			}
		}
	}
	for _, v := range sr.VDIs {
		if err := vdiDropRecord(tx, v); err != nil {
			return err
		}
	}
	return tx.Delete(api.ClassSR, ref)
}

// srScan makes the VDI records match the VDIs on disk: new VDIs get a
// record, records whose VDI vanished go, sizes are refreshed.
func (s *Server) srScan(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassSR, ref, string(api.StorageOperationsScan)}}, func() error {
		drv, _, err := s.srDriver(ref, true)
		if err != nil {
			return err
		}
		infos, err := drv.Scan(ctx)
		if err != nil {
			return storageError(err, ref, "")
		}
		st, err := drv.Stat(ctx)
		if err != nil {
			return storageError(err, ref, "")
		}
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := srApplyScan(tx, ref, infos, st); err != nil {
				return err
			}
			return tx.Modify(api.ClassSR, ref, func(r xenapi.Record) error {
				sr := r.(*api.SR)
				if _, dirty := sr.OtherConfig.Lookup("dirty"); dirty {
					sr.OtherConfig = sr.OtherConfig.Without("dirty")
				}
				return nil
			})
		})
	})
}

// srApplyScan updates the VDI records of an SR from a driver's scan (xapi's
// update_vdis) and the SR's sizes.
func srApplyScan(tx *store.Tx, srRef xenapi.Ref, infos []storage.VDIInfo, st storage.SRStat) error {
	r, err := tx.Get(api.ClassSR, srRef)
	if err != nil {
		return err
	}
	sr := r.(*api.SR)
	byLocation := make(map[string]storage.VDIInfo, len(infos))
	for _, info := range infos {
		byLocation[info.Location] = info
	}
	known := make(map[string]bool)
	for _, v := range sr.VDIs {
		vr, err := tx.Get(api.ClassVDI, v)
		if err != nil {
			continue
		}
		vdi := vr.(*api.VDI)
		info, ok := byLocation[vdi.Location]
		if !ok {
			if err := vdiDropRecord(tx, v); err != nil {
				return err
			}
			continue
		}
		known[vdi.Location] = true
		if vdi.VirtualSize != info.VirtualSize || vdi.PhysicalUtilisation != info.PhysicalUtilisation || (info.ReadOnly && !vdi.ReadOnly) {
			if err := tx.Modify(api.ClassVDI, v, func(r xenapi.Record) error {
				rec := r.(*api.VDI)
				rec.VirtualSize, rec.PhysicalUtilisation = info.VirtualSize, info.PhysicalUtilisation
				rec.ReadOnly = rec.ReadOnly || info.ReadOnly
				return nil
			}); err != nil {
				return err
			}
		}
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Location < infos[j].Location })
	var taken map[string]bool // uuids of all VDIs, read when first needed
	for _, info := range infos {
		if known[info.Location] {
			continue
		}
		if taken == nil {
			taken = make(map[string]bool)
			for _, r := range tx.All(api.ClassVDI) {
				taken[r.RecordUUID()] = true
			}
		}
		vdi := api.NewVDI()
		if info.UUID != "" && !taken[info.UUID] {
			vdi.UUID = info.UUID
		}
		vdi.NameLabel = info.NameLabel
		vdi.SR = srRef
		vdi.Type = api.VDITypeUser
		vdi.Location = info.Location
		vdi.Managed = true
		vdi.ReadOnly = info.ReadOnly
		vdi.VirtualSize, vdi.PhysicalUtilisation = info.VirtualSize, info.PhysicalUtilisation
		vdi.SMConfig = vdiSMConfig(nil, info.Format)
		vdi.OtherConfig, vdi.XenstoreData = nil, nil
		ref, err := tx.Create(vdi)
		if err != nil {
			return err
		}
		taken[vdi.UUID] = true
		if err := refreshVDIOps(tx, ref); err != nil {
			return err
		}
	}
	return srSetSizes(tx, srRef, &st)
}

// srSetSizes records an SR's sizes: physical ones from the driver (when
// st is not nil) and virtual_allocation, the sum of its VDIs' sizes.
func srSetSizes(tx *store.Tx, srRef xenapi.Ref, st *storage.SRStat) error {
	r, err := tx.Get(api.ClassSR, srRef)
	if err != nil {
		return err
	}
	var alloc int64
	for _, v := range r.(*api.SR).VDIs {
		if vr, err := tx.Get(api.ClassVDI, v); err == nil {
			alloc += vr.(*api.VDI).VirtualSize
		}
	}
	if err := tx.Modify(api.ClassSR, srRef, func(r xenapi.Record) error {
		sr := r.(*api.SR)
		sr.VirtualAllocation = alloc
		if st != nil {
			sr.PhysicalSize, sr.PhysicalUtilisation = st.Total, st.Total-st.Free
		}
		return nil
	}); err != nil {
		return err
	}
	return refreshSROps(tx, srRef)
}

// srUpdate refreshes the SR's sizes from its driver.
func (s *Server) srUpdate(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	drv, _, err := s.srDriver(ref, true)
	if err != nil {
		return nil, err
	}
	st, err := drv.Stat(ctx)
	if err != nil {
		return nil, storageError(err, ref, "")
	}
	return nil, s.store.Update(ctx, func(tx *store.Tx) error { return srSetSizes(tx, ref, &st) })
}

// srSetShared: an SR may always become shared; it may stop being shared
// only with at most one PBD.
func (s *Server) srSetShared(ctx context.Context, c *Call) (Result, error) {
	ref, value := c.Ref(0), c.Bool(1)
	return nil, s.store.Update(ctx, func(tx *store.Tx) error {
		r, err := tx.Get(api.ClassSR, ref)
		if err != nil {
			return err
		}
		if pbds := r.(*api.SR).PBDs; !value && len(pbds) > 1 {
			params := make([]string, len(pbds))
			for i, p := range pbds {
				params[i] = string(p)
			}
			return xenapi.NewError(api.ErrSRHasMultiplePbds, params...)
		}
		return tx.Modify(api.ClassSR, ref, func(r xenapi.Record) error {
			r.(*api.SR).Shared = value
			return nil
		})
	})
}

// --- allowed operations -----------------------------------------------------

// srAllOps are the operations xapi lists in SR.allowed_operations.
var srAllOps = []api.StorageOperations{
	api.StorageOperationsScan, api.StorageOperationsDestroy, api.StorageOperationsForget,
	api.StorageOperationsPlug, api.StorageOperationsUnplug, api.StorageOperationsVDICreate,
	api.StorageOperationsVDIDestroy, api.StorageOperationsVDIResize, api.StorageOperationsVDIClone,
	api.StorageOperationsVDISnapshot, api.StorageOperationsVDIMirror, api.StorageOperationsVDIEnableCbt,
	api.StorageOperationsVDIDisableCbt, api.StorageOperationsVDIDataDestroy,
	api.StorageOperationsVDIListChangedBlocks, api.StorageOperationsVDISetOnBoot,
	api.StorageOperationsVDIIntroduce, api.StorageOperationsUpdate,
	api.StorageOperationsPBDCreate, api.StorageOperationsPBDDestroy,
}

// srOpCapability is the SM capability an SR operation needs (xapi's
// sm_cap_table; clone is done by xapi itself when a backend cannot).
var srOpCapability = map[api.StorageOperations]string{
	api.StorageOperationsVDICreate:            "VDI_CREATE",
	api.StorageOperationsVDIDestroy:           "VDI_DELETE",
	api.StorageOperationsVDIResize:            "VDI_RESIZE",
	api.StorageOperationsVDIIntroduce:         "VDI_INTRODUCE",
	api.StorageOperationsVDIMirror:            "VDI_MIRROR",
	api.StorageOperationsVDIEnableCbt:         "VDI_CONFIG_CBT",
	api.StorageOperationsVDIDisableCbt:        "VDI_CONFIG_CBT",
	api.StorageOperationsVDIDataDestroy:       "VDI_CONFIG_CBT",
	api.StorageOperationsVDIListChangedBlocks: "VDI_CONFIG_CBT",
	api.StorageOperationsVDISetOnBoot:         "VDI_RESET_ON_BOOT",
	api.StorageOperationsUpdate:               "SR_UPDATE",
	api.StorageOperationsVDISnapshot:          "VDI_SNAPSHOT",
}

// srOpTable evaluates every SR operation (xapi's
// Xapi_sr_operations.valid_operations).
func srOpTable(tx *store.Tx, ref xenapi.Ref, sr *api.SR) opsTable[api.StorageOperations] {
	t := opsTable[api.StorageOperations]{}
	kind := srKinds[sr.Type]
	has := func(capability string) bool {
		if kind == nil || !kind.Has(capability) {
			return false
		}
		// The tools SR offers no VDI creation or deletion.
		return !sr.IsToolsSR || (capability != "VDI_CREATE" && capability != "VDI_DELETE")
	}
	for _, op := range srAllOps {
		if c, gated := srOpCapability[op]; gated && !has(c) {
			t.set(xenapi.NewError(api.ErrSROperationNotSupported, string(ref)), op)
		}
	}
	for _, p := range sr.PBDs {
		if pr, err := tx.Get(api.ClassPBD, p); err == nil && pr.(*api.PBD).CurrentlyAttached {
			t.set(xenapi.NewError(api.ErrSRHasPBD, string(ref)), api.StorageOperationsDestroy, api.StorageOperationsForget)
			break
		}
	}
	if len(sr.PBDs) == 0 {
		t.set(xenapi.NewError(api.ErrSRHasNoPbds, string(ref)), api.StorageOperationsDestroy)
	}
	for _, v := range sr.VDIs {
		if vr, err := tx.Get(api.ClassVDI, v); err == nil {
			if vdi := vr.(*api.VDI); vdi.Managed && vdi.Type != api.VDITypeRRD {
				t.set(xenapi.NewError(api.ErrSRNotEmpty), api.StorageOperationsDestroy)
				break
			}
		}
	}
	if key, op, ok := firstCurrentOp(sr.CurrentOperations, nil); ok {
		err := xenapi.NewError(api.ErrOtherOperationInProgress, "SR", string(ref), string(op), key)
		for _, o := range srAllOps {
			if o != api.StorageOperationsPlug {
				t.set(err, o)
			}
		}
		if key, op, ok := firstCurrentOp(sr.CurrentOperations, func(o api.StorageOperations) bool {
			return o == api.StorageOperationsPlug
		}); ok {
			t.set(xenapi.NewError(api.ErrOtherOperationInProgress, "SR", string(ref), string(op), key), api.StorageOperationsPlug)
		}
	}
	return t
}

// refreshSROps recomputes SR.allowed_operations.
func refreshSROps(tx *store.Tx, ref xenapi.Ref) error {
	r, err := tx.Get(api.ClassSR, ref)
	if err != nil {
		return err
	}
	sr := r.(*api.SR)
	allowed := srOpTable(tx, ref, sr).allowed(srAllOps)
	if slices.Equal(allowed, sr.AllowedOperations) {
		return nil
	}
	return tx.Modify(api.ClassSR, ref, func(r xenapi.Record) error {
		r.(*api.SR).AllowedOperations = allowed
		return nil
	})
}
