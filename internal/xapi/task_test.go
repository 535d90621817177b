package xapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/client"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/wire"
)

// waitTask polls a task until it leaves pending/cancelling.
func waitTask(t *testing.T, s *client.Session, task wire.Value) wire.Value {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rec, err := s.Do(context.Background(), "task.get_record", task)
		if err != nil {
			t.Fatal(err)
		}
		if st := field(rec, "status"); st != "pending" && st != "cancelling" {
			return rec
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("task did not finish")
	return wire.Value{}
}

func TestAsyncCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, pc := range protocols {
		s := e.login(t, pc.p, "root", "pw")
		task, err := s.Do(ctx, "Async.VM.create", vmRecord("async"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(task.Str, "OpaqueRef:") {
			t.Fatalf("%s: Async.VM.create returned %+v", pc.name, task)
		}
		rec := waitTask(t, s, task)
		result := field(rec, "result")
		if field(rec, "status") != "success" || !strings.HasPrefix(result, "<value>OpaqueRef:") || field(rec, "progress") != "1" {
			t.Fatalf("%s: task record %+v", pc.name, rec)
		}
		vm := strings.TrimSuffix(strings.TrimPrefix(result, "<value>"), "</value>")
		if name, err := s.Do(ctx, "VM.get_name_label", wire.String(vm)); err != nil || name.Str != "async" {
			t.Fatalf("%s: the async VM: %q %v", pc.name, name.Str, err)
		}
		if label := field(rec, "name_label"); label != "Async.VM.create" {
			t.Errorf("%s: task name_label %q", pc.name, label)
		}
		if tasks, _ := s.Do(ctx, "session.get_tasks", wire.String(s.Ref)); len(tasks.Array) != 1 || tasks.Array[0].Str != task.Str {
			t.Errorf("%s: session.tasks = %+v", pc.name, tasks)
		}

		// A failing call gives a failed task carrying the error.
		vms, _ := s.Do(ctx, "VM.get_all_records_where", wire.String(`field "is_control_domain"="true"`))
		task, err = s.Do(ctx, "Async.VM.destroy", wire.String(vms.Struct[0].Name))
		if err != nil {
			t.Fatal(err)
		}
		rec = waitTask(t, s, task)
		info, _ := rec.Field("error_info")
		if field(rec, "status") != "failure" || len(info.Array) == 0 || info.Array[0].Str != api.ErrOperationNotAllowed {
			t.Fatalf("%s: failed task %+v", pc.name, rec)
		}
		if _, err := s.Do(ctx, "task.destroy", task); err != nil {
			t.Fatal(err)
		}
		_, err = s.Do(ctx, "task.get_record", task)
		wantErr(t, err, api.ErrHandleInvalid)

		// Errors found before the work starts come back at once.
		_, err = s.Do(ctx, "Async.VM.get_record")
		wantErr(t, err, api.ErrMessageParameterCountMismatch)
		_, err = s.Call(ctx, "Async.VM.create", wire.String("OpaqueRef:dead"), vmRecord("x"))
		wantErr(t, err, api.ErrSessionInvalid)
		_, err = s.Do(ctx, "Async.session.logout")
		wantErr(t, err, api.ErrMessageMethodUnknown, "Async.session.logout")
		_, err = s.Do(ctx, "Async.VM.get_name_label", wire.String(vm))
		wantErr(t, err, api.ErrMessageMethodUnknown)
	}
}

func TestTaskCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	// Two long-running messages: one stops on cancellation, one cannot.
	e.srv.handle("pool.sync_database", func(ctx context.Context, c *Call) (Result, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, -1)
	e.srv.methods["pool.sync_database"].cancellable = true
	e.srv.handle("pool.recover_slaves", func(ctx context.Context, c *Call) (Result, error) {
		started <- struct{}{}
		<-release
		return nil, nil
	}, -1)
	s := e.login(t, client.JSONRPC, "root", "pw")

	task, err := s.Do(ctx, "Async.pool.sync_database")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	rec, _ := s.Do(ctx, "task.get_record", task)
	if ops, _ := rec.Field("allowed_operations"); len(ops.Array) != 1 || ops.Array[0].Str != "cancel" {
		t.Fatalf("cancellable task allowed_operations = %+v", ops)
	}
	if _, err := s.Do(ctx, "task.cancel", task); err != nil {
		t.Fatal(err)
	}
	rec = waitTask(t, s, task)
	info, _ := rec.Field("error_info")
	if field(rec, "status") != "cancelled" || len(info.Array) != 2 || info.Array[0].Str != api.ErrTaskCancelled || info.Array[1].Str != task.Str {
		t.Fatalf("cancelled task %+v", rec)
	}
	_, err = s.Do(ctx, "task.cancel", task)
	wantErr(t, err, api.ErrOperationNotAllowed)

	task, err = s.Do(ctx, "Async.pool.recover_slaves")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	_, err = s.Do(ctx, "task.cancel", task)
	wantErr(t, err, api.ErrOperationNotAllowed)
	close(release)
	if rec := waitTask(t, s, task); field(rec, "status") != "success" {
		t.Fatalf("uncancellable task %+v", rec)
	}
}

func TestClientTasksAndCleanup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	e := openEnv(t, dir, Config{}, store.Options{})
	s := e.login(t, client.XMLRPC, "root", "pw")
	mine, err := s.Do(ctx, "task.create", wire.String("import"), wire.String("client work"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Do(ctx, "task.set_progress", mine, wire.Float(0.5)); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Do(ctx, "task.get_progress", mine); p.Float != 0.5 {
		t.Fatalf("progress %v", p)
	}
	done, _ := s.Do(ctx, "task.create", wire.String("done"), wire.String(""))
	_, _ = s.Do(ctx, "task.set_result", done, wire.String("<value>ok</value>"))
	_, _ = s.Do(ctx, "task.set_status", done, wire.String("success"))
	if f, _ := s.Do(ctx, "task.get_finished", done); f.Kind != wire.KindDateTime || strings.HasPrefix(f.Str, "1970") {
		t.Fatalf("finished not set: %+v", f)
	}
	_, err = s.Do(ctx, "task.set_status", done, wire.String("exploded"))
	wantErr(t, err, api.ErrFieldTypeError)
	e.close()

	// A restart fails the unfinished task and keeps the finished one.
	e2 := openEnv(t, dir, Config{}, store.Options{})
	defer e2.close()
	s2 := e2.resume(client.JSONRPC, s.Ref)
	if st, _ := s2.Do(ctx, "task.get_status", mine); st.Str != "failure" {
		t.Fatalf("interrupted task status %q", st.Str)
	}
	if st, _ := s2.Do(ctx, "task.get_status", done); st.Str != "success" {
		t.Fatalf("finished task status %q", st.Str)
	}
	// Logging out destroys the session's tasks.
	if _, err := s2.Do(ctx, "session.logout"); err != nil {
		t.Fatal(err)
	}
	if n := e2.store.Count(api.ClassTask); n != 0 {
		t.Fatalf("%d tasks left after their session logged out", n)
	}
}
