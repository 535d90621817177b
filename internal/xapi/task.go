package xapi

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// Tasks: Async.* calls run in the background under a task record, and
// task.* lets clients create, watch, cancel and destroy tasks. The task
// record is the durable truth; runningTask is the in-memory handle of work
// this process is doing.

// finishedTaskTTL is how long a finished task is kept for its owner to
// read before it is garbage-collected.
const finishedTaskTTL = time.Hour

type runningTask struct {
	cancel      context.CancelFunc
	cancellable bool
	mu          sync.Mutex
	destroyed   bool // task.destroy arrived while running: drop at the end
}

type taskTable struct {
	mu sync.Mutex
	m  map[xenapi.Ref]*runningTask
}

func (t *taskTable) get(ref xenapi.Ref) *runningTask {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[ref]
}

func (s *Server) registerTaskHandlers() {
	s.tasks = &taskTable{m: make(map[xenapi.Ref]*runningTask)}
	s.handle("task.create", s.taskCreate, -1)
	s.handle("task.destroy", s.taskDestroy, -1)
	s.handle("task.cancel", s.taskCancel, -1)
	s.handle("task.set_status", s.taskSet(func(t *api.Task, c *Call) {
		t.Status = api.TaskStatusType(c.Str(1))
		if t.Status != api.TaskStatusTypePending && t.Status != api.TaskStatusTypeCancelling {
			t.Finished = time.Now().UTC().Truncate(time.Second)
			t.AllowedOperations = nil
		}
	}), -1)
	s.handle("task.set_progress", s.taskSet(func(t *api.Task, c *Call) { t.Progress = clampProgress(c.Float(1)) }), -1)
	s.handle("task.set_result", s.taskSet(func(t *api.Task, c *Call) { t.Result = c.Str(1) }), -1)
	s.handle("task.set_error_info", s.taskSet(func(t *api.Task, c *Call) { t.ErrorInfo = stringSet(c.Arg(1)) }), -1)
}

func clampProgress(p float64) float64 {
	if math.IsNaN(p) || p < 0 {
		return 0
	}
	return math.Min(p, 1)
}

// newTask records a pending task owned by sess.
func (s *Server) newTask(ctx context.Context, sess *Session, label, description string, cancellable bool) (xenapi.Ref, error) {
	t := api.NewTask()
	t.NameLabel, t.NameDescription = label, description
	t.Created = time.Now().UTC().Truncate(time.Second)
	t.Status = api.TaskStatusTypePending
	t.ResidentOn = s.hostRef
	if cancellable {
		t.AllowedOperations = []api.TaskAllowedOperations{api.TaskAllowedOperationsCancel}
	}
	var ref xenapi.Ref
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		if ref, err = tx.Create(t); err != nil {
			return err
		}
		if sess == nil || !tx.Exists(api.ClassSession, sess.Ref) {
			return nil
		}
		// session.tasks lists the tasks the session owns.
		return tx.Modify(api.ClassSession, sess.Ref, func(r xenapi.Record) error {
			rec := r.(*api.Session)
			rec.Tasks = append(slices.Clone(rec.Tasks), ref)
			return nil
		})
	})
	return ref, err
}

// startAsync runs a prepared call in a task and returns the task's ref.
func (s *Server) startAsync(ctx context.Context, e *entry, call *Call) (Result, error) {
	ref, err := s.newTask(ctx, call.Session, "Async."+e.method.Name, "", e.cancellable)
	if err != nil {
		return nil, err
	}
	// The work outlives the HTTP request that started it.
	workCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	workCtx = withTask(workCtx, ref)
	rt := &runningTask{cancel: cancel, cancellable: e.cancellable}
	s.tasks.mu.Lock()
	s.tasks.m[ref] = rt
	s.tasks.mu.Unlock()
	s.log.Info("task started", "task", ref, "method", e.method.Name, "session", call.Session.Ref)
	go func() {
		defer cancel()
		res, err := s.invoke(workCtx, e, call)
		s.finishTask(ref, rt, res, err, workCtx.Err() != nil)
	}()
	return refResult(ref), nil
}

// finishTask records the outcome: the result as XML-RPC text (what xapi
// stores in task.result), or the error description.
func (s *Server) finishTask(ref xenapi.Ref, rt *runningTask, res Result, err error, cancelled bool) {
	s.tasks.mu.Lock()
	delete(s.tasks.m, ref)
	s.tasks.mu.Unlock()
	ctx := context.Background()
	rt.mu.Lock()
	destroyed := rt.destroyed
	rt.mu.Unlock()
	uerr := s.store.Update(ctx, func(tx *store.Tx) error {
		if !tx.Exists(api.ClassTask, ref) {
			return nil
		}
		if destroyed {
			return tx.Delete(api.ClassTask, ref)
		}
		return tx.Modify(api.ClassTask, ref, func(r xenapi.Record) error {
			t := r.(*api.Task)
			t.Finished = time.Now().UTC().Truncate(time.Second)
			t.AllowedOperations, t.CurrentOperations = nil, nil
			switch {
			case err == nil:
				t.Status, t.Progress = api.TaskStatusTypeSuccess, 1
				t.Result = encodeTaskResult(res)
			case cancelled:
				t.Status = api.TaskStatusTypeCancelled
				t.ErrorInfo = []string{api.ErrTaskCancelled, string(ref)}
			default:
				t.Status = api.TaskStatusTypeFailure
				t.ErrorInfo = xenapi.AsError(err).Description()
			}
			return nil
		})
	})
	if uerr != nil {
		s.log.Error("recording task outcome", "task", ref, "err", uerr)
	}
	s.log.Info("task finished", "task", ref, "err", err)
}

func encodeTaskResult(res Result) string {
	if res == nil {
		return ""
	}
	var e xmlrpc.Encoder
	res(&e)
	return string(e.Bytes())
}

func (s *Server) taskCreate(ctx context.Context, c *Call) (Result, error) {
	ref, err := s.newTask(ctx, c.Session, c.Str(0), c.Str(1), true)
	if err != nil {
		return nil, err
	}
	return refResult(ref), nil
}

func (s *Server) taskSet(apply func(t *api.Task, c *Call)) handlerFunc {
	return func(ctx context.Context, c *Call) (Result, error) {
		return nil, s.store.Update(ctx, func(tx *store.Tx) error {
			return tx.Modify(api.ClassTask, c.Ref(0), func(r xenapi.Record) error {
				apply(r.(*api.Task), c)
				return nil
			})
		})
	}
}

// taskCancel cancels a running task through its context. Work that cannot
// be cancelled refuses with OPERATION_NOT_ALLOWED; a finished task has
// nothing to cancel. A task made by task.create belongs to its client:
// cancelling it marks it cancelling for the client to see.
func (s *Server) taskCancel(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	row, err := s.store.Get(api.ClassTask, ref)
	if err != nil {
		return nil, err
	}
	t := row.Rec.(*api.Task)
	if t.Status != api.TaskStatusTypePending {
		return nil, xenapi.NewError(api.ErrOperationNotAllowed, "the task has already finished")
	}
	if !slices.Contains(t.AllowedOperations, api.TaskAllowedOperationsCancel) {
		return nil, xenapi.NewError(api.ErrOperationNotAllowed, "this task cannot be cancelled")
	}
	err = s.store.Update(ctx, func(tx *store.Tx) error {
		return tx.Modify(api.ClassTask, ref, func(r xenapi.Record) error {
			rec := r.(*api.Task)
			rec.Status = api.TaskStatusTypeCancelling
			rec.CurrentOperations = xenapi.MapOf(map[string]api.TaskAllowedOperations{string(c.Session.Ref): api.TaskAllowedOperationsCancel})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if rt := s.tasks.get(ref); rt != nil {
		rt.cancel()
	}
	s.log.Info("task cancel requested", "task", ref, "session", c.Session.Ref)
	return nil, nil
}

// taskDestroy removes a task; one still running goes when it finishes.
func (s *Server) taskDestroy(ctx context.Context, c *Call) (Result, error) {
	ref := c.Ref(0)
	if rt := s.tasks.get(ref); rt != nil {
		rt.mu.Lock()
		rt.destroyed = true
		rt.mu.Unlock()
		return nil, nil
	}
	return nil, s.store.Update(ctx, func(tx *store.Tx) error { return s.deleteTask(tx, ref) })
}

// deleteTask removes a task record and its mention in its session.
func (s *Server) deleteTask(tx *store.Tx, ref xenapi.Ref) error {
	if err := tx.Delete(api.ClassTask, ref); err != nil {
		return err
	}
	for sref, r := range tx.All(api.ClassSession) {
		if slices.Contains(r.(*api.Session).Tasks, ref) {
			return tx.Modify(api.ClassSession, sref, func(rec xenapi.Record) error {
				sess := rec.(*api.Session)
				sess.Tasks = slices.DeleteFunc(slices.Clone(sess.Tasks), func(x xenapi.Ref) bool { return x == ref })
				return nil
			})
		}
	}
	return nil
}

// releaseTasks is called with the tasks of sessions being closed: running
// ones are cancelled (where possible) and destroyed when they finish; the
// caller deletes the others in its transaction.
func (s *Server) releaseTasks(tx *store.Tx, owned []xenapi.Ref) error {
	for _, ref := range owned {
		if rt := s.tasks.get(ref); rt != nil {
			rt.mu.Lock()
			rt.destroyed = true
			rt.mu.Unlock()
			if rt.cancellable {
				rt.cancel()
			}
			continue
		}
		if tx.Exists(api.ClassTask, ref) {
			if err := tx.Delete(api.ClassTask, ref); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectTasks garbage-collects finished tasks older than the TTL.
func (s *Server) collectTasks(ctx context.Context) {
	cutoff := time.Now().Add(-finishedTaskTTL)
	var old []xenapi.Ref
	for _, row := range s.store.All(api.ClassTask) {
		t := row.Rec.(*api.Task)
		if t.Status != api.TaskStatusTypePending && t.Status != api.TaskStatusTypeCancelling && t.Finished.Before(cutoff) {
			old = append(old, row.Ref)
		}
	}
	if len(old) == 0 {
		return
	}
	err := s.store.Update(ctx, func(tx *store.Tx) error {
		for _, ref := range old {
			if tx.Exists(api.ClassTask, ref) {
				if err := s.deleteTask(tx, ref); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("collecting tasks", "err", err)
	}
}

// failInterruptedTasks marks the tasks a previous run left unfinished as
// failed: their work died with that process. Finished tasks are kept.
func (s *Server) failInterruptedTasks() {
	err := s.store.Update(context.Background(), func(tx *store.Tx) error {
		for ref, r := range tx.All(api.ClassTask) {
			t := r.(*api.Task)
			if t.Status != api.TaskStatusTypePending && t.Status != api.TaskStatusTypeCancelling {
				continue
			}
			if err := tx.Modify(api.ClassTask, ref, func(rec xenapi.Record) error {
				t := rec.(*api.Task)
				t.Status = api.TaskStatusTypeFailure
				t.ErrorInfo = []string{api.ErrInternalError, "xenithd restarted while the task was running"}
				t.Finished = time.Now().UTC().Truncate(time.Second)
				t.AllowedOperations, t.CurrentOperations = nil, nil
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("failing interrupted tasks", "err", err)
	}
}

type taskKey struct{}

func withTask(ctx context.Context, ref xenapi.Ref) context.Context {
	return context.WithValue(ctx, taskKey{}, ref)
}

// TaskOf returns the task a handler runs under (Async calls), if any.
func TaskOf(ctx context.Context) (xenapi.Ref, bool) {
	ref, ok := ctx.Value(taskKey{}).(xenapi.Ref)
	return ref, ok
}

// SetProgress records the progress of the task running ctx's work, if any.
func (s *Server) SetProgress(ctx context.Context, p float64) {
	ref, ok := TaskOf(ctx)
	if !ok {
		return
	}
	_ = s.store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		if !tx.Exists(api.ClassTask, ref) {
			return nil
		}
		return tx.Modify(api.ClassTask, ref, func(r xenapi.Record) error {
			r.(*api.Task).Progress = clampProgress(p)
			return nil
		})
	})
}
