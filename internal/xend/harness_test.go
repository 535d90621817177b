package xend

import (
	"testing"

	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xapi"
	"github.com/xenith/xenith/internal/xapi/xapitest"
	"github.com/xenith/xenith/internal/xenapi"
)

// env is a whole xenithd in process: store, inventory, simulator, XenAPI
// server, and the xend front over it.
type env struct {
	st    *store.Store
	srv   *xapi.Server
	front *xapi.Front
	svc   *Service
	sess  xenapi.Ref
}

func newEnv(t testing.TB) *env {
	t.Helper()
	stk := xapitest.New(t, nil)
	front := stk.Server.NewFront("test-xend")
	sess, err := front.Authenticate(stk.Ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: stk.Store, srv: stk.Server, front: front, svc: New(Config{Front: front, Log: stk.Log, Version: "test"}), sess: sess}
}
