package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The older interfaces xenithd serves over its XenAPI: the xenopsd domain
// API (/xenops and the DATA/xenopsd unix socket) and the xend HTTP
// interface (/xend/ and --xend's own port). Each scenario runs a real
// client (tests/peers/python/xenops_scenario.py, xend_scenario.py) that
// drives a VM through the front and checks every step through XenAPI.py
// and XenAPI events.

func TestXenopsFront(t *testing.T) {
	root := repoRoot(t)
	d := startDaemon(t, "--sim-boot-time", "200ms", "--sim-shutdown-time", "100ms")

	t.Run("socket", func(t *testing.T) {
		sock := filepath.Join(d.DataDir, "xenopsd")
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want a socket with 0600", sock, fi.Mode())
		}
		// Callers on the socket are the local root: no credentials.
		body := `<?xml version="1.0"?><methodCall><methodName>Query.query</methodName><params><param><value><struct>` +
			`<member><name>dbg</name><value>e2e</value></member></struct></value></param></params></methodCall>`
		out := frontPost(t, unixHTTPClient(sock), "http://local/", "text/xml", body, "")
		if !strings.Contains(out, "<name>Status</name><value>Success</value>") || !strings.Contains(out, "xenopsd") {
			t.Fatalf("Query.query over the socket: %s", out)
		}
	})

	t.Run("http-auth", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Post(d.URL+"/xenops", "text/xml", strings.NewReader("<methodCall/>"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("/xenops without credentials: %d, want 401", resp.StatusCode)
		}
		out := frontPost(t, client, d.URL+"/xenops", "application/json",
			`{"jsonrpc":"2.0","method":"VM.stat","params":[{"dbg":"e2e","id":"nope"}],"id":1}`, "root:"+d.Password)
		if !strings.Contains(out, `"data":["Does_not_exist",["VM","nope"]]`) {
			t.Fatalf("JSON-RPC VM.stat of an unknown VM: %s", out)
		}
	})

	t.Run("python", func(t *testing.T) {
		requirePythonClient(t)
		runPeer(t, d, pythonTimeout, filepath.Join(root, "tests", "peers", "python"), debianPython,
			filepath.Join(root, "tests", "peers", "python", "xenops_scenario.py"),
			"--url", d.URL, "--user", "root", "--password", d.Password)
	})
}

func TestXendFront(t *testing.T) {
	root := repoRoot(t)
	xendAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, "--sim-boot-time", "200ms", "--sim-shutdown-time", "100ms", "--xend", xendAddr)

	t.Run("own-port", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		out := frontGet(t, client, "http://"+xendAddr+"/xend/domain/", "root:"+d.Password)
		if !strings.HasPrefix(out, "(Domain-0") {
			t.Fatalf("GET /xend/domain/ on --xend: %q", out)
		}
		resp, err := client.Get("http://" + xendAddr + "/xend/node")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no credentials: %d, want 401", resp.StatusCode)
		}
	})

	for _, tc := range []struct{ name, xend string }{{"python-main-listener", d.URL}, {"python-xend-port", "http://" + xendAddr}} {
		t.Run(tc.name, func(t *testing.T) {
			requirePythonClient(t)
			runPeer(t, d, pythonTimeout, filepath.Join(root, "tests", "peers", "python"), debianPython,
				filepath.Join(root, "tests", "peers", "python", "xend_scenario.py"),
				"--url", d.URL, "--xend", tc.xend, "--user", "root", "--password", d.Password)
		})
	}
}

func frontPost(t *testing.T, client *http.Client, url, ctype, body, userpass string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if user, pw, ok := strings.Cut(userpass, ":"); ok {
		req.SetBasicAuth(user, pw)
	}
	return frontDo(t, client, req)
}

func frontGet(t *testing.T, client *http.Client, url, userpass string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user, pw, ok := strings.Cut(userpass, ":"); ok {
		req.SetBasicAuth(user, pw)
	}
	return frontDo(t, client, req)
}

func frontDo(t *testing.T, client *http.Client, req *http.Request) string {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d %s", req.Method, req.URL, resp.StatusCode, b)
	}
	return string(b)
}
