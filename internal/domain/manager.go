package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/storage"
	"github.com/xenith/xenith/internal/storage/drivers"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// Manager runs VM operations over a Driver and keeps the store in step.
type Manager struct {
	samples  StatsSink
	hostCPUs atomic.Int64 // the host's CPUs, as the driver last said
	st       *store.Store
	drv      Driver
	host     xenapi.Ref
	log      *slog.Logger
	stateDir string
	// consoleURL is the location of a console served by the proxy.
	consoleURL func(consoleUUID string) string

	// CleanShutdownTimeout bounds how long a guest may take to obey a
	// clean shutdown or reboot request.
	CleanShutdownTimeout time.Duration
	// Progress, when set, records the progress of the task running ctx.
	Progress func(ctx context.Context, p float64)
	// NewSuspendImage, when set, makes the VDI a suspended VM's memory
	// image is written to (XenAPI's VM.suspend_VDI); DropSuspendImage
	// destroys it after a resume or a hard shutdown. Without them the
	// image is a file under StateDir/suspend.
	NewSuspendImage  func(ctx context.Context, vm xenapi.Ref) (xenapi.Ref, error)
	DropSuspendImage func(ctx context.Context, vdi xenapi.Ref)

	mu    sync.Mutex
	locks map[xenapi.Ref]chan struct{}

	hostPoke chan struct{} // hostChanged -> hostMetricsLoop
}

// Config is what New needs.
type Config struct {
	Store    *store.Store
	Driver   Driver
	Host     xenapi.Ref
	Log      *slog.Logger
	StateDir string // suspend images go under StateDir/suspend
	// CleanShutdownTimeout bounds clean shutdowns and reboots; 0 means
	// DefaultCleanShutdownTimeout.
	CleanShutdownTimeout time.Duration
	// ConsoleURL gives the location recorded for a console served by
	// xenithd's console proxy (Console.Location ""), from the console
	// object's uuid; nil means "/console?uuid=UUID", relative to the
	// server a client talks to.
	ConsoleURL func(consoleUUID string) string
	// Samples receives the statistics sampled every MetricsInterval; nil
	// keeps only VM_metrics.
	Samples StatsSink
}

// DefaultCleanShutdownTimeout is how long a guest may take to obey a clean
// shutdown or reboot request unless Config says otherwise.
const DefaultCleanShutdownTimeout = 60 * time.Second

// New returns a manager; call Run to adopt domains and follow guests.
func New(cfg Config) *Manager {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	timeout := cfg.CleanShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultCleanShutdownTimeout
	}
	consoleURL := cfg.ConsoleURL
	if consoleURL == nil {
		consoleURL = func(id string) string { return ConsolePath + "?uuid=" + id }
	}
	return &Manager{st: cfg.Store, drv: cfg.Driver, host: cfg.Host, log: log, stateDir: cfg.StateDir,
		CleanShutdownTimeout: timeout, locks: make(map[xenapi.Ref]chan struct{}), consoleURL: consoleURL,
		hostPoke: make(chan struct{}, 1), samples: cfg.Samples}
}

// Driver returns the hypervisor driver.
func (m *Manager) Driver() Driver { return m.drv }

// lock serialises work on one VM. Waiters are served in arrival order
// (blocked channel senders queue FIFO).
func (m *Manager) lock(ctx context.Context, vm xenapi.Ref) (func(), error) {
	m.mu.Lock()
	ch := m.locks[vm]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.locks[vm] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Manager) progress(ctx context.Context, p float64) {
	if m.Progress != nil {
		m.Progress(ctx, p)
	}
}

// begin checks that op may run on vm now and marks it in
// current_operations, atomically, so that clashing operations are refused
// at once (OTHER_OPERATION_IN_PROGRESS) as in xapi. It returns the VM
// record as it was.
func (m *Manager) begin(ctx context.Context, ref xenapi.Ref, op api.VMOperations, opID string) (*api.VM, error) {
	var snapshot *api.VM
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			vm := r.(*api.VM)
			if err := CheckOperation(ref, vm, op); err != nil {
				return err
			}
			vm.CurrentOperations = xenapi.Map[string, api.VMOperations]{{Key: opID, Value: op}}
			vm.AllowedOperations = nil
			c := *vm
			snapshot = &c
			return nil
		})
	})
	return snapshot, err
}

// CheckOperation returns the XenAPI error that op meets on vm now, if any.
func CheckOperation(ref xenapi.Ref, vm *api.VM, op api.VMOperations) error {
	if vm.IsATemplate && !fromAllowed(vm, op) {
		return xenapi.NewError(api.ErrVMIsTemplate, string(ref))
	}
	if vm.IsControlDomain {
		return xenapi.NewError(api.ErrOperationNotAllowed, "the control domain cannot be "+string(op)+"ed")
	}
	for id, cur := range vm.CurrentOperations.All() {
		return xenapi.NewError(api.ErrOtherOperationInProgress, "VM", string(ref), string(cur), id)
	}
	if !fromAllowed(vm, op) {
		return xenapi.NewError(api.ErrVMBadPowerState, string(ref), ExpectedState(op), LowerState(vm.PowerState))
	}
	return nil
}

// end clears the operation and recomputes allowed_operations.
func (m *Manager) end(ref xenapi.Ref, opID string) {
	err := m.st.Update(context.Background(), func(tx *store.Tx) error {
		if !tx.Exists(api.ClassVM, ref) {
			return nil
		}
		return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			vm := r.(*api.VM)
			vm.CurrentOperations = vm.CurrentOperations.Without(opID)
			if len(vm.CurrentOperations) == 0 {
				vm.CurrentOperations = nil
			}
			vm.AllowedOperations = AllowedOperations(vm)
			return nil
		})
	})
	if err != nil {
		m.log.Error("clearing VM operation", "vm", ref, "err", err)
	}
}

// do runs one operation: check and mark, serialise, body, unmark.
func (m *Manager) do(ctx context.Context, ref xenapi.Ref, op api.VMOperations, body func(ctx context.Context, vm *api.VM) error) error {
	opID := "op:" + uuid.NewString()
	vm, err := m.begin(ctx, ref, op, opID)
	if err != nil {
		return err
	}
	defer m.end(ref, opID)
	unlock, err := m.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer unlock()
	m.log.Info("VM operation", "vm", ref, "op", op)
	if err := body(ctx, vm); err != nil {
		m.log.Info("VM operation failed", "vm", ref, "op", op, "err", err)
		return m.mapError(err)
	}
	return nil
}

// mapError turns driver errors into XenAPI errors.
func (m *Manager) mapError(err error) error {
	var xe *xenapi.Error
	if errors.As(err, &xe) {
		return err
	}
	var nm *NoMemoryError
	if errors.As(err, &nm) {
		return xenapi.NewError(api.ErrHostNotEnoughFreeMemory, strconv.FormatInt(nm.Needed, 10), strconv.FormatInt(nm.Available, 10))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return xenapi.NewError(api.ErrInternalError, fmt.Sprintf("%s driver: %v", m.drv.Name(), err))
}

// Start boots a halted VM, leaving it paused if asked.
func (m *Manager) Start(ctx context.Context, ref xenapi.Ref, paused bool) error {
	return m.do(ctx, ref, api.VMOperationsStart, func(ctx context.Context, vm *api.VM) error {
		return m.start(ctx, ref, vm, paused)
	})
}

func (m *Manager) start(ctx context.Context, ref xenapi.Ref, vm *api.VM, paused bool) error {
	if err := m.assertHostSupports(ref, vm); err != nil {
		return err
	}
	spec, err := m.spec(ref, vm)
	if err != nil {
		return err
	}
	m.progress(ctx, 0.1)
	domid, err := m.drv.Create(ctx, spec)
	if err != nil {
		return err
	}
	m.progress(ctx, 0.5)
	state := api.VMPowerStatePaused
	if !paused {
		if err := ctx.Err(); err != nil {
			// Cancelled between building and unpausing: undo the build.
			_ = m.drv.Destroy(context.WithoutCancel(ctx), vm.UUID)
			return err
		}
		if err := m.drv.Unpause(ctx, vm.UUID); err != nil {
			_ = m.drv.Destroy(context.WithoutCancel(ctx), vm.UUID)
			return err
		}
		state = api.VMPowerStateRunning
	}
	// One durable write records the whole start.
	if err := m.markRunning(ref, domid, state, true, true); err != nil {
		_ = m.drv.Destroy(context.WithoutCancel(ctx), vm.UUID)
		return err
	}
	m.progress(ctx, 0.9)
	return nil
}

// Pause stops a running VM's vCPUs.
func (m *Manager) Pause(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsPause, func(ctx context.Context, vm *api.VM) error {
		if err := m.drv.Pause(ctx, vm.UUID); err != nil {
			return err
		}
		return m.setPowerState(ref, api.VMPowerStatePaused)
	})
}

// Unpause resumes a paused VM.
func (m *Manager) Unpause(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsUnpause, func(ctx context.Context, vm *api.VM) error {
		if err := m.drv.Unpause(ctx, vm.UUID); err != nil {
			return err
		}
		return m.setPowerState(ref, api.VMPowerStateRunning)
	})
}

// CleanShutdown asks the guest to halt and waits for it.
func (m *Manager) CleanShutdown(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsCleanShutdown, func(ctx context.Context, vm *api.VM) error {
		return m.cleanShutdown(ctx, ref, vm)
	})
}

func (m *Manager) cleanShutdown(ctx context.Context, ref xenapi.Ref, vm *api.VM) error {
	sctx, cancel := context.WithTimeout(ctx, m.CleanShutdownTimeout)
	defer cancel()
	err := m.drv.Shutdown(sctx, vm.UUID, false)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return m.shutdownTimeout(ref)
	}
	if err != nil {
		return err
	}
	// A guest that halted leaves nothing behind to destroy; one that is
	// still listed as halted is cleaned up.
	_ = m.drv.Destroy(context.WithoutCancel(ctx), vm.UUID)
	return m.markHalted(ref)
}

// HardShutdown destroys the domain at once; a suspended VM loses its image.
func (m *Manager) HardShutdown(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsHardShutdown, func(ctx context.Context, vm *api.VM) error {
		return m.hardShutdown(ctx, ref, vm)
	})
}

func (m *Manager) hardShutdown(ctx context.Context, ref xenapi.Ref, vm *api.VM) error {
	if vm.PowerState == api.VMPowerStateSuspended {
		m.dropImage(ctx, ref, vm)
		return m.markHalted(ref)
	}
	if err := m.drv.Destroy(ctx, vm.UUID); err != nil && !errors.Is(err, ErrNoDomain) {
		return err
	}
	return m.markHalted(ref)
}

// Shutdown is a clean shutdown that falls back to a hard one.
func (m *Manager) Shutdown(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsShutdown, func(ctx context.Context, vm *api.VM) error {
		if vm.PowerState == api.VMPowerStateRunning {
			err := m.cleanShutdown(ctx, ref, vm)
			if err == nil || ctx.Err() != nil {
				return err
			}
			m.log.Info("clean shutdown failed; forcing", "vm", ref, "err", err)
		}
		return m.hardShutdown(ctx, ref, vm)
	})
}

// shutdownTimeout is xapi's error for a guest that did not obey a clean
// shutdown or reboot in time: VM_SHUTDOWN_TIMEOUT [vm; timeout], the
// timeout in seconds spelled as OCaml's string_of_float ("60.", "1.5").
func (m *Manager) shutdownTimeout(ref xenapi.Ref) error {
	return xenapi.NewError(api.ErrVMShutdownTimeout, string(ref), ocamlFloat(m.CleanShutdownTimeout.Seconds()))
}

// ocamlFloat formats f as OCaml's string_of_float does (%.12g, with a
// trailing "." when that looks like an integer).
func ocamlFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', 12, 64)
	if !strings.ContainsAny(s, ".eni") {
		s += "."
	}
	return s
}

// CleanReboot asks the guest to reboot and waits for it.
func (m *Manager) CleanReboot(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsCleanReboot, func(ctx context.Context, vm *api.VM) error {
		sctx, cancel := context.WithTimeout(ctx, m.CleanShutdownTimeout)
		defer cancel()
		err := m.drv.Shutdown(sctx, vm.UUID, true)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return m.shutdownTimeout(ref)
		}
		if err != nil {
			return err
		}
		return m.rebooted(ref, vm)
	})
}

// HardReboot resets the domain in place.
func (m *Manager) HardReboot(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsHardReboot, func(ctx context.Context, vm *api.VM) error {
		// Reset restarts the domain running, whatever state it was in.
		if err := m.drv.Reset(ctx, vm.UUID); err != nil {
			return err
		}
		return m.rebooted(ref, vm)
	})
}

// Suspend saves the VM's state to disk and stops it.
func (m *Manager) Suspend(ctx context.Context, ref xenapi.Ref) error {
	return m.do(ctx, ref, api.VMOperationsSuspend, func(ctx context.Context, vm *api.VM) error {
		image := xenapi.NullRef
		path := m.suspendPath(vm)
		if m.NewSuspendImage != nil {
			var err error
			if image, err = m.NewSuspendImage(ctx, ref); err != nil {
				return err
			}
			path, _ = m.vdiPath(image)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		m.progress(ctx, 0.1)
		if err := m.drv.Suspend(ctx, vm.UUID, path); err != nil {
			if !image.IsNull() {
				m.DropSuspendImage(context.WithoutCancel(ctx), image)
			}
			return err
		}
		if err := m.markStopped(ref, api.VMPowerStateSuspended); err != nil {
			return err
		}
		return m.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
				r.(*api.VM).SuspendVDI = image
				return nil
			})
		})
	})
}

// Resume restores a suspended VM, leaving it paused if asked.
func (m *Manager) Resume(ctx context.Context, ref xenapi.Ref, paused bool) error {
	return m.do(ctx, ref, api.VMOperationsResume, func(ctx context.Context, vm *api.VM) error {
		// The saved domain has the devices that were plugged when it was
		// suspended (suspend keeps currently_attached): the new one must
		// have the same, or the saved state does not fit it.
		spec, err := m.specOf(ref, vm, true)
		if err != nil {
			return err
		}
		path := m.suspendPath(vm)
		if !vm.SuspendVDI.IsNull() {
			path, _ = m.vdiPath(vm.SuspendVDI)
		}
		m.progress(ctx, 0.1)
		domid, err := m.drv.Resume(ctx, spec, path)
		if err != nil {
			return err
		}
		if err := m.markRunning(ref, domid, api.VMPowerStatePaused, false, false); err != nil {
			return err
		}
		m.dropImage(ctx, ref, vm)
		if paused {
			return nil
		}
		if err := m.drv.Unpause(ctx, vm.UUID); err != nil {
			return err
		}
		return m.setPowerState(ref, api.VMPowerStateRunning)
	})
}

// dropImage removes a suspended VM's memory image once it is not needed.
func (m *Manager) dropImage(ctx context.Context, ref xenapi.Ref, vm *api.VM) {
	if vm.SuspendVDI.IsNull() || m.DropSuspendImage == nil {
		_ = os.Remove(m.suspendPath(vm))
		return
	}
	m.DropSuspendImage(context.WithoutCancel(ctx), vm.SuspendVDI)
	_ = m.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		if !tx.Exists(api.ClassVM, ref) {
			return nil
		}
		return tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			r.(*api.VM).SuspendVDI = xenapi.NullRef
			return nil
		})
	})
}

// bootKind is how the VM boots: domain_type when set, as xapi reads it,
// else HVM_boot_policy (HVM when set) and platform:pvh.
func bootKind(vm *api.VM) (hvm, pvh bool) {
	switch vm.DomainType {
	case api.DomainTypeHVM:
		return true, false
	case api.DomainTypePVH:
		return false, true
	case api.DomainTypePV, api.DomainTypePVInPVH:
		return false, false
	}
	return vm.HVMBootPolicy != "", vm.Platform.Get("pvh") == "true"
}

// needsHVM says the VM boots as an HVM container: HVM, PVH or PV in PVH.
func needsHVM(vm *api.VM) bool {
	hvm, pvh := bootKind(vm)
	return hvm || pvh || vm.DomainType == api.DomainTypePVInPVH
}

// assertHostSupports fails with VM_HVM_REQUIRED, as xapi does, when the VM
// needs hardware virtualisation and the host's capabilities (Xen's
// xen_caps) offer no hvm-* entry: a Xen without VT-x/AMD-V (nested under
// an emulator, or with it disabled) builds PV guests only.
func (m *Manager) assertHostSupports(ref xenapi.Ref, vm *api.VM) error {
	if !needsHVM(vm) {
		return nil
	}
	row, err := m.st.Get(api.ClassHost, m.host)
	if err != nil {
		return nil // no host record to judge by
	}
	for _, c := range row.Rec.(*api.Host).Capabilities {
		if strings.Contains(c, "hvm") {
			return nil
		}
	}
	return xenapi.NewError(api.ErrVMHVMRequired, string(ref))
}

func (m *Manager) suspendPath(vm *api.VM) string {
	return filepath.Join(m.stateDir, "suspend", vm.UUID+".img")
}

// spec builds a driver Spec from the VM and all its devices (a start).
func (m *Manager) spec(ref xenapi.Ref, vm *api.VM) (Spec, error) { return m.specOf(ref, vm, false) }

// specOf builds a driver Spec from the VM and its devices; plugged keeps
// only the VBDs and VIFs recorded as currently_attached (a resume). A VM
// none of whose devices is recorded attached was suspended by a xenithd
// that cleared the flags on suspend: all its devices are taken then.
func (m *Manager) specOf(ref xenapi.Ref, vm *api.VM, plugged bool) (Spec, error) {
	s := Spec{
		UUID: vm.UUID, Name: vm.NameLabel,
		MemoryStaticMax: vm.MemoryStaticMax, MemoryTarget: vm.MemoryDynamicMax,
		VCPUsMax: int(vm.VCPUsMax), VCPUs: int(vm.VCPUsAtStartup),
		HVM: vm.HVMBootPolicy != "" && vm.DomainType != api.DomainTypePVH, BootOrder: vm.HVMBootParams.Get("order"),
		PVH:    vm.DomainType == api.DomainTypePVH || vm.Platform.Get("pvh") == "true",
		Kernel: vm.PVKernel, Ramdisk: vm.PVRamdisk, Args: vm.PVArgs,
		Platform: vm.Platform.Go(),
	}
	s.HVM, s.PVH = bootKind(vm)
	if s.HVM {
		s.ShadowMultiplier = vm.HVMShadowMultiplier
	}
	if s.VCPUs <= 0 {
		s.VCPUs = 1
	}
	if s.VCPUsMax < s.VCPUs {
		s.VCPUsMax = s.VCPUs
	}
	if s.MemoryTarget <= 0 {
		s.MemoryTarget = s.MemoryStaticMax
	}
	if s.MemoryStaticMax <= 0 {
		return s, xenapi.NewError(api.ErrMemoryConstraintViolation, "memory_static_max must be positive to start a VM")
	}
	if plugged && !m.anyAttached(vm) {
		plugged = false
	}
	for _, vbdRef := range vm.VBDs {
		row, err := m.st.Get(api.ClassVBD, vbdRef)
		if err != nil {
			continue
		}
		vbd := row.Rec.(*api.VBD)
		if plugged && !vbd.CurrentlyAttached {
			continue
		}
		d := Disk{Device: vbd.Userdevice, ReadOnly: vbd.Mode == api.VBDModeRO, CD: vbd.Type == api.VBDTypeCD, Bootable: vbd.Bootable}
		if !vbd.Empty && !vbd.VDI.IsNull() {
			path, format := m.vdiPath(vbd.VDI)
			d.Path, d.Format = path, format
		}
		s.Disks = append(s.Disks, d)
	}
	for _, vifRef := range vm.VIFs {
		row, err := m.st.Get(api.ClassVIF, vifRef)
		if err != nil {
			continue
		}
		vif := row.Rec.(*api.VIF)
		if plugged && !vif.CurrentlyAttached {
			continue
		}
		n := NIC{Device: vif.Device, MAC: vif.MAC, MTU: int(vif.MTU)}
		if nr, err := m.st.Get(api.ClassNetwork, vif.Network); err == nil {
			n.Bridge = nr.Rec.(*api.Network).Bridge
		}
		s.NICs = append(s.NICs, n)
	}
	return s, nil
}

// anyAttached tells whether any of the VM's VBDs or VIFs is recorded as
// currently_attached.
func (m *Manager) anyAttached(vm *api.VM) bool {
	for _, r := range vm.VBDs {
		if row, err := m.st.Get(api.ClassVBD, r); err == nil && row.Rec.(*api.VBD).CurrentlyAttached {
			return true
		}
	}
	for _, r := range vm.VIFs {
		if row, err := m.st.Get(api.ClassVIF, r); err == nil && row.Rec.(*api.VIF).CurrentlyAttached {
			return true
		}
	}
	return false
}

// vdiPath finds a VDI's image file through its SR's storage driver.
func (m *Manager) vdiPath(ref xenapi.Ref) (string, string) {
	row, err := m.st.Get(api.ClassVDI, ref)
	if err != nil {
		return "", ""
	}
	vdi := row.Rec.(*api.VDI)
	srRow, err := m.st.Get(api.ClassSR, vdi.SR)
	if err != nil {
		return "", ""
	}
	sr := srRow.Rec.(*api.SR)
	conf := storage.SR{UUID: sr.UUID, SMConfig: sr.SMConfig.Go()}
	for _, pbdRef := range sr.PBDs {
		if pbd, err := m.st.Get(api.ClassPBD, pbdRef); err == nil {
			conf.DeviceConfig = pbd.Rec.(*api.PBD).DeviceConfig.Go()
			break
		}
	}
	img, err := drivers.Image(context.Background(), sr.Type, conf, vdi.Location)
	if err != nil {
		m.log.Warn("locating a VDI image", "vdi", ref, "err", err)
		return "", ""
	}
	return img.Path, img.Format
}

func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// markRunning records a freshly built (fresh: a new start time) or resumed
// or adopted domain. attach marks all the VM's VBDs and VIFs attached (a
// start builds the domain with all of them); otherwise currently_attached
// is left as recorded.
func (m *Manager) markRunning(ref xenapi.Ref, domid int, state api.VMPowerState, fresh, attach bool) error {
	defer m.hostChanged()
	var cons []Console
	if row, err := m.st.Get(api.ClassVM, ref); err == nil {
		cons = m.consolesFor(row.Rec.(*api.VM).UUID)
	}
	return m.st.Update(context.Background(), func(tx *store.Tx) error {
		if err := m.replaceConsoles(tx, ref, cons); err != nil {
			return err
		}
		var vm *api.VM
		err := tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			vm = r.(*api.VM)
			vm.PowerState, vm.Domid, vm.ResidentOn = state, int64(domid), m.host
			vm.ScheduledToBeResidentOn = xenapi.NullRef
			return nil
		})
		if err != nil {
			return err
		}
		if tx.Exists(api.ClassVMMetrics, vm.Metrics) {
			if err := tx.Modify(api.ClassVMMetrics, vm.Metrics, func(r xenapi.Record) error {
				mt := r.(*api.VMMetrics)
				if fresh {
					mt.StartTime = now()
				}
				mt.MemoryActual = vm.MemoryDynamicMax
				mt.VCPUsNumber = max(vm.VCPUsAtStartup, 1)
				mt.State = []string{LowerState(state)}
				mt.LastUpdated = now()
				return nil
			}); err != nil {
				return err
			}
		}
		if !attach {
			return nil
		}
		return m.setAttached(tx, vm, true)
	})
}

func (m *Manager) setAttached(tx *store.Tx, vm *api.VM, attached bool) error {
	for _, r := range vm.VBDs {
		if !tx.Exists(api.ClassVBD, r) {
			continue
		}
		if err := tx.Modify(api.ClassVBD, r, func(rec xenapi.Record) error {
			rec.(*api.VBD).CurrentlyAttached = attached
			return nil
		}); err != nil {
			return err
		}
	}
	for _, r := range vm.VIFs {
		if !tx.Exists(api.ClassVIF, r) {
			continue
		}
		if err := tx.Modify(api.ClassVIF, r, func(rec xenapi.Record) error {
			rec.(*api.VIF).CurrentlyAttached = attached
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) setPowerState(ref xenapi.Ref, state api.VMPowerState) error {
	return m.st.Update(context.Background(), func(tx *store.Tx) error {
		var metrics xenapi.Ref
		err := tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			vm := r.(*api.VM)
			vm.PowerState = state
			metrics = vm.Metrics
			return nil
		})
		if err != nil || !tx.Exists(api.ClassVMMetrics, metrics) {
			return err
		}
		return tx.Modify(api.ClassVMMetrics, metrics, func(r xenapi.Record) error {
			mt := r.(*api.VMMetrics)
			mt.State, mt.LastUpdated = []string{LowerState(state)}, now()
			return nil
		})
	})
}

func (m *Manager) markHalted(ref xenapi.Ref) error { return m.markStopped(ref, api.VMPowerStateHalted) }

// markStopped records that the VM has no domain any more (halted or
// suspended): guest metrics and consoles gone; a halted VM's devices are
// detached, while a suspended one keeps currently_attached as it was, as
// in xapi, so that resume rebuilds the domain with the devices it had.
func (m *Manager) markStopped(ref xenapi.Ref, state api.VMPowerState) error {
	return m.stopped(ref, state, state == api.VMPowerStateHalted, true)
}

// stopped records state, drops the guest metrics, and optionally marks
// the devices detached and removes the console objects.
func (m *Manager) stopped(ref xenapi.Ref, state api.VMPowerState, detach, dropConsoles bool) error {
	defer m.hostChanged()
	return m.st.Update(context.Background(), func(tx *store.Tx) error {
		var vm *api.VM
		err := tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
			vm = r.(*api.VM)
			vm.PowerState, vm.Domid, vm.ResidentOn = state, -1, xenapi.NullRef
			return nil
		})
		if err != nil {
			return err
		}
		gm := vm.GuestMetrics
		if !gm.IsNull() {
			if tx.Exists(api.ClassVMGuestMetrics, gm) {
				if err := tx.Delete(api.ClassVMGuestMetrics, gm); err != nil {
					return err
				}
			}
			if err := tx.Modify(api.ClassVM, ref, func(r xenapi.Record) error {
				r.(*api.VM).GuestMetrics = xenapi.NullRef
				return nil
			}); err != nil {
				return err
			}
		}
		if tx.Exists(api.ClassVMMetrics, vm.Metrics) {
			if err := tx.Modify(api.ClassVMMetrics, vm.Metrics, func(r xenapi.Record) error {
				mt := r.(*api.VMMetrics)
				mt.State, mt.LastUpdated = []string{LowerState(state)}, now()
				return nil
			}); err != nil {
				return err
			}
		}
		if dropConsoles {
			if err := m.replaceConsoles(tx, ref, nil); err != nil {
				return err
			}
		}
		if !detach {
			return nil
		}
		return m.setAttached(tx, vm, false)
	})
}

// rebooted records a reboot in place: a new start time, fresh guest
// metrics to come, the same devices plugged and the same console objects
// (markRunning keeps them when the driver reports the same consoles).
func (m *Manager) rebooted(ref xenapi.Ref, vm *api.VM) error {
	info, err := m.drv.Info(context.Background(), vm.UUID)
	if err != nil {
		return err
	}
	if err := m.stopped(ref, api.VMPowerStateHalted, false, false); err != nil {
		return err
	}
	state := api.VMPowerStateRunning
	if info.State == Paused {
		state = api.VMPowerStatePaused
	}
	return m.markRunning(ref, info.Domid, state, true, false)
}
