package domain

import (
	"testing"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/xenapi"
)

func TestBootKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		typ      api.DomainType
		policy   string
		platform map[string]string
		hvm, pvh bool
		needsHVM bool
	}{
		{"unspecified, no policy: PV", api.DomainTypeUnspecified, "", nil, false, false, false},
		{"unspecified, BIOS order: HVM", api.DomainTypeUnspecified, "BIOS order", nil, true, false, true},
		{"unspecified, platform pvh", api.DomainTypeUnspecified, "", map[string]string{"pvh": "true"}, false, true, true},
		{"domain_type wins over the policy", api.DomainTypePV, "BIOS order", nil, false, false, false},
		{"hvm", api.DomainTypeHVM, "", nil, true, false, true},
		{"pvh", api.DomainTypePVH, "BIOS order", nil, false, true, true},
		{"pv_in_pvh boots PV, needs hvm", api.DomainTypePVInPVH, "", nil, false, false, true},
	} {
		vm := api.NewVM()
		vm.DomainType, vm.HVMBootPolicy, vm.Platform = tc.typ, tc.policy, xenapi.MapOf(tc.platform)
		if hvm, pvh := bootKind(vm); hvm != tc.hvm || pvh != tc.pvh {
			t.Errorf("%s: bootKind = hvm %v pvh %v, want %v %v", tc.name, hvm, pvh, tc.hvm, tc.pvh)
		}
		if needsHVM(vm) != tc.needsHVM {
			t.Errorf("%s: needsHVM = %v", tc.name, needsHVM(vm))
		}
	}
}
