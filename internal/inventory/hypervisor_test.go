package inventory

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/hostinfo"
	"github.com/xenith/xenith/internal/store"
)

// recordedXLInfo reads the `xl info` of a real Xen 4.17 dom0 recorded for
// the xen driver's tests, as the driver's XenInfo returns it.
func recordedXLInfo(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "hypervisor", "xen", "testdata", "xl-info.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

var dom0Info = hostinfo.Info{
	Hostname: "dom0", Address: "10.0.2.15", CPUCount: 2, CPUModel: "QEMU TCG CPU", CPUVendor: "AuthenticAMD",
	MemoryTotal: 700 << 20, MemoryFree: 500 << 20, UUIDSeed: "xen-seed", KernelVersion: "6.1.0-56-amd64",
}

func TestApplyXenFacts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "xenith.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	h, err := XenFacts(recordedXLInfo(t), 768<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Twice: at the first start (create) and at a later one (refresh,
	// which rewrites software_version from procfs facts before Apply).
	for i := 0; i < 2; i++ {
		hostRef, err := Ensure(ctx, st, Options{DataDir: dir, Version: "test", Info: dom0Info})
		if err != nil {
			t.Fatal(err)
		}
		if err := ApplyHypervisor(ctx, st, hostRef, h); err != nil {
			t.Fatal(err)
		}
		row, err := st.Get(api.ClassHost, hostRef)
		if err != nil {
			t.Fatal(err)
		}
		host := row.Rec.(*api.Host)
		for k, want := range map[string]string{
			"xen": "4.17.7", "hypervisor": "xen", "xen_major": "4", "xen_minor": "17", "xen_extra": ".7",
			"build_id": "151b373fd64b321593bf987fd923cd10dabadac4", "product_brand": "Xenith", "linux": "6.1.0-56-amd64",
		} {
			if got := host.SoftwareVersion.Get(k); got != want {
				t.Errorf("start %d: software_version[%s] = %q, want %q", i, k, got, want)
			}
		}
		if host.APIVersionMajor != APIVersionMajor || host.APIVersionMinor != APIVersionMinor {
			t.Errorf("API version %d.%d", host.APIVersionMajor, host.APIVersionMinor)
		}
		if got := strings.Join(host.Capabilities, " "); got != "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64" {
			t.Errorf("capabilities %q", got)
		}
		if host.SchedPolicy != "credit2" {
			t.Errorf("sched_policy %q", host.SchedPolicy)
		}
		if host.CPUInfo.Get("cpu_count") != "2" || host.CPUInfo.Get("speed") != "2600.000" {
			t.Errorf("cpu_info %v", host.CPUInfo)
		}
		mrow, err := st.Get(api.ClassHostMetrics, host.Metrics)
		if err != nil {
			t.Fatal(err)
		}
		if m := mrow.Rec.(*api.HostMetrics); m.MemoryTotal != 2047<<20 || m.MemoryFree != 1256<<20 {
			t.Errorf("host_metrics memory total %d free %d, want xl info's 2047 and 1256 MiB", m.MemoryTotal, m.MemoryFree)
		}
		vrow, err := st.Get(api.ClassVM, host.ControlDomain)
		if err != nil {
			t.Fatal(err)
		}
		vm := vrow.Rec.(*api.VM)
		if !vm.IsControlDomain || vm.Domid != 0 || vm.PowerState != api.VMPowerStateRunning ||
			vm.MemoryStaticMax != 768<<20 || vm.MemoryTarget != 768<<20 || vm.VCPUsMax != 2 || vm.VCPUsAtStartup != 2 {
			t.Errorf("control domain: control %v domid %d %s memory %d/%d vcpus %d/%d", vm.IsControlDomain, vm.Domid,
				vm.PowerState, vm.MemoryStaticMax, vm.MemoryTarget, vm.VCPUsMax, vm.VCPUsAtStartup)
		}
		vmrow, err := st.Get(api.ClassVMMetrics, vm.Metrics)
		if err != nil {
			t.Fatal(err)
		}
		if m := vmrow.Rec.(*api.VMMetrics); m.MemoryActual != 768<<20 || m.VCPUsNumber != 2 {
			t.Errorf("dom0 metrics memory_actual %d VCPUs_number %d", m.MemoryActual, m.VCPUsNumber)
		}
	}
	if n := len(st.All(api.ClassHost)); n != 1 {
		t.Errorf("%d hosts", n)
	}
}

func TestXenFactsErrors(t *testing.T) {
	good := recordedXLInfo(t)
	for _, drop := range []string{"total_memory", "free_memory", "nr_cpus"} {
		m := map[string]string{}
		for k, v := range good {
			if k != drop {
				m[k] = v
			}
		}
		if _, err := XenFacts(m, 0, 0); err == nil {
			t.Errorf("no error without %s", drop)
		}
	}
	if _, err := XenFacts(map[string]string{"total_memory": "1", "free_memory": "1", "nr_cpus": "1"}, 0, 0); err == nil {
		t.Error("no error without a xen version")
	}
	m := map[string]string{}
	for k, v := range good {
		m[k] = v
	}
	delete(m, "xen_version")
	if h, err := XenFacts(m, 0, 0); err != nil || h.Version != "4.17.7" {
		t.Errorf("version from xen_major/minor/extra: %q %v", h.Version, err)
	}
}
