// Command xoconnect fills a xenithd data directory with a pool population
// for bench/xoconnect/run.sh: the first-start inventory plus N realistic VMs
// (each with its VM_metrics, two VDIs with their VBDs and one VIF), written
// through the bench fixture in batches of a few hundred VMs per store
// transaction, then closes the store. xenithd started with --data DIR
// serves them.
//
//	go run ./bench/xoconnect -dir DIR [-vms 10000] [-batch 250]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/xenith/xenith/bench"
)

func main() {
	dir := flag.String("dir", "", "data directory (created; must not hold a database yet)")
	vms := flag.Int("vms", 10000, "VMs to create")
	batch := flag.Int("batch", 250, "VMs per store transaction")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "xoconnect: -dir is required")
		os.Exit(2)
	}
	if err := populate(*dir, *vms, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "xoconnect:", err)
		os.Exit(1)
	}
}

func populate(dir string, vms, batch int) error {
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	start := time.Now()
	// Persistent: the store is DIR/xenith.db (bbolt, NoSync for the bulk
	// load), with the inventory made by inventory.Ensure as cmd/xenithd does.
	env, err := bench.NewEnv(ctx, bench.EnvOptions{Dir: dir, Persistent: true})
	if err != nil {
		return err
	}
	if _, err := bench.AddVMs(ctx, env.Store, env.Infra, 0, vms, batch); err != nil {
		env.Close()
		return err
	}
	if err := env.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(dir + "/xenith.db")
	if err != nil {
		return err
	}
	fmt.Printf("populated %s: %d VMs (+%d VBDs, %d VDIs, %d VIFs, %d VM_metrics) in %v; xenith.db %.1f MiB\n",
		dir, vms, 2*vms, 2*vms, vms, vms, time.Since(start).Round(time.Millisecond), float64(fi.Size())/(1<<20))
	return nil
}
