// Package faulttest_test breaks kiln's dependencies in the middle of a
// batch (the agent process, the database, the object store, the engine)
// and checks that the batch still ends with every request exactly once.
package faulttest_test

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

	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// model is the model every request asks for; every simulator serves it.
const model = "sim-model"

// slowSim holds each request 60ms on 16 sequences, about 270 requests a
// second: a batch of a few hundred runs for seconds, long enough to break
// something in its middle.
func slowSim() *llmsim.Config {
	return &llmsim.Config{Models: []string{model}, MaxNumSeqs: 16, TTFT: 20 * time.Millisecond, TPOT: 2 * time.Millisecond, OutputTokens: 20}
}

// waitFor bounds every wait of these tests; none should come near it.
const waitFor = 2 * time.Minute

func client(env *kilntest.Env) openai.Client {
	return openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(env.Key), option.WithMaxRetries(0))
}

// chatLines makes n chat requests req-0 … req-(n-1); request i says
// "number i", so a simulator can tell which line it was sent. Their
// lengths vary, so that they do not finish in step.
func chatLines(n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("req-%d", i), "method": "POST", "url": "/v1/chat/completions",
			"body": map[string]any{"model": model, "max_tokens": 5 + i*7%16,
				"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("Say hello to number %d", i)}}}})
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// lineOf returns the input line (from 1) of a request body chatLines made.
func lineOf(body []byte) (int, bool) {
	var req struct {
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
		return 0, false
	}
	var i int
	if _, err := fmt.Sscanf(req.Messages[0].Content, "Say hello to number %d", &i); err != nil {
		return 0, false
	}
	return i + 1, true
}

func createBatch(t *testing.T, c openai.Client, n int) string {
	t.Helper()
	ctx := context.Background()
	f, err := c.Files.New(ctx, openai.FileNewParams{
		File: openai.File(bytes.NewReader(chatLines(n)), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch,
	})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{
		InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	require.NoError(t, err)
	return b.ID
}

// poll calls cond until it is true, failing t after waitFor. cond may fail
// for a while (a server is down); the last error is in the failure.
func poll(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (last error: %v)", what, waitFor, err)
		}
		<-time.After(10 * time.Millisecond)
	}
}

func terminal(s openai.BatchStatus) bool {
	switch s {
	case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
		return true
	}
	return false
}

// waitProgress waits until at least n requests of the batch are done, as
// request_counts say, riding out API errors while a service is down.
func waitProgress(t *testing.T, c openai.Client, id string, n int64) {
	t.Helper()
	poll(t, fmt.Sprintf("batch %s: %d requests done", id, n), func() (bool, error) {
		b, err := c.Batches.Get(context.Background(), id)
		if err != nil {
			return false, err
		}
		require.False(t, terminal(b.Status), "batch %s ended (%s) before %d requests were done", id, b.Status, n)
		return b.RequestCounts.Completed+b.RequestCounts.Failed >= n, nil
	})
}

// waitBatch waits until the batch ends, riding out API errors.
func waitBatch(t *testing.T, c openai.Client, id string) *openai.Batch {
	t.Helper()
	var b *openai.Batch
	poll(t, "batch "+id+" ends", func() (bool, error) {
		var err error
		b, err = c.Batches.Get(context.Background(), id)
		return err == nil && terminal(b.Status), err
	})
	return b
}

// resultLines downloads a result file and returns its lines parsed.
func resultLines(t *testing.T, c openai.Client, fileID string) []map[string]any {
	return kilntest.ResultLines(t, c, fileID)
}

// requireCompleted checks that the batch completed with every request
// answered by the model, and the batch invariant: output lines + error
// lines == request_counts.total, and every custom_id exactly once.
func requireCompleted(t *testing.T, c openai.Client, b *openai.Batch, n int) {
	t.Helper()
	require.Equal(t, openai.BatchStatusCompleted, b.Status, "errors: %v", b.Errors)
	outputs, errs := resultLines(t, c, b.OutputFileID), resultLines(t, c, b.ErrorFileID)
	require.EqualValues(t, n, b.RequestCounts.Total)
	require.EqualValues(t, len(outputs), b.RequestCounts.Completed)
	require.EqualValues(t, len(errs), b.RequestCounts.Failed)
	require.Equal(t, n, len(outputs)+len(errs))
	seen := map[string]int{}
	for _, l := range append(outputs, errs...) {
		seen[l["custom_id"].(string)]++
	}
	for i := range n {
		require.Equal(t, 1, seen[fmt.Sprintf("req-%d", i)], "req-%d", i)
	}
	// The faults are ours, not the requests': none may fail for them.
	require.Empty(t, errs, "error lines, the first: %v", first(errs))
	for _, l := range outputs {
		require.EqualValues(t, 200, l["response"].(map[string]any)["status_code"])
	}
}

func first(lines []map[string]any) any {
	if len(lines) == 0 {
		return nil
	}
	return lines[0]
}

// durableLines returns the lines of the batch with a committed result chunk.
func durableLines(t *testing.T, env *kilntest.Env, id string) batchline.Bitmap {
	t.Helper()
	ctx := context.Background()
	chunks, err := env.App.Store.ChunkList(ctx, id, -1)
	require.NoError(t, err)
	var done batchline.Bitmap
	for _, c := range chunks {
		rc, err := env.App.Bucket.Get(ctx, c.ObjectKey)
		require.NoError(t, err)
		err = batchline.ReadRecords(rc, func(r batchline.Record) error { done.Set(r.Line); return nil })
		rc.Close()
		require.NoError(t, err)
	}
	return done
}
