package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

func TestRegistry(t *testing.T) {
	noop := func(context.Context, functions.Event) error { return nil }
	_, err := functions.NewRegistry(functions.Retry{}, functions.Function{Name: "a", Handle: noop}, functions.Function{Name: "a", Handle: noop})
	require.Error(t, err, "a name twice")
	_, err = functions.NewRegistry(functions.Retry{}, functions.Function{Name: "b"})
	require.Error(t, err, "no handler")

	r, err := functions.NewRegistry(functions.Retry{MaxAttempts: 7},
		functions.Function{Name: "z", Events: []string{store.EventFileCreated}, Handle: noop},
		functions.Function{Name: "a", Events: []string{store.EventFileCreated, store.EventBatchFailed}, Handle: noop})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "z"}, r.Functions(store.EventFileCreated))
	require.Equal(t, []string{"a"}, r.Functions(store.EventBatchFailed))
	require.Empty(t, r.Functions(store.EventObjectCreated))
	j := r.Job(store.Invocation{ID: "inv_1", EventID: "evt_1", Function: "a"})
	require.Equal(t, functions.QueueEvents, j.Opts.Queue)
	require.Equal(t, 8, j.Opts.MaxAttempts, "kiln decides the last attempt, not River")
}

func TestRetryDelay(t *testing.T) {
	r := functions.Retry{Base: 100 * time.Millisecond, Max: time.Second}
	seen := map[time.Duration]bool{}
	for n := 1; n <= 10; n++ {
		want := min(r.Base<<(n-1), r.Max)
		for range 50 {
			d := r.Delay(n)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", n)
			require.LessOrEqual(t, d, want, "attempt %d", n)
			seen[d] = true
		}
	}
	require.Greater(t, len(seen), 100, "jitter: delays differ")
	require.LessOrEqual(t, r.Delay(1000), time.Second, "no overflow at high attempts")
}

// scripted is a function whose outcome a test sets, counting its runs.
type scripted struct {
	mu   sync.Mutex
	runs map[string]int // by event ID
	fail error
}

func (s *scripted) handle(_ context.Context, ev functions.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[string]int{}
	}
	s.runs[ev.ID]++
	return s.fail
}

func (s *scripted) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[id]
}

func (s *scripted) set(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// functionStore is a store on backend whose events go to the given
// functions, run by River workers with fast retries and three attempts.
func functionStore(t *testing.T, backend string, fns ...functions.Function) (*store.Store, *functions.Registry) {
	s := storetest.New(t, backend)
	r, err := functions.NewRegistry(functions.Retry{Base: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 3}, fns...)
	require.NoError(t, err)
	s.SetDispatcher(r)
	workers := river.NewWorkers()
	river.AddWorker(workers, &functions.InvokeWorker{Registry: r, Store: s, Log: slog.Default()})
	require.NoError(t, s.StartWorkers(context.Background(), store.WorkerOpts{Workers: workers,
		Queues: map[string]int{functions.QueueEvents: 4}, PollInterval: 10 * time.Millisecond}))
	t.Cleanup(func() { _ = s.StopWorkers(context.Background()) })
	return s, r
}

func invocationOf(t *testing.T, s *store.Store, eventID, fn string) store.Invocation {
	t.Helper()
	list, _, err := s.InvocationList(context.Background(), "", "", "", 100)
	require.NoError(t, err)
	for _, inv := range list {
		if inv.EventID == eventID && inv.Function == fn {
			return inv
		}
	}
	t.Fatalf("no invocation of %s for %s", fn, eventID)
	return store.Invocation{}
}

// TestFunctionsDeadLetter: each subscribed function runs once per event;
// one that keeps failing is retried up to its attempts, then dead, listed
// as a dead letter, and runs again when retried; a permanent error is dead
// at once.
func TestFunctionsDeadLetter(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ok, flaky, broken := &scripted{}, &scripted{fail: errors.New("receiver down")}, &scripted{fail: functions.Permanent(errors.New("bad input"))}
			s, _ := functionStore(t, backend,
				functions.Function{Name: "ok", Events: []string{store.EventFileCreated}, Handle: ok.handle},
				functions.Function{Name: "flaky", Events: []string{store.EventFileCreated}, Handle: flaky.handle},
				functions.Function{Name: "broken", Events: []string{store.EventFileCreated}, Handle: broken.handle},
				functions.Function{Name: "other", Events: []string{store.EventBatchFailed}, Handle: ok.handle})
			ctx := context.Background()
			ev := store.Event{Type: store.EventFileCreated, Data: json.RawMessage(`{"id":"file-1"}`)}
			created, err := s.EventEmit(ctx, &ev)
			require.NoError(t, err)
			require.True(t, created)

			kilntest.Eventually(t, 30*time.Second, func() bool {
				return invocationOf(t, s, ev.ID, "flaky").Status == store.InvocationDead &&
					invocationOf(t, s, ev.ID, "broken").Status == store.InvocationDead &&
					invocationOf(t, s, ev.ID, "ok").Status == store.InvocationSucceeded
			}, "the invocations to finish")
			require.Equal(t, 1, ok.count(ev.ID))
			require.Equal(t, 3, flaky.count(ev.ID), "three attempts")
			require.Equal(t, 1, broken.count(ev.ID), "a permanent error is not retried")
			inv := invocationOf(t, s, ev.ID, "flaky")
			require.EqualValues(t, 3, inv.Attempts)
			require.Equal(t, "receiver down", inv.LastError)
			dead, _, err := s.InvocationList(ctx, "", store.InvocationDead, "", 10)
			require.NoError(t, err)
			require.Len(t, dead, 2)

			// Retried from the dead letter, it runs again and succeeds.
			flaky.set(nil)
			_, err = s.InvocationRetry(ctx, inv.ID)
			require.NoError(t, err)
			kilntest.Eventually(t, 30*time.Second, func() bool {
				return invocationOf(t, s, ev.ID, "flaky").Status == store.InvocationSucceeded
			}, "the retried invocation")
			require.Equal(t, 4, flaky.count(ev.ID))
			_, err = s.InvocationRetry(ctx, inv.ID)
			require.ErrorIs(t, err, store.ErrConflict, "only a dead invocation is retried")
		})
	}
}

// TestFunctionsIdempotent: a job of an invocation that already finished
// (River ran it twice, or a redelivery raced it) does not run the function
// again; an event with a dedupe key is written once.
func TestFunctionsIdempotent(t *testing.T) {
	ok := &scripted{}
	s, r := functionStore(t, "sqlite", functions.Function{Name: "ok", Events: []string{store.EventObjectCreated}, Handle: ok.handle})
	ctx := context.Background()
	ev := store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{"key":"inbox/a"}`), DedupeKey: "object:a"}
	created, err := s.EventEmit(ctx, &ev)
	require.NoError(t, err)
	require.True(t, created)
	again := store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{"key":"inbox/a"}`), DedupeKey: "object:a"}
	created, err = s.EventEmit(ctx, &again)
	require.NoError(t, err)
	require.False(t, created, "the same object twice is one event")

	kilntest.Eventually(t, 30*time.Second, func() bool {
		return invocationOf(t, s, ev.ID, "ok").Status == store.InvocationSucceeded
	}, "the invocation")
	inv := invocationOf(t, s, ev.ID, "ok")
	w := &functions.InvokeWorker{Registry: r, Store: s, Log: slog.Default()}
	job := &river.Job[functions.InvokeArgs]{JobRow: &rivertype.JobRow{Attempt: 1, CreatedAt: time.Now()},
		Args: functions.InvokeArgs{InvocationID: inv.ID, EventID: ev.ID, Function: "ok"}}
	require.NoError(t, w.Work(ctx, job))
	require.Equal(t, 1, ok.count(ev.ID), "a duplicate job runs nothing")
	list, _, err := s.EventList(ctx, "", store.EventObjectCreated, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
}

// TestEventsCommitWithTheirChange: a batch's terminal status writes its
// event and invocations in the same transaction; a change that does not
// happen writes none.
func TestEventsCommitWithTheirChange(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ok := &scripted{}
			s, _ := functionStore(t, backend, functions.Function{Name: "ok", Events: []string{store.EventBatchFailed}, Handle: ok.handle})
			ctx := context.Background()
			now := time.Now()
			b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x", CompletionWindow: "24h",
				Status: store.BatchValidating, CreatedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()}
			require.NoError(t, s.BatchCreate(ctx, b))
			_, err := s.BatchFail(ctx, b.ID, []store.BatchError{{Code: "x", Message: "y"}})
			require.NoError(t, err)
			_, err = s.BatchFail(ctx, b.ID, []store.BatchError{{Code: "x", Message: "y"}})
			require.ErrorIs(t, err, store.ErrConflict)

			evs, _, err := s.EventList(ctx, "", "", "", 10)
			require.NoError(t, err)
			require.Len(t, evs, 1, "one terminal status, one event")
			require.Equal(t, store.EventBatchFailed, evs[0].Type)
			require.JSONEq(t, `{"id":"`+b.ID+`"}`, string(evs[0].Data))
			kilntest.Eventually(t, 30*time.Second, func() bool { return ok.count(evs[0].ID) == 1 }, "the function")
		})
	}
}

// TestEventsPrune: events past the retention go with their finished
// invocations; one whose invocation is still pending stays.
func TestEventsPrune(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ok := &scripted{}
			release := make(chan struct{})
			stuck := func(ctx context.Context, _ functions.Event) error {
				select { // still running: its invocation stays pending
				case <-release:
				case <-ctx.Done():
				}
				return nil
			}
			s, _ := functionStore(t, backend,
				functions.Function{Name: "ok", Events: []string{store.EventFileCreated}, Handle: ok.handle},
				functions.Function{Name: "stuck", Events: []string{store.EventBatchFailed}, Handle: stuck})
			t.Cleanup(func() { close(release) })
			ctx := context.Background()
			old := time.Now().Add(-100 * 24 * time.Hour).Unix()
			done := store.Event{Type: store.EventFileCreated, CreatedAt: old, Data: json.RawMessage(`{"id":"file-1"}`)}
			pending := store.Event{Type: store.EventBatchFailed, CreatedAt: old, Data: json.RawMessage(`{"id":"batch_1"}`)}
			recent := store.Event{Type: store.EventFileCreated, Data: json.RawMessage(`{"id":"file-2"}`)}
			for _, ev := range []*store.Event{&done, &pending, &recent} {
				_, err := s.EventEmit(ctx, ev)
				require.NoError(t, err)
			}
			kilntest.Eventually(t, 30*time.Second, func() bool {
				return invocationOf(t, s, done.ID, "ok").Status == store.InvocationSucceeded &&
					invocationOf(t, s, recent.ID, "ok").Status == store.InvocationSucceeded
			}, "the invocations")
			n, err := s.EventsPrune(ctx, time.Now().Add(-30*24*time.Hour).Unix())
			require.NoError(t, err)
			require.EqualValues(t, 1, n)
			_, err = s.EventGet(ctx, done.ID)
			require.ErrorIs(t, err, store.ErrNotFound)
			for _, id := range []string{pending.ID, recent.ID} {
				_, err = s.EventGet(ctx, id)
				require.NoError(t, err)
			}
		})
	}
}

// TestSlowReceiversDoNotHoldFunctions: webhook deliveries have a sender of
// their own, so receivers that hold every one of its slots do not hold up a
// function's invocation. Both backends.
func TestSlowReceiversDoNotHoldFunctions(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			var held atomic.Int64
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				held.Add(1)
				<-release
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(rcv.Close)

			s := storetest.New(t, backend)
			const deliverers = 2
			wh := &functions.Webhooks{Store: s, Client: http.DefaultClient, Log: slog.Default(), Concurrency: deliverers, Poll: 10 * time.Millisecond}
			ok := &scripted{}
			r, err := functions.NewRegistry(functions.Retry{Base: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 3},
				wh.Function(), functions.Function{Name: "ok", Events: []string{store.EventFileCreated}, Handle: ok.handle})
			require.NoError(t, err)
			s.SetDispatcher(r)
			workers := river.NewWorkers()
			river.AddWorker(workers, &functions.InvokeWorker{Registry: r, Store: s, Log: slog.Default()})
			require.NoError(t, s.StartWorkers(context.Background(), store.WorkerOpts{Workers: workers,
				Queues: map[string]int{functions.QueueEvents: 4}, PollInterval: 10 * time.Millisecond}))
			t.Cleanup(func() { _ = s.StopWorkers(context.Background()) })
			stop := wh.Start()
			t.Cleanup(func() { stop(context.Background()) })
			// Cleanups run last first: the receiver lets go, the sender and
			// the workers stop, then the receiver closes.
			t.Cleanup(func() { close(release) })

			ctx := context.Background()
			require.NoError(t, s.WebhookEndpointCreate(ctx, store.WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint), URL: rcv.URL,
				EventTypes: []string{store.EventBatchFailed}, Secret: functions.NewSecret(), CreatedAt: time.Now().Unix()}))
			for range deliverers + 1 {
				at := time.Now()
				b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-none", CompletionWindow: "24h",
					Status: store.BatchValidating, CreatedAt: at.Unix(), ExpiresAt: at.Add(24 * time.Hour).Unix()}
				require.NoError(t, s.BatchCreate(ctx, b))
				_, err := s.BatchFail(ctx, b.ID, []store.BatchError{{Code: "test", Message: "failed by the test"}})
				require.NoError(t, err)
			}
			kilntest.Eventually(t, 30*time.Second, func() bool { return held.Load() == deliverers }, "every slot of the sender held")

			ev := store.Event{Type: store.EventFileCreated, Data: json.RawMessage(`{"id":"file-1"}`)}
			_, err = s.EventEmit(ctx, &ev)
			require.NoError(t, err)
			kilntest.Eventually(t, 30*time.Second, func() bool {
				return invocationOf(t, s, ev.ID, "ok").Status == store.InvocationSucceeded
			}, "the function to run while the receivers hold every slot of the sender")
			require.EqualValues(t, deliverers, held.Load(), "the receivers still hold them")
		})
	}
}
