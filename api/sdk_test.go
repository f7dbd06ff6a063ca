package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/openaispec"
)

func sdkClient(env *kilntest.Env) openai.Client { return env.Client() }

// chatLines makes n chat requests; every badEvery-th one lacks messages, so
// the model server answers 400 and the line goes to the error file.
func chatLines(n, badEvery int) []byte { return kilntest.ChatLines(n, badEvery) }

// waitBatch polls until the batch reaches a terminal status.
func waitBatch(t *testing.T, c openai.Client, id string) *openai.Batch {
	return kilntest.WaitBatch(t, c, id)
}

// pause spaces out polls of a condition that has a deadline.
func pause(d time.Duration) { <-time.After(d) }

// resultLines downloads a result file and returns its lines parsed.
func resultLines(t *testing.T, c openai.Client, fileID string) []map[string]any {
	return kilntest.ResultLines(t, c, fileID)
}

// requireExactlyOnce checks the batch invariant: output lines + error lines
// == total, and every custom_id of the input appears exactly once.
func requireExactlyOnce(t *testing.T, b *openai.Batch, n int, outputs, errs []map[string]any) {
	t.Helper()
	require.EqualValues(t, n, b.RequestCounts.Total)
	require.EqualValues(t, len(outputs), b.RequestCounts.Completed)
	require.EqualValues(t, len(errs), b.RequestCounts.Failed)
	seen := map[string]int{}
	for _, l := range append(append([]map[string]any{}, outputs...), errs...) {
		seen[l["custom_id"].(string)]++
	}
	require.Len(t, seen, n)
	for i := range n {
		require.Equal(t, 1, seen[fmt.Sprintf("req-%d", i)], "req-%d", i)
	}
}

// TestSDKEndToEnd drives kiln with the official OpenAI Go SDK: upload,
// create, poll to completed, download both files.
func TestSDKEndToEnd(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			c := sdkClient(env)
			ctx := context.Background()
			const n = 300
			f, err := c.Files.New(ctx, openai.FileNewParams{
				File:    openai.File(bytes.NewReader(chatLines(n, 10)), "requests.jsonl", "application/jsonl"),
				Purpose: openai.FilePurposeBatch,
			})
			require.NoError(t, err)
			require.Equal(t, "requests.jsonl", f.Filename)
			openaispec.MustValidate(t, "OpenAIFile", []byte(f.RawJSON()))

			b, err := c.Batches.New(ctx, openai.BatchNewParams{
				InputFileID:      f.ID,
				Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
				CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
				Metadata:         map[string]string{"job": "e2e"},
			})
			require.NoError(t, err)
			require.Equal(t, openai.BatchStatusValidating, b.Status)
			openaispec.MustValidate(t, "Batch", []byte(b.RawJSON()))

			b = waitBatch(t, c, b.ID)
			require.Equal(t, openai.BatchStatusCompleted, b.Status, "errors: %v", b.Errors)
			openaispec.MustValidate(t, "Batch", []byte(b.RawJSON()))
			require.Equal(t, "sim-model", b.Model)
			require.Equal(t, "e2e", b.Metadata["job"])
			require.NotZero(t, b.CompletedAt)
			require.NotZero(t, b.InProgressAt)
			require.NotZero(t, b.FinalizingAt)
			require.Positive(t, b.Usage.InputTokens)
			require.Positive(t, b.Usage.OutputTokens)
			require.Equal(t, b.Usage.InputTokens+b.Usage.OutputTokens, b.Usage.TotalTokens)

			outputs := resultLines(t, c, b.OutputFileID)
			errs := resultLines(t, c, b.ErrorFileID)
			requireExactlyOnce(t, b, n, outputs, errs)
			require.Len(t, errs, n/10)
			for _, l := range outputs {
				resp := l["response"].(map[string]any)
				require.EqualValues(t, 200, resp["status_code"])
				require.Equal(t, "chat.completion", resp["body"].(map[string]any)["object"])
				require.Nil(t, l["error"])
			}
			for _, l := range errs {
				require.EqualValues(t, 400, l["response"].(map[string]any)["status_code"])
			}

			// The output file is listed and its metadata is right.
			out, err := c.Files.Get(ctx, b.OutputFileID)
			require.NoError(t, err)
			require.Equal(t, openai.FileObjectPurposeBatchOutput, out.Purpose)
			page, err := c.Batches.List(ctx, openai.BatchListParams{})
			require.NoError(t, err)
			require.Equal(t, b.ID, page.Data[0].ID)
			openaispec.MustValidate(t, "ListBatchesResponse", []byte(page.RawJSON()))

			// Deleting the input file removes it.
			del, err := c.Files.Delete(ctx, f.ID)
			require.NoError(t, err)
			require.True(t, del.Deleted)
			_, err = c.Files.Get(ctx, f.ID)
			var apiErr *openai.Error
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, 404, apiErr.StatusCode)
			_ = io.Discard
		})
	}
}
