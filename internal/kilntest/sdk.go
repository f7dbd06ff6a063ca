package kilntest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"
)

// Client is an OpenAI SDK client of the kiln, without retries.
func (e *Env) Client() openai.Client {
	return openai.NewClient(option.WithBaseURL(e.URL+"/"), option.WithAPIKey(e.Key), option.WithMaxRetries(0))
}

// ChatLines makes n chat requests for sim-model with custom_ids req-0,
// req-1, ...; every badEvery-th one lacks messages, so the model server
// answers 400 and the line goes to the error file (0: none).
func ChatLines(n, badEvery int) []byte {
	var buf bytes.Buffer
	for i := range n {
		body := map[string]any{"model": "sim-model", "messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("Say hello to number %d", i)}}, "max_tokens": 16}
		if badEvery > 0 && i%badEvery == badEvery-1 {
			delete(body, "messages")
		}
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("req-%d", i), "method": "POST", "url": "/v1/chat/completions", "body": body})
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// WaitBatch polls until the batch reaches a terminal status, for up to
// two minutes.
func WaitBatch(t testing.TB, c openai.Client, id string) *openai.Batch {
	t.Helper()
	var b *openai.Batch
	Eventually(t, 2*time.Minute, func() bool {
		var err error
		b, err = c.Batches.Get(context.Background(), id)
		require.NoError(t, err)
		switch b.Status {
		case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
			return true
		}
		return false
	}, "batch %s to end", id)
	return b
}

// Eventually polls cond every 20ms until it holds, and fails the test if it
// does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for "+what, append([]any{timeout}, args...)...)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// Base is the kiln's root URL, without /v1.
func (e *Env) Base() string { return strings.TrimSuffix(e.URL, "/v1") }

// Metric reads one sample of the kiln's /metrics, as its line names it
// (a name, with its labels if it has any); 0 when absent.
func (e *Env) Metric(t testing.TB, sample string) float64 {
	t.Helper()
	resp, err := http.Get(e.Base() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

// Call calls a kiln at base (its root URL) with token as the bearer: body
// is sent as JSON, or as JSONL when it is []byte. It fails the test unless
// the answer has status want, and decodes the answer into into when not
// nil.
func Call(t testing.TB, base, token, method, path string, body any, want int, into any) {
	t.Helper()
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, contentType = bytes.NewReader(b), "application/jsonl"
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, raw)
	if into != nil {
		require.NoError(t, json.Unmarshal(raw, into), string(raw))
	}
}
