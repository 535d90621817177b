package xen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

var _ domain.StatsDriver = (*Driver)(nil)

// sysfsRoot is where dom0's sysfs is mounted; tests point it at a tree of
// their own.
var sysfsRoot = "/sys"

// sectorSize is the unit of blkback's rd_sect/wr_sect: blkif requests count
// 512-byte sectors whatever the disk's block size.
const sectorSize = 512

// Stats samples a domain's CPU time and memory (`xl list -v`), the time of
// each vCPU (`xl vcpu-list`) and, from dom0's sysfs as xcp-rrdd does, the
// bytes each disk (blkback) and VIF (netback) moved; the manager turns them
// into VM_metrics, VBD_metrics and VIF_metrics. A device whose counters
// cannot be read (a qdisk disk, a device being unplugged) is left out.
func (d *Driver) Stats(ctx context.Context, uuid string) (domain.Stats, error) {
	doms, err := d.xl.list(ctx)
	if err != nil {
		return domain.Stats{}, err
	}
	var st domain.Stats
	domid := -1
	for _, x := range doms {
		if x.UUID == uuid && x.Domid != 0 {
			st.CPUTime, st.MemoryActual, domid = x.CPUTime, x.MemMiB*mib, x.Domid
			break
		}
	}
	if domid < 0 {
		return domain.Stats{}, noDomain(uuid)
	}
	out, err := d.xl.do(ctx, "vcpu-list", domainName(uuid))
	if err != nil {
		return domain.Stats{}, err
	}
	if st.VCPUTime, err = parseVCPUList(out); err != nil {
		return domain.Stats{}, err
	}
	d.mu.Lock()
	r, xs := d.recs[uuid], d.xs
	var spec domain.Spec
	if r != nil {
		spec = r.Spec
	}
	d.mu.Unlock()
	// Without a record (a domain the driver did not build) the userdevices
	// of its devices are unknown: no device counters.
	if r != nil {
		st.Disks = diskStats(domid, d.vbds(ctx, xs, domid, spec))
		st.NICs = nicStats(domid, spec)
	}
	st.Time = d.now()
	return st, nil
}

// vbds maps the Xen device number (the devid of blkback's vbd-DOMID-DEVID)
// of each disk of spec to its userdevice. With xenstore the numbers are those
// of dom0's blkback backends (backend/vbd/DOMID/DEVID, whose dev is the vdev
// name): dom0's own keys, unlike the guest-writable frontend directory, and
// exactly the disks blkback serves. Without xenstore they are computed from
// the vdev names the config gave.
func (d *Driver) vbds(ctx context.Context, xs XenStore, domid int, spec domain.Spec) map[int]string {
	byName := map[string]string{}
	for _, disk := range spec.Disks {
		if v, err := vdev(spec, disk.Device); err == nil {
			byName[v] = disk.Device
		}
	}
	if xs != nil {
		m, err := vbdsFromXenstore(ctx, xs, domid, byName)
		if err == nil {
			return m
		}
		d.log.Debug("reading disks from xenstore; computing their numbers instead", "domid", domid, "err", err)
	}
	m := map[int]string{}
	for name, dev := range byName {
		if n, ok := vbdNumber(name); ok {
			m[n] = dev
		}
	}
	return m
}

func vbdsFromXenstore(ctx context.Context, xs XenStore, domid int, byName map[string]string) (map[int]string, error) {
	base := fmt.Sprintf("/local/domain/0/backend/vbd/%d", domid)
	ids, err := xs.Directory(ctx, base)
	if errors.Is(err, ErrNotFound) {
		return map[int]string{}, nil // no blkback disk (none, or all qdisk)
	}
	if err != nil {
		return nil, err
	}
	m := map[int]string{}
	for _, id := range ids {
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 {
			continue
		}
		// A backend without dev is being set up or torn down.
		name, err := xs.Read(ctx, base+"/"+id+"/dev")
		if err != nil {
			continue
		}
		if dev, ok := byName[name]; ok {
			m[n] = dev
		}
	}
	return m, nil
}

// diskStats reads blkback's sector counters of the disks in vbds (device
// number -> userdevice). qdisk (QEMU) disks have no blkback entry and are
// left out rather than reported idle.
func diskStats(domid int, vbds map[int]string) map[string]domain.IOCounters {
	out := map[string]domain.IOCounters{}
	for n, dev := range vbds {
		dir := filepath.Join(sysfsRoot, "bus", "xen-backend", "devices", fmt.Sprintf("vbd-%d-%d", domid, n), "statistics")
		rd, err1 := readCounter(filepath.Join(dir, "rd_sect"))
		wr, err2 := readCounter(filepath.Join(dir, "wr_sect"))
		if err1 != nil || err2 != nil {
			continue
		}
		out[dev] = domain.IOCounters{ReadBytes: rd * sectorSize, WriteBytes: wr * sectorSize}
	}
	return out
}

// nicStats reads the counters of each VIF's netback interface vifDOMID.DEVID
// and, for HVM guests, of its emulated NIC's tap vifDOMID.DEVID-emu (libxl's
// name), summed as xcp-networkd sums vif and tap: the guest uses one or the
// other. These are dom0's side of the link, so tx (dom0 -> guest) is what
// the guest read and rx what it wrote.
func nicStats(domid int, spec domain.Spec) map[string]domain.IOCounters {
	out := map[string]domain.IOCounters{}
	for _, nic := range spec.NICs {
		devid, err := strconv.Atoi(nic.Device)
		if err != nil || devid < 0 {
			continue
		}
		name := fmt.Sprintf("vif%d.%d", domid, devid)
		var c domain.IOCounters
		found := false
		for _, ifname := range []string{name, name + "-emu"} {
			dir := filepath.Join(sysfsRoot, "class", "net", ifname, "statistics")
			tx, err1 := readCounter(filepath.Join(dir, "tx_bytes"))
			rx, err2 := readCounter(filepath.Join(dir, "rx_bytes"))
			if err1 != nil || err2 != nil {
				continue
			}
			c.ReadBytes += tx
			c.WriteBytes += rx
			found = true
		}
		if found {
			out[nic.Device] = c
		}
	}
	return out
}

// readCounter reads a decimal sysfs counter.
func readCounter(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: bad counter %q", path, b)
	}
	return n, nil
}

// vbdNumber is the Xen device number of a disk name, per
// xen-vbd-interface(7):
//
//	xvdX[N]  202<<8 | disk<<4 | N     disk and N < 16
//	         1<<28 | disk<<8 | N      otherwise (N < 256)
//	hdX[N]   3<<8 | disk<<6 | N       disk 0..1 (hda, hdb), N < 64
//	         22<<8 | (disk-2)<<6 | N  disk 2..3 (hdc, hdd)
//	sdX[N]   8<<8 | disk<<4 | N       disk and N < 16
//
// where X is the disk's letters (a = 0, z = 25, aa = 26...) and N an
// optional partition.
func vbdNumber(name string) (int, bool) {
	var kind string
	for _, p := range []string{"xvd", "hd", "sd"} {
		if strings.HasPrefix(name, p) {
			kind = p
			break
		}
	}
	if kind == "" {
		return 0, false
	}
	rest := name[len(kind):]
	i, disk := 0, 0
	for ; i < len(rest) && rest[i] >= 'a' && rest[i] <= 'z'; i++ {
		if i == 4 {
			return 0, false
		}
		disk = disk*26 + int(rest[i]-'a') + 1
	}
	if i == 0 {
		return 0, false
	}
	disk--
	part := 0
	if p := rest[i:]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || p[0] == '0' || p[0] == '+' {
			return 0, false
		}
		part = n
	}
	switch {
	case kind == "xvd" && disk < 16 && part < 16:
		return 202<<8 | disk<<4 | part, true
	case kind == "xvd" && disk < 1<<20 && part < 256:
		return 1<<28 | disk<<8 | part, true
	case kind == "hd" && disk < 2 && part < 64:
		return 3<<8 | disk<<6 | part, true
	case kind == "hd" && disk < 4 && part < 64:
		return 22<<8 | (disk-2)<<6 | part, true
	case kind == "sd" && disk < 16 && part < 16:
		return 8<<8 | disk<<4 | part, true
	}
	return 0, false
}

// parseVCPUList parses `xl vcpu-list DOM`:
//
//	Name  ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)
//	vm    3     0    1   -b-      12.3  all / all
//	vm    3     1    -   --p       0.4  all / all
//
// into the time of each vCPU, by number.
func parseVCPUList(out []byte) ([]time.Duration, error) {
	var times []time.Duration
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[0] == "Name" {
			continue
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("xl vcpu-list: vcpu in %q: %w", sc.Text(), err)
		}
		secs, err := strconv.ParseFloat(f[5], 64)
		if err != nil {
			return nil, fmt.Errorf("xl vcpu-list: time in %q: %w", sc.Text(), err)
		}
		if n < 0 || n > 4096 {
			return nil, fmt.Errorf("xl vcpu-list: vcpu %d", n)
		}
		for len(times) <= n {
			times = append(times, 0)
		}
		times[n] = time.Duration(secs * float64(time.Second))
	}
	return times, sc.Err()
}
