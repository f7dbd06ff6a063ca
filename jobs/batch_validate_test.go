package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func TestBatchValidateWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			w := &BatchValidateWorker{d: tb.deps}

			t.Run("valid input starts the batch with its shards", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines(model, 5))
				require.NoError(t, w.Work(tb.ctx, job(batch.ValidateArgs{BatchID: b.ID})))
				b, err := tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchInProgress, b.Status)
				require.EqualValues(t, 5, b.Total)
				require.Equal(t, model, b.Model)
				require.EqualValues(t, 3, b.ShardsTotal) // shards of 2
			})
			t.Run("a bad line fails the batch naming the line", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines(model, 2)+"{\"custom_id\": 7}\n")
				require.NoError(t, w.Work(tb.ctx, job(batch.ValidateArgs{BatchID: b.ID})))
				b, err := tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchFailed, b.Status)
				require.NotEmpty(t, b.Errors)
				require.NotNil(t, b.Errors[0].Line)
				require.Equal(t, 3, *b.Errors[0].Line)
			})
			t.Run("a missing input file fails the batch, not the job", func(t *testing.T) {
				b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-gone", CompletionWindow: "24h",
					Status: store.BatchValidating, CreatedAt: 1, ExpiresAt: 2}
				require.NoError(t, tb.Store.BatchCreate(tb.ctx, b))
				require.NoError(t, w.Work(tb.ctx, job(batch.ValidateArgs{BatchID: b.ID})))
				b, err := tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchFailed, b.Status)
				require.Equal(t, "file_not_found", b.Errors[0].Code)
			})
			t.Run("a batch no longer validating is left alone", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines(model, 1))
				_, err := tb.Batches.Cancel(tb.ctx, b.ID)
				require.NoError(t, err)
				require.NoError(t, w.Work(tb.ctx, job(batch.ValidateArgs{BatchID: b.ID})))
				b, err = tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCancelling, b.Status)
				require.Nil(t, b.InProgressAt)
			})
			t.Run("an unknown batch is no error", func(t *testing.T) {
				require.NoError(t, w.Work(tb.ctx, job(batch.ValidateArgs{BatchID: "batch_gone"})))
			})
		})
	}
}
