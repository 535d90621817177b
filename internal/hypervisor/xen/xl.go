package xen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// xl runs the xl command through a Runner and parses what it prints.
type xl struct {
	run  Runner
	path string
}

func (x xl) do(ctx context.Context, args ...string) ([]byte, error) {
	out, err := x.run.Run(ctx, x.path, args...)
	if err != nil {
		return out, classify(err)
	}
	return out, nil
}

// classify turns the xl failures the driver must tell apart into the
// domain package's errors; everything else stays the *CmdError it is.
func classify(err error) error {
	var ce *CmdError
	if !errors.As(err, &ce) {
		return err
	}
	s := ce.Stderr
	switch {
	case strings.Contains(s, "invalid domain identifier"), strings.Contains(s, "maybe this domain does not exist"):
		return fmt.Errorf("%w: %w", domain.ErrNoDomain, err)
	case strings.Contains(s, "failed to free memory for the domain"), strings.Contains(s, "Not enough memory"):
		return &noMemory{err: err}
	}
	return err
}

// noMemory is xl refusing a domain for lack of host memory, when the
// driver's own check before the call did not see it coming.
type noMemory struct{ err error }

func (e *noMemory) Error() string { return e.err.Error() }
func (e *noMemory) Unwrap() []error {
	return []error{domain.ErrNoMemory, e.err}
}

// xlDomain is one line of `xl list -v`.
type xlDomain struct {
	Name    string
	Domid   int
	MemMiB  int64
	VCPUs   int
	Flags   string // "r-----": running, blocked, paused, shutdown, crashed, dying
	CPUTime time.Duration
	UUID    string
	Reason  int // shutdown reason code; -1 when the domain is not shut down
}

// Shutdown reason codes (libxl_shutdown_reason / SHUTDOWN_* in Xen).
const (
	reasonNone     = -1
	reasonPoweroff = 0
	reasonReboot   = 1
	reasonSuspend  = 2
	reasonCrash    = 3
	reasonWatchdog = 4
	reasonSoftRst  = 5
)

// The State column of xl list is six positions: running 'r', blocked
// 'b', paused 'p', shutdown 's', the shutdown reason's letter ('-' for
// poweroff, "rscwS" for reboot, suspend, crash, watchdog, soft reset) and
// dying 'd'.
func (d xlDomain) pos(i int, c byte) bool { return len(d.Flags) > i && d.Flags[i] == c }

func (d xlDomain) paused() bool   { return d.pos(2, 'p') }
func (d xlDomain) shutdown() bool { return d.pos(3, 's') }
func (d xlDomain) dying() bool    { return d.pos(5, 'd') }

// reason is the shutdown reason code, reasonNone if the domain runs.
func (d xlDomain) reason() int {
	if !d.shutdown() {
		return reasonNone
	}
	if d.Reason != reasonNone {
		return d.Reason
	}
	if len(d.Flags) > 4 {
		if i := strings.IndexByte("-rscwS", d.Flags[4]); i >= 0 {
			return i
		}
	}
	return reasonPoweroff
}

// state maps xl's flags and shutdown reason to the manager's states. ok is
// false for a domain on its way out (dying, or shut down for a save).
func (d xlDomain) state() (s domain.State, ok bool) {
	switch {
	case d.dying():
		return 0, false
	case d.shutdown():
		switch d.reason() {
		case reasonPoweroff:
			return domain.Halted, true
		case reasonCrash, reasonWatchdog:
			return domain.Crashed, true
		case reasonReboot, reasonSoftRst:
			return domain.Running, true // rebuilt by the driver at once
		}
		return 0, false
	case d.paused():
		return domain.Paused, true
	}
	return domain.Running, true
}

// parseListV parses `xl list -v`:
//
//	Name  ID  Mem VCPUs State Time(s) UUID Reason-Code Security Label
//	Domain-0  0  768  2  r-----  51.1 00000000-0000-0000-0000-000000000000  -  -
//
// Names may not contain blanks (libxl forbids nothing, but xenithd names
// domains by uuid); fields are taken from the right so a name with blanks
// still parses.
func parseListV(out []byte) ([]xlDomain, error) {
	var doms []xlDomain
	sc := bufio.NewScanner(bytes.NewReader(out))
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if first {
			first = false
			if strings.HasPrefix(line, "Name") {
				continue
			}
		}
		f := strings.Fields(line)
		if len(f) < 9 {
			return nil, fmt.Errorf("xl list -v: cannot parse line %q", line)
		}
		n := len(f)
		// f[n-1] security label, f[n-2] reason, f[n-3] uuid, f[n-4] time,
		// f[n-5] state, f[n-6] vcpus, f[n-7] mem, f[n-8] id, rest name.
		var d xlDomain
		var err error
		d.Name = strings.Join(f[:n-8], " ")
		if d.Domid, err = strconv.Atoi(f[n-8]); err != nil {
			return nil, fmt.Errorf("xl list -v: domid in %q: %w", line, err)
		}
		if d.MemMiB, err = strconv.ParseInt(f[n-7], 10, 64); err != nil {
			return nil, fmt.Errorf("xl list -v: memory in %q: %w", line, err)
		}
		if d.VCPUs, err = strconv.Atoi(f[n-6]); err != nil {
			return nil, fmt.Errorf("xl list -v: vcpus in %q: %w", line, err)
		}
		d.Flags = f[n-5]
		secs, err := strconv.ParseFloat(f[n-4], 64)
		if err != nil {
			return nil, fmt.Errorf("xl list -v: time in %q: %w", line, err)
		}
		d.CPUTime = time.Duration(secs * float64(time.Second))
		d.UUID = f[n-3]
		d.Reason = reasonNone
		if f[n-2] != "-" {
			if d.Reason, err = strconv.Atoi(f[n-2]); err != nil {
				return nil, fmt.Errorf("xl list -v: reason in %q: %w", line, err)
			}
		}
		doms = append(doms, d)
	}
	return doms, sc.Err()
}

// xlInfo is what xenithd uses of `xl info`.
type xlInfo struct {
	TotalMiB, FreeMiB int64
	CPUs              int
	Fields            map[string]string // every "key : value" line
}

func parseInfo(out []byte) (xlInfo, error) {
	in := xlInfo{Fields: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		in.Fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var err error
	get := func(k string) int64 {
		v, e := strconv.ParseInt(in.Fields[k], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("xl info: %s = %q: %w", k, in.Fields[k], e)
		}
		return v
	}
	in.TotalMiB, in.FreeMiB, in.CPUs = get("total_memory"), get("free_memory"), int(get("nr_cpus"))
	return in, err
}

func (x xl) list(ctx context.Context) ([]xlDomain, error) {
	out, err := x.do(ctx, "list", "-v")
	if err != nil {
		return nil, err
	}
	return parseListV(out)
}

func (x xl) info(ctx context.Context) (xlInfo, error) {
	out, err := x.do(ctx, "info")
	if err != nil {
		return xlInfo{}, err
	}
	return parseInfo(out)
}

func (x xl) domid(ctx context.Context, name string) (int, error) {
	out, err := x.do(ctx, "domid", name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("xl domid %s: %q: %w", name, out, err)
	}
	return id, nil
}
