package inventory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Hypervisor is what the hypervisor itself says about this host and its
// control domain. procfs inside a Xen dom0 only sees dom0 (its own vCPUs
// and balloon), so with a real hypervisor these facts replace the ones
// Ensure recorded from hostinfo.
type Hypervisor struct {
	Name    string // driver name: "xen"
	Version string // e.g. "4.17.7"

	TotalMemory, FreeMemory int64 // bytes, the whole machine
	CPUs                    int   // physical CPUs
	CPUSpeedMHz             float64
	Capabilities            []string // xen_caps
	Scheduler               string   // xen_scheduler
	Extra                   map[string]string

	// Dom0 is the control domain's own size; zero values are not applied.
	Dom0Memory int64 // bytes
	Dom0VCPUs  int
}

// XenFacts turns every field of `xl info` (and dom0's line of `xl list`)
// into Hypervisor facts.
func XenFacts(info map[string]string, dom0MemBytes int64, dom0VCPUs int) (Hypervisor, error) {
	h := Hypervisor{Name: "xen", Version: info["xen_version"], Dom0Memory: dom0MemBytes, Dom0VCPUs: dom0VCPUs}
	if h.Version == "" && info["xen_major"] != "" {
		h.Version = info["xen_major"] + "." + info["xen_minor"] + info["xen_extra"]
	}
	if h.Version == "" {
		return Hypervisor{}, fmt.Errorf("xl info: no xen_version")
	}
	mib := func(k string) (int64, error) {
		v, err := strconv.ParseInt(info[k], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("xl info: %s = %q: %w", k, info[k], err)
		}
		return v << 20, nil
	}
	var err error
	if h.TotalMemory, err = mib("total_memory"); err != nil {
		return Hypervisor{}, err
	}
	if h.FreeMemory, err = mib("free_memory"); err != nil {
		return Hypervisor{}, err
	}
	if h.CPUs, err = strconv.Atoi(info["nr_cpus"]); err != nil {
		return Hypervisor{}, fmt.Errorf("xl info: nr_cpus = %q: %w", info["nr_cpus"], err)
	}
	h.CPUSpeedMHz, _ = strconv.ParseFloat(info["cpu_mhz"], 64)
	h.Capabilities = strings.Fields(info["xen_caps"])
	h.Scheduler = info["xen_scheduler"]
	// xapi's software_version carries these as "xen" plus the build facts.
	h.Extra = map[string]string{}
	for _, k := range []string{"xen_major", "xen_minor", "xen_extra", "xen_changeset", "xen_commandline",
		"xen_pagesize", "cc_compiler", "cc_compile_date", "build_id", "virt_caps"} {
		if v, ok := info[k]; ok && v != "" {
			h.Extra[k] = v
		}
	}
	return h, nil
}

// ApplyHypervisor records h on the host, its metrics, cpu_info and the
// control domain (domid 0), keeping every reference.
func ApplyHypervisor(ctx context.Context, st *store.Store, hostRef xenapi.Ref, h Hypervisor) error {
	now := time.Now().UTC().Truncate(time.Second)
	return st.Update(ctx, func(tx *store.Tx) error {
		var metrics, dom0 xenapi.Ref
		if err := tx.Modify(api.ClassHost, hostRef, func(r xenapi.Record) error {
			host := r.(*api.Host)
			sv := host.SoftwareVersion.With("hypervisor", h.Name)
			if h.Name == "xen" {
				sv = sv.With("xen", h.Version)
				for k, v := range h.Extra {
					sv = sv.With(k, v)
				}
			}
			host.SoftwareVersion = sv
			if len(h.Capabilities) > 0 {
				host.Capabilities = h.Capabilities
			}
			if h.Scheduler != "" {
				host.SchedPolicy = h.Scheduler
			}
			if h.CPUs > 0 {
				ci := host.CPUInfo.With("cpu_count", strconv.Itoa(h.CPUs))
				if h.CPUSpeedMHz > 0 {
					ci = ci.With("speed", strconv.FormatFloat(h.CPUSpeedMHz, 'f', 3, 64))
				}
				host.CPUInfo = ci
			}
			metrics, dom0 = host.Metrics, host.ControlDomain
			return nil
		}); err != nil {
			return err
		}
		if h.TotalMemory > 0 && tx.Exists(api.ClassHostMetrics, metrics) {
			if err := tx.Modify(api.ClassHostMetrics, metrics, func(r xenapi.Record) error {
				m := r.(*api.HostMetrics)
				m.MemoryTotal, m.MemoryFree = h.TotalMemory, h.FreeMemory
				m.Live, m.LastUpdated = true, now
				return nil
			}); err != nil {
				return err
			}
		}
		if !tx.Exists(api.ClassVM, dom0) {
			return nil
		}
		var vmMetrics xenapi.Ref
		if err := tx.Modify(api.ClassVM, dom0, func(r xenapi.Record) error {
			vm := r.(*api.VM)
			vm.Domid, vm.PowerState = 0, api.VMPowerStateRunning
			if h.Dom0Memory > 0 {
				vm.MemoryStaticMax, vm.MemoryDynamicMax = h.Dom0Memory, h.Dom0Memory
				vm.MemoryDynamicMin, vm.MemoryStaticMin = h.Dom0Memory, h.Dom0Memory
				vm.MemoryTarget = h.Dom0Memory
			}
			if h.Dom0VCPUs > 0 {
				vm.VCPUsMax, vm.VCPUsAtStartup = int64(h.Dom0VCPUs), int64(h.Dom0VCPUs)
			}
			vmMetrics = vm.Metrics
			return nil
		}); err != nil {
			return err
		}
		if !tx.Exists(api.ClassVMMetrics, vmMetrics) {
			return nil
		}
		return tx.Modify(api.ClassVMMetrics, vmMetrics, func(r xenapi.Record) error {
			m := r.(*api.VMMetrics)
			if h.Dom0Memory > 0 {
				m.MemoryActual = h.Dom0Memory
			}
			if h.Dom0VCPUs > 0 {
				m.VCPUsNumber = int64(h.Dom0VCPUs)
			}
			m.LastUpdated = now
			return nil
		})
	})
}
