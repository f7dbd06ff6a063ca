package functions_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	s := storetest.New(t, backend)
	e, ds := senderDeliveries(t, s, url, n)
	return s, e, ds
}

// senderDeliveries makes an endpoint at url and n pending deliveries to
// it, one per event.
func senderDeliveries(t *testing.T, s *store.Store, url string, n int) (store.WebhookEndpoint, []store.Delivery) {
	t.Helper()
	ctx := context.Background()
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
	return e, ds
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

// TestSenderSendsWhileClaiming: a slot that frees starts the next
// delivery the sender holds at once, even while its next claim waits on
// the database. Here the queue's table is locked once the first claim
// holds every delivery, two in flight and two waiting; the two waiting
// must still go out. Both backends.
func TestSenderSendsWhileClaiming(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			const n = 2 // slots; the sender claims up to twice as many
			release := make(chan struct{})
			var arrived atomic.Int64
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if arrived.Add(1) <= n {
					<-release
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(rcv.Close)
			url := storetest.URL(t, backend)
			s, err := store.Open(context.Background(), url, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			t.Cleanup(s.Close)
			e, _ := senderDeliveries(t, s, rcv.URL, 2*n)
			ctx := context.Background()

			wh := &functions.Webhooks{Store: s, Client: http.DefaultClient, Log: slog.Default(), Poll: 10 * time.Millisecond, Concurrency: n}
			stop := wh.Start()
			t.Cleanup(func() { stop(context.Background()) })
			kilntest.Eventually(t, 30*time.Second, func() bool { return arrived.Load() == n }, "the receiver holding the first two")
			left, err := s.DeliveriesClaim(ctx, 10, time.Hour)
			require.NoError(t, err)
			require.Empty(t, left, "the sender claimed every delivery before the lock")
			unlock := lockDeliveries(t, backend, url)
			close(release)
			kilntest.Eventually(t, 30*time.Second, func() bool { return arrived.Load() == 2*n },
				"the two waiting deliveries sent while the next claim waits on the lock")
			unlock()
			kilntest.Eventually(t, 30*time.Second, func() bool {
				list, _, err := s.DeliveryList(ctx, e.ID, store.DeliverySucceeded, "", 10)
				require.NoError(t, err)
				return len(list) == 2*n
			}, "every attempt recorded once the lock is gone")
		})
	}
}

// lockDeliveries holds a lock that keeps every write of the webhook queue
// waiting, until unlock: on Postgres a SHARE lock of its table, on SQLite
// the database's write lock.
func lockDeliveries(t *testing.T, backend, url string) (unlock func()) {
	t.Helper()
	ctx := context.Background()
	if backend == "postgres" {
		c, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		tx, err := c.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `LOCK TABLE webhook_deliveries IN SHARE MODE`)
		require.NoError(t, err)
		return sync.OnceFunc(func() {
			require.NoError(t, tx.Rollback(ctx))
			require.NoError(t, c.Close(ctx))
		})
	}
	db, err := sql.Open("sqlite", strings.TrimPrefix(url, "sqlite://"))
	require.NoError(t, err)
	c, err := db.Conn(ctx)
	require.NoError(t, err)
	_, err = c.ExecContext(ctx, `BEGIN IMMEDIATE`)
	require.NoError(t, err)
	return sync.OnceFunc(func() {
		_, err := c.ExecContext(ctx, `ROLLBACK`)
		require.NoError(t, err)
		require.NoError(t, c.Close())
		require.NoError(t, db.Close())
	})
}
