// Command memload measures bar 3 of BENCHMARKS.md: the resident memory of
// a store holding a realistic pool of -vms VMs, each with two VBDs on two
// VDIs, one VIF and its VM_metrics.
//
// It opens a bbolt-backed store (NoSync) in a temporary directory, creates
// the first-start inventory, notes VmRSS, creates the VMs through ordinary
// store transactions (the path API calls take, bindings and persistence
// included), runs the GC and notes VmRSS again. Then it closes the store
// and starts itself again (-open) to measure the load path: a fresh process
// notes VmRSS, opens the database from disk, runs the GC and notes VmRSS.
//
// VmRSS includes the pages of the bbolt file mapped into the process
// (RssFile / RssShmem on tmpfs); the anonymous part (RssAnon) is the Go heap
// and runtime. Both are printed. Each sample is taken at rest, a second after
// the work (see atRest). "after GC" is right after runtime.GC();
// "after FreeOSMemory" is once the runtime has returned freed pages to the
// OS, which it otherwise does gradually in the background.
//
// Lines starting with "SUMMARY|" are for bench/run.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xenith/xenith/bench"
	"github.com/xenith/xenith/internal/store"
)

// barKiB is the bar: resident memory per VM.
const barKiB = 20

type mem struct {
	RSS, Anon, File, Shmem int64 // KiB, from /proc/self/status
	HeapInuse, HeapAlloc   int64 // bytes
	Sys                    int64 // bytes obtained from the OS by the runtime
}

// atRest is how long a sample waits first, so that it sees the process as a
// daemon at rest after the work: the store releases the database pages its
// writes mapped once writing pauses.
const atRest = time.Second

func sample(free bool) mem {
	time.Sleep(atRest)
	runtime.GC()
	if free {
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{HeapInuse: int64(ms.HeapInuse), HeapAlloc: int64(ms.HeapAlloc), Sys: int64(ms.Sys)}
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n
		case "RssAnon":
			m.Anon = n
		case "RssFile":
			m.File = n
		case "RssShmem":
			m.Shmem = n
		}
	}
	return m
}

// result is what one phase reports (the -open child prints it as JSON).
type result struct {
	Before, AfterGC, AfterFree mem
	Objects                    map[string]int
	Took                       time.Duration
	DBBytes                    int64
}

func main() {
	var (
		vms   = flag.Int("vms", 10000, "VMs to create")
		batch = flag.Int("batch", 50, "VMs per store transaction")
		open  = flag.String("open", "", "child mode: open the database in this directory and report as JSON")
		keep  = flag.Bool("keep", false, "keep the temporary directory")
		mem   = flag.Bool("memory", false, "build in a memory-only store (no database, no reopen phase)")
		prof  = flag.String("memprofile", "", "write heap profiles (after building: FILE.build, after reopening: FILE.reopen)")
	)
	flag.Parse()
	if *open != "" {
		r, err := reopen(*open, *prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "memload -open:", err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	if err := run(*vms, *batch, *keep, *mem, *prof); err != nil {
		fmt.Fprintln(os.Stderr, "memload:", err)
		os.Exit(1)
	}
}

func counts(st *store.Store) map[string]int {
	out := map[string]int{}
	for _, c := range []string{"VM", "VM_metrics", "VBD", "VDI", "VIF"} {
		out[c] = st.Count(st.Class(c))
	}
	return out
}

func run(vms, batch int, keep, memory bool, prof string) error {
	ctx := context.Background()
	dir, err := bench.TempDir()
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	env, err := bench.NewEnv(ctx, bench.EnvOptions{Dir: dir, Persistent: !memory})
	if err != nil {
		return err
	}
	var build result
	build.Before = sample(true)
	start := time.Now()
	if _, err := bench.AddVMs(ctx, env.Store, env.Infra, 0, vms, batch); err != nil {
		return err
	}
	build.Took = time.Since(start)
	build.AfterGC = sample(false)
	build.AfterFree = sample(true)
	build.Objects = counts(env.Store)
	if err := heapProfile(prof, ".build"); err != nil {
		return err
	}
	runtime.KeepAlive(env)
	if err := env.Close(); err != nil {
		return err
	}
	if memory {
		fmt.Printf("machine: %d CPUs, %s, %s\n", runtime.NumCPU(), cpuModel(), runtime.Version())
		fmt.Printf("bar 3: %d VMs, objects %v, memory-only store, batch %d VMs per transaction\n", vms, build.Objects, batch)
		report("build (store.Update, memory-only)", build, vms)
		return nil
	}
	if fi, err := os.Stat(filepath.Join(dir, "xenith.db")); err == nil {
		build.DBBytes = fi.Size()
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	stats, err := dbStats(filepath.Join(dir, "xenith.db"))
	if err != nil {
		return err
	}
	out, err := exec.Command(exe, "-open", dir, "-memprofile", prof).Output()
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	var load result
	if err := json.Unmarshal(out, &load); err != nil {
		return err
	}

	fmt.Printf("machine: %d CPUs, %s, %s\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	fmt.Printf("bar 3: %d VMs, objects %v, database %.1f MiB, batch %d VMs per transaction\n",
		vms, build.Objects, float64(build.DBBytes)/(1<<20), batch)
	fmt.Print(stats)
	report("build (store.Update into bbolt)", build, vms)
	report("reopen (load from disk, new process)", load, vms)
	return nil
}

func report(phase string, r result, vms int) {
	per := func(a, b int64) float64 { return float64(a-b) / float64(vms) } // KiB per VM
	perB := func(a, b int64) float64 { return float64(a-b) / 1024 / float64(vms) }
	fmt.Printf("\n  %s, took %v\n", phase, r.Took.Round(time.Millisecond))
	fmt.Printf("    %-22s %10s %10s %10s %10s %12s %12s\n", "", "VmRSS", "RssAnon", "RssFile", "RssShmem", "HeapInuse", "HeapAlloc")
	row := func(name string, m mem) {
		fmt.Printf("    %-22s %7d KiB %6d KiB %6d KiB %6d KiB %8.1f MiB %8.1f MiB\n", name, m.RSS, m.Anon, m.File, m.Shmem,
			float64(m.HeapInuse)/(1<<20), float64(m.HeapAlloc)/(1<<20))
	}
	row("before", r.Before)
	row("after GC", r.AfterGC)
	row("after FreeOSMemory", r.AfterFree)
	fmt.Printf("    per VM after GC:          VmRSS %.1f KiB, RssAnon %.1f KiB, HeapInuse %.1f KiB, HeapAlloc %.1f KiB\n",
		per(r.AfterGC.RSS, r.Before.RSS), per(r.AfterGC.Anon, r.Before.Anon),
		perB(r.AfterGC.HeapInuse, r.Before.HeapInuse), perB(r.AfterGC.HeapAlloc, r.Before.HeapAlloc))
	fmt.Printf("    per VM after FreeOSMemory: VmRSS %.1f KiB, RssAnon %.1f KiB\n",
		per(r.AfterFree.RSS, r.Before.RSS), per(r.AfterFree.Anon, r.Before.Anon))
	v := per(r.AfterGC.RSS, r.Before.RSS)
	verdict := "FAIL"
	if v < barKiB {
		verdict = "PASS"
	}
	name := strings.Fields(phase)[0]
	fmt.Printf("SUMMARY|3 memory per VM, VmRSS after GC (%d VMs)|%s|%.1f KiB/VM|RSS before %.1f MiB|heap %.1f KiB/VM|< %d KiB|%s\n",
		vms, name, v, float64(r.Before.RSS)/1024, perB(r.AfterGC.HeapInuse, r.Before.HeapInuse), barKiB, verdict)
}

// reopen is the child: a fresh process that loads the database from disk.
func reopen(dir, prof string) (result, error) {
	var r result
	r.Before = sample(true)
	start := time.Now()
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "xenith.db"), NoSync: true})
	if err != nil {
		return r, err
	}
	r.Took = time.Since(start)
	r.AfterGC = sample(false)
	r.AfterFree = sample(true)
	r.Objects = counts(st)
	if err := heapProfile(prof, ".reopen"); err != nil {
		return r, err
	}
	if n := r.Objects["VM"]; n == 0 {
		return r, fmt.Errorf("no VMs loaded")
	}
	runtime.KeepAlive(st)
	return r, st.Close()
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func heapProfile(prefix, suffix string) error {
	if prefix == "" {
		return nil
	}
	f, err := os.Create(prefix + suffix)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// dbStats describes the database file: how much of it is live records and
// how much free pages, by bucket.
func dbStats(path string) (string, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	defer db.Close()
	var b strings.Builder
	err = db.View(func(tx *bolt.Tx) error {
		type row struct {
			name       string
			keys       int
			data, used int64
		}
		var rows []row
		var total, used int64
		err := tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			st := bk.Stats()
			r := row{name: string(name), keys: st.KeyN}
			bk.ForEach(func(k, v []byte) error { r.data += int64(len(k) + len(v)); return nil })
			r.used = int64(st.BranchInuse + st.LeafInuse)
			total += r.data
			used += r.used
			if r.keys >= 1000 || r.data >= 1<<20 {
				rows = append(rows, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "  database file %.1f MiB; keys+values %.1f MiB; bytes in use in pages %.1f MiB (the rest is free or overflow slack)\n",
			float64(tx.Size())/(1<<20), float64(total)/(1<<20), float64(used)/(1<<20))
		for _, r := range rows {
			fmt.Fprintf(&b, "    bucket %-12s %6d keys, %7.1f KiB data, %6.0f B per record\n", r.name, r.keys, float64(r.data)/1024, float64(r.data)/float64(max(r.keys, 1)))
		}
		return nil
	})
	return b.String(), err
}
