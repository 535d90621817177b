package hostinfo

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func openFixture(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// The route fixture holds words as a little-endian kernel prints them.
func skipIfBigEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("route fixture is little-endian")
	}
}

func TestParseCPUInfoFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		n         int
		want0     CPU // Flags checked separately
		nflags    int
		someFlags []string
	}{
		{"cpuinfo_xeon_2cpu.txt", 2, CPU{Number: 0, Vendor: "GenuineIntel", ModelName: "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
			SpeedMHz: 2494.140, Family: "6", Model: "85", Stepping: "7"}, 97, []string{"fpu", "vmx", "avx512f", "arch_capabilities"}},
		{"cpuinfo_arm64.txt", 2, CPU{Number: 0, Vendor: "0x41"}, 17, []string{"fp", "asimd", "ssbs"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			cpus, err := ParseCPUInfo(openFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(cpus) != tt.n {
				t.Fatalf("got %d CPUs, want %d", len(cpus), tt.n)
			}
			for i, c := range cpus {
				if c.Number != i {
					t.Errorf("cpu %d: Number = %d", i, c.Number)
				}
				if !reflect.DeepEqual(c.Flags, cpus[0].Flags) {
					t.Errorf("cpu %d: flags differ from cpu 0", i)
				}
			}
			got := cpus[0]
			if len(got.Flags) != tt.nflags {
				t.Errorf("%d flags, want %d", len(got.Flags), tt.nflags)
			}
			for _, f := range tt.someFlags {
				if !contains(got.Flags, f) {
					t.Errorf("flag %q missing", f)
				}
			}
			if contains(got.Flags, "vnmi") { // from "vmx flags", not "flags"
				t.Error(`"vmx flags" leaked into Flags`)
			}
			got.Flags = nil
			if !reflect.DeepEqual(got, tt.want0) {
				t.Errorf("cpu 0 = %+v, want %+v", got, tt.want0)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseCPUInfoCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []CPU
		err      string
	}{
		{"empty", "", nil, "no processor records"},
		{"no processor key", "vendor_id : X\n\n", nil, "no processor records"},
		{"bad number", "processor : zero\n", nil, `bad processor number "zero"`},
		{"negative number", "processor : -1\n", nil, "bad processor number"},
		{"no blank line between records", "processor : 0\nmodel : 1\nprocessor : 1\nmodel : 2\n",
			[]CPU{{Number: 0, Model: "1"}, {Number: 1, Model: "2"}}, ""},
		{"bad MHz is ignored", "processor : 3\ncpu MHz : fast\n", []CPU{{Number: 3}}, ""},
		{"colon in value", "processor : 0\nmodel name : A: B\n", []CPU{{Number: 0, ModelName: "A: B"}}, ""},
		{"CRLF and spaces", "processor\t: 0\r\nflags\t\t: a  b\r\n\r\n", []CPU{{Number: 0, Flags: []string{"a", "b"}}}, ""},
		{"line too long", "processor : 0\nflags : " + strings.Repeat("x", maxLine) + "\n", nil, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCPUInfo(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseMemInfo(t *testing.T) {
	t.Parallel()
	total, free, err := ParseMemInfo(openFixture(t, "meminfo.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if total != 16303428*1024 || free != 11024880*1024 {
		t.Errorf("got %d, %d", total, free)
	}

	tests := []struct {
		name, in    string
		total, free int64
		err         string
	}{
		{"old kernel falls back to MemFree", "MemTotal: 100 kB\nMemFree: 40 kB\n", 102400, 40960, ""},
		{"MemAvailable wins whatever the order", "MemAvailable: 7 kB\nMemFree: 1 kB\nMemTotal: 9 kB\n", 9216, 7168, ""},
		{"no unit", "MemTotal: 3\nMemFree: 0\n", 3072, 0, ""},
		{"empty", "", 0, 0, "no MemTotal"},
		{"no free figure", "MemTotal: 1 kB\n", 0, 0, "neither MemAvailable nor MemFree"},
		{"bad number", "MemTotal: lots kB\n", 0, 0, `bad size "lots"`},
		{"bad unit", "MemTotal: 1 MB\n", 0, 0, "want"},
		{"overflow", "MemTotal: 9223372036854775807 kB\nMemFree: 1 kB\n", 0, 0, "bad size"},
		{"negative", "MemTotal: -1 kB\n", 0, 0, "bad size"},
		{"other keys may be odd", "HugePages_Total: x\nMemTotal: 1 kB\nMemFree: 1 kB\n", 1024, 1024, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			total, free, err := ParseMemInfo(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || total != tt.total || free != tt.free {
				t.Errorf("got %d, %d, %v; want %d, %d", total, free, err, tt.total, tt.free)
			}
		})
	}
}

func TestParseRoutes(t *testing.T) {
	t.Parallel()
	skipIfBigEndian(t)
	got, err := ParseRoutes(openFixture(t, "route.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []DefaultRoute{
		{Iface: "xenbr0", Gateway: "10.0.0.1", Metric: 100},
		{Iface: "xenbr1", Gateway: "192.168.2.1", Metric: 200},
		// xenbr2's default route is not up (flags 0002) and is skipped.
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"hdr\neth0 00000000\n", "hdr\neth0 zz 00000000 0003 0 0 0 00000000\n"} {
		if _, err := ParseRoutes(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseRoutes(%q) succeeded", bad)
		}
	}
	if r, err := ParseRoutes(strings.NewReader("")); err != nil || r != nil {
		t.Errorf("empty: %v, %v", r, err)
	}
}

func TestReadFixtureRoot(t *testing.T) {
	t.Parallel()
	skipIfBigEndian(t)
	ifaces := func() ([]Interface, error) {
		return []Interface{
			{Name: "lo", IPv4: "127.0.0.1", Netmask: "255.0.0.0", MTU: 65536, Up: true},
			{Name: "eth9", MAC: "52:54:00:00:00:09", IPv4: "172.16.0.5", Netmask: "255.255.0.0", MTU: 1500, Up: true},
			{Name: "xenbr0", MAC: "52:54:00:12:34:56", IPv4: "10.0.0.7", Netmask: "255.255.255.0", MTU: 1500, Up: true},
			{Name: "xenbr1", MAC: "52:54:00:12:34:57", MTU: 1500},
		}, nil
	}
	info, err := read("testdata/root", ifaces)
	if err != nil {
		t.Fatal(err)
	}
	if info.Hostname != "xenhost1" || info.KernelVersion != "6.1.0-28-amd64" || info.Machine != "x86_64" {
		t.Errorf("names: %q %q %q", info.Hostname, info.KernelVersion, info.Machine)
	}
	if info.CPUCount != 2 || len(info.CPUs) != 2 || info.CPUVendor != "GenuineIntel" || info.CPUSpeedMHz != 2494.140 ||
		info.CPUFamily != "6" || info.CPUModelNumber != "85" || info.CPUStepping != "7" || len(info.CPUFlags) != 97 ||
		!strings.HasPrefix(info.CPUModel, "Intel(R) Xeon(R) Gold 6248") {
		t.Errorf("cpu summary: %+v", info)
	}
	if info.MemoryTotal != 16303428*1024 || info.MemoryFree != 11024880*1024 {
		t.Errorf("memory: %d %d", info.MemoryTotal, info.MemoryFree)
	}
	// The default route with the lowest metric decides the address, not
	// interface order.
	if info.Address != "10.0.0.7" {
		t.Errorf("Address = %q", info.Address)
	}
	gw := map[string]string{}
	for _, i := range info.Interfaces {
		gw[i.Name] = i.Gateway
	}
	if want := map[string]string{"lo": "", "eth9": "", "xenbr0": "10.0.0.1", "xenbr1": "192.168.2.1"}; !reflect.DeepEqual(gw, want) {
		t.Errorf("gateways = %v", gw)
	}
	if info.BootID != "9c1a7e43-55b2-4f0e-8d0c-6f1e2b7a9d31" || info.UUIDSeed != "3f2504e04f8941d39a0c0305e82c3301" {
		t.Errorf("ids: %q %q", info.BootID, info.UUIDSeed)
	}
}

func TestReadFallbacks(t *testing.T) {
	t.Parallel()
	// A root without machine-id, arch or routes still yields an Info.
	root := t.TempDir()
	for _, p := range []string{"proc/cpuinfo", "proc/meminfo", "proc/sys/kernel/osrelease", "proc/sys/kernel/random/boot_id"} {
		src, err := os.ReadFile(filepath.Join("testdata/root", p))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err := read(root, func() ([]Interface, error) {
		return []Interface{{Name: "lo", IPv4: "127.0.0.1", Up: true}, {Name: "eth0", IPv4: "192.0.2.9"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.UUIDSeed != info.BootID || info.BootID == "" {
		t.Errorf("UUIDSeed %q should fall back to BootID %q", info.UUIDSeed, info.BootID)
	}
	if info.Hostname == "" || info.Machine == "" {
		t.Errorf("hostname %q, machine %q", info.Hostname, info.Machine)
	}
	if info.Address != "127.0.0.1" { // eth0 is down and there is no route
		t.Errorf("Address = %q", info.Address)
	}
	if err := os.Remove(filepath.Join(root, "proc/cpuinfo")); err != nil {
		t.Fatal(err)
	}
	if _, err := read(root, func() ([]Interface, error) { return nil, nil }); err == nil {
		t.Error("read without cpuinfo succeeded")
	}
}

func TestPrimaryAddress(t *testing.T) {
	t.Parallel()
	up := func(name, ip string) Interface { return Interface{Name: name, IPv4: ip, Up: true} }
	tests := []struct {
		name   string
		ifs    []Interface
		routes []DefaultRoute
		want   string
	}{
		{"nothing", nil, nil, "127.0.0.1"},
		{"loopback only", []Interface{up("lo", "127.0.0.2")}, nil, "127.0.0.2"},
		{"first up non-loopback", []Interface{up("lo", "127.0.0.1"), up("a", "192.0.2.1"), up("b", "192.0.2.2")}, nil, "192.0.2.1"},
		{"route wins", []Interface{up("a", "192.0.2.1"), up("b", "192.0.2.2")}, []DefaultRoute{{Iface: "b"}}, "192.0.2.2"},
		{"route iface without IPv4", []Interface{up("a", "192.0.2.1"), {Name: "b", Up: true}}, []DefaultRoute{{Iface: "b"}}, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := primaryAddress(tt.ifs, tt.routes); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReadLive checks only that this machine yields plausible figures.
func TestReadLive(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/cpuinfo"); err != nil {
		t.Skip("no procfs")
	}
	info, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if info.CPUCount <= 0 || len(info.CPUs) != info.CPUCount {
		t.Errorf("CPUCount = %d, %d CPUs", info.CPUCount, len(info.CPUs))
	}
	if info.MemoryTotal <= 0 || info.MemoryFree < 0 || info.MemoryFree > info.MemoryTotal {
		t.Errorf("memory total %d free %d", info.MemoryTotal, info.MemoryFree)
	}
	if info.Hostname == "" || info.KernelVersion == "" || info.Machine == "" || info.BootID == "" || info.UUIDSeed == "" || info.Address == "" {
		t.Errorf("empty fields: %+v", info)
	}
	if len(info.Interfaces) == 0 {
		t.Error("no interfaces")
	}
	t.Logf("%s %s %s: %d x %q, %d MiB, addr %s", info.Hostname, info.Machine, info.KernelVersion,
		info.CPUCount, info.CPUModel, info.MemoryTotal>>20, info.Address)
	for _, i := range info.Interfaces {
		t.Logf("%+v", i)
	}
}

func FuzzParseCPUInfo(f *testing.F) {
	for _, name := range []string{"cpuinfo_xeon_2cpu.txt", "cpuinfo_arm64.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("processor : 0\ncpu MHz : 1e400\n")
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUInfo(strings.NewReader(s))
		if err == nil && len(cpus) == 0 {
			t.Fatal("no error and no CPUs")
		}
		for _, c := range cpus {
			if c.Number < 0 || c.SpeedMHz < 0 || c.SpeedMHz != c.SpeedMHz {
				t.Fatalf("bad CPU %+v", c)
			}
		}
	})
}

func FuzzParseMemInfo(f *testing.F) {
	b, err := os.ReadFile("testdata/meminfo.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Add("MemTotal: 1 kB\nMemFree: 2\n")
	f.Fuzz(func(t *testing.T, s string) {
		total, free, err := ParseMemInfo(strings.NewReader(s))
		if err == nil && (total < 0 || free < 0) {
			t.Fatalf("negative sizes %d %d", total, free)
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	b, err := os.ReadFile("testdata/route.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Fuzz(func(t *testing.T, s string) {
		routes, err := ParseRoutes(strings.NewReader(s))
		if err != nil {
			return
		}
		for i, r := range routes {
			if r.Iface == "" || strings.Count(r.Gateway, ".") != 3 || i > 0 && routes[i-1].Metric > r.Metric {
				t.Fatalf("bad routes %+v", routes)
			}
		}
	})
}
