package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// persister writes committed changes to bbolt with group commit: every
// change queued while one transaction is being fsynced goes into the next
// one, so many concurrent writers share one fsync.
type persister struct {
	db *bolt.DB

	mu      sync.Mutex
	queue   []Change
	waiters []chan error
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	closed  bool

	defaults map[*xenapi.Class][][]byte // encoded default of each field
	skip     map[*xenapi.Field]bool     // derived fields, rebuilt on load
	written  int                        // bytes written since pages were last released
}

// Writes fault in database pages (B+tree descents to random leaves) that
// stay mapped, so the pages are released again: once writing has paused for
// releaseIdle, and every releaseEvery bytes during a long burst. A daemon's
// resident memory then tracks its objects, not its file.
const (
	releaseEvery = 16 << 20
	releaseIdle  = 250 * time.Millisecond
)

var metaBucket = []byte("_meta")
var genKey = []byte("generation")

func openPersister(path string, noSync bool) (*persister, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: noSync, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	p := &persister{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		defaults: make(map[*xenapi.Class][][]byte)}
	go p.run()
	return p, nil
}

func (p *persister) fieldDefaults(c *xenapi.Class) [][]byte {
	if d, ok := p.defaults[c]; ok {
		return d
	}
	rec := c.New()
	var e jsonrpc.Encoder
	d := make([][]byte, len(c.Fields))
	for i, f := range c.Fields {
		e.Reset(nil)
		f.Get(rec, &e)
		d[i] = e.Bytes()
	}
	p.defaults[c] = d
	return d
}

// encodeRecord writes a record as a JSON object of the fields that differ
// from the schema default, prefixed by its generation. Storing only what
// differs keeps the file, and the page cache it occupies, small.
func (p *persister) encodeRecord(gen uint64, rec xenapi.Record) []byte {
	c := rec.XenClass()
	defs := p.fieldDefaults(c)
	out := make([]byte, 8, 512)
	binary.BigEndian.PutUint64(out, gen)
	out = append(out, '{')
	var e jsonrpc.Encoder
	var scratch []byte
	first := true
	for i, f := range c.Fields {
		if p.skip[f] {
			continue
		}
		e.Reset(scratch[:0])
		f.Get(rec, &e)
		v := e.Bytes()
		scratch = v
		if bytes.Equal(v, defs[i]) {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, '"')
		out = append(out, f.Name...)
		out = append(out, '"', ':')
		out = append(out, v...)
	}
	return append(out, '}')
}

func decodeRecord(c *xenapi.Class, data []byte) (uint64, xenapi.Record, error) {
	if len(data) < 8 {
		return 0, nil, fmt.Errorf("short record")
	}
	gen := binary.BigEndian.Uint64(data)
	v, err := jsonrpc.ParseValue(data[8:])
	if err != nil {
		return 0, nil, err
	}
	rec := c.New()
	if err := rec.Decode(v); err != nil {
		return 0, nil, err
	}
	return gen, rec, nil
}

// load reads the whole database into s.
func (p *persister) load(s *Store) error {
	return p.db.Update(func(btx *bolt.Tx) error {
		if b := btx.Bucket(metaBucket); b != nil {
			if v := b.Get(genKey); len(v) == 8 {
				s.gen = binary.BigEndian.Uint64(v)
			}
		}
		for c, t := range s.tables {
			b := btx.Bucket([]byte(c.Name))
			if b == nil {
				continue
			}
			err := b.ForEach(func(k, v []byte) error {
				gen, rec, err := decodeRecord(c, v)
				if err != nil {
					return fmt.Errorf("load %s %s: %w", c.Name, k, err)
				}
				ref := xenapi.Ref(k)
				t.rows[ref] = &Row{Ref: ref, Rec: rec, Created: gen, Modified: gen}
				if id := rec.RecordUUID(); id != "" {
					t.byUUID[id] = ref
				}
				if gen > s.gen {
					s.gen = gen
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// releaseMappedPages drops the page-table entries of the database's memory
// map once the load has read it all: the load faults in every page, and
// keeping them mapped would count the whole file in xenithd's resident
// memory although reads never touch bbolt again. The data stays in the
// page cache; later writes fault in only the pages on their path.
func (p *persister) releaseMappedPages() {
	fi, err := os.Stat(p.db.Path())
	if err != nil || fi.Size() == 0 {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, p.db.Info().Data, uintptr(fi.Size()), unix.MADV_DONTNEED)
}

// enqueue is called with the store's write lock held, so the queue is in
// generation order.
func (p *persister) enqueue(changes []Change) <-chan error {
	done := make(chan error, 1)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		done <- ErrClosed
		return done
	}
	p.queue = append(p.queue, changes...)
	p.waiters = append(p.waiters, done)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return done
}

func (p *persister) run() {
	defer close(p.stopped)
	idle := time.NewTimer(releaseIdle)
	idle.Stop()
	for {
		select {
		case <-p.kick:
		case <-idle.C:
			if p.written > 0 {
				p.written = 0
				p.releaseMappedPages()
			}
			continue
		case <-p.stop:
			idle.Stop()
			p.flush()
			return
		}
		p.flush()
		idle.Reset(releaseIdle)
	}
}

func (p *persister) flush() {
	p.mu.Lock()
	queue, waiters := p.queue, p.waiters
	p.queue, p.waiters = nil, nil
	p.mu.Unlock()
	if len(waiters) == 0 {
		return
	}
	err := p.db.Update(func(btx *bolt.Tx) error {
		var last uint64
		for _, ch := range queue {
			b, err := btx.CreateBucketIfNotExists([]byte(ch.Class.Name))
			if err != nil {
				return err
			}
			if ch.Op == OpDel {
				if err := b.Delete([]byte(ch.Ref)); err != nil {
					return err
				}
			} else {
				rec := p.encodeRecord(ch.Gen, ch.Rec)
				p.written += len(rec)
				if err := b.Put([]byte(ch.Ref), rec); err != nil {
					return err
				}
			}
			last = ch.Gen
		}
		meta, err := btx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		var g [8]byte
		binary.BigEndian.PutUint64(g[:], last)
		return meta.Put(genKey, g[:])
	})
	for _, w := range waiters {
		w <- err
	}
	if p.written > releaseEvery {
		p.written = 0
		p.releaseMappedPages()
	}
}

func (p *persister) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	<-p.stopped
	return p.db.Close()
}

func stringValue(s string) wire.Value { return wire.String(s) }
