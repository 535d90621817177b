package store

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/xenapi"
)

func memStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t *testing.T, s *Store, rec xenapi.Record) xenapi.Ref {
	t.Helper()
	var ref xenapi.Ref
	if err := s.Update(context.Background(), func(tx *Tx) error {
		var err error
		ref, err = tx.Create(rec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ref
}

func code(err error) string {
	var xe *xenapi.Error
	if errors.As(err, &xe) {
		return xe.Code
	}
	return ""
}

func TestCreateGetUUIDAndErrors(t *testing.T) {
	t.Parallel()
	s := memStore(t)
	vm := api.NewVM()
	vm.NameLabel = "a"
	ref := mustCreate(t, s, vm)
	row, err := s.Get(api.ClassVM, ref)
	if err != nil {
		t.Fatal(err)
	}
	got := row.Rec.(*api.VM)
	if got.UUID == "" || got.NameLabel != "a" {
		t.Fatalf("record = %+v", got)
	}
	if r, err := s.ByUUID(api.ClassVM, got.UUID); err != nil || r.Ref != ref {
		t.Fatalf("ByUUID = %v, %v", r, err)
	}
	for _, tc := range []struct {
		name string
		err  error
		code string
	}{
		{"bad ref", func() error { _, err := s.Get(api.ClassVM, "OpaqueRef:nope"); return err }(), api.ErrHandleInvalid},
		{"bad uuid", func() error { _, err := s.ByUUID(api.ClassVM, "nope"); return err }(), api.ErrUUIDInvalid},
		{"wrong class", func() error { _, err := s.Get(api.ClassHost, ref); return err }(), api.ErrHandleInvalid},
		{"duplicate uuid", s.Update(context.Background(), func(tx *Tx) error {
			dup := api.NewVM()
			dup.UUID = got.UUID
			_, err := tx.Create(dup)
			return err
		}), api.ErrDBUniquenessConstraintViolation},
	} {
		if c := code(tc.err); c != tc.code {
			t.Errorf("%s: code %q (%v), want %q", tc.name, c, tc.err, tc.code)
		}
	}
}

func TestFailedTransactionChangesNothing(t *testing.T) {
	t.Parallel()
	s := memStore(t)
	gen := s.Generation()
	err := s.Update(context.Background(), func(tx *Tx) error {
		if _, err := tx.Create(api.NewVM()); err != nil {
			return err
		}
		return errors.New("boom")
	})
	if err == nil || s.Count(api.ClassVM) != 0 || s.Generation() != gen {
		t.Fatalf("err=%v count=%d gen=%d->%d", err, s.Count(api.ClassVM), gen, s.Generation())
	}
}

func TestBoundFields(t *testing.T) {
	t.Parallel()
	s := memStore(t)
	vm := mustCreate(t, s, api.NewVM())
	vm2 := mustCreate(t, s, api.NewVM())
	vbdRec := api.NewVBD()
	vbdRec.VM = vm
	vbd := mustCreate(t, s, vbdRec)

	vbds := func(ref xenapi.Ref) []xenapi.Ref {
		row, err := s.Get(api.ClassVM, ref)
		if err != nil {
			t.Fatal(err)
		}
		return row.Rec.(*api.VM).VBDs
	}
	if got := vbds(vm); !slices.Equal(got, []xenapi.Ref{vbd}) {
		t.Fatalf("after create VM.VBDs = %v", got)
	}
	// Moving the VBD updates both ends.
	if err := s.Update(context.Background(), func(tx *Tx) error {
		return tx.Modify(api.ClassVBD, vbd, func(r xenapi.Record) error { r.(*api.VBD).VM = vm2; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(vbds(vm)) != 0 || !slices.Equal(vbds(vm2), []xenapi.Ref{vbd}) {
		t.Fatalf("after move: vm=%v vm2=%v", vbds(vm), vbds(vm2))
	}
	// Destroying it removes it from the set.
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Delete(api.ClassVBD, vbd) }); err != nil {
		t.Fatal(err)
	}
	if len(vbds(vm2)) != 0 {
		t.Fatalf("after delete VM.VBDs = %v", vbds(vm2))
	}
	// A dangling reference is kept but binds nothing.
	dangling := api.NewVBD()
	dangling.VM = "OpaqueRef:gone"
	mustCreate(t, s, dangling)
}

func TestManyToManyBinding(t *testing.T) {
	t.Parallel()
	s := memStore(t)
	upd := mustCreate(t, s, api.NewPoolUpdate())
	h := api.NewHost()
	h.Updates = []xenapi.Ref{upd}
	host := mustCreate(t, s, h)
	row, _ := s.Get(api.ClassPoolUpdate, upd)
	if got := row.Rec.(*api.PoolUpdate).Hosts; !slices.Equal(got, []xenapi.Ref{host}) {
		t.Fatalf("pool_update.hosts = %v", got)
	}
}

func TestChangesLogAndWake(t *testing.T) {
	t.Parallel()
	s := memStore(t)
	start := s.Generation()
	wake := s.Wait()
	ref := mustCreate(t, s, api.NewNetwork())
	select {
	case <-wake:
	default:
		t.Fatal("commit did not wake waiters")
	}
	_ = s.Update(context.Background(), func(tx *Tx) error {
		return tx.Modify(api.ClassNetwork, ref, func(r xenapi.Record) error { r.(*api.Network).NameLabel = "x"; return nil })
	})
	_ = s.Update(context.Background(), func(tx *Tx) error { return tx.Delete(api.ClassNetwork, ref) })
	changes, gen, ok := s.Changes(start)
	if !ok || gen != start+3 || len(changes) != 3 {
		t.Fatalf("changes=%v gen=%d ok=%v", changes, gen, ok)
	}
	for i, op := range []Op{OpAdd, OpMod, OpDel} {
		if changes[i].Op != op || changes[i].Ref != ref || changes[i].Gen != start+uint64(i)+1 {
			t.Errorf("change %d = %+v", i, changes[i])
		}
	}
	if changes[2].Rec.(*api.Network).NameLabel != "x" {
		t.Error("del change does not carry the last record")
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	vm := api.NewVM()
	vm.NameLabel = "persist me"
	vm.OtherConfig = xenapi.MapOf(map[string]string{"k": "v"})
	vm.MemoryStaticMax = 1 << 30
	ref := mustCreate(t, s, vm)
	vbd := api.NewVBD()
	vbd.VM = ref
	vbdRef := mustCreate(t, s, vbd)
	gone := mustCreate(t, s, api.NewVM())
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Delete(api.ClassVM, gone) }); err != nil {
		t.Fatal(err)
	}
	gen := s.Generation()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	row, err := s2.Get(api.ClassVM, ref)
	if err != nil {
		t.Fatal(err)
	}
	got := row.Rec.(*api.VM)
	if got.NameLabel != "persist me" || got.OtherConfig.Get("k") != "v" || got.MemoryStaticMax != 1<<30 ||
		got.UUID != vm.UUID || !slices.Equal(got.VBDs, []xenapi.Ref{vbdRef}) || got.ResidentOn != xenapi.NullRef {
		t.Fatalf("reloaded record = %+v", got)
	}
	if _, err := s2.Get(api.ClassVM, gone); code(err) != api.ErrHandleInvalid {
		t.Fatalf("deleted VM came back: %v", err)
	}
	if s2.Generation() != gen {
		t.Fatalf("generation %d after reopen, want %d", s2.Generation(), gen)
	}
}

func TestConcurrentWritersShareCommits(t *testing.T) {
	t.Parallel()
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Update(context.Background(), func(tx *Tx) error { _, err := tx.Create(api.NewVM()); return err })
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Count(api.ClassVM); n != 64 {
		t.Fatalf("count = %d", n)
	}
}
