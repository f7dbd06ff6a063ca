// Package functions holds kiln's serverless-style functions: code that
// reacts to events (a batch ended, a file or an object appeared). Every
// function has one signature, Func; a Registry maps event types to
// functions. In kiln serve each (event, function) invocation runs as a River
// job, retried with exponential backoff and jitter until it succeeds or
// runs out of attempts or age, when it becomes a dead letter the API shows.
// The same functions also build as AWS Lambda handlers (package
// functions/lambda).
package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/store"
)

// Event is what a function receives, in the shape of OpenAI's webhook
// events: {"id":"evt_…","object":"event","type":"batch.completed",
// "created_at":…,"data":{"id":"batch_…"}}.
type Event struct {
	ID        string          `json:"id"`
	Object    string          `json:"object"`
	Type      string          `json:"type"`
	CreatedAt int64           `json:"created_at"`
	Data      json.RawMessage `json:"data"`
	// ProjectID is the project the event is about. It is not sent:
	// deliveries keep OpenAI's shape, and go to the project's endpoints
	// only.
	ProjectID string `json:"-"`
}

// EventOf is the function-facing form of a stored event.
func EventOf(ev store.Event) Event {
	return Event{ID: ev.ID, Object: "event", Type: ev.Type, CreatedAt: ev.CreatedAt, Data: ev.Data, ProjectID: ev.ProjectID}
}

// Func handles one event. It may run more than once for the same event
// (delivery is at least once), so it must be idempotent on ev.ID. An error
// makes it run again later; wrap it with Permanent to stop retrying.
type Func func(ctx context.Context, ev Event) error

// Function is a named Func and the event types it subscribes to.
type Function struct {
	// Name is stable: invocations are recorded under it.
	Name   string
	Events []string
	Handle Func
}

// permanentError is a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix: the invocation
// becomes a dead letter at once.
func Permanent(err error) error { return permanentError{err} }

// River queues apart from the batch jobs, so that neither waits on the
// other: QueueEvents holds function invocations. QueueWebhooks held webhook
// deliveries before they were kiln's own queue (Webhooks.Start, whose
// sender has its own slots, so that slow receivers never delay a
// function); it only drains the jobs left from then.
const (
	QueueEvents   = "events"
	QueueWebhooks = "webhooks"
)

// Registry maps event types to functions. It is the store's Dispatcher:
// the store asks it, while writing an event, which invocations to enqueue.
type Registry struct {
	byName  map[string]Function
	byEvent map[string][]string
	retry   Retry
}

// NewRegistry registers fns. Invocations are retried under retry.
func NewRegistry(retry Retry, fns ...Function) (*Registry, error) {
	r := &Registry{byName: map[string]Function{}, byEvent: map[string][]string{}, retry: retry.withDefaults()}
	for _, f := range fns {
		if f.Name == "" || f.Handle == nil {
			return nil, fmt.Errorf("functions: a function needs a name and a handler")
		}
		if _, dup := r.byName[f.Name]; dup {
			return nil, fmt.Errorf("functions: %s registered twice", f.Name)
		}
		r.byName[f.Name] = f
		for _, ev := range f.Events {
			r.byEvent[ev] = append(r.byEvent[ev], f.Name)
		}
	}
	for _, names := range r.byEvent {
		sort.Strings(names)
	}
	return r, nil
}

// Functions names the functions subscribed to an event type.
func (r *Registry) Functions(eventType string) []string { return r.byEvent[eventType] }

// Lookup returns a registered function.
func (r *Registry) Lookup(name string) (Function, bool) {
	f, ok := r.byName[name]
	return f, ok
}

// Job is the River job that runs one invocation.
func (r *Registry) Job(inv store.Invocation) store.Job {
	return store.Job{Args: InvokeArgs{InvocationID: inv.ID, EventID: inv.EventID, Function: inv.Function},
		Opts: &river.InsertOpts{Queue: QueueEvents, MaxAttempts: r.retry.MaxAttempts + 1}}
}

// Retry bounds the retries of a job: exponential backoff from Base,
// doubled per attempt up to Max, with jitter, until MaxAttempts attempts or
// MaxAge after the job was enqueued, whichever comes first.
type Retry struct {
	// Base is the delay after the first failure. Default: 1s.
	Base time.Duration
	// Max caps the delay. Default: 1h.
	Max time.Duration
	// MaxAttempts is the most attempts. Default: 25.
	MaxAttempts int
	// MaxAge is how long after its job was enqueued an invocation is still
	// retried. Default: 24h.
	MaxAge time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Base <= 0 {
		r.Base = time.Second
	}
	if r.Max <= 0 {
		r.Max = time.Hour
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 25
	}
	if r.MaxAge <= 0 {
		r.MaxAge = 24 * time.Hour
	}
	return r
}

// Delay is the wait after failed attempt n (from 1): Base·2^(n-1), capped
// at Max, of which a random half is jitter, so that many failures at once
// do not retry in lockstep.
func (r Retry) Delay(n int) time.Duration {
	r = r.withDefaults()
	d := r.Max
	if n < 63 {
		if e := r.Base << (n - 1); e > 0 && e < r.Max {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// exhausted reports whether a job that failed attempt n, enqueued at
// created, gets no further attempt.
func (r Retry) exhausted(n int, created time.Time) bool {
	r = r.withDefaults()
	return n >= r.MaxAttempts || time.Since(created) >= r.MaxAge
}

// InvokeArgs is the job of one invocation.
type InvokeArgs struct {
	InvocationID string `json:"invocation_id"`
	EventID      string `json:"event_id"`
	Function     string `json:"function"`
}

// Kind is stable; never rename it.
func (InvokeArgs) Kind() string { return "function_invoke" }

// InvokeWorker runs invocations.
type InvokeWorker struct {
	river.WorkerDefaults[InvokeArgs]
	Registry *Registry
	Store    *store.Store
	Log      *slog.Logger
	Metrics  *Metrics
}

// NextRetry is the registry's backoff.
func (w *InvokeWorker) NextRetry(job *river.Job[InvokeArgs]) time.Time {
	return time.Now().Add(w.Registry.retry.Delay(job.Attempt))
}

// Work runs the function once. A finished invocation (a duplicate job) is
// skipped. On failure the error is recorded; once retries are exhausted the
// invocation becomes dead and the job is cancelled.
func (w *InvokeWorker) Work(ctx context.Context, job *river.Job[InvokeArgs]) error {
	a := job.Args
	inv, err := w.Store.InvocationGet(ctx, a.InvocationID)
	if err != nil {
		return err
	}
	if inv.Status != store.InvocationPending {
		return nil
	}
	fn, ok := w.Registry.Lookup(a.Function)
	if !ok {
		err := fmt.Errorf("no function %q in this kiln", a.Function)
		return w.finish(ctx, job, err, true)
	}
	ev, err := w.Store.EventGet(ctx, a.EventID)
	if err != nil {
		return err
	}
	start := time.Now()
	err = fn.Handle(ctx, EventOf(ev))
	w.Log.DebugContext(ctx, "function ran", "function", a.Function, "event", ev.ID, "type", ev.Type,
		"attempt", job.Attempt, "took", time.Since(start), "err", err)
	// A database refusing the data itself refuses it again: as permanent.
	return w.finish(ctx, job, err, errors.As(err, new(permanentError)) || store.IsPermanent(err))
}

func (w *InvokeWorker) finish(ctx context.Context, job *river.Job[InvokeArgs], fnErr error, permanent bool) error {
	id, fn := job.Args.InvocationID, job.Args.Function
	if fnErr == nil {
		w.Metrics.invocation(fn, "succeeded")
		if err := w.Store.InvocationRecord(ctx, id, int64(job.Attempt), store.InvocationSucceeded, ""); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		return nil
	}
	if permanent || w.Registry.retry.exhausted(job.Attempt, job.CreatedAt) {
		w.Metrics.invocation(fn, "dead")
		w.Log.WarnContext(ctx, "function gave up: dead letter", "function", job.Args.Function, "event", job.Args.EventID,
			"invocation", id, "attempts", job.Attempt, "err", fnErr)
		if err := w.Store.InvocationRecord(ctx, id, int64(job.Attempt), store.InvocationDead, fnErr.Error()); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		return river.JobCancel(fnErr)
	}
	w.Metrics.invocation(fn, "retry")
	if err := w.Store.InvocationRecord(ctx, id, int64(job.Attempt), store.InvocationPending, fnErr.Error()); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return fnErr
}
