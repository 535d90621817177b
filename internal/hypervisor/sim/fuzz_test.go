package sim

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadImage: suspend images come from disks users can write; reading
// one must fail cleanly, never panic or allocate without bound.
func FuzzReadImage(f *testing.F) {
	s := spec("v", 4096)
	good := filepath.Join(f.TempDir(), "good")
	if err := writeImage(good, &record{Spec: s, Domid: 3, Uptime: 5}); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("XENITH-SIM-SUSPEND 1 99999999999\n"))
	f.Add([]byte("XENITH-SIM-SUSPEND 1 2\n{}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "img")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		rec, err := readImage(p)
		if err == nil && rec.Spec.UUID == "" {
			t.Fatal("accepted an image without uuid")
		}
	})
}

// FuzzLoadState: a damaged state file must make New fail or load
// something consistent, never panic.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"next_domid":3,"domains":[{"spec":{"UUID":"a","MemoryStaticMax":1048576,"MemoryTarget":1048576,"VCPUsMax":1,"VCPUs":1},"domid":2,"state":"running","start_time":"2025-01-01T00:00:00Z","cpu_time_ns":0,"uptime_ns":5,"agent_reported":false,"pending":"halt"}]}`))
	f.Add([]byte(`{"version":1,"domains":[{"spec":{"UUID":"a"},"domid":1,"state":"crashed"},{"spec":{"UUID":"a"},"domid":2,"state":"paused"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := New(Options{StateDir: dir})
		if err != nil {
			return
		}
		defer d.Close()
		seen := map[int]bool{}
		for _, x := range d.doms {
			if seen[x.rec.Domid] || x.rec.Domid >= d.nextDomid {
				t.Fatalf("domid %d repeated or not below next %d", x.rec.Domid, d.nextDomid)
			}
			seen[x.rec.Domid] = true
		}
	})
}
