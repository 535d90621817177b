package xen

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/xenith/xenith/internal/domain"
)

// readTree reads every value under base (keys relative to base, "/"
// separated); a missing base is an empty tree.
func readTree(ctx context.Context, xs XenStore, base string) (map[string]string, error) {
	out := map[string]string{}
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		p := base
		if rel != "" {
			p += "/" + rel
		}
		names, err := xs.Directory(ctx, p)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(names) == 0 {
			v, err := xs.Read(ctx, p)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if err == nil && rel != "" {
				out[rel] = v
			}
			return nil
		}
		if depth > 8 || len(out) > 2000 {
			return nil // a guest may write anything: bound the walk
		}
		for _, n := range names {
			r := n
			if rel != "" {
				r = rel + "/" + n
			}
			if err := walk(r, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk("", 0)
}

// agentReport turns what a guest agent (xe-guest-utilities, xen-guest-agent
// or the Windows PV tools) wrote under the domain's data/ and attr/ keys,
// plus the control/feature-* flags its PV drivers advertise, into a
// report, with the keys xapi uses for VM_guest_metrics. ok is false when
// the guest wrote nothing an agent would.
func agentReport(data, attr, control map[string]string) (rep domain.AgentReport, ok bool) {
	rep.OSVersion = map[string]string{}
	for k, name := range map[string]string{
		"os_name": "name", "os_uname": "uname", "os_distro": "distro",
		"os_majorver": "major", "os_minorver": "minor", "os_spmajor": "spmajor", "os_spminor": "spminor",
	} {
		if v, found := data[k]; found {
			rep.OSVersion[name] = v
		}
	}
	rep.PVDrivers = map[string]string{}
	for k, name := range map[string]string{
		"PVAddons/MajorVersion": "major", "PVAddons/MinorVersion": "minor",
		"PVAddons/MicroVersion": "micro", "PVAddons/BuildVersion": "build",
	} {
		if v, found := attr[k]; found {
			rep.PVDrivers[name] = v
		}
	}
	rep.Networks = map[string]string{}
	for k, v := range attr {
		f := strings.Split(k, "/")
		switch {
		// attr/vif/<devid>/ipv4/<n>, attr/vif/<devid>/ipv6/<n>
		case len(f) == 4 && f[0] == "vif" && (f[2] == "ipv4" || f[2] == "ipv6"):
			rep.Networks[f[1]+"/"+f[2]+"/"+f[3]] = v
			if f[2] == "ipv4" && f[3] == "0" {
				rep.Networks[f[1]+"/ip"] = v
			}
		// the older attr/eth<devid>/ip
		case len(f) == 2 && strings.HasPrefix(f[0], "eth") && f[1] == "ip":
			if _, err := strconv.Atoi(f[0][3:]); err == nil {
				if _, set := rep.Networks[f[0][3:]+"/ip"]; !set {
					rep.Networks[f[0][3:]+"/ip"] = v
				}
			}
		}
	}
	rep.Disks = map[string]string{}
	rep.Other = map[string]string{}
	for k, v := range control {
		if strings.HasPrefix(k, "feature-") && !strings.Contains(k, "/") {
			rep.Other[k] = v
		}
	}
	if v, found := data["meminfo_free"]; found { // KiB
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			rep.MemoryFree = n << 10
		}
	}
	ok = len(rep.OSVersion) > 0 || len(rep.PVDrivers) > 0 || len(rep.Networks) > 0 || rep.MemoryFree > 0
	rep.Live = ok
	rep.CanUseHotplug = len(rep.PVDrivers) > 0 || control["feature-poweroff"] == "1"
	return rep, ok
}
