package xen

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xenith/xenith/internal/domain"
)

// useSysfs points the driver at a fake sysfs made of files (path relative
// to the root -> content) for the test's duration. Tests that use it must
// not run in parallel: the root is package state.
func useSysfs(t *testing.T, files map[string]string) {
	t.Helper()
	root := t.TempDir()
	for p, v := range files {
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(v), 0o644))
	}
	old := sysfsRoot
	sysfsRoot = root
	t.Cleanup(func() { sysfsRoot = old })
}

// vbdFiles and vifFiles are the counters blkback and netback expose, with
// the trailing newline of sysfs.
func vbdFiles(domid, devid int, rdSect, wrSect string) map[string]string {
	dir := "bus/xen-backend/devices/vbd-" + strconv.Itoa(domid) + "-" + strconv.Itoa(devid) + "/statistics/"
	return map[string]string{dir + "rd_sect": rdSect + "\n", dir + "wr_sect": wrSect + "\n",
		dir + "rd_req": "7\n", dir + "wr_req": "3\n"}
}

func vifFiles(ifname, rx, tx string) map[string]string {
	dir := "class/net/" + ifname + "/statistics/"
	return map[string]string{dir + "rx_bytes": rx + "\n", dir + "tx_bytes": tx + "\n",
		dir + "rx_packets": "1\n", dir + "tx_packets": "1\n"}
}

func union(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

func TestVBDNumber(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int
		ok   bool
	}{
		{"xvda", 51712, true}, // 202<<8
		{"xvdb", 51728, true},
		{"xvdd", 51760, true},
		{"xvdp", 51952, true},               // disk 15: last of the short form
		{"xvdq", 1<<28 | 16<<8, true},       // disk 16: extended form
		{"xvdz", 1<<28 | 25<<8, true},       // the last name vdev() makes
		{"xvdaa", 1<<28 | 26<<8, true},      // letters count on after z
		{"xvda1", 51713, true},              // a partition
		{"xvda16", 1<<28 | 0<<8 | 16, true}, // partition 16: extended form
		{"hda", 768, true},                  // 3<<8
		{"hdb", 832, true},                  // 3<<8 | 64
		{"hdc", 5632, true},                 // 22<<8
		{"hdd", 5696, true},                 // 22<<8 | 64
		{"hda1", 769, true},
		{"sda", 2048, true},
		{"sdb2", 2066, true},
		{"hde", 0, false},
		{"sdq", 0, false},
		{"xvd", 0, false},
		{"xvda0", 0, false},
		{"xvda+1", 0, false},
		{"xvda-1", 0, false},
		{"xvdA", 0, false},
		{"vda", 0, false},
		{"xvdaaaaa", 0, false},
		{"", 0, false},
	} {
		got, ok := vbdNumber(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("vbdNumber(%q) = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStatsDevices(t *testing.T) {
	pv := spec(vmA)
	pv.Disks = []domain.Disk{
		{Device: "0", Path: "/srv/root.img", Format: "raw"},     // xvda, blkback
		{Device: "1", Path: "/srv/data.qcow2", Format: "qcow2"}, // xvdb, qdisk: no counters
		{Device: "3", Path: "/srv/gone.img", Format: "raw"},     // xvdd, being unplugged
	}
	pv.NICs = []domain.NIC{{Device: "0", Bridge: "xenbr0"}, {Device: "1", Bridge: "xenbr0"}}
	pvSysfs := union(
		vbdFiles(1, 51712, "8", "2"),
		// xvdd's directory is going away: wr_sect already missing.
		map[string]string{"bus/xen-backend/devices/vbd-1-51760/statistics/rd_sect": "5\n"},
		// vif1.1 is gone (hot-unplugged): no interface.
		vifFiles("vif1.0", "1000", "5000"),
		// another domain's devices are not this one's
		vbdFiles(2, 51712, "999", "999"), vifFiles("vif2.0", "999", "999"),
	)
	pvWant := stats{
		disks: map[string]domain.IOCounters{"0": {ReadBytes: 8 * 512, WriteBytes: 2 * 512}},
		// dom0's tx is what the guest received (read), its rx what the guest sent
		nics: map[string]domain.IOCounters{"0": {ReadBytes: 5000, WriteBytes: 1000}},
	}

	hvm := spec(vmA)
	hvm.HVM, hvm.Kernel, hvm.Ramdisk, hvm.Args = true, "", "", ""
	hvm.Disks = []domain.Disk{
		{Device: "0", Path: "/srv/a.img"}, // hda
		{Device: "1", Path: "/srv/b.img"}, // hdb
		{Device: "2", Path: "/srv/c.img"}, // hdc
		{Device: "3", Path: "/srv/d.img"}, // hdd
		{Device: "4", Path: "/srv/e.img"}, // xvde
	}

	for _, tc := range []struct {
		name   string
		withXS bool
		spec   domain.Spec
		xs     map[string]string
		sysfs  map[string]string
		want   stats
	}{
		{name: "pv/computed", spec: pv, sysfs: pvSysfs, want: pvWant},
		{name: "pv/xenstore", withXS: true, spec: pv, sysfs: pvSysfs, want: pvWant, xs: map[string]string{
			// blkback's backends; the qcow2 disk's is under backend/qdisk
			"/local/domain/0/backend/vbd/1/51712/dev":   "xvda",
			"/local/domain/0/backend/vbd/1/51760/dev":   "xvdd",
			"/local/domain/0/backend/qdisk/1/51728/dev": "xvdb",
		}},
		{name: "pv/xenstore is the source", withXS: true, spec: pv,
			// Not what Xen would do, but it tells where the numbers come
			// from: xvda at an unusual number, an unknown vdev, a backend
			// without dev (torn down), a non-numeric entry.
			xs: map[string]string{
				"/local/domain/0/backend/vbd/1/51713/dev":   "xvda",
				"/local/domain/0/backend/vbd/1/51728/dev":   "xvdz",
				"/local/domain/0/backend/vbd/1/51744/state": "6",
				"/local/domain/0/backend/vbd/1/bogus/dev":   "xvdd",
				"/local/domain/0/backend/vbd/1/51760/dev":   "xvdd",
			},
			sysfs: union(vbdFiles(1, 51712, "1", "1"), vbdFiles(1, 51713, "40", "60"), vbdFiles(1, 51728, "1", "1"),
				vbdFiles(1, 51744, "1", "1"), vbdFiles(1, 51760, "0", "0")),
			want: stats{disks: map[string]domain.IOCounters{"0": {ReadBytes: 40 * 512, WriteBytes: 60 * 512}, "3": {}}},
		},
		{name: "pv/xenstore without blkback disks", withXS: true, spec: pv, sysfs: pvSysfs,
			want: stats{nics: pvWant.nics}},
		{name: "hvm/computed", spec: hvm,
			sysfs: union(vbdFiles(1, 768, "1", "2"), vbdFiles(1, 832, "3", "4"), vbdFiles(1, 5632, "5", "6"),
				vbdFiles(1, 5696, "7", "8"), vbdFiles(1, 51776, "9", "10"),
				// the emulated NIC's tap and the PV vif add up
				vifFiles("vif1.0", "100", "200"), vifFiles("vif1.0-emu", "10", "20")),
			want: stats{
				disks: map[string]domain.IOCounters{
					"0": {ReadBytes: 1 * 512, WriteBytes: 2 * 512}, "1": {ReadBytes: 3 * 512, WriteBytes: 4 * 512},
					"2": {ReadBytes: 5 * 512, WriteBytes: 6 * 512}, "3": {ReadBytes: 7 * 512, WriteBytes: 8 * 512},
					"4": {ReadBytes: 9 * 512, WriteBytes: 10 * 512},
				},
				nics: map[string]domain.IOCounters{"0": {ReadBytes: 220, WriteBytes: 110}},
			}},
		{name: "hvm/xenstore", withXS: true, spec: hvm,
			xs: map[string]string{
				"/local/domain/0/backend/vbd/1/768/dev":   "hda",
				"/local/domain/0/backend/vbd/1/5696/dev":  "hdd",
				"/local/domain/0/backend/vbd/1/51776/dev": "xvde",
			},
			sysfs: union(vbdFiles(1, 768, "1", "2"), vbdFiles(1, 5696, "7", "8"), vbdFiles(1, 51776, "9", "10"),
				vifFiles("vif1.0-emu", "10", "20")),
			want: stats{
				disks: map[string]domain.IOCounters{
					"0": {ReadBytes: 1 * 512, WriteBytes: 2 * 512}, "3": {ReadBytes: 7 * 512, WriteBytes: 8 * 512},
					"4": {ReadBytes: 9 * 512, WriteBytes: 10 * 512},
				},
				nics: map[string]domain.IOCounters{"0": {ReadBytes: 20, WriteBytes: 10}},
			}},
		{name: "unreadable counters", spec: pv,
			sysfs: union(vbdFiles(1, 51712, "lots", "2"), vifFiles("vif1.0", "-1", "5"), vifFiles("vif1.1", "1", "2"),
				vbdFiles(1, 51760, "18446744073709551615", "0")),
			want: stats{nics: map[string]domain.IOCounters{"1": {ReadBytes: 2, WriteBytes: 1}}}},
		{name: "no sysfs", spec: pv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			useSysfs(t, tc.sysfs)
			r := newRig(t, tc.withXS)
			if _, err := r.d.Create(r.ctx(), tc.spec); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.xs {
				r.xs.set(k, v)
			}
			st, err := r.d.Stats(r.ctx(), vmA)
			if err != nil {
				t.Fatal(err)
			}
			if st.MemoryActual != 96<<20 || len(st.VCPUTime) != 1 {
				t.Errorf("CPU/memory lost: %+v", st)
			}
			if !maps.Equal(st.Disks, tc.want.disks) {
				t.Errorf("Disks = %v, want %v", st.Disks, tc.want.disks)
			}
			if !maps.Equal(st.NICs, tc.want.nics) {
				t.Errorf("NICs = %v, want %v", st.NICs, tc.want.nics)
			}
		})
	}
}

type stats struct{ disks, nics map[string]domain.IOCounters }

// failingXS is a xenstore whose reads fail, as after a lost connection.
type failingXS struct{ XenStore }

func (failingXS) Directory(context.Context, string) ([]string, error) {
	return nil, errors.New("xenstore: connection lost")
}

func TestVBDsWithoutXenstoreAnswer(t *testing.T) {
	r := newRig(t, false)
	s := spec(vmA)
	s.Disks = []domain.Disk{{Device: "0", Path: "/a.img"}, {Device: "xvdc", Path: "/c.img"}, {Device: "bad,name"}}
	want := map[int]string{51712: "0", 51744: "xvdc"}
	for name, xs := range map[string]XenStore{"none": nil, "failing": failingXS{}} {
		if got := r.d.vbds(r.ctx(), xs, 1, s); !maps.Equal(got, want) {
			t.Errorf("%s: vbds = %v, want %v", name, got, want)
		}
	}
}

func TestStatsOfAStrayDomain(t *testing.T) {
	useSysfs(t, union(vbdFiles(1, 51712, "1", "1"), vifFiles("vif1.0", "1", "1")))
	r := newRig(t, false)
	r.start(vmA)
	// The driver's record is lost: the userdevices are unknown.
	r.d.Close()
	must(t, os.Remove(filepath.Join(r.dir, "domains", vmA+".json")))
	r.open()
	st, err := r.d.Stats(r.ctx(), vmA)
	if err != nil || st.Disks != nil || st.NICs != nil || st.MemoryActual != 96<<20 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
}
