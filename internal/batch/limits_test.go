package batch_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/store"
)

// TestEnqueuedTokenLimit: a batch that would take its project's enqueued
// input tokens past batch_1_day_max_input_tokens fails validation with
// token_limit_exceeded, as OpenAI's does; once the earlier batches end, the
// next one goes through. Both backends.
func TestEnqueuedTokenLimit(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := batchtest.New(t, backend, batch.Limits{})
			ctx := context.Background()
			const model = "limited-model"
			input := batchtest.ChatLines(model, 10)
			perBatch := int64(0) // the estimate of one such batch
			for _, line := range splitLines(input) {
				perBatch += (int64(len(bodyOf(t, line))) + batchline.BytesPerToken - 1) / batchline.BytesPerToken
			}
			// Room for one batch, not two.
			_, err := env.Store.RateLimitPut(ctx, store.RateLimit{ID: "rl_test", ProjectID: store.DefaultProject, Model: model,
				Batch1DayMaxInputTokens: perBatch*2 - 1})
			require.NoError(t, err)

			first := env.CreateBatch(t, input)
			require.NoError(t, env.Batches.Validate(ctx, first.ID))
			first, err = env.Store.BatchGet(ctx, first.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchInProgress, first.Status)

			second := env.CreateBatch(t, input)
			require.NoError(t, env.Batches.Validate(ctx, second.ID))
			second, err = env.Store.BatchGet(ctx, second.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchFailed, second.Status)
			require.Equal(t, "token_limit_exceeded", second.Errors[0].Code)

			// Another model of the project is not held back.
			other := env.CreateBatch(t, batchtest.ChatLines("other-model", 10))
			require.NoError(t, env.Batches.Validate(ctx, other.ID))
			other, err = env.Store.BatchGet(ctx, other.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchInProgress, other.Status)

			// The first batch ends: the next one goes through.
			env.RunShards(t, model, nil)
			require.NoError(t, env.Batches.Finalize(ctx, first.ID))
			third := env.CreateBatch(t, input)
			require.NoError(t, env.Batches.Validate(ctx, third.ID))
			third, err = env.Store.BatchGet(ctx, third.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchInProgress, third.Status)
		})
	}
}
