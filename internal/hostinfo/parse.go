package hostinfo

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
)

// CPU is one "processor" record of /proc/cpuinfo: what xapi's host_cpu
// objects carry. Strings are kept as the kernel prints them, since the
// XenAPI fields (family, model, stepping) are strings too.
type CPU struct {
	Number    int // "processor"
	Vendor    string
	ModelName string
	SpeedMHz  float64 // 0 when the kernel does not report it
	Family    string
	Model     string // the model number, not the name
	Stepping  string
	Flags     []string
}

// maxLine bounds one /proc line. The x86 flags line is a few KiB; this
// leaves room for growth while keeping a bogus input from costing much.
const maxLine = 1 << 20

func newScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return sc
}

// ParseCPUInfo parses /proc/cpuinfo into one CPU per "processor" record.
// Records are blank-line separated "key : value" lines. Keys other than the
// ones CPU holds are ignored, as are blocks without a "processor" line (ARM
// appends a machine-wide block). ARM's "CPU implementer" and "Features"
// stand in for the x86 vendor and flags. It fails only when the input is
// unreadable, a processor number is not an integer, or no processor is found.
func ParseCPUInfo(r io.Reader) ([]CPU, error) {
	var (
		cpus []CPU
		cur  CPU
		have bool // cur has seen a "processor" line
	)
	flush := func() {
		if have {
			cpus = append(cpus, cur)
		}
		cur, have = CPU{}, false
	}
	sc := newScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "processor":
			if have { // no blank line between records: still a new CPU
				flush()
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("cpuinfo: bad processor number %q", val)
			}
			cur.Number, have = n, true
		case "vendor_id":
			cur.Vendor = val
		case "CPU implementer":
			if cur.Vendor == "" {
				cur.Vendor = val
			}
		case "model name":
			cur.ModelName = val
		case "cpu MHz":
			// An odd value must not fail the whole inventory.
			if f, err := strconv.ParseFloat(val, 64); err == nil && f >= 0 && !math.IsInf(f, 0) {
				cur.SpeedMHz = f
			}
		case "cpu family":
			cur.Family = val
		case "model":
			cur.Model = val
		case "stepping":
			cur.Stepping = val
		case "flags", "Features":
			cur.Flags = strings.Fields(val)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cpuinfo: %w", err)
	}
	flush()
	if len(cpus) == 0 {
		return nil, errors.New("cpuinfo: no processor records")
	}
	return cpus, nil
}

// ParseMemInfo returns MemTotal and MemAvailable from /proc/meminfo, in
// bytes. MemAvailable (what can be given out without swapping) is the useful
// "free" figure; kernels before 3.14 lack it, and then MemFree is used.
func ParseMemInfo(r io.Reader) (total, free int64, err error) {
	var memFree int64 = -1
	var haveTotal, haveAvail bool
	sc := newScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "MemTotal":
			dst, haveTotal = &total, true
		case "MemAvailable":
			dst, haveAvail = &free, true
		case "MemFree":
			dst = &memFree
		default:
			continue
		}
		n, err := parseKB(val)
		if err != nil {
			return 0, 0, fmt.Errorf("meminfo: %s: %w", key, err)
		}
		*dst = n
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("meminfo: %w", err)
	}
	if !haveTotal {
		return 0, 0, errors.New("meminfo: no MemTotal")
	}
	if !haveAvail {
		if memFree < 0 {
			return 0, 0, errors.New("meminfo: neither MemAvailable nor MemFree")
		}
		free = memFree
	}
	return total, free, nil
}

// parseKB turns "  24683620 kB" into bytes.
func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 || len(f) == 2 && f[1] != "kB" {
		return 0, fmt.Errorf("want %q, got %q", "N kB", strings.TrimSpace(s))
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/1024 {
		return 0, fmt.Errorf("bad size %q", f[0])
	}
	return n * 1024, nil
}

// DefaultRoute is a default IPv4 route from /proc/net/route.
type DefaultRoute struct {
	Iface   string
	Gateway string // dotted quad
	Metric  int
}

// Flags of /proc/net/route (linux/route.h).
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// ParseRoutes returns the usable default routes in /proc/net/route (up, via
// a gateway, destination and mask 0), lowest metric first. The kernel
// prints addresses as the raw 32-bit word in host byte order, so they are
// decoded with the native endianness.
func ParseRoutes(r io.Reader) ([]DefaultRoute, error) {
	var out []DefaultRoute
	sc := newScanner(r)
	first := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if first { // header: Iface Destination Gateway Flags ...
			first = false
			continue
		}
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("route: short line %q", sc.Text())
		}
		dest, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.Atoi(f[6])
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return nil, fmt.Errorf("route: line %q: %w", sc.Text(), err)
		}
		if dest != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		ip := make(net.IP, 4)
		binary.NativeEndian.PutUint32(ip, uint32(gw))
		out = append(out, DefaultRoute{Iface: f[0], Gateway: ip.String(), Metric: metric})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("route: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Metric < out[j].Metric })
	return out, nil
}
