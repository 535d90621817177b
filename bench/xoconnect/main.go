// Command xoconnect fills a xenithd data directory with a pool population
// for bench/xoconnect/run.sh: the first-start inventory plus N realistic VMs
// (each with its VM_metrics, two VDIs with their VBDs and one VIF), written
// through the bench fixture in batches of a few hundred VMs per store
// transaction, then closes the store. xenithd started with --data DIR
// serves them.
//
// Two VMs in three are Running (bench.AddVMs). So that xenithd adopts them
// at startup instead of finding their domains gone and applying
// actions_after_crash (restart: ~6,700 VM starts, seconds of CPU while the
// benchmark runs), it also writes the simulator's state file,
// DIR/sim/sim-domains.json, with one running domain per Running VM: same
// uuid and domid as the VM record, its memory, vCPUs, disks and NIC, guest
// agent already reported. xenithd --driver sim (the default) then loads the
// domains and its domain manager's reconcile finds every Running VM's
// domain running with the recorded domid: nothing to write. The records
// stay what XO sees of a pool with running VMs. -sim-state=false leaves
// the file out (the old behaviour: mass restart at startup).
//
//	go run ./bench/xoconnect -dir DIR [-vms 10000] [-batch 250] [-sim-state=true]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/xenith/xenith/bench"
	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/store"
)

func main() {
	dir := flag.String("dir", "", "data directory (created; must not hold a database yet)")
	vms := flag.Int("vms", 10000, "VMs to create")
	batch := flag.Int("batch", 250, "VMs per store transaction")
	simState := flag.Bool("sim-state", true, "write DIR/sim/"+sim.StateFile+" with a running domain for every Running VM")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "xoconnect: -dir is required")
		os.Exit(2)
	}
	if err := populate(*dir, *vms, *batch, *simState); err != nil {
		fmt.Fprintln(os.Stderr, "xoconnect:", err)
		os.Exit(1)
	}
}

func populate(dir string, vms, batch int, simState bool) error {
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
	doms := 0
	if simState {
		if doms, err = writeSimState(env.Store, filepath.Join(dir, "sim")); err != nil {
			env.Close()
			return err
		}
	}
	if err := env.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(dir + "/xenith.db")
	if err != nil {
		return err
	}
	fmt.Printf("populated %s: %d VMs (+%d VBDs, %d VDIs, %d VIFs, %d VM_metrics) in %v; xenith.db %.1f MiB; %d running sim domains\n",
		dir, vms, 2*vms, 2*vms, vms, vms, time.Since(start).Round(time.Millisecond), float64(fi.Size())/(1<<20), doms)
	return nil
}

// simDomain is one domain of the simulator's state file. It mirrors the
// unexported record type of internal/hypervisor/sim (persist.go, state file
// version 1); sim.New refuses a file it cannot read, and run.sh fails if
// xenithd logs a vanished domain, so a drift of the format shows.
type simDomain struct {
	Spec      domain.Spec `json:"spec"`
	Domid     int         `json:"domid"`
	State     string      `json:"state"`
	StartTime time.Time   `json:"start_time"`
	CPUTime   int64       `json:"cpu_time_ns"`
	CPUSince  time.Time   `json:"cpu_since"`
	Uptime    int64       `json:"uptime_ns"`
	UpSince   time.Time   `json:"up_since"`
	AgentDone bool        `json:"agent_reported"`
}

type simStateFile struct {
	Version   int         `json:"version"`
	NextDomid int         `json:"next_domid"`
	Domains   []simDomain `json:"domains"`
}

// writeSimState writes dir/sim-domains.json with a running domain for
// every Running VM (but dom0), built like domain.Manager's spec of the VM
// (disks without image paths: the simulator never opens them).
// It returns the number of domains.
func writeSimState(st *store.Store, dir string) (int, error) {
	now := time.Now()
	sf := simStateFile{Version: 1, NextDomid: 1, Domains: []simDomain{}}
	for _, row := range st.All(api.ClassVM) {
		vm := row.Rec.(*api.VM)
		if vm.IsControlDomain || vm.PowerState != api.VMPowerStateRunning {
			continue
		}
		if vm.Domid <= 0 {
			return 0, fmt.Errorf("running VM %s has domid %d", row.Ref, vm.Domid)
		}
		spec := domain.Spec{
			UUID: vm.UUID, Name: vm.NameLabel,
			MemoryStaticMax: vm.MemoryStaticMax, MemoryTarget: vm.MemoryDynamicMax,
			VCPUsMax: int(vm.VCPUsMax), VCPUs: int(vm.VCPUsAtStartup),
			HVM: vm.HVMBootPolicy != "", BootOrder: vm.HVMBootParams.Get("order"),
			Kernel: vm.PVKernel, Ramdisk: vm.PVRamdisk, Args: vm.PVArgs,
			Platform: vm.Platform.Go(),
		}
		for _, ref := range vm.VBDs {
			r, err := st.Get(api.ClassVBD, ref)
			if err != nil {
				return 0, err
			}
			vbd := r.Rec.(*api.VBD)
			spec.Disks = append(spec.Disks, domain.Disk{Device: vbd.Userdevice,
				ReadOnly: vbd.Mode == api.VBDModeRO, CD: vbd.Type == api.VBDTypeCD, Bootable: vbd.Bootable})
		}
		for _, ref := range vm.VIFs {
			r, err := st.Get(api.ClassVIF, ref)
			if err != nil {
				return 0, err
			}
			vif := r.Rec.(*api.VIF)
			n := domain.NIC{Device: vif.Device, MAC: vif.MAC, MTU: int(vif.MTU)}
			if nr, err := st.Get(api.ClassNetwork, vif.Network); err == nil {
				n.Bridge = nr.Rec.(*api.Network).Bridge
			}
			spec.NICs = append(spec.NICs, n)
		}
		started := now
		if r, err := st.Get(api.ClassVMMetrics, vm.Metrics); err == nil {
			started = r.Rec.(*api.VMMetrics).StartTime
		}
		sf.Domains = append(sf.Domains, simDomain{
			Spec: spec, Domid: int(vm.Domid), State: domain.Running.String(), StartTime: started,
			CPUTime: int64(now.Sub(started)) / 50, CPUSince: now, Uptime: int64(now.Sub(started)), UpSince: now,
			AgentDone: true,
		})
		sf.NextDomid = max(sf.NextDomid, int(vm.Domid)+1)
	}
	data, err := json.Marshal(&sf)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	return len(sf.Domains), os.WriteFile(filepath.Join(dir, sim.StateFile), append(data, '\n'), 0o600)
}
