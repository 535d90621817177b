package xapi

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/storage/drivers"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Storage messages (SR, VDI, VBD records and files, PBD, SM) are registered
// here; the implementations live in sr.go, vdi.go, vbd.go and pbd.go.
//
// As in xapi, an operation on an SR or a VDI first marks the object in its
// current_operations (after checking the operation against the rules that
// also fill allowed_operations), does the slow on-disk work through the SR's
// driver (internal/storage) outside any store transaction, records the
// result, and unmarks the object. A conflicting operation waits for the
// mark to go, as xapi's retry_with_global_lock does, rather than failing.
func (s *Server) registerStorageHandlers() {
	s.registerSRHandlers()
	s.registerPBDHandlers()
	s.registerVDIHandlers()
	s.registerVBDHandlers()
	s.resetStorageOperations()
}

// srKinds are the SR types xenithd serves.
var srKinds = drivers.Kinds

// storageError turns a driver failure into the XenAPI error xapi sends for
// the same SM failure (xapi's sm_exec): a few codes have their own error,
// the rest become SR_BACKEND_FAILURE_<code> ["", reason, ""].
func storageError(err error, sr, vdi xenapi.Ref) error {
	var e *storage.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case storage.CodeSRInUse:
		return xenapi.NewError(api.ErrSRDeviceInUse)
	case storage.CodeVDIInUse:
		return xenapi.NewError(api.ErrVDIInUse)
	case storage.CodeSRNotEmpty:
		return xenapi.NewError(api.ErrSRNotEmpty)
	case storage.CodeVDIMissing:
		return xenapi.NewError(api.ErrVDIMissing, string(sr), string(vdi))
	case storage.CodeNotImplemented:
		return xenapi.NewError(api.ErrUnimplementedInSMBackend, string(sr))
	}
	return xenapi.NewError(api.ErrSRBackendFailure+"_"+strconv.Itoa(e.Code), "", e.Reason, "")
}

// stoMap reads a (string -> string) map argument.
func stoMap(v wire.Value) xenapi.Map[string, string] {
	m, _ := xenapi.DecStringMap(v)
	return m
}

// stoDecodeRecord decodes the record argument of a constructor the way the
// generic create does: schema defaults, then the fields a caller may set.
func stoDecodeRecord(c *xenapi.Class, args wire.Value) (xenapi.Record, error) {
	rec := c.New()
	kept := make([]wire.Member, 0, len(args.Struct))
	for _, m := range args.Struct {
		if f := c.Field(m.Name); f != nil && f.Qualifier != xenapi.RORuntime {
			kept = append(kept, m)
		}
	}
	if err := rec.Decode(wire.Value{Kind: wire.KindStruct, Struct: kept}); err != nil {
		return nil, fieldTypeError("args", err)
	}
	return rec, nil
}

// stoNow is the time recorded for snapshots; tests may replace it.
var stoNow = func() time.Time { return time.Now().UTC().Truncate(time.Second) }

// --- SR drivers -------------------------------------------------------------

// myPBD returns this host's PBD of an SR (xapi's get_my_pbd_for_sr), or
// SR_HAS_NO_PBDS.
func (s *Server) myPBD(get func(*xenapi.Class, xenapi.Ref) (xenapi.Record, error), srRef xenapi.Ref, sr *api.SR) (xenapi.Ref, *api.PBD, error) {
	for _, ref := range sr.PBDs {
		r, err := get(api.ClassPBD, ref)
		if err != nil {
			continue
		}
		if pbd := r.(*api.PBD); pbd.Host == s.hostRef {
			return ref, pbd, nil
		}
	}
	return "", nil, xenapi.NewError(api.ErrSRHasNoPbds, string(srRef))
}

// storeGet reads a record outside a transaction.
func (s *Server) storeGet(c *xenapi.Class, ref xenapi.Ref) (xenapi.Record, error) {
	row, err := s.store.Get(c, ref)
	if err != nil {
		return nil, err
	}
	return row.Rec, nil
}

// srDriver opens the driver of an SR through this host's PBD. With
// attached, the PBD must be plugged (xapi's Sm.assert_pbd_is_plugged):
// SR_HAS_NO_PBDS otherwise.
func (s *Server) srDriver(srRef xenapi.Ref, attached bool) (storage.Driver, *api.SR, error) {
	r, err := s.storeGet(api.ClassSR, srRef)
	if err != nil {
		return nil, nil, err
	}
	sr := r.(*api.SR)
	_, pbd, err := s.myPBD(s.storeGet, srRef, sr)
	if err != nil {
		return nil, nil, err
	}
	if attached && !pbd.CurrentlyAttached {
		return nil, nil, xenapi.NewError(api.ErrSRHasNoPbds, string(srRef))
	}
	kind := srKinds[sr.Type]
	if kind == nil {
		return nil, nil, xenapi.NewError(api.ErrSRUnknownDriver, sr.Type)
	}
	drv, err := kind.Open(storage.SR{UUID: sr.UUID, DeviceConfig: pbd.DeviceConfig.Go(), SMConfig: sr.SMConfig.Go()})
	if err != nil {
		return nil, nil, storageError(err, srRef, "")
	}
	return drv, sr, nil
}

// vdiImage tells where a VDI's data is: the file and format the domain
// manager gives the hypervisor (domain.Disk) when it attaches the VDI.
// The SR must be plugged.
func (s *Server) vdiImage(ctx context.Context, vdiRef xenapi.Ref) (storage.Image, error) {
	r, err := s.storeGet(api.ClassVDI, vdiRef)
	if err != nil {
		return storage.Image{}, err
	}
	vdi := r.(*api.VDI)
	drv, _, err := s.srDriver(vdi.SR, true)
	if err != nil {
		return storage.Image{}, err
	}
	img, err := drv.Open(ctx, vdi.Location)
	if err != nil {
		return storage.Image{}, storageError(err, vdi.SR, vdiRef)
	}
	if vdi.ReadOnly {
		img.ReadOnly = true
	}
	return img, nil
}

// --- current operations -----------------------------------------------------

// stoOp is one mark an operation puts on an SR or a VDI.
type stoOp struct {
	class *xenapi.Class // api.ClassSR or api.ClassVDI
	ref   xenapi.Ref
	op    string // a storage_operations or vdi_operations value
}

// maxOpWait bounds how long an operation waits for a conflicting one to
// finish (xapi's standard retry policy: two hours).
const maxOpWait = 2 * time.Hour

// withStorageOps marks ops, runs f and unmarks them, whatever f does.
func (s *Server) withStorageOps(ctx context.Context, ops []stoOp, f func() error) error {
	key := string(store.NewRef())
	if t, ok := TaskOf(ctx); ok {
		key = string(t)
	}
	if err := s.markStorageOps(ctx, key, ops); err != nil {
		return err
	}
	defer s.unmarkStorageOps(ctx, key, ops)
	return f()
}

// markStorageOps checks and records the marks, all or none. While another
// operation holds an object (OTHER_OPERATION_IN_PROGRESS) it waits for the
// store to change and tries again.
func (s *Server) markStorageOps(ctx context.Context, key string, ops []stoOp) error {
	deadline := time.Now().Add(maxOpWait)
	for {
		changed := s.store.Wait()
		err := s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			for _, o := range ops {
				if err := stoOpError(tx, o); err != nil {
					return err
				}
				if err := stoSetCurrentOp(tx, o, key, true); err != nil {
					return err
				}
			}
			for _, o := range ops {
				if err := stoRefresh(tx, o.class, o.ref); err != nil {
					return err
				}
			}
			return nil
		})
		var xe *xenapi.Error
		if err == nil || !errors.As(err, &xe) || xe.Code != api.ErrOtherOperationInProgress || time.Now().After(deadline) {
			return err
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Server) unmarkStorageOps(ctx context.Context, key string, ops []stoOp) {
	err := s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		for _, o := range ops {
			if !tx.Exists(o.class, o.ref) {
				continue
			}
			if err := stoSetCurrentOp(tx, o, key, false); err != nil {
				return err
			}
			if err := stoRefresh(tx, o.class, o.ref); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("storage: clearing current operations", "err", err)
	}
}

// stoOpError checks one mark against the object's operation rules.
func stoOpError(tx *store.Tx, o stoOp) error {
	r, err := tx.Get(o.class, o.ref)
	if err != nil {
		return err
	}
	switch rec := r.(type) {
	case *api.SR:
		return srOpTable(tx, o.ref, rec)[api.StorageOperations(o.op)]
	case *api.VDI:
		return vdiOpError(tx, o.ref, rec, api.VDIOperations(o.op))
	}
	return nil
}

func stoSetCurrentOp(tx *store.Tx, o stoOp, key string, add bool) error {
	return tx.Modify(o.class, o.ref, func(r xenapi.Record) error {
		switch rec := r.(type) {
		case *api.SR:
			if add {
				rec.CurrentOperations = rec.CurrentOperations.With(key, api.StorageOperations(o.op))
			} else {
				rec.CurrentOperations = rec.CurrentOperations.Without(key)
			}
		case *api.VDI:
			if add {
				rec.CurrentOperations = rec.CurrentOperations.With(key, api.VDIOperations(o.op))
			} else {
				rec.CurrentOperations = rec.CurrentOperations.Without(key)
			}
		}
		return nil
	})
}

// stoRefresh recomputes the allowed_operations of an SR (and its
// virtual_allocation), VDI or VBD.
//
// Bound fields (SR.VDIs, SR.PBDs, VDI.VBDs, VM.VBDs) are brought up to
// date only when a transaction commits, so a refresh in the transaction
// that creates or deletes such objects may see the old sets; those refreshes
// run again after the commit (the unmarking of an operation does it for the
// marked objects).
func stoRefresh(tx *store.Tx, c *xenapi.Class, ref xenapi.Ref) error {
	switch c {
	case api.ClassSR:
		return srSetSizes(tx, ref, nil)
	case api.ClassVDI:
		return refreshVDIOps(tx, ref)
	case api.ClassVBD:
		return refreshVBDOps(tx, ref)
	}
	return nil
}

// firstCurrentOp picks the current operation an OTHER_OPERATION_IN_PROGRESS
// error names: the smallest by operation then key, so the choice is stable.
func firstCurrentOp[T ~string](ops xenapi.Map[string, T], skip func(T) bool) (key string, op T, ok bool) {
	for k, o := range ops.All() {
		if skip != nil && skip(o) {
			continue
		}
		if !ok || o < op {
			key, op, ok = k, o, true
		}
	}
	return key, op, ok
}

// opsTable collects the first failure of each operation, as xapi's
// allowed-operations tables do: a later rule never replaces an earlier one.
type opsTable[T comparable] map[T]error

func (t opsTable[T]) set(err error, ops ...T) {
	for _, op := range ops {
		if _, done := t[op]; !done {
			t[op] = err
		}
	}
}

// allowed lists, in the order of all, the operations without a failure.
func (t opsTable[T]) allowed(all []T) []T {
	out := make([]T, 0, len(all))
	for _, op := range all {
		if t[op] == nil {
			out = append(out, op)
		}
	}
	return out
}

// resetStorageOperations runs at start: operations cut short by a restart
// leave marks nobody will clear, so they are dropped, and every SR, VDI and
// VBD gets its allowed_operations recomputed (xapi does the same when it
// starts).
func (s *Server) resetStorageOperations() {
	err := s.store.Update(context.Background(), func(tx *store.Tx) error {
		for ref, r := range tx.All(api.ClassSR) {
			if len(r.(*api.SR).CurrentOperations) > 0 {
				if err := tx.Modify(api.ClassSR, ref, func(r xenapi.Record) error {
					r.(*api.SR).CurrentOperations = nil
					return nil
				}); err != nil {
					return err
				}
			}
		}
		for ref, r := range tx.All(api.ClassVDI) {
			if len(r.(*api.VDI).CurrentOperations) > 0 {
				if err := tx.Modify(api.ClassVDI, ref, func(r xenapi.Record) error {
					r.(*api.VDI).CurrentOperations = nil
					return nil
				}); err != nil {
					return err
				}
			}
		}
		for _, c := range []*xenapi.Class{api.ClassSR, api.ClassVDI, api.ClassVBD} {
			for ref := range tx.All(c) {
				if err := stoRefresh(tx, c, ref); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("storage: resetting operations", "err", err)
	}
}
