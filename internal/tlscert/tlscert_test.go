package tlscert

import (
	"crypto/tls"
	"os"
	"testing"
)

func TestEnsureCreatesOnceAndLoads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, k, err := Ensure(dir, "host1", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(c, k); err != nil {
		t.Fatalf("generated pair does not load: %v", err)
	}
	fi, err := os.Stat(k)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	before, _ := os.ReadFile(c)
	if _, _, err := Ensure(dir, "other", ""); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(c)
	if string(before) != string(after) {
		t.Fatal("Ensure replaced an existing certificate")
	}
}
