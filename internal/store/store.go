// Package store is the object database of xenithd: every XenAPI object
// lives here as an immutable generated record. Reads are served from memory;
// writes are applied in memory, given the next value of one global
// generation counter and acknowledged only once a group commit has made
// them durable in an embedded bbolt database.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/xenapi"
)

// Op is the kind of a change, as event.from names it.
type Op uint8

const (
	OpAdd Op = iota
	OpMod
	OpDel
)

func (o Op) String() string {
	switch o {
	case OpAdd:
		return "add"
	case OpMod:
		return "mod"
	}
	return "del"
}

// Row is a published object: its record never changes once published.
type Row struct {
	Ref      xenapi.Ref
	Rec      xenapi.Record
	Created  uint64 // generation of the add
	Modified uint64 // generation of the last change
}

// Change is one committed change, the raw material of the event stream.
// Rec is the record after the change as Changes reads it: the current
// record for add and mod (nil if the object has been deleted since), the
// last record for del.
type Change struct {
	Gen   uint64
	Time  time.Time
	Class *xenapi.Class
	Ref   xenapi.Ref
	Op    Op
	Rec   xenapi.Record // the record after the change; for del, the last one
}

type table struct {
	class  *xenapi.Class
	rows   map[xenapi.Ref]*Row
	byUUID map[string]xenapi.Ref
}

// binding says: when field From of a record changes, the records it refers
// to (of class To) must list that record in their field ToField.
type binding struct {
	from    *xenapi.Field
	to      *xenapi.Class
	toField *xenapi.Field
}

// Store is safe for concurrent use.
type Store struct {
	mu       sync.RWMutex
	tables   map[*xenapi.Class]*table
	byName   map[string]*xenapi.Class
	bindings map[*xenapi.Class][]binding
	gen      uint64
	log      []Change // recent changes, oldest first
	logStart uint64   // generations below this have left the log
	wake     chan struct{}

	persist *persister // nil for a memory-only store (tests, benchmarks)
	maxLog  int
	subs    map[*Subscription]struct{}
}

// defaultLogSize bounds the change log kept for event readers; a reader
// further behind than this gets EVENTS_LOST and rereads everything.
const defaultLogSize = 1 << 16

// Options configures Open.
type Options struct {
	// Path of the bbolt file; empty for a memory-only store.
	Path string
	// NoSync skips fsync (bulk loads in benchmarks only).
	NoSync bool
	// LogSize is how many recent changes are kept for event readers
	// (default 65536).
	LogSize int
}

// Open loads the database at opts.Path (creating it if needed).
func Open(opts Options) (*Store, error) {
	s := &Store{
		tables:   make(map[*xenapi.Class]*table),
		byName:   make(map[string]*xenapi.Class),
		bindings: make(map[*xenapi.Class][]binding),
		wake:     make(chan struct{}),
		maxLog:   opts.LogSize,
	}
	if s.maxLog <= 0 {
		s.maxLog = defaultLogSize
	}
	for _, c := range api.Classes {
		s.byName[c.Name] = c
		if c.Stored {
			s.tables[c] = &table{class: c, rows: make(map[xenapi.Ref]*Row), byUUID: make(map[string]xenapi.Ref)}
		}
	}
	s.initBindings()
	if opts.Path != "" {
		p, err := openPersister(opts.Path, opts.NoSync)
		if err != nil {
			return nil, err
		}
		p.skip = s.derivedFields()
		if err := p.load(s); err != nil {
			p.close()
			return nil, err
		}
		s.rebuildDerived()
		p.releaseMappedPages()
		s.persist = p
		s.logStart = s.gen + 1
	}
	return s, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if s.persist == nil {
		return nil
	}
	return s.persist.close()
}

func (s *Store) initBindings() {
	for _, rel := range api.Relations {
		a, b := s.byName[rel[0].Class], s.byName[rel[1].Class]
		if a == nil || b == nil || s.tables[a] == nil || s.tables[b] == nil {
			continue
		}
		af, bf := a.Field(rel[0].Field), b.Field(rel[1].Field)
		if af == nil || bf == nil || af.Refs == nil || bf.Refs == nil || af == bf {
			continue
		}
		s.bindings[a] = append(s.bindings[a], binding{from: af, to: b, toField: bf})
		if af.Type.Kind == xenapi.TSet {
			// Many-to-many: both sides drive each other.
			s.bindings[b] = append(s.bindings[b], binding{from: bf, to: a, toField: af})
		}
	}
}

// derivedFields are the set sides of one-to-many bindings (SR.VDIs,
// VM.VBDs, host.resident_VMs...): they follow from the single references
// on the other side, so they are not stored on disk but rebuilt on load.
func (s *Store) derivedFields() map[*xenapi.Field]bool {
	out := map[*xenapi.Field]bool{}
	for _, bs := range s.bindings {
		for _, b := range bs {
			if b.from.Type.Kind == xenapi.TRef {
				out[b.toField] = true
			}
		}
	}
	return out
}

// rebuildDerived recomputes the derived set fields from the references
// that point at each object. It runs during Open, before any record is
// shared, so it may change records in place.
func (s *Store) rebuildDerived() {
	for from, bs := range s.bindings {
		for _, b := range bs {
			if b.from.Type.Kind != xenapi.TRef {
				continue
			}
			members := map[xenapi.Ref][]xenapi.Ref{}
			for ref, row := range s.tables[from].rows {
				for _, target := range b.from.Refs(row.Rec) {
					if !target.IsNull() {
						members[target] = append(members[target], ref)
					}
				}
			}
			for ref, row := range s.tables[b.to].rows {
				b.toField.SetRefs(row.Rec, members[ref])
			}
		}
	}
}

// Class returns the descriptor of a class by its API name.
func (s *Store) Class(name string) *xenapi.Class { return s.byName[name] }

// Generation returns the generation of the last committed change.
func (s *Store) Generation() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen
}

// Get returns the row of an object, or HANDLE_INVALID.
func (s *Store) Get(c *xenapi.Class, ref xenapi.Ref) (*Row, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.getLocked(c, ref)
}

func (s *Store) getLocked(c *xenapi.Class, ref xenapi.Ref) (*Row, error) {
	t := s.tables[c]
	if t != nil {
		if r, ok := t.rows[ref]; ok {
			return r, nil
		}
	}
	return nil, xenapi.NewError(api.ErrHandleInvalid, c.Name, string(ref))
}

// ByUUID finds an object by uuid, or UUID_INVALID.
func (s *Store) ByUUID(c *xenapi.Class, id string) (*Row, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t := s.tables[c]; t != nil {
		if ref, ok := t.byUUID[id]; ok {
			return t.rows[ref], nil
		}
	}
	return nil, xenapi.NewError(api.ErrUUIDInvalid, c.Name, id)
}

// All returns every row of a class. The rows are immutable, so callers may
// encode them after the call without holding any lock.
func (s *Store) All(c *xenapi.Class) []*Row {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tables[c]
	if t == nil {
		return nil
	}
	out := make([]*Row, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, r)
	}
	return out
}

// Count returns the number of objects of a class.
func (s *Store) Count(c *xenapi.Class) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t := s.tables[c]; t != nil {
		return len(t.rows)
	}
	return 0
}

// Counts returns the live object count of every stored class.
func (s *Store) Counts() map[*xenapi.Class]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[*xenapi.Class]int, len(s.tables))
	for c, t := range s.tables {
		out[c] = len(t.rows)
	}
	return out
}

// Find returns the rows of a class for which keep returns true.
func (s *Store) Find(c *xenapi.Class, keep func(*Row) bool) []*Row {
	var out []*Row
	for _, r := range s.All(c) {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// Changes returns the committed changes with generation > since, the current
// generation, and whether the log still reaches back to since (false means
// the caller must resynchronise from full state).
func (s *Store) Changes(since uint64) ([]Change, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if since+1 < s.logStart {
		return nil, s.gen, false
	}
	// The log is ordered by generation; find the first entry after since.
	lo, hi := 0, len(s.log)
	for lo < hi {
		m := (lo + hi) / 2
		if s.log[m].Gen <= since {
			lo = m + 1
		} else {
			hi = m
		}
	}
	out := make([]Change, len(s.log)-lo)
	copy(out, s.log[lo:])
	for i := range out {
		if out[i].Op == OpDel {
			continue
		}
		// The record as it is now; an object deleted since is reported by
		// its later del entry, which carries its last record.
		if t := s.tables[out[i].Class]; t != nil {
			if r, ok := t.rows[out[i].Ref]; ok {
				out[i].Rec = r.Rec
			}
		}
	}
	return out, s.gen, true
}

// Wait returns a channel that is closed at the next commit. Waiters sleep on
// it instead of polling.
func (s *Store) Wait() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wake
}

// NewRef makes a fresh opaque reference.
func NewRef() xenapi.Ref { return xenapi.Ref("OpaqueRef:" + uuid.NewString()) }

// Update runs fn in a write transaction. fn sees its own writes; nothing is
// visible to others until fn returns nil. Update returns once the changes
// are durable (or ctx ends, in which case the changes are still committed
// and will reach disk, but the caller stops waiting).
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	s.mu.Lock()
	tx := &Tx{s: s, pending: make(map[key]*pending)}
	if err := fn(tx); err != nil {
		s.mu.Unlock()
		return err
	}
	if len(tx.order) == 0 {
		s.mu.Unlock()
		return nil
	}
	if err := tx.fixBindings(); err != nil {
		s.mu.Unlock()
		return err
	}
	changes := tx.apply()
	wake := s.wake
	s.wake = make(chan struct{})
	var done <-chan error
	if s.persist != nil {
		done = s.persist.enqueue(changes)
	}
	s.mu.Unlock()
	close(wake)
	if done == nil {
		return nil
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type key struct {
	class *xenapi.Class
	ref   xenapi.Ref
}

type pending struct {
	rec     xenapi.Record // nil: deleted
	created bool
	old     xenapi.Record // the published record before this tx, nil if new
	// private: rec is a copy adjust made in this transaction, which it may
	// change again in place (a transaction adding a hundred VDIs to an SR
	// then copies the SR's VDI set once, not a hundred times).
	private bool
}

// Tx is a write transaction; it is only valid inside Update's fn.
type Tx struct {
	s       *Store
	pending map[key]*pending
	order   []key
	// user marks the keys written by fn itself (bindings follow only those).
	user map[key]bool
}

// Get returns the current record (including this transaction's writes).
func (tx *Tx) Get(c *xenapi.Class, ref xenapi.Ref) (xenapi.Record, error) {
	if p, ok := tx.pending[key{c, ref}]; ok {
		if p.rec == nil {
			return nil, xenapi.NewError(api.ErrHandleInvalid, c.Name, string(ref))
		}
		return p.rec, nil
	}
	r, err := tx.s.getLocked(c, ref)
	if err != nil {
		return nil, err
	}
	return r.Rec, nil
}

// Exists reports whether an object exists.
func (tx *Tx) Exists(c *xenapi.Class, ref xenapi.Ref) bool {
	_, err := tx.Get(c, ref)
	return err == nil
}

// All returns the records of a class as this transaction sees them.
func (tx *Tx) All(c *xenapi.Class) map[xenapi.Ref]xenapi.Record {
	out := make(map[xenapi.Ref]xenapi.Record)
	if t := tx.s.tables[c]; t != nil {
		for ref, r := range t.rows {
			out[ref] = r.Rec
		}
	}
	for k, p := range tx.pending {
		if k.class != c {
			continue
		}
		if p.rec == nil {
			delete(out, k.ref)
		} else {
			out[k.ref] = p.rec
		}
	}
	return out
}

func (tx *Tx) note(k key, p *pending, byUser bool) {
	if _, seen := tx.pending[k]; !seen {
		tx.order = append(tx.order, k)
	}
	tx.pending[k] = p
	if byUser {
		if tx.user == nil {
			tx.user = make(map[key]bool)
		}
		tx.user[k] = true
	}
}

func (tx *Tx) published(k key) xenapi.Record {
	if t := tx.s.tables[k.class]; t != nil {
		if r, ok := t.rows[k.ref]; ok {
			return r.Rec
		}
	}
	return nil
}

// Create adds a new object. rec must be a fresh record of a stored class; a
// missing uuid is generated. It returns the new reference.
func (tx *Tx) Create(rec xenapi.Record) (xenapi.Ref, error) {
	return tx.CreateWithRef(NewRef(), rec)
}

// CreateWithRef adds a new object under a chosen reference.
func (tx *Tx) CreateWithRef(ref xenapi.Ref, rec xenapi.Record) (xenapi.Ref, error) {
	c := rec.XenClass()
	t := tx.s.tables[c]
	if t == nil {
		return "", fmt.Errorf("class %s is not stored", c.Name)
	}
	if c.HasUUID {
		id := rec.RecordUUID()
		if id == "" {
			id = uuid.NewString()
			if err := c.Field("uuid").Set(rec, stringValue(id)); err != nil {
				return "", err
			}
		}
		if tx.uuidTaken(c, id) {
			return "", xenapi.NewError(api.ErrDBUniquenessConstraintViolation, c.Name, "uuid", id)
		}
	}
	k := key{c, ref}
	if tx.Exists(c, ref) {
		return "", xenapi.NewError(api.ErrDBUniquenessConstraintViolation, c.Name, "_ref", string(ref))
	}
	tx.note(k, &pending{rec: rec, created: tx.published(k) == nil, old: tx.published(k)}, true)
	return ref, nil
}

func (tx *Tx) uuidTaken(c *xenapi.Class, id string) bool {
	if ref, ok := tx.s.tables[c].byUUID[id]; ok {
		if p, pend := tx.pending[key{c, ref}]; !pend || p.rec != nil {
			return true
		}
	}
	for k, p := range tx.pending {
		if k.class == c && p.rec != nil && p.rec.RecordUUID() == id {
			return true
		}
	}
	return false
}

// Put replaces the record of an existing object. rec must be a private
// clone (see Modify); the uuid may not change.
func (tx *Tx) Put(ref xenapi.Ref, rec xenapi.Record) error {
	c := rec.XenClass()
	old, err := tx.Get(c, ref)
	if err != nil {
		return err
	}
	if old.RecordUUID() != rec.RecordUUID() {
		return xenapi.NewError(api.ErrFieldTypeError, "uuid")
	}
	k := key{c, ref}
	p := &pending{rec: rec, old: tx.published(k)}
	if prev, ok := tx.pending[k]; ok {
		p.created = prev.created
	}
	tx.note(k, p, true)
	return nil
}

// Modify clones the current record, lets fn change the clone and stores it.
func (tx *Tx) Modify(c *xenapi.Class, ref xenapi.Ref, fn func(rec xenapi.Record) error) error {
	cur, err := tx.Get(c, ref)
	if err != nil {
		return err
	}
	clone := cur.Clone()
	if err := fn(clone); err != nil {
		return err
	}
	return tx.Put(ref, clone)
}

// Delete removes an object.
func (tx *Tx) Delete(c *xenapi.Class, ref xenapi.Ref) error {
	if _, err := tx.Get(c, ref); err != nil {
		return err
	}
	k := key{c, ref}
	old := tx.published(k)
	if p, ok := tx.pending[k]; ok && p.created {
		// Created and deleted in one transaction: nothing to publish.
		delete(tx.pending, k)
		for i, o := range tx.order {
			if o == k {
				tx.order = append(tx.order[:i], tx.order[i+1:]...)
				break
			}
		}
		return nil
	}
	tx.note(k, &pending{old: old}, true)
	return nil
}

// fixBindings keeps bound fields consistent: for every record written by
// the transaction, the objects its reference fields gained or lost have the
// record added to or removed from their bound set field.
func (tx *Tx) fixBindings() error {
	for _, k := range append([]key(nil), tx.order...) {
		if !tx.user[k] {
			continue
		}
		bs := tx.s.bindings[k.class]
		if len(bs) == 0 {
			continue
		}
		p := tx.pending[k]
		if p == nil {
			continue
		}
		for _, b := range bs {
			var before, after []xenapi.Ref
			if p.old != nil {
				before = b.from.Refs(p.old)
			}
			if p.rec != nil {
				after = b.from.Refs(p.rec)
			}
			for _, target := range diff(before, after) {
				tx.adjust(b, target, k.ref, false)
			}
			for _, target := range diff(after, before) {
				tx.adjust(b, target, k.ref, true)
			}
		}
	}
	return nil
}

// adjust adds (or removes) member to the bound set field of target.
func (tx *Tx) adjust(b binding, target, member xenapi.Ref, add bool) {
	if target.IsNull() {
		return
	}
	cur, err := tx.Get(b.to, target)
	if err != nil {
		return // dangling reference: nothing to keep consistent
	}
	refs := b.toField.Refs(cur)
	has := false
	for _, r := range refs {
		if r == member {
			has = true
			break
		}
	}
	if has == add {
		return
	}
	k := key{b.to, target}
	if p := tx.pending[k]; p != nil && p.private && add {
		// The set is this transaction's own copy: append grows it in
		// amortised constant time.
		b.toField.SetRefs(p.rec, append(refs, member))
		return
	}
	var next []xenapi.Ref
	if add {
		next = append(append(make([]xenapi.Ref, 0, len(refs)+1), refs...), member)
	} else {
		for _, r := range refs {
			if r != member {
				next = append(next, r)
			}
		}
	}
	clone := cur.Clone()
	b.toField.SetRefs(clone, next)
	p := &pending{rec: clone, old: tx.published(k), private: true}
	if prev, ok := tx.pending[k]; ok {
		p.created = prev.created
	}
	tx.note(k, p, false)
}

func diff(a, b []xenapi.Ref) []xenapi.Ref {
	var out []xenapi.Ref
outer:
	for _, x := range a {
		if x.IsNull() {
			continue
		}
		for _, y := range b {
			if x == y {
				continue outer
			}
		}
		out = append(out, x)
	}
	return out
}

// apply publishes the transaction; the caller holds the write lock.
func (tx *Tx) apply() []Change {
	s := tx.s
	changes := make([]Change, 0, len(tx.order))
	at := now().UTC()
	for _, k := range tx.order {
		p := tx.pending[k]
		t := s.tables[k.class]
		s.gen++
		ch := Change{Gen: s.gen, Time: at, Class: k.class, Ref: k.ref}
		old := t.rows[k.ref]
		switch {
		case p.rec == nil:
			if old == nil {
				continue
			}
			delete(t.rows, k.ref)
			if id := old.Rec.RecordUUID(); id != "" {
				delete(t.byUUID, id)
			}
			ch.Op, ch.Rec = OpDel, old.Rec
		case old == nil:
			t.rows[k.ref] = &Row{Ref: k.ref, Rec: p.rec, Created: s.gen, Modified: s.gen}
			if id := p.rec.RecordUUID(); id != "" {
				t.byUUID[id] = k.ref
			}
			ch.Op, ch.Rec = OpAdd, p.rec
		default:
			t.rows[k.ref] = &Row{Ref: k.ref, Rec: p.rec, Created: old.Created, Modified: s.gen}
			ch.Op, ch.Rec = OpMod, p.rec
		}
		changes = append(changes, ch)
	}
	for sub := range s.subs {
		sub.push(changes)
	}
	// The log keeps records only for deletions (the tombstones); readers
	// of adds and mods get the current record (Changes), so the log does
	// not pin old versions of big records.
	for _, ch := range changes {
		if ch.Op != OpDel {
			ch.Rec = nil
		}
		s.log = append(s.log, ch)
	}
	if len(s.log) > s.maxLog {
		drop := len(s.log) - s.maxLog/2
		s.logStart = s.log[drop].Gen
		s.log = append([]Change(nil), s.log[drop:]...)
	}
	return changes
}

// LogStart returns the oldest generation the change log still holds
// changes after; a reader whose position is below it has missed changes.
func (s *Store) LogStart() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.logStart
}

// Generation returns the last committed generation (before this
// transaction's changes).
func (tx *Tx) Generation() uint64 { return tx.s.gen }

// Touch publishes a "mod" change of an object without changing it
// (event.inject).
func (tx *Tx) Touch(c *xenapi.Class, ref xenapi.Ref) error {
	return tx.Modify(c, ref, func(xenapi.Record) error { return nil })
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store closed")

// now is the clock of the store's users; tests may replace it.
var now = time.Now
