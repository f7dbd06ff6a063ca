package functions_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// senderFixture is a store with one endpoint at url and n pending
// deliveries to it, one per event.
func senderFixture(t *testing.T, backend, url string, n int) (*store.Store, store.WebhookEndpoint, []store.Delivery) {
	t.Helper()
	ctx := context.Background()
	s := storetest.New(t, backend)
	e := store.WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint), URL: url, EventTypes: []string{store.EventBatchFailed},
		Secret: functions.NewSecret(), CreatedAt: time.Now().Unix()}
	require.NoError(t, s.WebhookEndpointCreate(ctx, e))
	ds := make([]store.Delivery, n)
	for i := range ds {
		ev := &store.Event{Type: store.EventBatchFailed, Data: json.RawMessage(`{"id":"batch_sender"}`)}
		_, err := s.EventEmit(ctx, ev)
		require.NoError(t, err)
		ds[i] = store.Delivery{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: e.ID, URL: url, CreatedAt: ev.CreatedAt}
	}
	require.NoError(t, s.DeliveriesCreate(ctx, ds))
	return s, e, ds
}

// TestSenderTakesOverAfterLease: a sender that claimed deliveries and died
// (its leases held, nothing sent) delays them only until its leases end;
// then another sender sends each once. Both backends.
func TestSenderTakesOverAfterLease(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			arrived := map[string][]time.Time{}
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				arrived[r.Header.Get("webhook-id")] = append(arrived[r.Header.Get("webhook-id")], time.Now())
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(rcv.Close)
			s, _, ds := senderFixture(t, backend, rcv.URL, 3)
			ctx := context.Background()

			const lease = 300 * time.Millisecond
			claimedAt := time.Now()
			claimed, err := s.DeliveriesClaim(ctx, 10, lease)
			require.NoError(t, err)
			require.Len(t, claimed, 3, "the dead sender held them all")

			wh := &functions.Webhooks{Store: s, Client: http.DefaultClient, Log: slog.Default(), Poll: 10 * time.Millisecond}
			stop := wh.Start()
			t.Cleanup(func() { stop(context.Background()) })
			kilntest.Eventually(t, 30*time.Second, func() bool {
				list, _, err := s.DeliveryList(ctx, ds[0].EndpointID, store.DeliverySucceeded, "", 10)
				require.NoError(t, err)
				return len(list) == 3
			}, "every delivery sent once the dead sender's leases ended")
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				require.Len(t, arrived[d.EventID], 1, "delivery %s sent once", d.ID)
				require.False(t, arrived[d.EventID][0].Before(claimedAt.Add(lease)), "not sent while another sender held it")
				got, err := s.DeliveryGet(ctx, d.ID)
				require.NoError(t, err)
				require.EqualValues(t, 1, got.Attempts)
			}
		})
	}
}

// TestSenderStopHandsBack: a sender stopped while receivers hold its
// requests cuts them short and hands the deliveries back, with no attempt
// counted; the next sender sends each once. Both backends.
func TestSenderStopHandsBack(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			const n = 4
			var holding atomic.Bool
			holding.Store(true)
			var held, answered atomic.Int64
			ended := make(chan struct{})
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if holding.Load() {
					held.Add(1)
					select {
					case <-r.Context().Done(): // the sender cut it
					case <-ended:
					}
					return
				}
				answered.Add(1)
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(rcv.Close)
			t.Cleanup(func() { close(ended) })
			s, e, ds := senderFixture(t, backend, rcv.URL, n)
			ctx := context.Background()

			first := &functions.Webhooks{Store: s, Client: http.DefaultClient, Log: slog.Default(), Poll: 10 * time.Millisecond, Concurrency: n}
			stopFirst := first.Start()
			kilntest.Eventually(t, 30*time.Second, func() bool { return held.Load() == n }, "the receiver holding every request")
			holding.Store(false)
			cut, cancel := context.WithCancel(ctx)
			cancel()
			stopFirst(cut) // no time to finish: the requests are cut
			for _, d := range ds {
				got, err := s.DeliveryGet(ctx, d.ID)
				require.NoError(t, err)
				require.Equal(t, store.DeliveryPending, got.Status)
				require.Zero(t, got.Attempts, "a request cut short is no attempt")
			}

			second := &functions.Webhooks{Store: s, Client: http.DefaultClient, Log: slog.Default(), Poll: 10 * time.Millisecond}
			stopSecond := second.Start()
			t.Cleanup(func() { stopSecond(context.Background()) })
			kilntest.Eventually(t, 30*time.Second, func() bool {
				list, _, err := s.DeliveryList(ctx, e.ID, store.DeliverySucceeded, "", 10)
				require.NoError(t, err)
				return len(list) == n
			}, "the next sender to send every delivery at once, not after a lease")
			require.EqualValues(t, n, answered.Load())
			for _, d := range ds {
				got, err := s.DeliveryGet(ctx, d.ID)
				require.NoError(t, err)
				require.EqualValues(t, 1, got.Attempts)
			}
		})
	}
}
