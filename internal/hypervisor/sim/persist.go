package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

var timeZero time.Time

// stateFile is the content of StateDir/StateFile.
type stateFile struct {
	Version   int      `json:"version"`
	NextDomid int      `json:"next_domid"`
	Domains   []record `json:"domains"`
}

const stateVersion = 1

// flush makes sure the changes up to generation gen are in the state file
// (written atomically: temporary file, fsync, rename, fsync of the
// directory). Concurrent callers share one write: whoever writes takes
// every change made so far. A no-op without StateDir. Never call it with
// d.mu held.
func (d *Driver) flush(gen uint64) error {
	if d.opts.StateDir == "" {
		return nil
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if d.savedGen >= gen {
		return nil
	}
	d.mu.Lock()
	sf := stateFile{Version: stateVersion, NextDomid: d.nextDomid, Domains: make([]record, 0, len(d.doms))}
	for _, x := range d.doms {
		sf.Domains = append(sf.Domains, x.rec)
	}
	g := d.gen
	slices.SortFunc(sf.Domains, func(a, b record) int { return a.Domid - b.Domid })
	data, err := json.Marshal(&sf) // under mu: records share the specs' slices and maps
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sim: saving state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(d.opts.StateDir, StateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("sim: saving state: %w", err)
	}
	d.savedGen = g
	return nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	// No fsync: the file must survive xenithd dying (the rename makes it
	// whole either way, and the page cache outlives the process), not the
	// host losing power, which no simulated domain would survive anyway.
	// Skipping it keeps a VM start within a few milliseconds.
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// load reads the state file, if any, and brings the domains back to life.
func (d *Driver) load() error {
	dir := d.opts.StateDir
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: state dir: %w", err)
	}
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sim: reading state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return fmt.Errorf("sim: state file %s is corrupt: %w", path, err)
	}
	if sf.Version != stateVersion {
		return fmt.Errorf("sim: state file %s has version %d, want %d", path, sf.Version, stateVersion)
	}

	d.mu.Lock()
	domids := map[int]bool{}
	next := 1
	for _, rec := range sf.Domains {
		u := rec.Spec.UUID
		if u == "" || d.doms[u] != nil || rec.Domid <= 0 || domids[rec.Domid] {
			d.mu.Unlock()
			return fmt.Errorf("sim: state file %s: bad or repeated domain %q (domid %d)", path, u, rec.Domid)
		}
		if rec.Load != nil {
			if err := rec.Load.check(); err != nil {
				d.mu.Unlock()
				return fmt.Errorf("sim: state file %s: domain %q: load: %v", path, u, err)
			}
		}
		spreadCPUTime(&rec)
		domids[rec.Domid] = true
		next = max(next, rec.Domid+1)
		x := &dom{rec: rec}
		d.guestResumed(x)
		d.doms[u] = x
	}
	d.nextDomid = max(sf.NextDomid, next)

	changed := false
	for _, x := range d.doms {
		// Clocks run exactly when the guest runs (not in ACPI S3).
		if x.awake() {
			if x.rec.UpSince.IsZero() {
				x.rec.UpSince, changed = time.Now(), true
			}
			if x.rec.CPUSince.IsZero() {
				x.rec.CPUSince, changed = d.now(), true
			}
		} else if !x.rec.UpSince.IsZero() || !x.rec.CPUSince.IsZero() {
			x.rec.UpSince, x.rec.CPUSince, changed = timeZero, timeZero, true
		}
		// Whoever waited for a clean shutdown is gone: a guest that can
		// obey finishes it now, otherwise the request is withdrawn.
		if x.rec.Pending != "" {
			changed = true
			switch {
			case !x.awake() || x.rec.Hung:
				finishRequest(x, nil)
			case x.rec.Pending == pendingHalt:
				d.remove(x)
				continue
			default:
				finishRequest(x, nil)
				d.rebootInPlace(x)
			}
		}
		before := x.rec.AgentDone
		d.advance(x) // overdue agent reports now, timers for the rest
		if x.rec.AgentDone != before {
			changed = true
		}
	}
	var gen uint64 // 0: the file is up to date
	if changed {
		gen = d.markLocked()
	}
	d.mu.Unlock()
	if err := d.flush(gen); err != nil {
		d.Close() // stops the timers armed above
		return err
	}
	return nil
}

// ---- Suspend images ----
//
// A suspend image is a header line
//
//	XENITH-SIM-SUSPEND 1 <n>\n
//
// followed by n bytes of JSON (imageBody: the domain's record, with its
// current spec, memory target, VCPUs, guest progress and hang), then zero
// padding so that the file is about as large as the guest's memory (a
// sparse file where the filesystem allows).

const imageMagic = "XENITH-SIM-SUSPEND"

type imageBody struct {
	Version int       `json:"version"`
	SavedAt time.Time `json:"saved_at"`
	Domain  record    `json:"domain"`
}

func writeImage(path string, rec *record) error {
	body, err := json.MarshalIndent(imageBody{Version: 1, SavedAt: time.Now().UTC(), Domain: *rec}, "", "  ")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s 1 %d\n", imageMagic, len(body))
	buf.Write(body)
	size := int64(buf.Len()) + rec.Spec.MemoryTarget

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// A regular file (or a new one) is replaced atomically; anything else
	// (a block device standing for a VDI) is written in place.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.Write(buf.Bytes()); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	_ = f.Truncate(size) // sparse padding to the memory size: cosmetic
	// No fsync: the file must survive xenithd dying (the rename makes it
	// whole either way, and the page cache outlives the process), not the
	// host losing power, which no simulated domain would survive anyway.
	// Skipping it keeps a VM start within a few milliseconds.
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// maxImageBody bounds the JSON part of a suspend image.
const maxImageBody = 16 << 20

func readImage(path string) (*record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 128+maxImageBody))
	line, err := r.ReadString('\n')
	if err != nil || len(line) > 128 {
		return nil, fmt.Errorf("%s: no suspend image header: %w", path, ErrBadImage)
	}
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != imageMagic || fields[1] != "1" {
		return nil, fmt.Errorf("%s: not a sim suspend image (header %q): %w", path, strings.TrimSpace(line), ErrBadImage)
	}
	n, err := strconv.Atoi(fields[2])
	if err != nil || n <= 0 || n > maxImageBody {
		return nil, fmt.Errorf("%s: bad body length %q: %w", path, fields[2], ErrBadImage)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("%s: truncated: %w", path, ErrBadImage)
	}
	var img imageBody
	if err := json.Unmarshal(body, &img); err != nil {
		return nil, fmt.Errorf("%s: corrupt body: %v: %w", path, err, ErrBadImage)
	}
	if img.Version != 1 || img.Domain.Spec.UUID == "" {
		return nil, fmt.Errorf("%s: unsupported image version %d or no uuid: %w", path, img.Version, ErrBadImage)
	}
	return &img.Domain, nil
}
