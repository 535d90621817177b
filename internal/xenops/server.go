// Package xenops serves the xenopsd domain API (the XCP "Xen domain
// management service": Query, VM, Task and an updates stream) as a front
// over xenithd's XenAPI: a VM registered here is a XenAPI VM record, every
// operation is the XenAPI message (or domain manager operation) XenAPI
// clients use, and long operations are XenAPI tasks, so all three fronts
// see the same objects and XenAPI events report every change.
//
// The wire is XML-RPC or JSON-RPC with named arguments: a call carries one
// struct, {dbg, <args>} (positional arguments in the declared order are
// accepted too). Answers and errors follow ocaml-rpc's marshalling; errors
// are the interface's variants (Does_not_exist, Bad_power_state, ...).
package xenops

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/jsonrpc"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// MaxBody bounds a request body.
const MaxBody = 16 << 20

// Config is what New needs.
type Config struct {
	Front   *xapi.Front
	Log     *slog.Logger
	Version string
}

// Service answers xenopsd calls.
type Service struct {
	front      *xapi.Front
	st         *store.Store
	log        *slog.Logger
	version    string
	instanceID string

	mu     sync.Mutex
	phases map[string]*phase // VM id -> how far the domain was built

	stop context.CancelFunc // ends the transient VM watcher
	done chan struct{}
}

// phase tracks a domain made by VM.create until it is unpaused: the
// interface builds a VM in steps (create, build, create_device_model,
// unpause) and refuses them out of order.
type phase struct {
	domid int64
	built bool
	dm    bool
}

// New returns the service. It watches for transient VMs halting (see
// transient.go) until Close.
func New(cfg Config) *Service {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Service{front: cfg.Front, st: cfg.Front.Store(), log: log, version: cfg.Version,
		instanceID: uuid.NewString(), phases: make(map[string]*phase), stop: stop, done: make(chan struct{})}
	// Subscribed before New returns: a VM that halts while the service
	// starts up is not missed.
	sub := s.st.Subscribe(isVMChange, transientQueue)
	go func() {
		defer close(s.done)
		s.watchTransient(ctx, sub)
	}()
	return s
}

// Close stops the service's background work. It is idempotent.
func (s *Service) Close() error {
	s.stop()
	<-s.done
	return nil
}

// Handler serves the API over HTTP. local marks the trusted unix socket,
// whose callers act as the local root; elsewhere a request authenticates
// as XenAPI clients do (HTTP basic credentials or a session_id cookie).
func (s *Service) Handler(local bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveHTTP(w, r, local) })
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request, local bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "xenopsd calls are POSTed (XML-RPC or JSON-RPC)", http.StatusMethodNotAllowed)
		return
	}
	sess, err := s.front.Authenticate(r.Context(), r, local)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="xenopsd"`)
		http.Error(w, "authentication failed: "+err.Error(), http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > MaxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	out := s.Serve(r.Context(), sess, body, isJSON(r, body))
	if isJSON(r, body) {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/xml")
	}
	w.Write(out)
}

func isJSON(r *http.Request, body []byte) bool {
	if strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "json") {
		return true
	}
	b := bytes.TrimSpace(body)
	return len(b) > 0 && b[0] == '{'
}

// Serve answers one request body as session sess.
func (s *Service) Serve(ctx context.Context, sess xenapi.Ref, body []byte, jsonBody bool) []byte {
	if jsonBody {
		req, err := jsonrpc.ParseRequest(body)
		if err != nil {
			return AppendJSONResponse(nil, &req, wire.Value{}, internalError("bad JSON-RPC request: "+err.Error()))
		}
		v, xerr := s.Call(ctx, sess, req.Method, req.Params)
		return AppendJSONResponse(nil, &req, v, xerr)
	}
	call, err := xmlrpc.ParseCall(body)
	if err != nil {
		return AppendXMLResponse(nil, wire.Value{}, internalError("bad XML-RPC request: "+err.Error()))
	}
	v, xerr := s.Call(ctx, sess, call.Method, call.Params)
	return AppendXMLResponse(nil, v, xerr)
}

// call is one decoded invocation.
type call struct {
	sess   xenapi.Ref
	method string
	named  wire.Value // the struct of named arguments, if sent that way
	pos    []wire.Value
	params []string
}

// arg returns a named argument (or the positional one at its place).
func (c *call) arg(name string) (wire.Value, bool) {
	if c.named.Kind == wire.KindStruct {
		v, ok := c.named.Field(name)
		return v, ok && v.Kind != wire.KindNil
	}
	for i, p := range c.params {
		if p == name && i < len(c.pos) {
			return c.pos[i], c.pos[i].Kind != wire.KindNil
		}
	}
	return wire.Value{}, false
}

func (c *call) str(name string) (string, *Error) {
	v, ok := c.arg(name)
	if !ok {
		return "", internalError(c.method + ": missing argument " + name)
	}
	if v.Kind != wire.KindString {
		return "", internalError(c.method + ": argument " + name + " must be a string")
	}
	return v.Str, nil
}

// number reads a required numeric argument with read (decoder.int or
// decoder.float), giving the seed's Internal_error when it is missing or
// of the wrong type.
func number[T any](c *call, name string, read func(*decoder, wire.Value, string) T) (T, *Error) {
	var zero T
	v, ok := c.arg(name)
	if !ok {
		return zero, internalError(c.method + ": missing argument " + name)
	}
	d := &decoder{}
	x := read(d, v, name)
	if d.err != nil {
		return zero, internalError(c.method + ": " + d.err.Error())
	}
	return x, nil
}

type method struct {
	params []string // after dbg
	run    func(ctx context.Context, c *call) (wire.Value, *Error)
}

func (s *Service) methods() map[string]method {
	return map[string]method{
		"query.query":              {nil, s.query},
		"vm.add":                   {[]string{"t"}, s.vmAdd},
		"vm.remove":                {[]string{"id"}, s.vmRemove},
		"vm.create":                {[]string{"id"}, s.vmCreate},
		"vm.build":                 {[]string{"id"}, s.vmBuild},
		"vm.create_device_model":   {[]string{"id", "is_resuming"}, s.vmCreateDeviceModel},
		"vm.destroy":               {[]string{"id"}, s.vmDestroy},
		"vm.pause":                 {[]string{"id"}, s.vmPause},
		"vm.unpause":               {[]string{"id"}, s.vmUnpause},
		"vm.set_vcpus":             {[]string{"id", "num_vpcus"}, s.vmSetVCPUs},
		"vm.set_shadow_multiplier": {[]string{"id", "shadow_multiplier"}, s.vmSetShadowMultiplier},
		"vm.stat":                  {[]string{"id"}, s.vmStat},
		"vm.list":                  {nil, s.vmList},
		"vm.start":                 {[]string{"id"}, s.vmStart},
		"vm.shutdown":              {[]string{"id", "clean_shutdown_timeout"}, s.vmShutdown},
		"vm.reboot":                {[]string{"id", "clean_shutdown_timeout"}, s.vmReboot},
		"vm.resume":                {[]string{"id", "disk"}, s.vmResume},
		"vm.s3suspend":             {[]string{"id"}, s.vmS3Suspend},
		"vm.s3resume":              {[]string{"id"}, s.vmS3Resume},
		"vm.migrate":               {[]string{"id", "url"}, s.vmMigrate},
		"vm.export_metadata":       {[]string{"id"}, s.vmExportMetadata},
		"vm.import_metadata":       {[]string{"config"}, s.vmImportMetadata},
		"task.stat":                {[]string{"id"}, s.taskStat},
		"task.cancel":              {[]string{"id"}, s.taskCancel},
		"updates.get":              {[]string{"from", "timeout"}, s.updatesGet},
	}
}

// knownClasses are the interface's modules: an unknown method of one of
// them is Unimplemented; any other name is not this interface at all.
var knownClasses = map[string]bool{"query": true, "vm": true, "task": true, "updates": true, "vbd": true, "vif": true, "pci": true, "host": true}

// Call runs method (its module name in any case: "VM.start", "Vm.start")
// with its wire parameters, as session sess.
func (s *Service) Call(ctx context.Context, sess xenapi.Ref, name string, params []wire.Value) (v wire.Value, xerr *Error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("xenops call panic", "method", name, "panic", p)
			v, xerr = wire.Value{}, internalError("internal failure in "+name)
		}
	}()
	cls, meth, _ := strings.Cut(name, ".")
	key := strings.ToLower(cls) + "." + meth
	m, ok := s.methods()[key]
	if !ok {
		if knownClasses[strings.ToLower(cls)] {
			return wire.Value{}, unimplemented()
		}
		return wire.Value{}, internalError("unknown method " + name)
	}
	c := &call{sess: sess, method: name, params: append([]string{"dbg"}, m.params...)}
	if len(params) == 1 && params[0].Kind == wire.KindStruct {
		c.named = params[0]
	} else {
		c.pos = params
	}
	if key == "vm.set_vcpus" && c.named.Kind == wire.KindStruct {
		// The interface's own spelling is "num_vpcus"; accept the obvious one too.
		if _, ok := c.named.Field("num_vpcus"); !ok {
			if n, ok := c.named.Field("num_vcpus"); ok {
				c.named.Struct = append(c.named.Struct, wire.Member{Name: "num_vpcus", Value: n})
			}
		}
	}
	dbg, _ := c.arg("dbg")
	v, xerr = m.run(ctx, c)
	if xerr != nil {
		s.log.Info("xenops call failed", "method", name, "dbg", dbg.Str, "err", xerr.Error())
	} else {
		s.log.Debug("xenops call", "method", name, "dbg", dbg.Str)
	}
	return v, xerr
}

func (s *Service) query(ctx context.Context, c *call) (wire.Value, *Error) {
	return record(
		mem("name", wire.String("xenopsd")),
		mem("vendor", wire.String("Xenith")),
		mem("version", wire.String(s.version)),
		mem("features", strList([]string{})),
		mem("instance_id", wire.String(s.instanceID)),
	), nil
}

// xcall runs a XenAPI message as the caller's session.
func (s *Service) xcall(ctx context.Context, c *call, method string, args ...wire.Value) (wire.Value, *Error) {
	v, err := s.front.Call(ctx, c.sess, method, args...)
	if err != nil {
		return wire.Value{}, fromXenAPI(err)
	}
	return v, nil
}

// lookup finds a VM by its id (its XenAPI uuid). Templates, snapshots and
// the control domain are not domains this interface manages.
func (s *Service) lookup(id string) (xenapi.Ref, *api.VM, *Error) {
	row, err := s.st.ByUUID(api.ClassVM, id)
	if err != nil {
		return "", nil, doesNotExist("VM", id)
	}
	vm := row.Rec.(*api.VM)
	if !managed(vm) {
		return "", nil, doesNotExist("VM", id)
	}
	return row.Ref, vm, nil
}

func managed(vm *api.VM) bool { return !vm.IsATemplate && !vm.IsASnapshot && !vm.IsControlDomain }

func (s *Service) vmArg(c *call) (xenapi.Ref, *api.VM, *Error) {
	id, err := c.str("id")
	if err != nil {
		return "", nil, err
	}
	return s.lookup(id)
}

// xenopsFailure carries an interface error through a XenAPI task: the
// task's error_info is INTERNAL_ERROR, "xenops", <the variant as JSON>.
const xenopsFailure = "xenops"

// task runs fn as a XenAPI task and answers its id.
func (s *Service) task(ctx context.Context, c *call, label string, cancellable bool, fn func(ctx context.Context) *Error) (wire.Value, *Error) {
	ref, err := s.front.RunTask(ctx, c.sess, "xenops."+label, cancellable, func(ctx context.Context) error {
		if xerr := fn(ctx); xerr != nil {
			return xenapi.NewError(api.ErrInternalError, xenopsFailure, JSON(xerr.Value()))
		}
		return nil
	})
	if err != nil {
		return wire.Value{}, fromXenAPI(err)
	}
	row, err := s.st.Get(api.ClassTask, ref)
	if err != nil {
		return wire.Value{}, fromXenAPI(err)
	}
	return wire.String(row.Rec.(*api.Task).UUID), nil
}

// taskOf finds a task by id (its uuid, or its reference).
func (s *Service) taskOf(id string) (xenapi.Ref, *api.Task, *Error) {
	row, err := s.st.ByUUID(api.ClassTask, id)
	if err != nil {
		row, err = s.st.Get(api.ClassTask, xenapi.Ref(id))
	}
	if err != nil {
		return "", nil, doesNotExist("task", id)
	}
	return row.Ref, row.Rec.(*api.Task), nil
}

func taskValue(t *api.Task) *Task {
	out := &Task{ID: t.UUID, Subtasks: map[string]string{}}
	switch t.Status {
	case api.TaskStatusTypePending, api.TaskStatusTypeCancelling:
		out.Result = TaskResult{Kind: "Pending", Fraction: t.Progress}
	case api.TaskStatusTypeSuccess:
		out.Result = TaskResult{Kind: "Completed", Fraction: t.Finished.Sub(t.Created).Seconds()}
	default:
		out.Result = TaskResult{Kind: "Failed", Error: taskError(t)}
	}
	return out
}

// taskError renders a failed task's error as the interface's variant, in
// JSON.
func taskError(t *api.Task) string {
	info := t.ErrorInfo
	if len(info) == 3 && info[0] == api.ErrInternalError && info[1] == xenopsFailure {
		return info[2]
	}
	if t.Status == api.TaskStatusTypeCancelled {
		return JSON(internalError("cancelled").Value())
	}
	if len(info) == 0 {
		return JSON(internalError("task failed").Value())
	}
	return JSON(fromXenAPI(xenapi.NewError(info[0], info[1:]...)).Value())
}

func (s *Service) taskStat(ctx context.Context, c *call) (wire.Value, *Error) {
	id, xerr := c.str("id")
	if xerr != nil {
		return wire.Value{}, xerr
	}
	_, t, xerr := s.taskOf(id)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	return taskValue(t).Value(), nil
}

// taskCancel cancels a running task; cancelling a finished task does
// nothing, as in xenopsd.
func (s *Service) taskCancel(ctx context.Context, c *call) (wire.Value, *Error) {
	id, xerr := c.str("id")
	if xerr != nil {
		return wire.Value{}, xerr
	}
	ref, t, xerr := s.taskOf(id)
	if xerr != nil {
		return wire.Value{}, xerr
	}
	if t.Status != api.TaskStatusTypePending {
		return unit, nil
	}
	if _, err := s.front.Call(ctx, c.sess, "task.cancel", wire.String(string(ref))); err != nil {
		var xe *xenapi.Error
		if errors.As(err, &xe) && xe.Code == api.ErrOperationNotAllowed {
			return wire.Value{}, notSupported()
		}
		return wire.Value{}, fromXenAPI(err)
	}
	return unit, nil
}
