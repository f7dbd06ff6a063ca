package functions_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/webhooks"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/openaispec"
	"github.com/kilnhq/kiln/internal/store"
)

// received is one request a receiver got.
type received struct {
	Header http.Header
	Body   []byte
	Path   string
	At     time.Time
}

// receiver is an httptest webhook receiver whose answers a test scripts:
// answer gets the request's index from 0.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, received{Header: r.Header.Clone(), Body: body, Path: r.URL.Path, At: time.Now()})
		rc.mu.Unlock()
		if rc.answer != nil {
			rc.answer(n, w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// webhookKiln starts kiln with webhooks allowed to this machine's
// receivers and fast retries.
func webhookKiln(t *testing.T, backend string, configure func(*config.Config)) (*kilntest.Env, openai.Client) {
	env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
		c.WebhookAllowPrivate = true
		c.RetryBase = 20 * time.Millisecond
		c.RetryMax = 100 * time.Millisecond
		if configure != nil {
			configure(c)
		}
	}})
	return env, env.Client()
}

// runBatch uploads n requests and creates a batch with metadata.
func runBatch(t *testing.T, c openai.Client, n int, metadata map[string]string) string {
	t.Helper()
	ctx := context.Background()
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(kilntest.ChatLines(n, 0)), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: metadata})
	require.NoError(t, err)
	return b.ID
}

func newEndpoint(t *testing.T, c openai.Client, url string, types ...string) *webhooks.WebhookEndpointWithSecret {
	t.Helper()
	if len(types) == 0 {
		types = []string{"batch.completed", "batch.failed", "batch.cancelled", "batch.expired"}
	}
	e, err := c.Webhooks.New(context.Background(), webhooks.WebhookNewParams{URL: url, Name: "aris", EventTypes: types})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(e.SigningSecret, "whsec_"), e.SigningSecret)
	return e
}

// deliveries lists an endpoint's delivery log.
func deliveries(t *testing.T, env *kilntest.Env, endpointID string) []map[string]any {
	t.Helper()
	var out struct {
		Data []map[string]any `json:"data"`
	}
	getJSON(t, env, "/webhook_endpoints/"+endpointID+"/deliveries?limit=100", &out)
	return out.Data
}

func getJSON(t *testing.T, env *kilntest.Env, path string, into any) {
	t.Helper()
	do(t, env, http.MethodGet, path, nil, http.StatusOK, into)
}

// do calls kiln's API with the test key and decodes the answer.
func do(t *testing.T, env *kilntest.Env, method, path string, body any, want int, into any) {
	t.Helper()
	kilntest.Call(t, env.Base(), env.Key, method, "/v1"+path, body, want, into)
}

// scrape reads kiln's Prometheus metrics.
func scrape(t *testing.T, env *kilntest.Env) string {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(env.URL, "/v1") + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestWebhookDelivery: a batch that completes is announced to the
// registered endpoint, signed so that openai-go's webhooks.Unwrap verifies
// it, in OpenAI's payload shape.
func TestWebhookDelivery(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env, c := webhookKiln(t, backend, nil)
			rc := newReceiver(t, nil)
			ep := newEndpoint(t, c, rc.URL+"/hooks")
			id := runBatch(t, c, 5, nil)
			b := kilntest.WaitBatch(t, c, id)
			require.Equal(t, openai.BatchStatusCompleted, b.Status)
			kilntest.Eventually(t, 30*time.Second, func() bool { return len(rc.requests()) == 1 }, "the webhook")

			got := rc.requests()[0]
			require.Equal(t, "/hooks", got.Path)
			ev, err := c.Webhooks.Unwrap(got.Body, got.Header, option.WithWebhookSecret(ep.SigningSecret))
			require.NoError(t, err)
			done := ev.AsBatchCompleted()
			require.Equal(t, id, done.Data.ID)
			require.Equal(t, "batch.completed", string(done.Type))
			require.Equal(t, ev.ID, got.Header.Get("webhook-id"))
			require.True(t, strings.HasPrefix(ev.ID, "evt_"))
			openaispec.MustValidate(t, "WebhookBatchCompleted", got.Body)

			// A wrong secret does not verify.
			_, err = c.Webhooks.Unwrap(got.Body, got.Header, option.WithWebhookSecret("whsec_"+strings.Repeat("A", 44)))
			require.Error(t, err)

			// The delivery log shows it, and the event is listed.
			kilntest.Eventually(t, 10*time.Second, func() bool {
				ds := deliveries(t, env, ep.ID)
				return len(ds) == 1 && ds[0]["status"] == "succeeded"
			}, "the delivery to be logged")
			var evs struct {
				Data []map[string]any `json:"data"`
			}
			getJSON(t, env, "/events?type=batch.completed", &evs)
			require.Len(t, evs.Data, 1)
			require.Equal(t, ev.ID, evs.Data[0]["id"])

			// The endpoint as the SDK manages it; the secret is not shown again.
			got2, err := c.Webhooks.Get(context.Background(), ep.ID)
			require.NoError(t, err)
			require.Equal(t, rc.URL+"/hooks", got2.URL)
			require.NotContains(t, got2.RawJSON(), ep.SigningSecret)
			require.Equal(t, ep.SigningSecretHint, got2.SigningSecretHint)
		})
	}
}

// TestWebhookRetriesKeepID: a receiver that fails three times and then
// succeeds gets exactly one successful delivery, every attempt with the
// same webhook-id and a valid signature.
func TestWebhookRetriesKeepID(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env, c := webhookKiln(t, backend, nil)
			rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n < 3 {
					http.Error(w, "not now", http.StatusServiceUnavailable)
				}
			})
			ep := newEndpoint(t, c, rc.URL)
			id := runBatch(t, c, 3, nil)
			kilntest.WaitBatch(t, c, id)
			kilntest.Eventually(t, 30*time.Second, func() bool {
				ds := deliveries(t, env, ep.ID)
				return len(ds) == 1 && ds[0]["status"] == "succeeded"
			}, "the delivery to succeed")
			reqs := rc.requests()
			require.Len(t, reqs, 4, "three failures and one success, nothing more")
			for _, r := range reqs {
				require.Equal(t, reqs[0].Header.Get("webhook-id"), r.Header.Get("webhook-id"))
				_, err := c.Webhooks.Unwrap(r.Body, r.Header, option.WithWebhookSecret(ep.SigningSecret))
				require.NoError(t, err)
			}
			d := deliveries(t, env, ep.ID)[0]
			metrics := scrape(t, env)
			require.Contains(t, metrics, `kiln_webhook_deliveries_total{outcome="retry"} 3`)
			require.Contains(t, metrics, `kiln_webhook_deliveries_total{outcome="succeeded"} 1`)
			require.EqualValues(t, 4, d["attempts"])
			require.EqualValues(t, 200, d["response_status"])
			require.Equal(t, reqs[0].Header.Get("webhook-id"), d["event_id"])
		})
	}
}

// TestWebhookBadReceivers: receivers that are down, slow, refuse, redirect,
// fail TLS or answer huge bodies get retries until the delivery's age runs
// out; then it is failed with the reason, and a redelivery once the
// receiver is fixed succeeds with the same webhook-id.
func TestWebhookBadReceivers(t *testing.T) {
	type fixture struct {
		name    string
		url     func(t *testing.T, fixed *atomic.Bool) string
		wantErr string
	}
	answer := func(bad func(w http.ResponseWriter, r *http.Request)) func(t *testing.T, fixed *atomic.Bool) string {
		return func(t *testing.T, fixed *atomic.Bool) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !fixed.Load() {
					bad(w, r)
				}
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}
	}
	block := make(chan struct{})
	cases := []fixture{
		{"4xx", answer(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "who are you", http.StatusUnauthorized) }), "receiver answered 401"},
		{"5xx", answer(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }), "receiver answered 500"},
		{"slow", answer(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}), "Client.Timeout"},
		{"redirect-to-private", answer(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
		}), "redirects are not followed"},
		{"huge-body", answer(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for range 64 { // 64 MiB, of which kiln keeps 1 KiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}), "receiver answered 502"},
		{"tls", func(t *testing.T, _ *atomic.Bool) string {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes kiln refuses
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return srv.URL // a certificate no one trusts
		}, "certificate"},
	}
	env, c := webhookKiln(t, "sqlite", func(c *config.Config) {
		c.WebhookTimeout = 300 * time.Millisecond
		c.WebhookMaxAge = 1500 * time.Millisecond
	})
	var fixed atomic.Bool
	type made struct {
		fixture
		ep *webhooks.WebhookEndpointWithSecret
	}
	var eps []made
	for _, tc := range cases {
		eps = append(eps, made{tc, newEndpoint(t, c, tc.url(t, &fixed))})
	}
	// Registered after the servers, so it runs before they close.
	t.Cleanup(func() { close(block) })
	// The down receiver: a port nothing listens on.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	eps = append(eps, made{fixture{name: "down", wantErr: "connection refused"}, newEndpoint(t, c, deadURL)})

	id := runBatch(t, c, 2, nil)
	kilntest.WaitBatch(t, c, id)
	for _, m := range eps {
		kilntest.Eventually(t, 30*time.Second, func() bool {
			ds := deliveries(t, env, m.ep.ID)
			return len(ds) == 1 && ds[0]["status"] == "failed"
		}, "%s: the delivery to fail", m.name)
		d := deliveries(t, env, m.ep.ID)[0]
		require.Contains(t, d["last_error"], m.wantErr, m.name)
		require.Greater(t, d["attempts"].(float64), 1.0, "%s: retried", m.name)
		if m.name == "huge-body" {
			require.LessOrEqual(t, len(d["response_body"].(string)), 1<<10+4)
		}
	}

	// Fixed, a redelivery succeeds with the same webhook-id.
	fixed.Store(true)
	m := eps[0]
	d := deliveries(t, env, m.ep.ID)[0]
	var again map[string]any
	do(t, env, http.MethodPost, fmt.Sprintf("/webhook_endpoints/%s/deliveries/%s/redeliver", m.ep.ID, d["id"]), nil, http.StatusOK, &again)
	require.Equal(t, "pending", again["status"])
	kilntest.Eventually(t, 30*time.Second, func() bool {
		return deliveries(t, env, m.ep.ID)[0]["status"] == "succeeded"
	}, "the redelivery")
	require.Equal(t, d["event_id"], deliveries(t, env, m.ep.ID)[0]["event_id"])
	// Redelivering a pending one is a conflict; an unknown one is 404.
	do(t, env, http.MethodPost, fmt.Sprintf("/webhook_endpoints/%s/deliveries/whdel_nope/redeliver", m.ep.ID), nil, http.StatusNotFound, nil)
}

// TestWebhookBatchURL: a batch's metadata webhook_url under a registered
// endpoint receives the batch's events signed with that endpoint's secret;
// one under no endpoint is refused at creation.
func TestWebhookBatchURL(t *testing.T) {
	_, c := webhookKiln(t, "sqlite", nil)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, c, rc.URL+"/aris", "file.created") // no batch events for the endpoint itself
	target := rc.URL + "/aris/batches/42?token=abc"
	id := runBatch(t, c, 2, map[string]string{"webhook_url": target})
	kilntest.WaitBatch(t, c, id)
	kilntest.Eventually(t, 30*time.Second, func() bool {
		for _, r := range rc.requests() {
			if r.Path == "/aris/batches/42" {
				return true
			}
		}
		return false
	}, "the batch's own webhook")
	for _, r := range rc.requests() {
		ev, err := c.Webhooks.Unwrap(r.Body, r.Header, option.WithWebhookSecret(ep.SigningSecret))
		require.NoError(t, err)
		if r.Path == "/aris/batches/42" {
			require.Equal(t, "batch.completed", ev.Type)
			require.Equal(t, id, ev.AsBatchCompleted().Data.ID)
		} else {
			require.Equal(t, "file.created", ev.Type, "the endpoint's own subscription")
		}
	}

	for _, bad := range []string{"http://127.0.0.1:1/elsewhere", rc.URL + "/arisx", "ftp://example.com/x", strings.Replace(rc.URL, "127.0.0.1", "localhost", 1) + "/aris"} {
		f, err := c.Files.New(context.Background(), openai.FileNewParams{File: openai.File(bytes.NewReader(kilntest.ChatLines(1, 0)), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
		require.NoError(t, err)
		_, err = c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"webhook_url": bad}})
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr, bad)
		require.Equal(t, http.StatusBadRequest, apiErr.StatusCode, bad)
		require.Contains(t, apiErr.Message, "webhook_url", bad)
	}
}

// TestWebhookEndpointsAPI: the endpoint management routes, as OpenAI's
// SDK calls them, and the SSRF guard at registration.
func TestWebhookEndpointsAPI(t *testing.T) {
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	c := env.Client()
	ctx := context.Background()
	for _, bad := range []string{"http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x", "http://169.254.169.254/", "http://10.1.2.3/", "file:///etc/passwd", "https://user:pw@example.com/"} {
		_, err := c.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: bad, Name: "x", EventTypes: []string{"batch.completed"}})
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr, bad)
		require.Equal(t, http.StatusBadRequest, apiErr.StatusCode, bad)
	}
	_, err := c.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: "https://aris.example.com/hooks", Name: "x", EventTypes: []string{"response.completed"}})
	require.Error(t, err, "an event type kiln never sends")

	ep, err := c.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: "https://aris.example.com/hooks", Name: "aris", EventTypes: []string{"batch.completed"}})
	require.NoError(t, err)
	list, err := c.Webhooks.List(ctx, webhooks.WebhookListParams{})
	require.NoError(t, err)
	require.Len(t, list.Data, 1)
	up, err := c.Webhooks.Update(ctx, ep.ID, webhooks.WebhookUpdateParams{Name: openai.String("aris prod"), EventTypes: []string{"batch.completed", "batch.failed"}})
	require.NoError(t, err)
	require.Equal(t, "aris prod", up.Name)
	require.Equal(t, []string{"batch.completed", "batch.failed"}, up.EventTypes)
	rot, err := c.Webhooks.RotateSecret(ctx, ep.ID, webhooks.WebhookRotateSecretParams{KeepOldSecretActiveFor24Hours: openai.Bool(true)})
	require.NoError(t, err)
	require.NotEqual(t, ep.SigningSecret, rot.SigningSecret)
	del, err := c.Webhooks.Delete(ctx, ep.ID)
	require.NoError(t, err)
	require.True(t, del.Deleted)
	_, err = c.Webhooks.Get(ctx, ep.ID)
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
}

// TestWebhookRotationSignsWithBoth: after a rotation that keeps the old
// secret, a delivery verifies with either secret; the test route sends a
// signed event at once.
func TestWebhookRotationSignsWithBoth(t *testing.T) {
	_, c := webhookKiln(t, "sqlite", nil)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, c, rc.URL)
	rot, err := c.Webhooks.RotateSecret(context.Background(), ep.ID, webhooks.WebhookRotateSecretParams{KeepOldSecretActiveFor24Hours: openai.Bool(true)})
	require.NoError(t, err)
	res, err := c.Webhooks.Test(context.Background(), ep.ID, webhooks.WebhookTestParams{EventType: "batch.completed"})
	require.NoError(t, err)
	require.True(t, res.Success)
	require.EqualValues(t, 200, res.StatusCode)
	got := rc.requests()
	require.Len(t, got, 1)
	for _, secret := range []string{ep.SigningSecret, rot.SigningSecret} {
		_, err := c.Webhooks.Unwrap(got[0].Body, got[0].Header, option.WithWebhookSecret(secret))
		require.NoError(t, err)
	}
}

// apiError is OpenAI's error envelope.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// TestWebhookURLRefusedAtRegistration: every spelling of a loopback,
// private or reserved address, a name that maps to one, an overlong host
// or URL, and a path that could escape its endpoint's are refused with 400
// naming url, when an endpoint is created or updated, and naming metadata
// as a batch's webhook_url. Nothing is resolved through DNS: every host
// here is numeric, localhost, or too long to be looked up.
func TestWebhookURLRefusedAtRegistration(t *testing.T) {
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	c := env.Client()
	ctx := context.Background()
	long := strings.Repeat("a", 63)
	refused := []struct{ name, url, wantErr string }{
		{"decimal", "http://2130706433/", "127.0.0.1"},
		{"hex", "http://0x7f000001/", "127.0.0.1"},
		{"hex-dotted", "http://0x7f.0.0.1/", "127.0.0.1"},
		{"octal", "http://0177.0.0.1/", "127.0.0.1"},
		{"short-2", "http://127.1/", "127.0.0.1"},
		{"short-3", "http://127.0.1/", "127.0.0.1"},
		{"mapped", "http://[::ffff:127.0.0.1]/", "127.0.0.1"},
		{"mapped-hex", "http://[::ffff:7f00:1]/", "127.0.0.1"},
		{"compatible", "http://[::127.0.0.1]/", "::7f00:1"},
		{"ipv6-loopback", "http://[::1]/", "::1"},
		{"localhost", "http://localhost/", "loopback"},
		{"localhost-dot", "http://LocalHost./", "loopback"},
		{"sub-localhost", "http://a.localhost/", "loopback"},
		{"benchmarking", "http://198.18.0.1/", "198.18.0.1"},
		{"benchmarking-top", "http://198.19.255.254/", "198.19.255.254"},
		{"reserved", "http://240.0.0.1/", "240.0.0.1"},
		{"this-network", "http://0.1.2.3/", "0.1.2.3"},
		{"cgnat", "http://100.64.0.1/", "100.64.0.1"},
		{"private-10", "http://10.0.0.1/", "10.0.0.1"},
		{"private-172", "http://172.16.0.1/", "172.16.0.1"},
		{"private-192", "http://192.168.1.1/", "192.168.1.1"},
		{"private-decimal", "http://3232235777/", "192.168.1.1"},
		{"metadata", "http://169.254.169.254/", "169.254.169.254"},
		{"ula", "http://[fd00::1]/", "fd00::1"},
		{"invalid-ipv4", "http://1.2.3.999/", "not a valid IPv4 address"},
		{"long-host", "https://" + strings.Join([]string{long, long, long, long}, ".") + "/x", "longer than 253 characters"},
		{"long-url", "https://aris.example.com/hooks/" + strings.Repeat("p", 2048), "longer than 2048 characters"},
		{"dot-segment", "https://aris.example.com/hooks/../admin", "dot segments"},
		{"encoded-dot-segment", "https://aris.example.com/hooks/%2E%2e/admin", "dot segments"},
		{"encoded-slash", "https://aris.example.com/hooks%2f..%2fadmin", "encoded slashes"},
		{"backslash", `https://aris.example.com/hooks/..\admin`, "backslashes"},
	}
	ep, err := c.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: "https://aris.example.com/hooks", Name: "aris", EventTypes: []string{"batch.completed"}})
	require.NoError(t, err)
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(kilntest.ChatLines(1, 0)), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	refusedAs := func(t *testing.T, method, path string, body any, param, wantErr string) {
		t.Helper()
		var got apiError
		do(t, env, method, path, body, http.StatusBadRequest, &got)
		require.NotNil(t, got.Error.Param)
		require.Equal(t, param, *got.Error.Param)
		require.Contains(t, got.Error.Message, wantErr)
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			refusedAs(t, http.MethodPost, "/webhook_endpoints", map[string]any{"url": tt.url, "event_types": []string{"batch.completed"}}, "url", tt.wantErr)
			refusedAs(t, http.MethodPost, "/webhook_endpoints/"+ep.ID, map[string]any{"url": tt.url}, "url", tt.wantErr)
			batchErr := tt.wantErr
			if len(tt.url) > 512 {
				batchErr = "at most 512 characters" // metadata's own limit comes first
			}
			refusedAs(t, http.MethodPost, "/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions",
				"completion_window": "24h", "metadata": map[string]string{"webhook_url": tt.url}}, "metadata", batchErr)
		})
	}
	got, err := c.Webhooks.Get(ctx, ep.ID)
	require.NoError(t, err)
	require.Equal(t, "https://aris.example.com/hooks", got.URL, "no refused update changed the endpoint")

	// Under the endpoint but for its dot segments: refused, not covered.
	for _, target := range []string{"https://aris.example.com/hooks/a/../../admin", "https://aris.example.com/hooks/%2e%2e/admin"} {
		refusedAs(t, http.MethodPost, "/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions",
			"completion_window": "24h", "metadata": map[string]string{"webhook_url": target}}, "metadata", "dot segments")
	}
}

// TestWebhookRefusedAtDialFailsAtOnce: a delivery the SSRF guard refuses
// when it connects (an endpoint registered while private addresses were
// allowed, or a name that now resolves to one) fails at its first attempt,
// with a reason naming the setting that would allow it, instead of being
// retried for a day; the receiver sees nothing.
func TestWebhookRefusedAtDialFailsAtOnce(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
				c.RetryBase = 20 * time.Millisecond
				c.RetryMax = 100 * time.Millisecond
			}})
			c := env.Client()
			rc := newReceiver(t, nil)
			// Stored as it was registered before: registration now refuses it.
			ep := store.WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint), URL: rc.URL + "/hooks", Name: "old", EventTypes: []string{"batch.completed"},
				Secret: functions.NewSecret(), CreatedAt: time.Now().Unix()}
			require.NoError(t, env.App.Store.WebhookEndpointCreate(context.Background(), ep))

			id := runBatch(t, c, 2, nil)
			require.Equal(t, openai.BatchStatusCompleted, kilntest.WaitBatch(t, c, id).Status)
			kilntest.Eventually(t, 30*time.Second, func() bool {
				ds := deliveries(t, env, ep.ID)
				return len(ds) == 1 && ds[0]["status"] == "failed"
			}, "the delivery to fail")
			d := deliveries(t, env, ep.ID)[0]
			require.EqualValues(t, 1, d["attempts"], "not retried")
			require.Contains(t, d["last_error"], "127.0.0.1 is not a public address")
			require.Contains(t, d["last_error"], "KILN_WEBHOOK_ALLOW_PRIVATE=true")
			require.Contains(t, scrape(t, env), `kiln_webhook_deliveries_total{outcome="failed"} 1`)
			require.NotContains(t, scrape(t, env), `kiln_webhook_deliveries_total{outcome="retry"}`)

			// The test route says the same at once.
			var res map[string]any
			do(t, env, http.MethodPost, "/webhook_endpoints/"+ep.ID+"/test", map[string]any{"event_type": "batch.completed"}, http.StatusOK, &res)
			require.Equal(t, false, res["success"])
			require.Contains(t, res["error"], "KILN_WEBHOOK_ALLOW_PRIVATE=true")
			require.Empty(t, rc.requests(), "nothing reached the receiver")
		})
	}
}

// TestWebhookManyAtOnce: deliveries sent at the same time, some failing
// once, have every attempt recorded (the attempts are written together):
// each delivery succeeds, after one attempt or, when its first answer was
// a 500, after two.
func TestWebhookManyAtOnce(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env, c := webhookKiln(t, backend, nil)
			var mu sync.Mutex
			seen := map[string]int{} // webhook-id → requests
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				id := r.Header.Get("webhook-id")
				mu.Lock()
				seen[id]++
				n := seen[id]
				mu.Unlock()
				// Every other event fails its first attempt.
				if n == 1 && id[len(id)-1]%2 == 0 {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			ep := newEndpoint(t, c, rc.URL, "batch.failed")
			const n = 60
			ctx := context.Background()
			for range n {
				at := time.Now()
				b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-none", CompletionWindow: "24h",
					Status: store.BatchValidating, CreatedAt: at.Unix(), ExpiresAt: at.Add(24 * time.Hour).Unix()}
				require.NoError(t, env.App.Store.BatchCreate(ctx, b))
				_, err := env.App.Store.BatchFail(ctx, b.ID, []store.BatchError{{Code: "test", Message: "failed by the test"}})
				require.NoError(t, err)
			}
			var ds []store.Delivery
			kilntest.Eventually(t, time.Minute, func() bool {
				var err error
				ds, _, err = env.App.Store.DeliveryList(ctx, ep.ID, store.DeliverySucceeded, "", n)
				require.NoError(t, err)
				return len(ds) == n
			}, "every delivery to succeed")
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				want := int64(1)
				if d.EventID[len(d.EventID)-1]%2 == 0 {
					want = 2
				}
				require.Equal(t, want, d.Attempts, "delivery %s", d.ID)
				require.Equal(t, int(want), seen[d.EventID], "requests for %s", d.EventID)
				require.Equal(t, int64(http.StatusNoContent), d.ResponseStatus)
				require.NotNil(t, d.DeliveredAt)
			}
		})
	}
}
