package faulttest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/webhooks"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// TestWebhookAfterCrash kills `kiln serve` with SIGKILL while it delivers
// a batch's webhook (the batch is completed and committed, the receiver
// holds the request), then starts it again: the webhook is delivered after
// the restart, once, with the same webhook-id, and verifies.
func TestWebhookAfterCrash(t *testing.T) {
	t.Parallel()
	bin := kilntest.KilnBinary(t)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testWebhookAfterCrash(t, bin, backend)
		})
	}
}

func testWebhookAfterCrash(t *testing.T, bin, backend string) {
	objects := "file://" + filepath.Join(t.TempDir(), "objects")
	if backend == "postgres" {
		objects = testenv.S3URL(t)
	}
	port := testenv.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	const key = "sk-kiln-webhook-crash"
	env := append(testenv.EnvironWithout("KILN_"),
		"KILN_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"KILN_DATABASE_URL="+storetest.URL(t, backend),
		"KILN_OBJECT_STORE="+objects,
		"KILN_API_KEY="+key,
		"KILN_AGENT=on",
		"KILN_WEBHOOK_ALLOW_PRIVATE=true",
		"KILN_RETRY_BASE=50ms",
		"KILN_RETRY_MAX=200ms",
		"KILN_LEASE_TTL=2s",
		"KILN_POLL_INTERVAL=20ms",
		"KILN_METRICS_ADDR=127.0.0.1:0",
		"KILN_LOG_LEVEL=debug",
	)
	starts := 0
	start := func() *testenv.Process {
		starts++
		logPath := filepath.Join(t.TempDir(), fmt.Sprintf("serve-%d.log", starts))
		logFile, err := os.Create(logPath)
		require.NoError(t, err)
		i := starts
		t.Cleanup(func() {
			logFile.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("kiln serve %d's log:\n%s", i, out)
			}
		})
		cmd := exec.Command(bin, "serve")
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logFile, logFile
		p := testenv.StartProcess(t, cmd)
		poll(t, "kiln serve answers", func() (bool, error) {
			resp, err := http.Get(base + "/healthz")
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
		return p
	}

	// The receiver holds its first request until kiln dies under it, then
	// answers every later one at once.
	type got struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var reqs []got
	first := make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		n := len(reqs)
		reqs = append(reqs, got{header: r.Header.Clone(), body: body})
		mu.Unlock()
		if n == 0 {
			close(first)
			<-r.Context().Done() // kiln is killed: the connection drops
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)

	serve := start()
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ep, err := c.Webhooks.New(context.Background(), webhooks.WebhookNewParams{URL: rc.URL, Name: "aris", EventTypes: []string{"batch.completed"}})
	require.NoError(t, err)
	id := createBatch(t, c, 3)
	<-first
	b, err := c.Batches.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, b.Status, "the state change is committed before its webhook")
	serve.Kill(t)

	start()
	poll(t, "the webhook after the restart", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(reqs) >= 2, nil
	})
	// Let the delivery be recorded, then nothing more may arrive.
	poll(t, "the delivery recorded", func() (bool, error) {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/webhook_endpoints/"+ep.ID+"/deliveries", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && containsAll(string(body), `"status":"succeeded"`, `"attempts":`), nil
	})
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, reqs, 2, "one cut by the crash, one delivered")
	for _, r := range reqs {
		require.Equal(t, reqs[0].header.Get("webhook-id"), r.header.Get("webhook-id"), "the retry is the same message")
		ev, err := c.Webhooks.Unwrap(r.body, r.header, option.WithWebhookSecret(ep.SigningSecret))
		require.NoError(t, err)
		require.Equal(t, id, ev.AsBatchCompleted().Data.ID)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
