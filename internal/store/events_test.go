package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// dispatcher subscribes functions to event types; each invocation's job is
// a noop job named after the invocation.
type dispatcher map[string][]string

func (d dispatcher) Functions(eventType string) []string { return d[eventType] }
func (d dispatcher) Job(inv store.Invocation) store.Job  { return noopJob(inv.ID) }

func testEvents(t *testing.T, setup setupFunc) {
	t.Run("EmitGetDedupe", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		ev := &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{"key":"a"}`), DedupeKey: "obj:a"}
		created, err := tb.st.EventEmit(tb.ctx, ev)
		require.NoError(t, err)
		require.True(t, created)
		require.NotEmpty(t, ev.ID, "the event gets an ID")
		require.InDelta(t, time.Now().Unix(), ev.CreatedAt, 60, "and a creation time")
		got, err := tb.st.EventGet(tb.ctx, ev.ID)
		require.NoError(t, err)
		require.Equal(t, *ev, got)

		dup := &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{"key":"other"}`), DedupeKey: "obj:a"}
		created, err = tb.st.EventEmit(tb.ctx, dup)
		require.NoError(t, err)
		require.False(t, created, "an event with the key was written before")
		_, err = tb.st.EventGet(tb.ctx, dup.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		got, err = tb.st.EventByDedupeKey(tb.ctx, "obj:a")
		require.NoError(t, err)
		require.Equal(t, ev.ID, got.ID)
		require.JSONEq(t, `{"key":"a"}`, string(got.Data))

		// Events without a key never collide.
		for range 2 {
			created, err = tb.st.EventEmit(tb.ctx, &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{}`)})
			require.NoError(t, err)
			require.True(t, created)
		}
		_, err = tb.st.EventByDedupeKey(tb.ctx, "obj:nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.EventGet(tb.ctx, "evt_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		var objects []string
		for range 3 {
			ev := &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{}`)}
			_, err := tb.st.EventEmit(tb.ctx, ev)
			require.NoError(t, err)
			objects = append(objects, ev.ID)
		}
		f := newFile(t, tb, "batch")
		page, more, err := tb.st.EventList(tb.ctx, "", store.EventObjectCreated, "", 2)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{objects[2], objects[1]}, eventIDs(page))
		page, more, err = tb.st.EventList(tb.ctx, "", store.EventObjectCreated, objects[1], 2)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{objects[0]}, eventIDs(page))
		page, more, err = tb.st.EventList(tb.ctx, "", "", "", 10)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, page, 4)
		require.Equal(t, store.EventFileCreated, page[0].Type)
		require.Equal(t, f.ID, dataID(t, page[0]))
	})

	t.Run("Invocations", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := startWorkers(t, tb)
		tb.st.SetDispatcher(dispatcher{store.EventObjectCreated: {"fn-a", "fn-b"}})
		ev := &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{}`)}
		_, err := tb.st.EventEmit(tb.ctx, ev)
		require.NoError(t, err)
		// Each subscribed function's invocation commits with the event and
		// its job runs.
		invs, more, err := tb.st.InvocationList(tb.ctx, "", "", "", 10)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, invs, 2)
		require.ElementsMatch(t, []string{invs[0].ID, invs[1].ID}, w.wait(t, 2))
		require.ElementsMatch(t, []string{"fn-a", "fn-b"}, []string{invs[0].Function, invs[1].Function})
		a, b := invs[1], invs[0] // newest first
		require.Equal(t, ev.ID, a.EventID)
		require.Equal(t, store.InvocationPending, a.Status)
		got, err := tb.st.InvocationGet(tb.ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, a, got)

		// Attempts are recorded until the invocation finishes.
		require.NoError(t, tb.st.InvocationRecord(tb.ctx, a.ID, 1, store.InvocationPending, "timeout"))
		require.NoError(t, tb.st.InvocationRecord(tb.ctx, a.ID, 2, store.InvocationSucceeded, ""))
		require.ErrorIs(t, tb.st.InvocationRecord(tb.ctx, a.ID, 3, store.InvocationDead, "late"), store.ErrConflict)
		got, err = tb.st.InvocationGet(tb.ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, store.InvocationSucceeded, got.Status)
		require.EqualValues(t, 2, got.Attempts)
		require.Empty(t, got.LastError)
		require.NoError(t, tb.st.InvocationRecord(tb.ctx, b.ID, 5, store.InvocationDead, "boom"))
		dead, _, err := tb.st.InvocationList(tb.ctx, "", store.InvocationDead, "", 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, b.ID, dead[0].ID)
		require.Equal(t, "boom", dead[0].LastError)
		require.EqualValues(t, 5, dead[0].Attempts)

		// A dead invocation is retried with a new job; others are not.
		retried, err := tb.st.InvocationRetry(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, store.InvocationPending, retried.Status)
		require.Equal(t, []string{b.ID}, w.wait(t, 1))
		got, err = tb.st.InvocationGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, store.InvocationPending, got.Status)
		_, err = tb.st.InvocationRetry(tb.ctx, b.ID)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.InvocationRetry(tb.ctx, a.ID)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.InvocationRetry(tb.ctx, "inv_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.InvocationGet(tb.ctx, "inv_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tb.st.InvocationRecord(tb.ctx, "inv_nope", 1, store.InvocationSucceeded, ""), store.ErrConflict)

		// Paging, newest first.
		page, more, err := tb.st.InvocationList(tb.ctx, "", "", "", 1)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, b.ID, page[0].ID)
		page, more, err = tb.st.InvocationList(tb.ctx, "", "", b.ID, 1)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, a.ID, page[0].ID)

		// Other types, and events written without a dispatcher, trigger
		// nothing.
		newFile(t, tb, "batch")
		tb.st.SetDispatcher(nil)
		_, err = tb.st.EventEmit(tb.ctx, &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{}`)})
		require.NoError(t, err)
		invs, _, err = tb.st.InvocationList(tb.ctx, "", "", "", 10)
		require.NoError(t, err)
		require.Len(t, invs, 2)
	})

	t.Run("Prune", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		emit := func(createdAt int64) store.Event {
			ev := &store.Event{Type: store.EventObjectCreated, CreatedAt: createdAt, Data: json.RawMessage(`{}`)}
			_, err := tb.st.EventEmit(tb.ctx, ev)
			require.NoError(t, err)
			return *ev
		}
		// Old and recent events with an invocation each.
		tb.st.SetDispatcher(dispatcher{store.EventObjectCreated: {"fn"}})
		invoked := func(createdAt int64) (store.Event, store.Invocation) {
			ev := emit(createdAt)
			invs, _, err := tb.st.InvocationList(tb.ctx, "", "", "", 1)
			require.NoError(t, err)
			require.Equal(t, ev.ID, invs[0].EventID)
			return ev, invs[0]
		}
		oldDone, oldDoneInv := invoked(100)
		require.NoError(t, tb.st.InvocationRecord(tb.ctx, oldDoneInv.ID, 1, store.InvocationSucceeded, ""))
		oldPending, _ := invoked(100)
		recent, recentInv := invoked(time.Now().Unix())
		require.NoError(t, tb.st.InvocationRecord(tb.ctx, recentInv.ID, 1, store.InvocationSucceeded, ""))
		tb.st.SetDispatcher(nil)

		// An old event with a pending delivery stays; one whose delivery
		// failed for good goes.
		ep := newEndpoint(t, tb)
		delivered := func(ev store.Event) store.Delivery {
			d := store.Delivery{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: ep.ID, URL: ep.URL, CreatedAt: 100}
			require.NoError(t, tb.st.DeliveriesCreate(tb.ctx, []store.Delivery{d}))
			return d
		}
		oldDelivering := emit(100)
		delivered(oldDelivering)
		oldFailed := emit(100)
		failed := delivered(oldFailed)
		require.NoError(t, tb.st.DeliveryRecord(tb.ctx, failed.ID, store.DeliveryAttempt{Attempts: 3, Status: store.DeliveryFailed}))

		n, err := tb.st.EventsPrune(tb.ctx, 1000)
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		for _, gone := range []store.Event{oldDone, oldFailed} {
			_, err = tb.st.EventGet(tb.ctx, gone.ID)
			require.ErrorIs(t, err, store.ErrNotFound)
		}
		_, err = tb.st.InvocationGet(tb.ctx, oldDoneInv.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "finished invocations go with their event")
		_, err = tb.st.DeliveryGet(tb.ctx, failed.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "finished deliveries go with their event")
		for _, kept := range []store.Event{oldPending, oldDelivering, recent} {
			_, err = tb.st.EventGet(tb.ctx, kept.ID)
			require.NoError(t, err)
		}
		_, err = tb.st.InvocationGet(tb.ctx, recentInv.ID)
		require.NoError(t, err)
		n, err = tb.st.EventsPrune(tb.ctx, 1000)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

func eventIDs(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}
