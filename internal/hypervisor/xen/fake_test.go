package xen

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeXen plays xl at the process boundary: a Runner that keeps a small
// model of a Xen host (domains with flags and shutdown reasons) and answers
// the xl commands the driver runs with what the real xl prints (the formats
// of testdata/, recorded from Xen 4.17 in QEMU). Guests "act" through
// guestDoes, and every change fires @releaseDomain on the fake xenstore.
type fakeXen struct {
	t  *testing.T
	mu sync.Mutex
	// guest domains by name
	doms      map[string]*fakeDom
	nextDomid int
	freeMiB   int64
	calls     []string
	fail      map[string]error // xl subcommand -> error to return once
	xs        *fakeXS
	// obey: a guest acts at once on `xl shutdown` / `xl reboot`
	obey bool
}

type fakeDom struct {
	name, uuid string
	domid      int
	memMiB     int64
	vcpus      int
	paused     bool
	shutdown   bool
	reason     int
	cfg        string
}

func newFakeXen(t *testing.T) *fakeXen {
	return &fakeXen{t: t, doms: map[string]*fakeDom{}, nextDomid: 1, freeMiB: 4096, fail: map[string]error{}, obey: true}
}

func (f *fakeXen) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.Join(args, " "))
	if len(args) == 0 {
		return nil, f.err(args, "usage")
	}
	if err, ok := f.fail[args[0]]; ok {
		delete(f.fail, args[0])
		return nil, err
	}
	get := func(n string) (*fakeDom, error) {
		if d := f.doms[n]; d != nil {
			return d, nil
		}
		return nil, f.err(args, n+" is an invalid domain identifier (rc=-6)")
	}
	switch args[0] {
	case "info":
		return []byte(fmt.Sprintf("host                   : dom0\nnr_cpus                : 2\ntotal_memory           : 8191\nfree_memory            : %d\nxen_version            : 4.17.7\n", f.freeMiB)), nil
	case "list":
		var b strings.Builder
		b.WriteString("Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label\n")
		b.WriteString("Domain-0                                     0   768     2     r-----      51.1 00000000-0000-0000-0000-000000000000        -                -\n")
		var ds []*fakeDom
		for _, d := range f.doms {
			ds = append(ds, d)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].domid < ds[j].domid })
		for _, d := range ds {
			flags := []byte("-b----")
			reason := "-"
			if d.paused {
				flags[1], flags[2] = '-', 'p'
			}
			if d.shutdown {
				flags[1], flags[3], flags[4] = '-', 's', "-rscwS"[d.reason]
				reason = strconv.Itoa(d.reason)
			}
			fmt.Fprintf(&b, "%-40s %5d %5d %5d     %s %9.1f %s        %s                -\n", d.name, d.domid, d.memMiB, d.vcpus, flags, 1.5, d.uuid, reason)
		}
		return []byte(b.String()), nil
	case "create", "restore":
		paused := false
		var files []string
		for _, a := range args[1:] {
			switch a {
			case "-p":
				paused = true
			case "-e":
			default:
				files = append(files, a)
			}
		}
		cfg, err := os.ReadFile(files[0])
		if err != nil {
			return nil, f.err(args, err.Error())
		}
		if args[0] == "restore" {
			if _, err := os.Stat(files[1]); err != nil {
				return nil, f.err(args, err.Error())
			}
		}
		name := cfgValue(string(cfg), "name")
		if f.doms[name] != nil {
			return nil, f.err(args, "domain with name "+name+" already exists")
		}
		mem, _ := strconv.ParseInt(cfgValue(string(cfg), "memory"), 10, 64)
		vc, _ := strconv.Atoi(cfgValue(string(cfg), "vcpus"))
		if mem > f.freeMiB {
			return nil, f.err(args, "failed to free memory for the domain")
		}
		d := &fakeDom{name: name, uuid: cfgValue(string(cfg), "uuid"), domid: f.nextDomid, memMiB: mem, vcpus: vc, paused: paused, cfg: string(cfg)}
		f.nextDomid++
		f.doms[name] = d
		f.freeMiB -= mem
		return nil, nil
	case "vcpu-list":
		d, err := get(args[1])
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		b.WriteString("Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)\n")
		for i := 0; i < d.vcpus; i++ {
			fmt.Fprintf(&b, "%-35s %3d %5d %5s   -b-     %5.1f  all / all\n", d.name, d.domid, i, "1", 1.5+float64(i))
		}
		return []byte(b.String()), nil
	case "domid":
		d := f.doms[args[1]]
		if d == nil {
			return nil, f.err(args, "Can't get domid of domain name '"+args[1]+"', maybe this domain does not exist.")
		}
		return []byte(strconv.Itoa(d.domid) + "\n"), nil
	case "pause", "unpause":
		d, err := get(args[1])
		if err != nil {
			return nil, err
		}
		d.paused = args[0] == "pause"
		return nil, nil
	case "destroy":
		d, err := get(args[1])
		if err != nil {
			return nil, err
		}
		f.remove(d)
		return nil, nil
	case "save":
		d, err := get(args[1])
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(args[2], []byte(d.cfg), 0o600); err != nil {
			return nil, f.err(args, err.Error())
		}
		f.remove(d)
		return nil, nil
	case "shutdown", "reboot":
		d, err := get(args[len(args)-1])
		if err != nil {
			return nil, err
		}
		if f.xs != nil {
			f.xs.set(fmt.Sprintf("/local/domain/%d/control/shutdown", d.domid), map[bool]string{true: "reboot", false: "poweroff"}[args[0] == "reboot"])
		}
		if f.obey && !d.paused {
			f.guestLocked(d, map[bool]int{true: reasonReboot, false: reasonPoweroff}[args[0] == "reboot"])
		}
		return nil, nil
	case "sysrq":
		d, err := get(args[1])
		if err != nil {
			return nil, err
		}
		switch args[2] {
		case "o":
			f.guestLocked(d, reasonPoweroff)
		case "b":
			f.guestLocked(d, reasonReboot)
		case "c":
			f.guestLocked(d, reasonCrash)
		}
		return nil, nil
	case "mem-set", "vcpu-set", "block-attach", "block-detach", "network-attach", "network-detach":
		if _, err := get(args[1]); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, f.err(args, "unknown command")
}

func (f *fakeXen) err(args []string, stderr string) error {
	return &CmdError{Cmd: "xl", Args: args, Stderr: stderr + "\n", Err: fmt.Errorf("exit status 1")}
}

func (f *fakeXen) remove(d *fakeDom) {
	delete(f.doms, d.name)
	f.freeMiB += d.memMiB
	if f.xs != nil {
		f.xs.fire("@releaseDomain")
	}
}

// guestLocked: the guest shuts itself down with reason.
func (f *fakeXen) guestLocked(d *fakeDom, reason int) {
	d.shutdown, d.reason = true, reason
	if f.xs != nil {
		f.xs.fire("@releaseDomain")
	}
}

// guestDoes makes the guest of uuid shut down with reason on its own.
func (f *fakeXen) guestDoes(uuid string, reason int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.doms {
		if d.uuid == uuid {
			f.guestLocked(d, reason)
			return
		}
	}
	f.t.Fatalf("no domain %s", uuid)
}

func (f *fakeXen) dom(uuid string) *fakeDom {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.doms {
		if d.uuid == uuid {
			c := *d
			return &c
		}
	}
	return nil
}

func (f *fakeXen) called(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// cfgValue reads `key = value` from an xl config (unquoting strings).
func cfgValue(cfg, key string) string {
	for _, l := range strings.Split(cfg, "\n") {
		k, v, ok := strings.Cut(l, " = ")
		if ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// fakeXS is an in-memory xenstore with watches.
type fakeXS struct {
	mu      sync.Mutex
	vals    map[string]string
	watches map[string][]string // path -> tokens
	writes  []string
	events  chan WatchEvent
	closed  bool
}

func newFakeXS() *fakeXS {
	return &fakeXS{vals: map[string]string{}, watches: map[string][]string{}, events: make(chan WatchEvent, 256)}
}

func (x *fakeXS) Read(ctx context.Context, path string) (string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	v, ok := x.vals[path]
	if !ok {
		return "", ErrNotFound
	}
	return v, nil
}

func (x *fakeXS) Write(ctx context.Context, path, value string) error {
	x.mu.Lock()
	x.writes = append(x.writes, path+"="+value)
	x.mu.Unlock()
	x.set(path, value)
	return nil
}

func (x *fakeXS) Directory(ctx context.Context, path string) ([]string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := map[string]bool{}
	found := false
	for k := range x.vals {
		if k == path {
			found = true
		}
		if rest, ok := strings.CutPrefix(k, path+"/"); ok {
			found = true
			seen[strings.Split(rest, "/")[0]] = true
		}
	}
	if !found {
		return nil, ErrNotFound
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func (x *fakeXS) Watch(ctx context.Context, path, token string) error {
	x.mu.Lock()
	x.watches[path] = append(x.watches[path], token)
	x.mu.Unlock()
	x.events <- WatchEvent{Path: path, Token: token}
	return nil
}

func (x *fakeXS) Unwatch(ctx context.Context, path, token string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	ts := x.watches[path]
	for i, t := range ts {
		if t == token {
			x.watches[path] = append(ts[:i:i], ts[i+1:]...)
			break
		}
	}
	return nil
}

func (x *fakeXS) Events() <-chan WatchEvent { return x.events }

func (x *fakeXS) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.closed = true
		close(x.events)
	}
	return nil
}

func (x *fakeXS) set(path, value string) {
	x.mu.Lock()
	x.vals[path] = value
	x.mu.Unlock()
	x.fire(path)
}

func (x *fakeXS) fire(path string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	for w, ts := range x.watches {
		if w == path || strings.HasPrefix(path, w+"/") {
			for _, t := range ts {
				select {
				case x.events <- WatchEvent{Path: path, Token: t}:
				default:
				}
			}
		}
	}
}

func (x *fakeXS) wrote(s string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, w := range x.writes {
		if w == s {
			return true
		}
	}
	return false
}
