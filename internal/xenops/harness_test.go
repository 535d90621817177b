package xenops

import (
	"testing"

	"github.com/xenith/xenith/internal/domain"
	"github.com/xenith/xenith/internal/hypervisor/sim"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xapi/xapitest"
	"github.com/xenith/xenith/internal/xenapi"
)

// env is a whole xenithd in process: store, inventory, simulator, XenAPI
// server, and the xenopsd front over it.
type env struct {
	st    *store.Store
	srv   *xapi.Server
	front *xapi.Front
	svc   *Service
	sess  xenapi.Ref
}

func newEnv(t testing.TB) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the simulator's driver wrapped by wrap (nil:
// the simulator itself), e.g. to hide its optional capabilities.
func newEnvWith(t testing.TB, wrap func(*sim.Driver) domain.Driver) *env {
	t.Helper()
	stk := xapitest.New(t, wrap)
	front := stk.Server.NewFront("test-xenopsd")
	sess, err := front.Authenticate(stk.Ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	svc := New(Config{Front: front, Log: stk.Log, Version: "test"})
	t.Cleanup(func() { svc.Close() })
	return &env{st: stk.Store, srv: stk.Server, front: front, svc: svc, sess: sess}
}
