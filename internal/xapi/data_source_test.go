package xapi

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/rrdd"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// feedVM records two minutes of samples of a guest using a quarter of one
// vCPU, ending now.
func feedVM(t *testing.T, rrds *rrdd.Store, id string) {
	t.Helper()
	end := time.Now().Truncate(5 * time.Second)
	for i := 24; i >= 0; i-- {
		at := end.Add(-time.Duration(i) * 5 * time.Second)
		n := time.Duration(24 - i)
		rrds.RecordVM(domain.VMSample{UUID: id, MemoryTarget: 256 << 20, DiskNames: map[string]string{"0": "xvda"},
			Stats: domain.Stats{Time: at, CPUTime: n * 1250 * time.Millisecond, VCPUTime: []time.Duration{n * 1250 * time.Millisecond},
				MemoryActual: 256 << 20, Disks: map[string]domain.IOCounters{"0": {ReadBytes: int64(n) * 5 << 20}}}})
		rrds.RecordHost(domain.HostSample{Time: at, CPUAvg: 0.125, MemoryTotal: 8 << 30, MemoryFree: 6 << 30})
	}
}

func TestDataSources(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Halted")
	id := h.must("VM.get_uuid", vm).Str
	host := h.must("host.get_all").Array[0]

	if got := h.must("VM.get_data_sources", vm); len(got.Array) != 0 {
		t.Fatalf("a VM that never ran has data sources %v", got)
	}
	feedVM(t, h.e.srv.rrds, id)

	srcs := h.must("VM.get_data_sources", vm)
	byName := map[string]wire.Value{}
	for _, ds := range srcs.Array {
		byName[mustField(ds, "name_label").Str] = ds
	}
	for _, name := range []string{"cpu0", "memory", "memory_target", "vbd_xvda_read", "vbd_xvda_write"} {
		if _, ok := byName[name]; !ok {
			t.Fatalf("VM data sources lack %s: %v", name, slices.Sorted(maps.Keys(byName)))
		}
	}
	cpu := byName["cpu0"]
	if v, _ := xenapi.DecFloat(mustField(cpu, "value")); math.Abs(v-0.25) > 1e-9 || mustField(cpu, "units").Str != "(fraction)" ||
		!mustField(cpu, "enabled").Bool || !mustField(cpu, "standard").Bool {
		t.Fatalf("cpu0: %v", cpu)
	}
	for _, tc := range []struct {
		name string
		want float64
	}{{"cpu0", 0.25}, {"memory", 256 << 20}, {"vbd_xvda_read", 1 << 20}} {
		got, err := h.do("VM.query_data_source", vm, wire.String(tc.name))
		if f, _ := xenapi.DecFloat(got); err != nil || math.Abs(f-tc.want) > 1e-6 {
			t.Errorf("query %s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
	internal := func(method string, args ...wire.Value) {
		t.Helper()
		_, err := h.do(method, args...)
		var xe *xenapi.Error
		if !errors.As(err, &xe) || xe.Code != api.ErrInternalError {
			t.Fatalf("%s: %v, want INTERNAL_ERROR", method, err)
		}
	}
	internal("VM.query_data_source", vm, wire.String("nope"))
	internal("VM.record_data_source", vm, wire.String("nope"))
	internal("VM.forget_data_source_archives", vm, wire.String("nope"))
	h.must("VM.record_data_source", vm, wire.String("cpu0"))
	h.must("VM.forget_data_source_archives", vm, wire.String("memory_target"))
	internal("VM.query_data_source", vm, wire.String("memory_target"))

	hostSrcs := h.must("host.get_data_sources", host)
	var names []string
	for _, ds := range hostSrcs.Array {
		names = append(names, mustField(ds, "name_label").Str)
	}
	for _, want := range []string{"cpu_avg", "memory_total_kib", "memory_free_kib", "loadavg"} {
		if !slices.Contains(names, want) {
			t.Fatalf("host data sources %v lack %s", names, want)
		}
	}
	if got, err := h.do("host.query_data_source", host, wire.String("memory_free_kib")); err != nil {
		t.Fatal(err)
	} else if f, _ := xenapi.DecFloat(got); f != 6<<20 {
		t.Fatalf("memory_free_kib %v", got)
	}
	if _, err := h.do("host.get_data_sources", wire.String("OpaqueRef:nope")); err == nil {
		t.Fatal("host.get_data_sources of no host succeeded")
	}

	// The destroyed VM's statistics go.
	h.e.srv.rrds.VMStopped(id)
	if _, err := h.e.srv.rrds.VM(id); err != nil {
		t.Fatalf("archived RRD: %v", err)
	}
	h.must("VM.destroy", vm)
	if _, err := h.e.srv.rrds.VM(id); !errors.Is(err, rrdd.ErrUnknown) {
		t.Fatalf("RRD of a destroyed VM: %v", err)
	}
}

type xport struct {
	Meta struct {
		Start   int64    `xml:"start"`
		Step    int64    `xml:"step"`
		End     int64    `xml:"end"`
		Rows    int      `xml:"rows"`
		Columns int      `xml:"columns"`
		Legend  []string `xml:"legend>entry"`
	} `xml:"meta"`
	Rows []struct {
		T int64    `xml:"t"`
		V []string `xml:"v"`
	} `xml:"data>row"`
}

func TestRRDUpdatesHTTP(t *testing.T) {
	t.Parallel()
	h := newVMHarness(t)
	vm := h.vmIn("Halted")
	id := h.must("VM.get_uuid", vm).Str
	hostUUID := h.e.srv.rrds.HostUUID()
	feedVM(t, h.e.srv.rrds, id)
	sess := url.QueryEscape(h.s.Ref)
	start := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(h.e.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"no session", "/rrd_updates?start=" + start, http.StatusUnauthorized},
		{"bad session", "/rrd_updates?start=" + start + "&session_id=OpaqueRef:nope", http.StatusUnauthorized},
		{"no start", "/rrd_updates?session_id=" + sess, http.StatusBadRequest},
		{"bad start", "/rrd_updates?start=yesterday&session_id=" + sess, http.StatusBadRequest},
		{"bad cf", "/rrd_updates?cf=MEDIAN&start=" + start + "&session_id=" + sess, http.StatusBadRequest},
		{"bad interval", "/rrd_updates?interval=-5&start=" + start + "&session_id=" + sess, http.StatusBadRequest},
		{"unknown VM dump", "/vm_rrd?uuid=0f0e0d0c-0b0a-4908-8706-050403020100&session_id=" + sess, http.StatusNotFound},
		{"not a uuid", "/vm_rrd?uuid=../host&session_id=" + sess, http.StatusNotFound},
	} {
		if status, body := get(tc.path); status != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.name, status, body, tc.status)
		}
	}

	// XML, as xapi serves it by default, VMs and the host.
	status, body := get("/rrd_updates?cf=AVERAGE&interval=5&host=true&start=" + start + "&session_id=" + sess)
	if status != http.StatusOK {
		t.Fatalf("rrd_updates: %d %s", status, body)
	}
	var x xport
	if err := xml.Unmarshal([]byte(body), &x); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	cpuCol := slices.Index(x.Meta.Legend, "AVERAGE:vm:"+id+":cpu0")
	if cpuCol < 0 || !slices.Contains(x.Meta.Legend, "AVERAGE:host:"+hostUUID+":memory_free_kib") {
		t.Fatalf("legend %v", x.Meta.Legend)
	}
	if x.Meta.Step != 5 || x.Meta.Columns != len(x.Meta.Legend) || x.Meta.Rows != len(x.Rows) || len(x.Rows) < 10 {
		t.Fatalf("meta %+v with %d rows", x.Meta, len(x.Rows))
	}
	for i, r := range x.Rows {
		if i > 0 && r.T != x.Rows[i-1].T-5 {
			t.Fatalf("rows not newest first 5 s apart: %d after %d", r.T, x.Rows[i-1].T)
		}
		if v, err := strconv.ParseFloat(r.V[cpuCol], 64); i < len(x.Rows)-1 && (err != nil || math.Abs(v-0.25) > 1e-9) {
			t.Fatalf("row %d cpu0 %q", i, r.V[cpuCol])
		}
	}

	// JSON (Xen Orchestra asks for it), one VM, no host.
	status, body = get("/rrd_updates?json=true&vm_uuid=" + id + "&start=-60&session_id=" + sess)
	var j struct {
		Meta struct {
			Legend []string `json:"legend"`
			Step   int64    `json:"step"`
		} `json:"meta"`
		Data []struct {
			T      int64      `json:"t"`
			Values []*float64 `json:"values"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &j); status != http.StatusOK || err != nil {
		t.Fatalf("json: %d %v %s", status, err, body)
	}
	for _, l := range j.Meta.Legend {
		if !strings.HasPrefix(l, "AVERAGE:vm:"+id+":") {
			t.Fatalf("json legend %v", j.Meta.Legend)
		}
	}
	if len(j.Data) == 0 || len(j.Data[0].Values) != len(j.Meta.Legend) {
		t.Fatalf("json data %+v", j.Data)
	}
	// vm_uuid=none and no host: nothing.
	if status, body = get("/rrd_updates?vm_uuid=none&start=" + start + "&session_id=" + sess); status != http.StatusOK ||
		strings.Contains(body, "<entry>") {
		t.Fatalf("vm_uuid=none: %d %s", status, body)
	}

	// The whole RRDs.
	for _, path := range []string{"/host_rrd?session_id=" + sess, "/vm_rrd?uuid=" + id + "&session_id=" + sess} {
		status, body := get(path)
		var dump struct {
			Step int64 `xml:"step"`
			DS   []struct {
				Name string `xml:"name"`
			} `xml:"ds"`
		}
		if err := xml.Unmarshal([]byte(body), &dump); status != http.StatusOK || err != nil || dump.Step != 5 || len(dump.DS) == 0 {
			t.Fatalf("%s: %d %v %.200s", path, status, err, body)
		}
	}
}
