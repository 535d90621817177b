package xen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

var _ domain.StatsDriver = (*Driver)(nil)

// Stats samples a domain's CPU time and memory (`xl list -v`) and the time
// of each vCPU (`xl vcpu-list`); the manager turns them into VM_metrics.
func (d *Driver) Stats(ctx context.Context, uuid string) (domain.Stats, error) {
	doms, err := d.xl.list(ctx)
	if err != nil {
		return domain.Stats{}, err
	}
	var st domain.Stats
	found := false
	for _, x := range doms {
		if x.UUID == uuid && x.Domid != 0 {
			st.CPUTime, st.MemoryActual, found = x.CPUTime, x.MemMiB*mib, true
			break
		}
	}
	if !found {
		return domain.Stats{}, noDomain(uuid)
	}
	out, err := d.xl.do(ctx, "vcpu-list", domainName(uuid))
	if err != nil {
		return domain.Stats{}, err
	}
	if st.VCPUTime, err = parseVCPUList(out); err != nil {
		return domain.Stats{}, err
	}
	st.Time = d.now()
	return st, nil
}

// parseVCPUList parses `xl vcpu-list DOM`:
//
//	Name  ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)
//	vm    3     0    1   -b-      12.3  all / all
//	vm    3     1    -   --p       0.4  all / all
//
// into the time of each vCPU, by number.
func parseVCPUList(out []byte) ([]time.Duration, error) {
	var times []time.Duration
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[0] == "Name" {
			continue
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("xl vcpu-list: vcpu in %q: %w", sc.Text(), err)
		}
		secs, err := strconv.ParseFloat(f[5], 64)
		if err != nil {
			return nil, fmt.Errorf("xl vcpu-list: time in %q: %w", sc.Text(), err)
		}
		if n < 0 || n > 4096 {
			return nil, fmt.Errorf("xl vcpu-list: vcpu %d", n)
		}
		for len(times) <= n {
			times = append(times, 0)
		}
		times[n] = time.Duration(secs * float64(time.Second))
	}
	return times, sc.Err()
}
