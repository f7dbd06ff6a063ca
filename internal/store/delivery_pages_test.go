package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
)

// TestDeliveryClaimKeepsPage: on Postgres, a claimed delivery's new row
// version stays on the delivery's page (migration 23 leaves half of each
// page free), where Postgres can write it without touching the table's
// indexes. Deliveries made in one run fill several pages and are claimed
// together, as the sender claims them. SQLite updates rows in place and
// has no such room to keep.
func TestDeliveryClaimKeepsPage(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, "postgres")
	now := time.Now().Unix()
	ep := WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint), URL: "http://127.0.0.1:9/hook", EventTypes: []string{EventBatchFailed},
		Secret: "whsec_pages", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.WebhookEndpointCreate(ctx, ep))
	const n = 300
	ds := make([]Delivery, n)
	for i := range ds {
		ev := &Event{Type: EventBatchFailed, Data: json.RawMessage(fmt.Sprintf(`{"id":"batch_page_%d"}`, i))}
		_, err := s.EventEmit(ctx, ev)
		require.NoError(t, err)
		ds[i] = Delivery{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: ep.ID, URL: ep.URL, CreatedAt: ev.CreatedAt}
	}
	require.NoError(t, s.DeliveriesCreate(ctx, ds))
	pages := func() map[string]string {
		out := map[string]string{}
		rows, err := collect(ctx, s.d.db(), func(r row) ([2]string, error) {
			var p [2]string
			return p, r.Scan(&p[0], &p[1])
		}, `SELECT id, split_part(trim(both '()' from ctid::text), ',', 1) FROM webhook_deliveries`)
		require.NoError(t, err)
		for _, p := range rows {
			out[p[0]] = p[1]
		}
		return out
	}
	before := pages()
	require.Len(t, before, n)
	distinct := map[string]bool{}
	for _, p := range before {
		distinct[p] = true
	}
	require.Greater(t, len(distinct), 1, "the deliveries fill more than one page")
	claimed, err := s.DeliveriesClaim(ctx, n, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, n)
	require.Equal(t, before, pages(), "each claimed delivery is on its page still")
}
