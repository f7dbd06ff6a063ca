package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// BenchmarkDeliveryQueue measures the store's side of sending webhooks:
// 5,000 deliveries wait, and one sender claims 100 at a time and records
// each claim's attempts as one write, as the webhook sender does, until
// none is left. It reports deliveries/s through the two statements, and
// the milliseconds of an average claim and record.
//
//	go test -run '^$' -bench '^BenchmarkDeliveryQueue$' -benchtime 1x ./internal/store/
func BenchmarkDeliveryQueue(b *testing.B) {
	const total, per = 5000, 100
	for _, backend := range storetest.Backends {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(ctx, storetest.URL(b, backend), testLog())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			t := time.Now().Unix()
			ep := store.WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint), URL: "http://127.0.0.1:9/hook",
				EventTypes: []string{store.EventBatchFailed}, Secret: "whsec_bench", CreatedAt: t, UpdatedAt: t}
			if err := st.WebhookEndpointCreate(ctx, ep); err != nil {
				b.Fatal(err)
			}
			var claimTime, recordTime time.Duration
			var claims, sent int
			for range b.N {
				ds := make([]store.Delivery, total)
				for i := range ds {
					ev := &store.Event{Type: store.EventBatchFailed, Data: json.RawMessage(fmt.Sprintf(`{"id":"batch_q_%d"}`, i))}
					if _, err := st.EventEmit(ctx, ev); err != nil {
						b.Fatal(err)
					}
					ds[i] = store.Delivery{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: ep.ID, URL: ep.URL, CreatedAt: ev.CreatedAt}
				}
				if err := st.DeliveriesCreate(ctx, ds); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for {
					c := time.Now()
					got, err := st.DeliveriesClaim(ctx, per, time.Minute)
					if err != nil {
						b.Fatal(err)
					}
					claimTime += time.Since(c)
					claims++
					if len(got) == 0 {
						break
					}
					as := make([]store.DeliveryAttemptOf, len(got))
					for i, d := range got {
						as[i] = store.DeliveryAttemptOf{DeliveryID: d.Delivery.ID, Attempt: store.DeliveryAttempt{Attempts: 1,
							Status: store.DeliverySucceeded, ResponseStatus: 204}}
					}
					r := time.Now()
					if _, err := st.DeliveriesRecord(ctx, as); err != nil {
						b.Fatal(err)
					}
					recordTime += time.Since(r)
					sent += len(got)
				}
				b.StopTimer()
			}
			if sent != total*b.N {
				b.Fatalf("sent %d of %d deliveries", sent, total*b.N)
			}
			b.ReportMetric(float64(sent)/(claimTime+recordTime).Seconds(), "deliveries/s")
			b.ReportMetric(float64(claimTime.Microseconds())/float64(claims)/1000, "ms/claim")
			b.ReportMetric(float64(recordTime.Microseconds())/float64(claims-b.N)/1000, "ms/record")
		})
	}
}
