package domain

import (
	"github.com/xenith/xenith/internal/api"
)

// The VM lifecycle as data: which power states each operation starts
// from. allowed_operations is computed from this table, and operations are
// checked against it, so the two always agree.

type ps = api.VMPowerState

const (
	halted    = api.VMPowerStateHalted
	paused    = api.VMPowerStatePaused
	running   = api.VMPowerStateRunning
	suspended = api.VMPowerStateSuspended
)

var allStates = []ps{halted, paused, running, suspended}

// fromStates lists, per operation, the power states it may start from.
var fromStates = map[api.VMOperations][]ps{
	api.VMOperationsStart:                []ps{halted},
	api.VMOperationsStartOn:              []ps{halted},
	api.VMOperationsProvision:            []ps{halted},
	api.VMOperationsMakeIntoTemplate:     []ps{halted},
	api.VMOperationsChangingVCPUs:        []ps{halted},
	api.VMOperationsChangingStaticRange:  []ps{halted},
	api.VMOperationsChangingMemoryLimits: []ps{halted},
	api.VMOperationsChangingShadowMemory: []ps{halted},
	api.VMOperationsCreateVTPM:           []ps{halted},
	api.VMOperationsUnpause:              []ps{paused},
	api.VMOperationsResume:               []ps{suspended},
	api.VMOperationsResumeOn:             []ps{suspended},
	api.VMOperationsCsvm:                 []ps{suspended},
	api.VMOperationsPause:                []ps{running},
	api.VMOperationsSuspend:              []ps{running},
	api.VMOperationsCleanShutdown:        []ps{running},
	api.VMOperationsCleanReboot:          []ps{running},
	api.VMOperationsChangingMemoryLive:   []ps{running},
	api.VMOperationsChangingVCPUsLive:    []ps{running},
	api.VMOperationsSendSysrq:            []ps{running},
	api.VMOperationsSendTrigger:          []ps{running},
	api.VMOperationsCallPlugin:           []ps{running},
	api.VMOperationsChangingDynamicRange: []ps{halted, running},
	api.VMOperationsClone:                []ps{halted},
	api.VMOperationsCopy:                 []ps{halted},
	api.VMOperationsDestroy:              []ps{halted, suspended},
	api.VMOperationsExport:               []ps{halted, suspended},
	api.VMOperationsHardReboot:           []ps{paused, running},
	api.VMOperationsHardShutdown:         []ps{paused, suspended, running},
	api.VMOperationsShutdown:             []ps{paused, suspended, running},
	api.VMOperationsCheckpoint:           []ps{paused, suspended, running},
	api.VMOperationsGetBootRecord:        []ps{paused, suspended, running},
	api.VMOperationsSnapshot:             allStates,
	api.VMOperationsRevert:               allStates,
	api.VMOperationsPowerStateReset:      allStates,
	api.VMOperationsMetadataExport:       allStates,
}

// listedOps is the order allowed_operations is reported in.
var listedOps = []api.VMOperations{
	api.VMOperationsStart, api.VMOperationsStartOn, api.VMOperationsProvision, api.VMOperationsMakeIntoTemplate,
	api.VMOperationsChangingVCPUs, api.VMOperationsChangingStaticRange, api.VMOperationsChangingMemoryLimits,
	api.VMOperationsUnpause, api.VMOperationsResume, api.VMOperationsResumeOn,
	api.VMOperationsPause, api.VMOperationsSuspend, api.VMOperationsCleanShutdown, api.VMOperationsCleanReboot,
	api.VMOperationsChangingMemoryLive, api.VMOperationsChangingVCPUsLive, api.VMOperationsChangingDynamicRange,
	api.VMOperationsClone, api.VMOperationsCopy, api.VMOperationsDestroy, api.VMOperationsExport,
	api.VMOperationsHardReboot, api.VMOperationsHardShutdown, api.VMOperationsShutdown, api.VMOperationsCheckpoint,
	api.VMOperationsSnapshot, api.VMOperationsRevert, api.VMOperationsPowerStateReset,
}

// Allowed reports whether op may start on vm now: its power state is one
// op starts from and no other operation is in progress.
func Allowed(vm *api.VM, op api.VMOperations) bool {
	if len(vm.CurrentOperations) > 0 {
		return false
	}
	return fromAllowed(vm, op)
}

func fromAllowed(vm *api.VM, op api.VMOperations) bool {
	if vm.IsATemplate {
		switch op {
		case api.VMOperationsClone, api.VMOperationsCopy, api.VMOperationsProvision, api.VMOperationsDestroy,
			api.VMOperationsExport, api.VMOperationsMetadataExport, api.VMOperationsChangingVCPUs,
			api.VMOperationsChangingStaticRange, api.VMOperationsChangingMemoryLimits, api.VMOperationsChangingDynamicRange:
		default:
			return false
		}
	}
	if vm.IsControlDomain {
		return false
	}
	for _, s := range fromStates[op] {
		if s == vm.PowerState {
			return true
		}
	}
	return false
}

// AllowedOperations computes a VM's allowed_operations field.
func AllowedOperations(vm *api.VM) []api.VMOperations {
	if len(vm.CurrentOperations) > 0 {
		return nil
	}
	var out []api.VMOperations
	for _, op := range listedOps {
		if fromAllowed(vm, op) {
			out = append(out, op)
		}
	}
	return out
}

// ExpectedState returns the power state an operation needs, spelled as
// xapi's VM_BAD_POWER_STATE does (the first of its states).
func ExpectedState(op api.VMOperations) string {
	states := fromStates[op]
	if len(states) == 0 {
		return "halted"
	}
	return LowerState(states[0])
}

// LowerState spells a power state as xapi's errors do.
func LowerState(p api.VMPowerState) string {
	switch p {
	case halted:
		return "halted"
	case paused:
		return "paused"
	case running:
		return "running"
	case suspended:
		return "suspended"
	}
	return string(p)
}
