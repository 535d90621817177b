package xapi

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/hypervisor/sim"
)

// host.call_plugin(host, "sim", "load", args) sets what a simulated guest
// keeps busy: the driver's Stats follow, omitted arguments keep their
// value and bad ones are a XENAPI_PLUGIN_FAILURE that changes nothing.
func TestSimPluginLoad(t *testing.T) {
	t.Parallel()
	n := newNetT(t, client.JSONRPC)
	vm := n.vm(t, "loaded") // 1 vCPU
	n.mustVIF(t, vm, n.network(t, "net-load"), "0")
	n.do(t, "VM.start", vm, false, false)
	uuid := n.get(t, "VM", vm, "uuid")
	idle := n.get(t, "VM", n.vm(t, "halted"), "uuid")
	drv := n.e.srv.domains.Driver().(*sim.Driver)
	host := n.host(t)
	load := func(args map[string]string) error {
		_, err := n.call("host.call_plugin", host, "sim", "load", args)
		return err
	}
	wantLoad := func(what string, want sim.Load) {
		t.Helper()
		if got, err := drv.Load(uuid); err != nil || got != want {
			t.Fatalf("%s: load %+v, %v; want %+v", what, got, err, want)
		}
	}
	wantLoad("at first", sim.Load{CPU: sim.DefaultCPULoad})

	if err := load(map[string]string{"vm": uuid, "cpu": "0.5", "net_rx_kbs": "4", "net_tx_kbs": " 2 "}); err != nil {
		t.Fatal(err)
	}
	want := sim.Load{CPU: 0.5, NetRxBps: 4096, NetTxBps: 2048}
	wantLoad("set", want)
	// Two samples: the counters grew at exactly the new rates.
	s1, err := drv.Stats(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	s2, err := drv.Stats(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	secs := s2.Time.Sub(s1.Time).Seconds()
	if u := (s2.CPUTime - s1.CPUTime).Seconds() / secs; math.Abs(u-0.5) > 1e-6 {
		t.Errorf("CPU use %v, want 0.5", u)
	}
	n1, n2 := s1.NICs["0"], s2.NICs["0"]
	if rx := float64(n2.ReadBytes - n1.ReadBytes); math.Abs(rx-4096*secs) > 2 {
		t.Errorf("NIC 0 received %v bytes in %vs, want 4 KiB/s", rx, secs)
	}
	if tx := float64(n2.WriteBytes - n1.WriteBytes); math.Abs(tx-2048*secs) > 2 {
		t.Errorf("NIC 0 sent %v bytes in %vs, want 2 KiB/s", tx, secs)
	}

	if err := load(map[string]string{"vm": uuid, "disk_write_kbs": "1.5"}); err != nil {
		t.Fatal(err)
	}
	want.DiskWriteBps = 1536
	wantLoad("omitted arguments", want)

	for _, tc := range []struct {
		name string
		args map[string]string
		why  string // in the message
	}{
		{"cpu not a number", map[string]string{"vm": uuid, "cpu": "half"}, "cpu"},
		{"cpu above 1", map[string]string{"vm": uuid, "cpu": "1.5"}, "cpu 1.5 not within 0..1"},
		{"cpu NaN", map[string]string{"vm": uuid, "cpu": "NaN"}, "cpu"},
		{"empty rate", map[string]string{"vm": uuid, "disk_read_kbs": ""}, "disk_read_kbs"},
		{"negative rate", map[string]string{"vm": uuid, "net_rx_kbs": "-1"}, "net_rx_kbs"},
		{"infinite rate", map[string]string{"vm": uuid, "net_tx_kbs": "1e400"}, "net_tx_kbs"},
		{"rate above the maximum", map[string]string{"vm": uuid, "disk_read_kbs": "1e12"}, "disk read rate"},
		{"misspelt argument", map[string]string{"vm": uuid, "cpus": "0.5"}, "cpus"},
		{"no vm", map[string]string{"cpu": "0.5"}, "vm=<uuid>"},
		{"halted vm", map[string]string{"vm": idle, "cpu": "0.5"}, "no such domain"},
	} {
		code, params := errCode(load(tc.args))
		if code != api.ErrXenapiPluginFailure || len(params) != 3 || params[0] != "failed" || params[1] != "load" || !strings.Contains(params[2], tc.why) {
			t.Errorf("%s: error %s %v, want %s failed load <%s...>", tc.name, code, params, api.ErrXenapiPluginFailure, tc.why)
		}
	}
	wantLoad("after bad arguments", want)
}
