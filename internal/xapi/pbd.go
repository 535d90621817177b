package xapi

import (
	"context"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// PBD.* messages (xapi's xapi_pbd.ml): a PBD is an SR as one host sees it;
// plugging it attaches the SR, and SR operations need a plugged PBD.

func (s *Server) registerPBDHandlers() {
	s.handle("PBD.create", s.pbdCreate, -1)
	s.handle("PBD.destroy", s.pbdDestroy, -1)
	s.handle("PBD.plug", s.pbdPlug, -1)
	s.handle("PBD.unplug", s.pbdUnplug, -1)
	// Only storage backends may rewrite a PBD's device_config.
	s.handle("PBD.set_device_config", internalStorageOnly, -1)
}

// pbdCheckDeviceConfig refuses the key xapi keeps for itself.
func pbdCheckDeviceConfig(dc xenapi.Map[string, string]) error {
	if v, ok := dc.Lookup("SRmaster"); ok {
		return xenapi.NewError(api.ErrValueNotSupported, "SRmaster", v, "This key is for internal use only")
	}
	return nil
}

// pbdCreate makes an unplugged PBD; an SR has at most one PBD per host.
func (s *Server) pbdCreate(ctx context.Context, c *Call) (Result, error) {
	r, err := stoDecodeRecord(api.ClassPBD, c.Arg(0))
	if err != nil {
		return nil, err
	}
	want := r.(*api.PBD)
	if err := pbdCheckDeviceConfig(want.DeviceConfig); err != nil {
		return nil, err
	}
	var ref xenapi.Ref
	err = s.withStorageOps(ctx, []stoOp{{api.ClassSR, want.SR, string(api.StorageOperationsPBDCreate)}}, func() error {
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if !tx.Exists(api.ClassHost, want.Host) {
				return xenapi.NewError(api.ErrHandleInvalid, "host", string(want.Host))
			}
			sr, err := tx.Get(api.ClassSR, want.SR)
			if err != nil {
				return err
			}
			for _, p := range sr.(*api.SR).PBDs {
				if pr, err := tx.Get(api.ClassPBD, p); err == nil && pr.(*api.PBD).Host == want.Host {
					return xenapi.NewError(api.ErrPBDExists, string(want.SR), string(want.Host), string(p))
				}
			}
			pbd := api.NewPBD()
			pbd.Host, pbd.SR = want.Host, want.SR
			pbd.DeviceConfig, pbd.OtherConfig = want.DeviceConfig, want.OtherConfig
			if pbd.DeviceConfig == nil {
				pbd.DeviceConfig = nil
			}
			if pbd.OtherConfig == nil {
				pbd.OtherConfig = nil
			}
			if ref, err = tx.Create(pbd); err != nil {
				return err
			}
			return refreshSROps(tx, want.SR)
		})
	})
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

// pbdDestroy deletes an unplugged PBD.
func (s *Server) pbdDestroy(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	pr, err := s.storeGet(api.ClassPBD, ref)
	if err != nil {
		return nil, err
	}
	srRef := pr.(*api.PBD).SR
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassSR, srRef, string(api.StorageOperationsPBDDestroy)}}, func() error {
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			r, err := tx.Get(api.ClassPBD, ref)
			if err != nil {
				return err
			}
			if r.(*api.PBD).CurrentlyAttached {
				return xenapi.NewError(api.ErrOperationNotAllowed, "PBD is currently attached")
			}
			if err := tx.Delete(api.ClassPBD, ref); err != nil {
				return err
			}
			return refreshSROps(tx, srRef)
		})
	})
}

// pbdDriver opens the driver of a PBD's SR with the PBD's device_config.
func pbdDriver(sr *api.SR, pbd *api.PBD) (storage.Driver, error) {
	kind := srKinds[sr.Type]
	if kind == nil {
		return nil, xenapi.NewError(api.ErrSRUnknownDriver, sr.Type)
	}
	drv, err := kind.Open(storage.SR{UUID: sr.UUID, DeviceConfig: pbd.DeviceConfig.Go(), SMConfig: sr.SMConfig.Go()})
	if err != nil {
		return nil, storageError(err, pbd.SR, "")
	}
	return drv, nil
}

// pbdPlug attaches the SR (checking its backing store is there) and
// refreshes its sizes. Plugging a plugged PBD changes nothing.
func (s *Server) pbdPlug(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	pr, err := s.storeGet(api.ClassPBD, ref)
	if err != nil {
		return nil, err
	}
	srRef := pr.(*api.PBD).SR
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassSR, srRef, string(api.StorageOperationsPlug)}}, func() error {
		pr, err := s.storeGet(api.ClassPBD, ref)
		if err != nil {
			return err
		}
		pbd := pr.(*api.PBD)
		sr, err := s.storeGet(api.ClassSR, srRef)
		if err != nil {
			return err
		}
		drv, err := pbdDriver(sr.(*api.SR), pbd)
		if err != nil {
			return err
		}
		if !pbd.CurrentlyAttached {
			if err := drv.Attach(ctx); err != nil {
				return storageError(err, srRef, "")
			}
		}
		st, err := drv.Stat(ctx)
		if err != nil {
			return storageError(err, srRef, "")
		}
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := tx.Modify(api.ClassPBD, ref, func(r xenapi.Record) error {
				r.(*api.PBD).CurrentlyAttached = true
				return nil
			}); err != nil {
				return err
			}
			if err := srSetSizes(tx, srRef, &st); err != nil {
				return err
			}
			return srRefreshVDIOps(tx, srRef)
		})
	})
}

// pbdUnplug detaches the SR; refused while VMs use its VDIs (VDI_IN_USE
// naming them) or while a VDI operation runs.
func (s *Server) pbdUnplug(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	pr, err := s.storeGet(api.ClassPBD, ref)
	if err != nil {
		return nil, err
	}
	if !pr.(*api.PBD).CurrentlyAttached {
		return nil, nil
	}
	srRef := pr.(*api.PBD).SR
	// VDI operations run on the SR: they must finish first.
	if r, err := s.storeGet(api.ClassSR, srRef); err == nil {
		for _, v := range r.(*api.SR).VDIs {
			if vr, err := s.storeGet(api.ClassVDI, v); err == nil {
				if key, op, ok := firstCurrentOp(vr.(*api.VDI).CurrentOperations, nil); ok {
					return nil, xenapi.NewError(api.ErrOtherOperationInProgress, "VDI", string(v), string(op), key)
				}
			}
		}
	}
	return nil, s.withStorageOps(ctx, []stoOp{{api.ClassSR, srRef, string(api.StorageOperationsUnplug)}}, func() error {
		return s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			r, err := tx.Get(api.ClassPBD, ref)
			if err != nil {
				return err
			}
			if !r.(*api.PBD).CurrentlyAttached {
				return nil
			}
			sr, err := tx.Get(api.ClassSR, srRef)
			if err != nil {
				return err
			}
			var inUse []string
			for _, v := range sr.(*api.SR).VDIs {
				vr, err := tx.Get(api.ClassVDI, v)
				if err != nil || vr.(*api.VDI).Type == api.VDITypeMetadata {
					continue
				}
				for _, b := range vr.(*api.VDI).VBDs {
					if br, err := tx.Get(api.ClassVBD, b); err == nil && vbdInUse(tx, br.(*api.VBD)) {
						inUse = append(inUse, string(v))
						break
					}
				}
			}
			if len(inUse) > 0 {
				return xenapi.NewError(api.ErrVDIInUse, inUse...)
			}
			if err := tx.Modify(api.ClassPBD, ref, func(r xenapi.Record) error {
				r.(*api.PBD).CurrentlyAttached = false
				return nil
			}); err != nil {
				return err
			}
			if err := refreshSROps(tx, srRef); err != nil {
				return err
			}
			return srRefreshVDIOps(tx, srRef)
		})
	})
}

// srRefreshVDIOps recomputes the allowed operations of an SR's VDIs (they
// depend on the SR being plugged).
func srRefreshVDIOps(tx *store.Tx, srRef xenapi.Ref) error {
	r, err := tx.Get(api.ClassSR, srRef)
	if err != nil {
		return err
	}
	for _, v := range r.(*api.SR).VDIs {
		if tx.Exists(api.ClassVDI, v) {
			if err := refreshVDIOps(tx, v); err != nil {
				return err
			}
		}
	}
	return nil
}
