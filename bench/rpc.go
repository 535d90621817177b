package bench

import (
	"context"
	"fmt"
	"os"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
)

// Target names, in the order the benchmarks run them.
const (
	BareXML  = "bare-xml"
	XMLRPC   = "xmlrpc"
	BareJSON = "bare-json"
	JSONRPC  = "jsonrpc"
)

// Names lists the targets: each protocol follows its baseline.
var Names = []string{BareXML, XMLRPC, BareJSON, JSONRPC}

// Call selects the XenAPI call a fixture measures.
type Call int

const (
	GetRecord     Call = iota // VM.get_record of one VM
	GetAllRecords             // VM.get_all_records
)

// RPC is a running XenAPI server on a loopback TCP port, with one session
// logged in, plus two bare net/http baselines on listeners of the same kind:
// each reads the request body and answers with the exact bytes xenithd
// answered the same request with (captured once at start), so baseline and
// server move the same bytes over the same kind of connection.
type RPC struct {
	Env      *Env
	VMs      []xenapi.Ref
	Session  xenapi.Ref
	Targets  map[string]*Target
	lns      []*Listener
	ownedDir string
}

// StartRPC builds a memory-store server holding vms VMs (at least one),
// logs in and prepares the four targets for call.
func StartRPC(ctx context.Context, vms int, call Call) (*RPC, error) {
	dir, err := TempDir()
	if err != nil {
		return nil, err
	}
	r := &RPC{ownedDir: dir, Targets: map[string]*Target{}}
	if err := r.start(ctx, dir, max(vms, 1), call); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *RPC) start(ctx context.Context, dir string, vms int, call Call) error {
	env, err := NewEnv(ctx, EnvOptions{Dir: dir})
	if err != nil {
		return err
	}
	r.Env = env
	if r.VMs, err = AddVMs(ctx, env.Store, env.Infra, 0, vms, 200); err != nil {
		return err
	}
	ln, err := Serve(env.Server.Handler())
	if err != nil {
		return err
	}
	r.lns = append(r.lns, ln)
	c := NewClient()
	defer c.CloseIdleConnections()
	if r.Session, err = Login(c, ln.URL); err != nil {
		return err
	}

	method, params := "VM.get_record", []wire.Value{wire.String(string(r.Session)), wire.String(string(r.VMs[0]))}
	if call == GetAllRecords {
		method, params = "VM.get_all_records", params[:1]
	}
	xml := &Target{Name: XMLRPC, URL: ln.URL + "/", ContentType: "text/xml", Body: XMLCall(method, params...)}
	json := &Target{Name: JSONRPC, URL: ln.URL + "/jsonrpc", ContentType: "application/json", Body: JSONCall(method, params...)}

	// Capture and check one answer of each protocol.
	want := 1
	if call == GetAllRecords {
		want = len(env.Store.All(env.Store.Class("VM")))
	}
	for _, t := range []*Target{xml, json} {
		body, err := t.Do(c, nil)
		if err != nil {
			return err
		}
		check := XMLResult
		if t == json {
			check = JSONResult
		}
		v, err := check(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", t.Name, method, err)
		}
		if call == GetAllRecords && len(v.Struct) != want {
			return fmt.Errorf("%s: %d records, want %d", t.Name, len(v.Struct), want)
		}
		if call == GetRecord {
			if u, _ := v.Field("uuid"); u.Str == "" {
				return fmt.Errorf("%s: record without uuid", t.Name)
			}
		}
		t.WantLen = len(body)
		bare, err := Serve(BareHandler(body, t.ContentType))
		if err != nil {
			return err
		}
		r.lns = append(r.lns, bare)
		name := BareXML
		if t == json {
			name = BareJSON
		}
		path := "/"
		if t == json {
			path = "/jsonrpc"
		}
		r.Targets[name] = &Target{Name: name, URL: bare.URL + path, ContentType: t.ContentType, Body: t.Body, WantLen: len(body)}
		r.Targets[t.Name] = t
	}
	return nil
}

// Close stops the listeners and removes the environment.
func (r *RPC) Close() {
	for _, l := range r.lns {
		l.Close()
	}
	if r.Env != nil {
		r.Env.Close()
	}
	if r.ownedDir != "" {
		os.RemoveAll(r.ownedDir)
	}
}
