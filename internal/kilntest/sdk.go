package kilntest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
