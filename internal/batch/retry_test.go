package batch_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

func requireAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	e, ok := apierror.As(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, status, e.Status, e.Message)
	require.Equal(t, code, e.Code, e.Message)
}

// TestRetry: a retry is a new batch of the failed requests, copied from the
// input file as they were, filtered by code, naming its batch; its lineage
// counts each request once. What cannot be retried says why. Both
// backends.
func TestRetry(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env := batchtest.New(t, backend, batch.Limits{ShardSize: 4})
			input := batchtest.ChatLines("m", 12)
			b := env.CreateBatch(t, input)
			_, err := env.Batches.Retry(ctx, b.ID, batch.RetryParams{})
			requireAPIError(t, err, 409, "batch_not_retryable")

			require.NoError(t, env.Batches.Validate(ctx, b.ID))
			// Lines 1-4 run, 3 of them fail (request_failed); the rest is
			// cancelled (batch_cancelled).
			require.Equal(t, 1, env.RunShardsUpTo(t, "m", 1, func(line int) bool { return line == 1 }))
			_, err = env.Batches.Cancel(ctx, b.ID)
			require.NoError(t, err)
			require.NoError(t, env.Batches.Finalize(ctx, b.ID))

			_, err = env.Batches.Retry(ctx, b.ID, batch.RetryParams{Codes: []string{"5xx"}})
			requireAPIError(t, err, 400, "nothing_to_retry")
			require.Contains(t, err.Error(), "batch_cancelled (8), request_failed (3)")
			_, err = env.Batches.Retry(ctx, b.ID, batch.RetryParams{Codes: []string{""}})
			requireAPIError(t, err, 400, "")

			retry, err := env.Batches.Retry(ctx, b.ID, batch.RetryParams{Codes: []string{"batch_cancelled"}, Metadata: map[string]string{"k": "v"}})
			require.NoError(t, err)
			require.Equal(t, map[string]string{"k": "v", "retry_of": b.ID}, retry.Metadata)
			require.Equal(t, b.ID, retry.RetryOf)
			in, err := env.Store.FileGet(ctx, retry.InputFileID)
			require.NoError(t, err)
			require.Equal(t, "in_retry.jsonl", in.Filename)
			want := strings.Join(splitLines(input)[4:], "\n") + "\n"
			require.Equal(t, want, env.ReadFile(t, retry.InputFileID), "the cancelled requests, byte for byte")

			_, err = env.Batches.Retry(ctx, b.ID, batch.RetryParams{})
			requireAPIError(t, err, 409, "batch_already_retried")
			require.Contains(t, err.Error(), retry.ID)

			require.NoError(t, env.Batches.Validate(ctx, retry.ID))
			env.RunShards(t, "m", func(line int) bool { return line != 8 })
			require.NoError(t, env.Batches.Finalize(ctx, retry.ID))

			for _, id := range []string{b.ID, retry.ID} {
				l, err := env.Batches.Lineage(ctx, id)
				require.NoError(t, err)
				require.Len(t, l.Batches, 2)
				require.Equal(t, b.ID, l.Batches[0].ID)
				require.Equal(t, retry.ID, l.Batches[1].ID)
				// 1 succeeded first, 7 of the 8 retried; 3 failed and were
				// not retried, 1 failed in the retry.
				require.EqualValues(t, []int64{12, 8, 4}, []int64{l.Total, l.Completed, l.Failed})
			}

			// Nothing failed; failed validation.
			ok := env.CreateBatch(t, batchtest.ChatLines("m", 2))
			require.NoError(t, env.Batches.Validate(ctx, ok.ID))
			env.RunShards(t, "m", nil)
			require.NoError(t, env.Batches.Finalize(ctx, ok.ID))
			_, err = env.Batches.Retry(ctx, ok.ID, batch.RetryParams{})
			requireAPIError(t, err, 400, "nothing_to_retry")
			bad := env.CreateBatch(t, `{"custom_id":"a"}`+"\n")
			require.NoError(t, env.Batches.Validate(ctx, bad.ID))
			_, err = env.Batches.Retry(ctx, bad.ID, batch.RetryParams{})
			requireAPIError(t, err, 400, "nothing_to_retry")
			require.Contains(t, err.Error(), "failed validation")

			got, err := env.Store.BatchGet(ctx, b.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchCancelled, got.Status, "the retried batch is untouched")
		})
	}
}
