package xend

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/sexpr"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// waitForDevicesTimeout bounds op=wait_for_devices.
const waitForDevicesTimeout = 30 * time.Second

func refArg(r xenapi.Ref) wire.Value { return wire.String(string(r)) }

// op runs POST /xend/domain/NAME. It answers the domain as it is
// afterwards, or () when it is gone.
func (s *Service) op(ctx context.Context, sess xenapi.Ref, ref xenapi.Ref, vm *api.VM, r *http.Request) (sexpr.Value, error) {
	if vm.IsControlDomain {
		return sexpr.Value{}, badRequest("Domain-0 cannot be operated on")
	}
	call := func(method string, args ...wire.Value) error {
		_, err := s.front.Call(ctx, sess, method, append([]wire.Value{refArg(ref)}, args...)...)
		if err != nil {
			return fromXenAPI(err)
		}
		return nil
	}
	var err error
	switch op := r.Form.Get("op"); op {
	case "wait_for_devices":
		err = s.waitForDevices(ctx, ref)
	case "unpause":
		err = call("VM.unpause")
	case "pause":
		err = call("VM.pause")
	case "destroy":
		return s.destroy(ctx, sess, ref, vm)
	case "delete":
		if vm.PowerState != api.VMPowerStateHalted {
			return sexpr.Value{}, badRequest("domain %s is %s; destroy or shut it down first", domainName(vm), vm.PowerState)
		}
		if err := call("VM.destroy"); err != nil {
			return sexpr.Value{}, err
		}
		return sexpr.List(), nil
	case "shutdown":
		switch reason := r.Form.Get("reason"); reason {
		case "halt", "poweroff", "":
			err = call("VM.clean_shutdown")
		case "reboot":
			err = call("VM.clean_reboot")
		case "suspend":
			err = call("VM.suspend")
		default:
			return sexpr.Value{}, badRequest("unknown shutdown reason %q (halt, poweroff, reboot or suspend)", reason)
		}
	case "save":
		file := r.Form.Get("file")
		if file == "" || !filepath.IsAbs(file) {
			return sexpr.Value{}, badRequest("save needs file=/absolute/path naming the saved image")
		}
		if err := call("VM.suspend"); err != nil {
			return sexpr.Value{}, err
		}
		if err := call("VM.add_to_other_config", wire.String(saveFileKey), wire.String(filepath.Clean(file))); err != nil {
			return sexpr.Value{}, err
		}
	case "restore":
		err = s.resume(ctx, sess, ref)
	case "cpu_sedf_set":
		err = s.setSchedParams(ctx, sess, ref, vm, r, map[string]string{
			"period": "sedf_period", "slice": "sedf_slice", "latency": "sedf_latency", "extratime": "sedf_extratime", "weight": "weight",
		})
	case "domain_sched_credit_set", "sched_credit_set":
		err = s.setSchedParams(ctx, sess, ref, vm, r, map[string]string{"weight": "weight", "cap": "cap"})
	case "domain_sched_credit_get", "sched_credit_get":
		w, c := "256", "0"
		if x, ok := vm.VCPUsParams.Lookup("weight"); ok {
			w = x
		}
		if x, ok := vm.VCPUsParams.Lookup("cap"); ok {
			c = x
		}
		return sexpr.List(sexpr.Atom("sched_credit"), sexpr.Pair("weight", w), sexpr.Pair("cap", c)), nil
	case "":
		return sexpr.Value{}, badRequest("missing op")
	default:
		return sexpr.Value{}, badRequest("unknown operation %q", op)
	}
	if err != nil {
		return sexpr.Value{}, err
	}
	return s.current(ref), nil
}

func (s *Service) current(ref xenapi.Ref) sexpr.Value {
	row, err := s.st.Get(api.ClassVM, ref)
	if err != nil {
		return sexpr.List()
	}
	return s.domain(ref, row.Rec.(*api.VM))
}

// destroy kills the domain (XenAPI hard shutdown); a domain made through
// xend is then forgotten, as xend forgot unmanaged domains.
func (s *Service) destroy(ctx context.Context, sess, ref xenapi.Ref, vm *api.VM) (sexpr.Value, error) {
	if vm.PowerState != api.VMPowerStateHalted {
		if _, err := s.front.Call(ctx, sess, "VM.hard_shutdown", refArg(ref)); err != nil {
			return sexpr.Value{}, fromXenAPI(err)
		}
	}
	if v, _ := vm.OtherConfig.Lookup(unmanagedKey); v == "true" {
		if _, err := s.front.Call(ctx, sess, "VM.destroy", refArg(ref)); err != nil {
			return sexpr.Value{}, fromXenAPI(err)
		}
		return sexpr.List(), nil
	}
	return s.current(ref), nil
}

func (s *Service) resume(ctx context.Context, sess, ref xenapi.Ref) error {
	if _, err := s.front.Call(ctx, sess, "VM.resume", refArg(ref), wire.Bool(false), wire.Bool(false)); err != nil {
		return fromXenAPI(err)
	}
	if _, err := s.front.Call(ctx, sess, "VM.remove_from_other_config", refArg(ref), wire.String(saveFileKey)); err != nil {
		return fromXenAPI(err)
	}
	return nil
}

// restoreFile resumes the domain op=save saved under file.
func (s *Service) restoreFile(ctx context.Context, sess xenapi.Ref, file string) (sexpr.Value, error) {
	if file == "" || !filepath.IsAbs(file) {
		return sexpr.Value{}, badRequest("restore needs file=/absolute/path, as given to save")
	}
	file = filepath.Clean(file)
	for _, row := range s.st.All(api.ClassVM) {
		vm := row.Rec.(*api.VM)
		if f, ok := vm.OtherConfig.Lookup(saveFileKey); ok && f == file && vm.PowerState == api.VMPowerStateSuspended {
			if err := s.resume(ctx, sess, row.Ref); err != nil {
				return sexpr.Value{}, err
			}
			return s.current(row.Ref), nil
		}
	}
	return sexpr.Value{}, notFound("no domain was saved as %s", file)
}

// setSchedParams maps scheduler parameters onto VCPUs_params (applied when
// the domain next starts, as XenAPI's VCPUs_params are).
func (s *Service) setSchedParams(ctx context.Context, sess, ref xenapi.Ref, vm *api.VM, r *http.Request, keys map[string]string) error {
	params := vm.VCPUsParams.Go()
	if params == nil {
		params = map[string]string{}
	}
	changed := false
	for form, key := range keys {
		v := r.Form.Get(form)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return badRequest("%s=%s: expected a non-negative whole number", form, v)
		}
		if key == "weight" && (n < 1 || n > 65535) && keys["cap"] != "" {
			return badRequest("weight=%s: the credit scheduler's weight is between 1 and 65535", v)
		}
		if key == "cap" && n > 100*vm.VCPUsMax {
			return badRequest("cap=%s: at most 100 per vCPU", v)
		}
		params[key] = strconv.FormatInt(n, 10)
		changed = true
	}
	if !changed {
		return badRequest("no scheduler parameter given")
	}
	m := make([]wire.Member, 0, len(params))
	for k, v := range params {
		m = append(m, wire.Member{Name: k, Value: wire.String(v)})
	}
	if _, err := s.front.Call(ctx, sess, "VM.set_VCPUs_params", refArg(ref), wire.Struct(m...)); err != nil {
		return fromXenAPI(err)
	}
	return nil
}

// waitForDevices waits until the domain's disks and NICs are attached.
func (s *Service) waitForDevices(ctx context.Context, ref xenapi.Ref) error {
	ctx, cancel := context.WithTimeout(ctx, waitForDevicesTimeout)
	defer cancel()
	for {
		wake := s.st.Wait()
		row, err := s.st.Get(api.ClassVM, ref)
		if err != nil {
			return notFound("the domain is gone")
		}
		vm := row.Rec.(*api.VM)
		if !hasDomain(vm) {
			return badRequest("domain %s has no running domain (it is %s)", domainName(vm), vm.PowerState)
		}
		if s.devicesUp(vm) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return &httpError{http.StatusServiceUnavailable, "the domain's devices did not come up in time"}
		}
	}
}

func (s *Service) devicesUp(vm *api.VM) bool {
	for _, r := range vm.VBDs {
		if row, err := s.st.Get(api.ClassVBD, r); err == nil {
			if b := row.Rec.(*api.VBD); !b.Empty && !b.CurrentlyAttached {
				return false
			}
		}
	}
	for _, r := range vm.VIFs {
		if row, err := s.st.Get(api.ClassVIF, r); err == nil && !row.Rec.(*api.VIF).CurrentlyAttached {
			return false
		}
	}
	return true
}
