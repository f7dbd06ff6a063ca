package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// newEndpoint registers an endpoint for every event type.
func newEndpoint(t *testing.T, tb *testBundle) store.WebhookEndpoint {
	t.Helper()
	e := store.WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint), URL: "https://example.com/hook", Name: "hook",
		EventTypes: store.EventTypes, Secret: "whsec_1", CreatedAt: 100}
	require.NoError(t, tb.st.WebhookEndpointCreate(tb.ctx, e))
	return e
}

func testWebhooks(t *testing.T, setup setupFunc) {
	t.Run("Endpoints", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		e := newEndpoint(t, tb)
		got, err := tb.st.WebhookEndpointGet(tb.ctx, e.ID)
		require.NoError(t, err)
		e.UpdatedAt = e.CreatedAt
		e.ProjectID = store.DefaultProject // made without one
		require.Equal(t, e, got)

		got, err = tb.st.WebhookEndpointUpdate(tb.ctx, store.WebhookEndpoint{ID: e.ID, URL: "https://example.com/v2", Name: "v2",
			EventTypes: []string{store.EventBatchCompleted}, Secret: "ignored"})
		require.NoError(t, err)
		require.Equal(t, "https://example.com/v2", got.URL)
		require.Equal(t, "v2", got.Name)
		require.Equal(t, []string{store.EventBatchCompleted}, got.EventTypes)
		require.Equal(t, "whsec_1", got.Secret, "an update leaves the secret")
		require.EqualValues(t, 100, got.CreatedAt)
		require.InDelta(t, time.Now().Unix(), got.UpdatedAt, 60)

		// A rotation that keeps the old secret signs with both for a while.
		got, err = tb.st.WebhookEndpointRotate(tb.ctx, e.ID, "whsec_2", time.Hour)
		require.NoError(t, err)
		require.Equal(t, "whsec_2", got.Secret)
		require.Equal(t, "whsec_1", got.PreviousSecret)
		require.InDelta(t, time.Now().Add(time.Hour).Unix(), got.PreviousExpiresAt, 60)
		require.Equal(t, []string{"whsec_2", "whsec_1"}, got.Secrets())
		got, err = tb.st.WebhookEndpointRotate(tb.ctx, e.ID, "whsec_3", 0)
		require.NoError(t, err)
		require.Equal(t, "whsec_3", got.Secret)
		require.Empty(t, got.PreviousSecret)
		require.Equal(t, []string{"whsec_3"}, got.Secrets())

		require.NoError(t, tb.st.WebhookEndpointDelete(tb.ctx, e.ID))
		_, err = tb.st.WebhookEndpointGet(tb.ctx, e.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tb.st.WebhookEndpointDelete(tb.ctx, e.ID), store.ErrNotFound)
		_, err = tb.st.WebhookEndpointUpdate(tb.ctx, e)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.WebhookEndpointRotate(tb.ctx, e.ID, "whsec_4", 0)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("ListEndpoints", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		var made []string
		for range 4 {
			made = append(made, newEndpoint(t, tb).ID)
		}
		require.NoError(t, tb.st.WebhookEndpointDelete(tb.ctx, made[1]))
		all, more, err := tb.st.WebhookEndpointList(tb.ctx, "", "", 0)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{made[3], made[2], made[0]}, endpointIDs(all), "newest first, without deleted ones")
		page, more, err := tb.st.WebhookEndpointList(tb.ctx, "", "", 2)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{made[3], made[2]}, endpointIDs(page))
		page, more, err = tb.st.WebhookEndpointList(tb.ctx, "", made[2], 2)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{made[0]}, endpointIDs(page))
		page, more, err = tb.st.WebhookEndpointList(tb.ctx, "", made[2], 0)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{made[0]}, endpointIDs(page))
	})

	t.Run("Secrets", func(t *testing.T) {
		t.Parallel()
		now := time.Now().Unix()
		e := store.WebhookEndpoint{Secret: "new", PreviousSecret: "old", PreviousExpiresAt: now + 60}
		require.Equal(t, []string{"new", "old"}, e.Secrets())
		e.PreviousExpiresAt = now - 1
		require.Equal(t, []string{"new"}, e.Secrets(), "the old secret expired")
		require.Equal(t, []string{"new"}, store.WebhookEndpoint{Secret: "new", PreviousExpiresAt: now + 60}.Secrets())
	})

	t.Run("Deliveries", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		e := newEndpoint(t, tb)
		ev := &store.Event{Type: store.EventObjectCreated, Data: []byte(`{}`)}
		_, err := tb.st.EventEmit(tb.ctx, ev)
		require.NoError(t, err)
		ds := []store.Delivery{
			{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: e.ID, URL: e.URL, CreatedAt: 10, TraceContext: "00-trace"},
			{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: e.ID, URL: "https://example.com/second", CreatedAt: 10},
		}
		wake := tb.st.DeliveriesWake()
		before := time.Now().UnixMilli()
		require.NoError(t, tb.st.DeliveriesCreate(tb.ctx, ds))
		<-wake // closed by the commit
		// Creating them again (under new IDs) is harmless: nothing is added.
		again := []store.Delivery{ds[0], ds[1]}
		again[0].ID, again[1].ID = ids.New(ids.Delivery), ids.New(ids.Delivery)
		require.NoError(t, tb.st.DeliveriesCreate(tb.ctx, again))
		_, err = tb.st.DeliveryGet(tb.ctx, again[0].ID)
		require.ErrorIs(t, err, store.ErrNotFound)

		got, err := tb.st.DeliveryGet(tb.ctx, ds[0].ID)
		require.NoError(t, err)
		require.GreaterOrEqual(t, got.NextAttemptAt, before, "due at once")
		got.NextAttemptAt = 0
		require.Equal(t, store.Delivery{ID: ds[0].ID, EventID: ev.ID, EndpointID: e.ID, URL: e.URL, Status: store.DeliveryPending,
			CreatedAt: 10, UpdatedAt: 10, ProjectID: store.DefaultProject, TraceContext: "00-trace"}, got)

		// Both are due: one claim takes them, with their endpoint and
		// event; while leased, no other claim does.
		claimed, err := tb.st.DeliveriesClaim(tb.ctx, 10, time.Minute)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{ds[0].ID, ds[1].ID}, []string{claimed[0].Delivery.ID, claimed[1].Delivery.ID})
		require.Equal(t, e.ID, claimed[0].Endpoint.ID)
		require.Equal(t, ev.ID, claimed[0].Event.ID)
		require.Equal(t, e.EventTypes, claimed[0].Endpoint.EventTypes)
		require.Equal(t, e.EventTypes, claimed[1].Endpoint.EventTypes)
		claimed[0].Endpoint.EventTypes[0] = "changed"
		require.Equal(t, e.EventTypes, claimed[1].Endpoint.EventTypes, "each delivery has its own endpoint's event types")
		require.Zero(t, claimed[0].RoundAttempts)
		require.GreaterOrEqual(t, claimed[0].RoundStarted, before)
		claimed, err = tb.st.DeliveriesClaim(tb.ctx, 10, time.Minute)
		require.NoError(t, err)
		require.Empty(t, claimed, "leased deliveries are not claimed again")
		at, ok, err := tb.st.DeliveryNextDue(tb.ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.Greater(t, at, time.Now().UnixMilli(), "next due when a lease ends")
		// A released delivery can be claimed at once.
		require.NoError(t, tb.st.DeliveriesRelease(tb.ctx, []string{ds[1].ID}))
		claimed, err = tb.st.DeliveriesClaim(tb.ctx, 10, time.Minute)
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.Equal(t, ds[1].ID, claimed[0].Delivery.ID)

		// A failed attempt that will be retried, then a success.
		retryAt := time.Now().Add(time.Hour).UnixMilli()
		require.NoError(t, tb.st.DeliveryRecord(tb.ctx, ds[0].ID, store.DeliveryAttempt{Attempts: 1, Status: store.DeliveryPending,
			ResponseStatus: 500, ResponseBody: "oops", Error: "HTTP 500", NextAttemptAt: retryAt}))
		got, err = tb.st.DeliveryGet(tb.ctx, ds[0].ID)
		require.NoError(t, err)
		require.Equal(t, retryAt, got.NextAttemptAt)
		claimed, err = tb.st.DeliveriesClaim(tb.ctx, 10, time.Minute)
		require.NoError(t, err)
		require.Empty(t, claimed, "a retry waits until it is due")
		require.Equal(t, store.DeliveryPending, got.Status)
		require.EqualValues(t, 1, got.Attempts)
		require.EqualValues(t, 500, got.ResponseStatus)
		require.Equal(t, "oops", got.ResponseBody)
		require.Equal(t, "HTTP 500", got.LastError)
		require.Nil(t, got.DeliveredAt)
		require.NoError(t, tb.st.DeliveryRecord(tb.ctx, ds[0].ID, store.DeliveryAttempt{Attempts: 2, Status: store.DeliverySucceeded, ResponseStatus: 200}))
		got, err = tb.st.DeliveryGet(tb.ctx, ds[0].ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliverySucceeded, got.Status)
		require.NotNil(t, got.DeliveredAt)
		require.Empty(t, got.LastError)
		require.ErrorIs(t, tb.st.DeliveryRecord(tb.ctx, ds[0].ID, store.DeliveryAttempt{Attempts: 3, Status: store.DeliveryFailed}), store.ErrConflict,
			"a finished delivery is left as it is")
		require.NoError(t, tb.st.DeliveryRecord(tb.ctx, ds[1].ID, store.DeliveryAttempt{Attempts: 8, Status: store.DeliveryFailed, Error: "gone"}))

		// Listing, by endpoint and status, newest first.
		list, more, err := tb.st.DeliveryList(tb.ctx, e.ID, "", "", 10)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{ds[1].ID, ds[0].ID}, deliveryIDs(list))
		list, more, err = tb.st.DeliveryList(tb.ctx, e.ID, "", "", 1)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{ds[1].ID}, deliveryIDs(list))
		list, _, err = tb.st.DeliveryList(tb.ctx, e.ID, "", ds[1].ID, 10)
		require.NoError(t, err)
		require.Equal(t, []string{ds[0].ID}, deliveryIDs(list))
		list, _, err = tb.st.DeliveryList(tb.ctx, e.ID, store.DeliveryFailed, "", 10)
		require.NoError(t, err)
		require.Equal(t, []string{ds[1].ID}, deliveryIDs(list))
		list, _, err = tb.st.DeliveryList(tb.ctx, "we_other", "", "", 10)
		require.NoError(t, err)
		require.Empty(t, list)

		// A finished delivery goes again, due at once in a new round of
		// attempts; a pending one does not.
		wake = tb.st.DeliveriesWake()
		got, err = tb.st.DeliveryRedeliver(tb.ctx, ds[1].ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliveryPending, got.Status)
		<-wake
		claimed, err = tb.st.DeliveriesClaim(tb.ctx, 10, time.Minute)
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.Equal(t, ds[1].ID, claimed[0].Delivery.ID)
		require.Zero(t, claimed[0].RoundAttempts, "a new round")
		got, err = tb.st.DeliveryGet(tb.ctx, ds[1].ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliveryPending, got.Status)
		require.EqualValues(t, 8, got.Attempts, "earlier attempts still count")
		_, err = tb.st.DeliveryRedeliver(tb.ctx, ds[1].ID)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.DeliveryRedeliver(tb.ctx, "whdel_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.DeliveryGet(tb.ctx, "whdel_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tb.st.DeliveryRecord(tb.ctx, "whdel_nope", store.DeliveryAttempt{Status: store.DeliveryFailed}), store.ErrConflict)
	})

	t.Run("DeliveriesRecordAndGetToSend", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		e := newEndpoint(t, tb)
		ev := &store.Event{Type: store.EventObjectCreated, Data: []byte(`{"id":"obj"}`)}
		_, err := tb.st.EventEmit(tb.ctx, ev)
		require.NoError(t, err)
		ds := []store.Delivery{
			{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: e.ID, URL: e.URL, CreatedAt: 10},
			{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: e.ID, URL: "https://example.com/second", CreatedAt: 10},
			{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: e.ID, URL: "https://example.com/third", CreatedAt: 10},
		}
		require.NoError(t, tb.st.DeliveriesCreate(tb.ctx, ds))

		send, err := tb.st.DeliveryGetToSend(tb.ctx, ds[0].ID)
		require.NoError(t, err)
		want, err := tb.st.DeliveryGet(tb.ctx, ds[0].ID)
		require.NoError(t, err)
		require.Equal(t, want, send.Delivery)
		wantEv, err := tb.st.EventGet(tb.ctx, ev.ID)
		require.NoError(t, err)
		require.Equal(t, wantEv, send.Event)
		wantE, err := tb.st.WebhookEndpointGet(tb.ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, wantE, send.Endpoint)
		require.False(t, send.EndpointDeleted)
		_, err = tb.st.DeliveryGetToSend(tb.ctx, "whdel_nope")
		require.ErrorIs(t, err, store.ErrNotFound)

		// Several attempts in one write; one of a delivery no longer
		// pending, and one of no delivery, are left out.
		require.NoError(t, tb.st.DeliveryRecord(tb.ctx, ds[2].ID, store.DeliveryAttempt{Attempts: 1, Status: store.DeliveryFailed, Error: "gone"}))
		pending, err := tb.st.DeliveriesRecord(tb.ctx, []store.DeliveryAttemptOf{
			{DeliveryID: ds[0].ID, Attempt: store.DeliveryAttempt{Attempts: 1, Status: store.DeliverySucceeded, ResponseStatus: 204, ResponseBody: "ok"}},
			{DeliveryID: ds[1].ID, Attempt: store.DeliveryAttempt{Attempts: 3, Status: store.DeliveryPending, ResponseStatus: 500, Error: "receiver answered 500"}},
			{DeliveryID: ds[2].ID, Attempt: store.DeliveryAttempt{Attempts: 2, Status: store.DeliverySucceeded}},
			{DeliveryID: "whdel_nope", Attempt: store.DeliveryAttempt{Attempts: 1, Status: store.DeliverySucceeded}},
		})
		require.NoError(t, err)
		require.Equal(t, []bool{true, true, false, false}, pending)
		got, err := tb.st.DeliveryGet(tb.ctx, ds[0].ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliverySucceeded, got.Status)
		require.Equal(t, int64(1), got.Attempts)
		require.Equal(t, int64(204), got.ResponseStatus)
		require.Equal(t, "ok", got.ResponseBody)
		require.NotNil(t, got.DeliveredAt)
		got, err = tb.st.DeliveryGet(tb.ctx, ds[1].ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliveryPending, got.Status)
		require.Equal(t, int64(3), got.Attempts)
		require.Equal(t, "receiver answered 500", got.LastError)
		require.Nil(t, got.DeliveredAt)
		got, err = tb.st.DeliveryGet(tb.ctx, ds[2].ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliveryFailed, got.Status, "a finished delivery is left as it is")
		require.Equal(t, int64(1), got.Attempts)
		pending, err = tb.st.DeliveriesRecord(tb.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, pending)

		// A deleted endpoint is reported as such.
		require.NoError(t, tb.st.WebhookEndpointDelete(tb.ctx, e.ID))
		send, err = tb.st.DeliveryGetToSend(tb.ctx, ds[1].ID)
		require.NoError(t, err)
		require.True(t, send.EndpointDeleted)
		require.Equal(t, ds[1].ID, send.Delivery.ID)
		require.Equal(t, ev.ID, send.Event.ID)
	})
}

func endpointIDs(es []store.WebhookEndpoint) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func deliveryIDs(ds []store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
