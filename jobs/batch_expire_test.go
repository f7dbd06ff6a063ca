package jobs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/store"
)

func TestBatchExpireWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			expire := &BatchExpireWorker{d: tb.deps}
			finalize := &BatchFinalizeWorker{d: tb.deps}

			t.Run("a running batch stops, keeps its results and ends expired", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines("expiring-model", 4))
				require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
				require.NoError(t, expire.Work(tb.ctx, job(batch.ExpireArgs{BatchID: b.ID})))
				b, err := tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.StopExpired, b.StopReason)
				require.False(t, b.Terminal())

				require.NoError(t, finalize.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})))
				b, err = tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchExpired, b.Status)
				require.EqualValues(t, 4, b.Failed)
				require.Equal(t, 4, strings.Count(tb.ReadFile(t, *b.ErrorFileID), batchline.CodeBatchExpired))
			})
			t.Run("a batch that ended in time is left alone", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines("done-model", 1))
				require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
				tb.RunShards(t, "done-model", nil)
				require.NoError(t, finalize.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})))
				require.NoError(t, expire.Work(tb.ctx, job(batch.ExpireArgs{BatchID: b.ID})))
				b, err := tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCompleted, b.Status)
				require.Empty(t, b.StopReason)
			})
			t.Run("an unknown batch is no error", func(t *testing.T) {
				require.NoError(t, expire.Work(tb.ctx, job(batch.ExpireArgs{BatchID: "batch_gone"})))
			})
		})
	}
}
