package xecli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/wire"
	"github.com/xenith/xenith/internal/xenapi"
	"github.com/xenith/xenith/internal/xmlrpc"
)

// Long operations run as Async.* tasks so that xe can show their progress
// and cancel them on Ctrl-C instead of leaving them running on the server.

// pollInterval is how often a running task is looked at; tasks here take
// from a fraction of a second to minutes, so 100 ms keeps short ones snappy
// at a negligible cost.
const pollInterval = 100 * time.Millisecond

// async runs method as a task and waits for its result.
func (x *Ctx) async(method string, params ...wire.Value) (wire.Value, error) {
	tv, err := x.s.Do(x.ctx, "Async."+method, params...)
	if err != nil {
		return wire.Value{}, err
	}
	task := tv.Str
	// The task record is ours: drop it whatever happens.
	defer func() {
		if _, err := x.s.Do(context.WithoutCancel(x.ctx), "task.destroy", wire.String(task)); err != nil {
			x.log.Debug("task.destroy", "task", task, "err", err)
		}
	}()
	x.waiting.Store(true)
	defer x.waiting.Store(false)
	bar := x.env.Terminal && !x.out.minimal
	cancelled := false
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		// Polled with a context that Ctrl-C does not cancel: the task's
		// outcome is still wanted after cancelling it.
		rec, err := x.s.Do(context.WithoutCancel(x.ctx), "task.get_record", wire.String(task))
		if err != nil {
			return wire.Value{}, err
		}
		status, _ := rec.Field("status")
		progress, _ := rec.Field("progress")
		if bar {
			drawProgress(x.env.Stderr, progress.Float)
		}
		switch status.Str {
		case "pending", "cancelling":
		case "success":
			if bar {
				fmt.Fprint(x.env.Stderr, "\r\033[K")
			}
			result, _ := rec.Field("result")
			return parseTaskResult(result.Str)
		default: // failure, cancelled
			if bar {
				fmt.Fprint(x.env.Stderr, "\r\033[K")
			}
			info, _ := rec.Field("error_info")
			desc := make([]string, 0, len(info.Array))
			for _, e := range info.Array {
				desc = append(desc, e.Str)
			}
			if cancelled {
				return wire.Value{}, &interruptedError{"Operation cancelled (task " + task + ")."}
			}
			if len(desc) == 0 {
				return wire.Value{}, xenapi.NewError("INTERNAL_ERROR", "task "+status.Str+" without error_info")
			}
			return wire.Value{}, xenapi.NewError(desc[0], desc[1:]...)
		}
		select {
		case <-tick.C:
		case <-x.intr:
			if cancelled {
				// A second Ctrl-C: stop waiting; the server finishes the
				// cancellation on its own.
				return wire.Value{}, &interruptedError{"Interrupted; task " + task + " may still be running."}
			}
			cancelled = true
			fmt.Fprintln(x.env.Stderr, "\rCancelling the task (Ctrl-C again to stop waiting)...")
			if _, err := x.s.Do(context.WithoutCancel(x.ctx), "task.cancel", wire.String(task)); err != nil {
				// Not cancellable (or already done): say so and keep
				// waiting for the outcome.
				fmt.Fprintf(x.env.Stderr, "The task cannot be cancelled: %v\n", err)
				cancelled = false
			}
		case <-x.ctx.Done():
			return wire.Value{}, x.ctx.Err()
		}
	}
}

// drawProgress draws xe's progress line: percentage and a bar.
func drawProgress(w interface{ Write([]byte) (int, error) }, p float64) {
	p = min(max(p, 0), 1)
	const width = 50
	n := int(p * width)
	fmt.Fprintf(w, "\r %3d%% [%s%s]", int(p*100), strings.Repeat("#", n), strings.Repeat(" ", width-n))
}

// parseTaskResult decodes task.result, which holds an XML-RPC <value> (as
// xapi stores it), or nothing for void results.
func parseTaskResult(s string) (wire.Value, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return wire.Value{}, nil
	}
	if !strings.HasPrefix(s, "<value") {
		return wire.String(s), nil
	}
	doc := "<?xml version=\"1.0\"?><methodResponse><params><param>" + s + "</param></params></methodResponse>"
	v, err := xmlrpc.ParseResponse([]byte(doc))
	if err != nil {
		return wire.Value{}, fmt.Errorf("task result %.80q: %w", s, err)
	}
	return v, nil
}
