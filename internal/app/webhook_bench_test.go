package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// hookReceiver records when each event's first successful delivery arrived,
// by batch ID, and can hold every request until released.
type hookReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	arrived map[string]time.Time
	gate    chan struct{}
	changed chan struct{}
}

func newHookReceiver(b *testing.B, held bool) *hookReceiver {
	rc := &hookReceiver{arrived: map[string]time.Time{}, gate: make(chan struct{}), changed: make(chan struct{}, 1)}
	if !held {
		close(rc.gate)
	}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		<-rc.gate
		var ev functions.Event
		var data struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &ev) != nil || json.Unmarshal(ev.Data, &data) != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		now := time.Now()
		rc.mu.Lock()
		if _, dup := rc.arrived[data.ID]; !dup {
			rc.arrived[data.ID] = now
		}
		rc.mu.Unlock()
		select {
		case rc.changed <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(rc.Close)
	return rc
}

func (rc *hookReceiver) at(id string) (time.Time, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	t, ok := rc.arrived[id]
	return t, ok
}

func (rc *hookReceiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.arrived)
}

// webhookBenchKiln starts kiln with the default poll interval, webhooks to
// this machine allowed, and one endpoint for batch events at rc.
func webhookBenchKiln(b *testing.B, backend string, rc *hookReceiver) *kilntest.Env {
	env := kilntest.Start(b, backend, kilntest.Options{NoAgent: true, Configure: func(c *config.Config) {
		c.PollInterval = config.PollIntervalDefault
		c.WebhookAllowPrivate = true
	}})
	t := time.Now().Unix()
	err := env.App.Store.WebhookEndpointCreate(context.Background(), store.WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint),
		URL: rc.URL, EventTypes: []string{store.EventBatchFailed}, Secret: functions.NewSecret(), CreatedAt: t, UpdatedAt: t})
	if err != nil {
		b.Fatal(err)
	}
	return env
}

// validatingBatches creates n batches waiting in validating, with no jobs:
// the benchmark itself makes them terminal.
func validatingBatches(b *testing.B, s *store.Store, n int) []string {
	out := make([]string, n)
	for i := range out {
		t := time.Now()
		bt := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-none", CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: t.Unix(), ExpiresAt: t.Add(24 * time.Hour).Unix()}
		if err := s.BatchCreate(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
		out[i] = bt.ID
	}
	return out
}

var failure = []store.BatchError{{Code: "benchmark", Message: "ended by the benchmark"}}

// BenchmarkWebhookLatency measures, 50 times in a row, the time from the
// commit of a batch's terminal status (batch.failed) to its webhook's
// arrival at a receiver, and reports the median and 90th percentile.
//
//	go test -run '^$' -bench WebhookLatency -benchtime 1x ./internal/app/
func BenchmarkWebhookLatency(b *testing.B) {
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			rc := newHookReceiver(b, false)
			env := webhookBenchKiln(b, backend, rc)
			const samples = 50
			var lat []time.Duration
			for range b.N {
				lat = lat[:0]
				for _, id := range validatingBatches(b, env.App.Store, samples) {
					start := time.Now()
					if _, err := env.App.Store.BatchFail(context.Background(), id, failure); err != nil {
						b.Fatal(err)
					}
					deadline := time.After(time.Minute)
					for {
						if t, ok := rc.at(id); ok {
							lat = append(lat, t.Sub(start))
							break
						}
						select {
						case <-rc.changed:
						case <-deadline:
							b.Fatalf("no webhook for %s in a minute", id)
						}
					}
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-p90")
			b.ReportMetric(float64(config.PollIntervalDefault.Milliseconds()), "ms-poll-interval")
		})
	}
}

// BenchmarkWebhookThroughput queues 1,000 deliveries of events
// (batch.failed) to one endpoint in one transaction, as the webhook
// function's fan-out queues them, while the receiver holds every request,
// then releases it and measures deliveries per second until all 1,000
// arrived, and checks that every attempt is recorded. The baseline is a
// plain Go client sending the same 1,000 events, signed as kiln signs them
// (functions.Sign), to a receiver of the same kind with as many requests in
// flight as kiln's sender (functions.DeliverConcurrency); the ratio is
// kiln's rate over the baseline's.
//
//	go test -run '^$' -bench WebhookThroughput -benchtime 1x ./internal/app/
func BenchmarkWebhookThroughput(b *testing.B) {
	const events = 1000
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			var kilnRate, baseRate float64
			for range b.N {
				rc := newHookReceiver(b, true)
				env := webhookBenchKiln(b, backend, rc)
				ctx := context.Background()
				eps, _, err := env.App.Store.WebhookEndpointList(ctx, "", "", 0)
				if err != nil {
					b.Fatal(err)
				}
				// The events without their invocations (no dispatcher), and
				// the deliveries the fan-out would make, queued at once:
				// the sender then sends deliveries only.
				env.App.Store.SetDispatcher(nil)
				ds := make([]store.Delivery, events)
				for i := range ds {
					ev := &store.Event{Type: store.EventBatchFailed, Data: json.RawMessage(fmt.Sprintf(`{"id":"batch_tp_%d"}`, i))}
					if _, err := env.App.Store.EventEmit(ctx, ev); err != nil {
						b.Fatal(err)
					}
					ds[i] = store.Delivery{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: eps[0].ID, URL: eps[0].URL, CreatedAt: ev.CreatedAt}
				}
				env.App.Store.SetDispatcher(env.App.Functions)
				if err := env.App.Store.DeliveriesCreate(ctx, ds); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				close(rc.gate)
				waitArrivals(b, rc, events)
				kilnRate = events / lastArrival(rc).Sub(start).Seconds()
				// Every attempt is recorded.
				recordedBy := time.Now().Add(time.Minute)
				for {
					done, _, err := env.App.Store.DeliveryList(ctx, eps[0].ID, store.DeliverySucceeded, "", events)
					if err != nil {
						b.Fatal(err)
					}
					if len(done) == events {
						break
					}
					if time.Now().After(recordedBy) {
						b.Fatalf("%d of %d deliveries recorded as succeeded", len(done), events)
					}
					<-time.After(20 * time.Millisecond)
				}

				base := newHookReceiver(b, false)
				baseRate = baselineDeliveries(b, base.URL, eps[0].Secret, events, functions.DeliverConcurrency)
			}
			b.ReportMetric(kilnRate, "deliveries/s")
			b.ReportMetric(baseRate, "baseline-deliveries/s")
			b.ReportMetric(kilnRate/baseRate, "ratio")
		})
	}
}

func waitArrivals(b *testing.B, rc *hookReceiver, n int) {
	deadline := time.After(5 * time.Minute)
	for rc.count() < n {
		select {
		case <-rc.changed:
		case <-deadline:
			b.Fatalf("%d of %d webhooks arrived in 5 minutes", rc.count(), n)
		}
	}
}

func lastArrival(rc *hookReceiver) time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var last time.Time
	for _, t := range rc.arrived {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// baselineDeliveries sends n signed events to url from workers goroutines
// over kept-alive connections and returns the rate.
func baselineDeliveries(b *testing.B, url, secret string, n, workers int) float64 {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ev := functions.Event{ID: ids.New(ids.Event), Object: "event", Type: store.EventBatchFailed, CreatedAt: time.Now().Unix(),
					Data: json.RawMessage(fmt.Sprintf(`{"id":"batch_base_%d"}`, i))}
				body, _ := json.Marshal(ev)
				ts := time.Now().Unix()
				sig, err := functions.Sign(secret, ev.ID, ts, body)
				if err != nil {
					b.Error(err)
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("webhook-id", ev.ID)
				req.Header.Set("webhook-timestamp", fmt.Sprint(ts))
				req.Header.Set("webhook-signature", sig)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
