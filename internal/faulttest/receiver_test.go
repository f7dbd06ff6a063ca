package faulttest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// receiver is a webhook receiver on loopback. It verifies each message's
// signature, answers 500 to the first delivery of some events (chosen by
// its seeded rng) so that kiln retries them, and records every delivery
// by message ID (webhook-id), which kiln keeps across retries.
type receiver struct {
	srv *httptest.Server
	c   openai.Client

	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64
	secret   string
	byID     map[string]*receipt
	problems []string // bad signatures, unreadable bodies
}

// receipt is what the receiver got of one event.
type receipt struct {
	typ, batchID string
	// accepted are the times of the deliveries answered 2xx; rejected
	// counts those answered 500.
	accepted []time.Time
	rejected int
}

func newReceiver(t *testing.T, c openai.Client, rng *rand.Rand, failRate float64) *receiver {
	r := &receiver{c: c, rng: rng, failRate: failRate, byID: map[string]*receipt{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.problems = append(r.problems, fmt.Sprintf("read a delivery: %v", err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, err := r.c.Webhooks.Unwrap(body, req.Header, option.WithWebhookSecret(r.secret)); err != nil {
		r.problems = append(r.problems, fmt.Sprintf("delivery %s does not verify: %v", req.Header.Get("webhook-id"), err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get("webhook-id") {
		r.problems = append(r.problems, fmt.Sprintf("delivery %s: body %s", req.Header.Get("webhook-id"), body))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc := r.byID[ev.ID]
	if rc == nil {
		rc = &receipt{typ: ev.Type, batchID: ev.Data.ID}
		r.byID[ev.ID] = rc
		if r.rng.Float64() < r.failRate {
			rc.rejected++
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	}
	rc.accepted = append(rc.accepted, time.Now())
	w.WriteHeader(http.StatusNoContent)
}

// snapshot copies what the receiver got.
func (r *receiver) snapshot() (map[string]receipt, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]receipt, len(r.byID))
	for id, rc := range r.byID {
		cp := *rc
		cp.accepted = append([]time.Time(nil), rc.accepted...)
		out[id] = cp
	}
	return out, append([]string(nil), r.problems...)
}
