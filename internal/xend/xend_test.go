package xend

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/sexpr"
	"github.com/xenith/xenith/internal/xapi/xapitest"
)

var update = flag.Bool("update", false, "rewrite golden files")

type client struct {
	t  testing.TB
	hs *httptest.Server
	e  *env
}

func newClient(t testing.TB) *client {
	e := newEnv(t)
	hs := httptest.NewServer(e.svc.Handler())
	t.Cleanup(hs.Close)
	return &client{t: t, hs: hs, e: e}
}

func (c *client) do(method, path string, form url.Values, header map[string]string) (int, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.hs.URL+path, body)
	if err != nil {
		c.t.Fatalf("%s %q: %v", method, path, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth("root", xapitest.RootPassword)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *client) post(path string, kv ...string) (int, sexpr.Value) {
	c.t.Helper()
	form := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Set(kv[i], kv[i+1])
	}
	code, body := c.do("POST", path, form, nil)
	v, err := sexpr.Parse([]byte(body))
	if err != nil {
		c.t.Fatalf("POST %s %v: answer is not an s-expression: %v\n%s", path, kv, err, body)
	}
	return code, v
}

func (c *client) state(name string) string {
	c.t.Helper()
	code, body := c.do("GET", "/xend/domain/"+name, nil, nil)
	if code != 200 {
		c.t.Fatalf("GET domain %s: %d %s", name, code, body)
	}
	v, _ := sexpr.Parse([]byte(body))
	s, _ := v.Get("state")
	return s
}

const webConfig = `(vm (name web) (uuid 0a1b2c3d-0000-4000-8000-000000000001) (memory 128) (maxmem 256) (vcpus 2)
  (on_crash preserve) (cpu_weight 512)
  (image (linux (kernel /boot/vmlinuz) (args 'console=hvc0')))
  (device (vif (mac 00:16:3e:00:00:01) (bridge xenbr0))))`

func TestScenario(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	code, v := c.post("/xend/domain/", "op", "create", "config", webConfig)
	if code != 200 || v.Name() != "domain" {
		t.Fatalf("create: %d %s", code, v)
	}
	if c.state("web") != "--p---" {
		t.Fatalf("after create: %s", c.state("web"))
	}
	for _, step := range []struct{ op, want string }{
		{"wait_for_devices", "--p---"}, {"unpause", "r-----"}, {"pause", "--p---"}, {"unpause", "r-----"},
	} {
		if code, v := c.post("/xend/domain/web", "op", step.op); code != 200 {
			t.Fatalf("%s: %d %s", step.op, code, v)
		}
		if got := c.state("web"); got != step.want {
			t.Fatalf("after %s: %s, want %s", step.op, got, step.want)
		}
	}
	if code, v := c.post("/xend/domain/web", "op", "domain_sched_credit_set", "weight", "1024", "cap", "50"); code != 200 {
		t.Fatalf("sched: %d %s", code, v)
	}
	if _, v := c.post("/xend/domain/web", "op", "domain_sched_credit_get"); v.String() != "(sched_credit (weight 1024) (cap 50))" {
		t.Fatalf("sched get: %s", v)
	}
	if code, v := c.post("/xend/domain/web", "op", "save", "file", "/srv/web.save"); code != 200 {
		t.Fatalf("save: %d %s", code, v)
	}
	if code, v := c.post("/xend/domain/", "op", "restore", "file", "/srv/web.save"); code != 200 {
		t.Fatalf("restore: %d %s", code, v)
	}
	if c.state("web") != "r-----" {
		t.Fatalf("after restore: %s", c.state("web"))
	}
	if code, v := c.post("/xend/domain/web", "op", "shutdown", "reason", "halt"); code != 200 {
		t.Fatalf("shutdown: %d %s", code, v)
	}
	if c.state("web") != "------" {
		t.Fatalf("after shutdown: %s", c.state("web"))
	}
	// XenAPI agrees, under the configured uuid.
	row, err := c.e.st.ByUUID(api.ClassVM, "0a1b2c3d-0000-4000-8000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	vm := row.Rec.(*api.VM)
	if vm.PowerState != api.VMPowerStateHalted || vm.MemoryStaticMax != 256<<20 || vm.ActionsAfterCrash != "preserve" || len(vm.VIFs) != 1 {
		t.Fatalf("XenAPI record: %+v", vm)
	}
	if code, v := c.post("/xend/domain/web", "op", "destroy"); code != 200 || v.String() != "()" {
		t.Fatalf("destroy: %d %s", code, v)
	}
	if code, _ := c.do("GET", "/xend/domain/web", nil, nil); code != 404 {
		t.Fatalf("GET after destroy: %d", code)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for _, tc := range []struct {
		path string
		kv   []string
		code int
	}{
		{"/xend/domain/", []string{"op", "create", "config", "(vm (name x"}, 400},
		{"/xend/domain/", []string{"op", "create", "config", "(vm (memory 128))"}, 400},
		{"/xend/domain/", []string{"op", "create", "config", "(vm (name x) (memory lots))"}, 400},
		{"/xend/domain/", []string{"op", "create", "config", "(vm (name x) (device (vbd (dev xvda) (uname file:/nope.img) (mode w))))"}, 400},
		{"/xend/domain/", []string{"op", "create", "config", "(vm (name x) (device (pci (dev 0000:00:1f.0))))"}, 400},
		{"/xend/domain/", []string{"op", "create", "config", "(vm (name x) (device (vif (bridge nope))))"}, 400},
		{"/xend/domain/", []string{"op", "create", "config", "(vm (name x) (on_reboot explode))"}, 400},
		{"/xend/domain/", []string{"op", "create", "config", ""}, 400},
		{"/xend/domain/", []string{"op", "create", "config", "\xff"}, 400},
		{"/xend/domain/", []string{"op", "frob"}, 400},
		{"/xend/domain/", nil, 400},
		{"/xend/domain/nope", []string{"op", "pause"}, 404},
		{"/xend/domain/Domain-0", []string{"op", "pause"}, 400},
		{"/xend/domain/", []string{"op", "restore", "file", "relative"}, 400},
	} {
		code, v := c.post(tc.path, tc.kv...)
		if code != tc.code || v.Name() != "xend.err" {
			t.Errorf("POST %s %q: %d %s, want %d (xend.err ...)", tc.path, tc.kv, code, v, tc.code)
		}
	}
	req, _ := http.NewRequest("GET", c.hs.URL+"/xend/domain/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d", resp.StatusCode)
	}
}

func TestContentNegotiation(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	_, body := c.do("GET", "/xend/domain/", nil, map[string]string{"Accept": "*/*"})
	if !strings.HasPrefix(body, "(Domain-0") {
		t.Errorf("Accept */*: %s", body)
	}
	_, body = c.do("GET", "/xend/domain/?detail=1", nil, map[string]string{"Accept": "text/html,application/xhtml+xml"})
	if !strings.Contains(body, "<table") || !strings.Contains(body, "Domain-0") {
		t.Errorf("Accept text/html: %s", body)
	}
}

var volatile = regexp.MustCompile(`\((uuid|mac|host|release|start_time|nr_cpus|cores_per_socket|cpu_mhz|total_memory|free_memory|memory|maxmem|vcpus|vcpus_max|online_vcpus|machine|sockets_per_node) [^()]*\)`)

// TestGolden pins the s-expressions of the resources.
func TestGolden(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	if code, v := c.post("/xend/domain/", "op", "create", "config", webConfig); code != 200 {
		t.Fatalf("create: %d %s", code, v)
	}
	var out []byte
	for _, p := range []string{"/xend/", "/xend/node", "/xend/domain/", "/xend/domain/web"} {
		_, body := c.do("GET", p, nil, nil)
		out = append(out, "== GET "+p+"\n"+body...)
	}
	_, body := c.do("POST", "/xend/domain/", url.Values{"op": {"create"}, "config": {"(vm (name"}}, nil)
	out = append(out, "== POST bad config\n"+body...)
	got := volatile.ReplaceAll(out, []byte("($1 X)"))
	path := filepath.Join("testdata", "resources.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run with -update):\n%s", path, got)
	}
}

// FuzzConfig feeds op=create configurations: the answer is a domain or a
// 400 with (xend.err ...), never a panic or a 5xx.
func FuzzConfig(f *testing.F) {
	f.Add(webConfig)
	f.Add("(vm (name a) (device (vbd (dev hda:cdrom) (mode r))))")
	f.Add("(domain (name b) (image (hvm (boot dc))) (vcpus 3) (vcpus_max 2))")
	f.Add("(vm (name c) (image (linux)) (device (tap (dev xvdb) (uname tap:aio:/x))))")
	c := newClient(f)
	f.Fuzz(func(t *testing.T, cfg string) {
		c.t = t
		code, body := c.do("POST", "/xend/domain/", url.Values{"op": {"create"}, "config": {cfg}}, nil)
		v, err := sexpr.Parse([]byte(body))
		if err != nil {
			t.Fatalf("answer is not an s-expression: %v\n%s", err, body)
		}
		switch {
		case code == 200 && v.Name() == "domain":
			uuid, _ := v.Get("uuid")
			c.do("POST", "/xend/domain/"+url.PathEscape(uuid), url.Values{"op": {"destroy"}}, nil)
		case code == 400 && v.Name() == "xend.err":
		default:
			t.Fatalf("config %q: %d %s", cfg, code, body)
		}
	})
}
