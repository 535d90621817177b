// Package xapi is the XenAPI server of xenithd: the HTTP front for
// XML-RPC and JSON-RPC, the dispatch table built from the generated method
// descriptors, sessions and RBAC, and the hand-written message
// implementations, one file per class family (session.go, host.go, ...).
package xapi

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/auth"
	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/event"
	"github.com/xenith/xenith/internal/rrdd"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Config is what a Server needs.
type Config struct {
	Store *store.Store
	Users *auth.Users
	Log   *slog.Logger
	// Host is this host's reference (from the inventory).
	Host xenapi.Ref
	// SessionIdle is how long an unused session lives (xapi: 24 h).
	SessionIdle time.Duration
	// SessionLimit caps the sessions of one originator (default 500).
	SessionLimit int
	// EventQueue bounds each event.register queue (default 16384).
	EventQueue int
	// Domains runs VMs; nil leaves the lifecycle messages NOT_IMPLEMENTED.
	Domains *domain.Manager
	// RRDs keeps performance statistics; nil leaves the data source
	// messages NOT_IMPLEMENTED and /rrd_updates unserved.
	RRDs *rrdd.Store
}

type classHooks struct {
	beforeCreate  func(tx *store.Tx, rec xenapi.Record) error
	beforeDestroy func(tx *store.Tx, ref xenapi.Ref, rec xenapi.Record) error
}

// Server answers XenAPI calls.
type Server struct {
	store        *store.Store
	users        *auth.Users
	log          *slog.Logger
	hostRef      xenapi.Ref
	sessionIdle  time.Duration
	sessionLimit int
	eventQueue   int
	throttle     *auth.Throttle

	methods  table
	removed  map[string]*xenapi.Method
	sessions *sessionTable
	hooks    map[*xenapi.Class]classHooks
	// afterCommit runs after a generic destroy of an object of the class
	// has committed, with the record destroyed.
	afterCommit map[*xenapi.Class]func(ref xenapi.Ref, gone xenapi.Record)
	tasks       *taskTable
	domains     *domain.Manager
	rrds        *rrdd.Store
	events      *event.Hub
	regsMu      sync.Mutex
	regs        map[xenapi.Ref]*registration
	// onSessionClose lets other parts (events, tasks) drop per-session state.
	onSessionClose []func(xenapi.Ref)
}

// New builds the dispatch table and loads the live sessions.
func New(cfg Config) *Server {
	s := &Server{
		store:       cfg.Store,
		users:       cfg.Users,
		log:         cfg.Log,
		hostRef:     cfg.Host,
		domains:     cfg.Domains,
		rrds:        cfg.RRDs,
		sessionIdle: cfg.SessionIdle,
		throttle:    auth.NewThrottle(),
		methods:     make(table),
		removed:     make(map[string]*xenapi.Method),
		sessions:    &sessionTable{m: make(map[xenapi.Ref]*Session)},
		hooks:       make(map[*xenapi.Class]classHooks),
		afterCommit: make(map[*xenapi.Class]func(xenapi.Ref, xenapi.Record)),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.sessionIdle == 0 {
		s.sessionIdle = 24 * time.Hour
	}
	s.eventQueue = cfg.EventQueue
	if s.eventQueue <= 0 {
		s.eventQueue = defaultEventQueue
	}
	s.sessionLimit = cfg.SessionLimit
	if s.sessionLimit <= 0 {
		s.sessionLimit = defaultSessionLimit
	}
	s.buildTable()
	s.loadSessions()
	s.failInterruptedTasks()
	return s
}

// Run does the server's background work (session expiry) until ctx ends.
func (s *Server) Run(ctx context.Context) {
	s.sessionGC(ctx, time.Minute)
}

// handle installs a hand-written implementation. minArgs > 0 lets callers
// omit trailing parameters (login_with_password's version and originator);
// -1 means all are required.
func (s *Server) handle(name string, h handlerFunc, minArgs int) {
	e := s.methods[name]
	if e == nil {
		panic("handle: no such message in the schema: " + name)
	}
	e.handler = h
	if minArgs >= 0 {
		e.minArgs = minArgs
	}
}

func (s *Server) buildTable() {
	for _, m := range api.Methods {
		if m.Lifecycle == xenapi.Removed {
			s.removed[m.Name] = m
			continue
		}
		e := &entry{method: m, minArgs: len(m.Params), handler: notImplemented}
		if m.Implicit {
			if h := s.implicitHandler(m); h != nil {
				e.handler = h
			}
		}
		s.methods[m.Name] = e
	}
	// get_all_records_where is not in the datamodel but xapi serves it for
	// every class with get_all_records, and bindings call it.
	for _, m := range api.Methods {
		if m.Message != "get_all_records" || m.Lifecycle == xenapi.Removed {
			continue
		}
		c := s.store.Class(m.Class)
		if c == nil {
			continue
		}
		w := &xenapi.Method{Name: m.Class + ".get_all_records_where", Class: m.Class, Message: "get_all_records_where",
			Params: []xenapi.Param{m.Params[0], {Name: "expr", Type: &xenapi.Type{Kind: xenapi.TString, Text: "string"}}},
			Result: m.Result, Roles: m.Roles, Implicit: true}
		s.methods[w.Name] = &entry{method: w, minArgs: 2, handler: s.getAllRecordsWhere(c)}
	}
	str := &xenapi.Type{Kind: xenapi.TString, Text: "string"}
	s.methods["system.listMethods"] = &entry{
		method:  &xenapi.Method{Name: "system.listMethods", Class: "system", Message: "listMethods"},
		handler: s.listMethods,
	}
	s.methods["system.methodHelp"] = &entry{
		method:  &xenapi.Method{Name: "system.methodHelp", Class: "system", Message: "methodHelp", Params: []xenapi.Param{{Name: "method", Type: str}}},
		handler: s.methodHelp, minArgs: 1,
	}
	s.registerSessionHandlers()
	s.registerDataSourceHandlers()
	s.registerHostHandlers()
	s.registerVMHooks()
	s.registerSubjectHandlers()
	s.registerVMSettingHandlers()
	s.registerVMFieldSetters()
	s.registerEventHandlers()
	s.registerMessageHandlers()
	s.registerTaskHandlers()
	s.registerStorageHandlers()
	s.registerNetworkHandlers()
	s.registerVMLifecycleHandlers()
	s.registerHostPlugins()
	s.registerHotplugHandlers()
	s.registerVMCloneHandlers()
}

// notImplemented answers messages that exist in XenAPI but that xenithd
// does not implement yet. It never pretends to succeed.
func notImplemented(ctx context.Context, c *Call) (Result, error) {
	return nil, xenapi.NewError(api.ErrNotImplemented, c.Method.Name)
}

func (s *Server) listMethods(ctx context.Context, c *Call) (Result, error) {
	names := s.methods.names()
	sort.Strings(names)
	return func(e wire.Encoder) { xenapi.EncSet(e, names, xenapi.EncStr[string]) }, nil
}

func (s *Server) methodHelp(ctx context.Context, c *Call) (Result, error) {
	e := s.methods[c.Str(0)]
	if e == nil {
		return nil, xenapi.NewError(api.ErrMessageMethodUnknown, c.Str(0))
	}
	var params []string
	for _, p := range e.method.Params {
		params = append(params, p.Name+": "+p.Type.Text)
	}
	result := "void"
	if e.method.Result != nil {
		result = e.method.Result.Text
	}
	return stringResult(fmt.Sprintf("%s(%s) -> %s", e.method.Name, strings.Join(params, ", "), result)), nil
}
