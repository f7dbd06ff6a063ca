package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

// TestBatchCompactWorker: the worker compacts a running batch, and leaves
// alone one that has ended its run or does not exist. Pieces themselves are
// tested in internal/batch (TestFinalize/pieces): here a finished shard's
// few bytes are less than a piece.
func TestBatchCompactWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			w := &BatchCompactWorker{d: tb.deps}
			const m = "compact-model"
			b := tb.CreateBatch(t, batchtest.ChatLines(m, 6))
			require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
			tb.RunShardsUpTo(t, m, 1, func(int) bool { return true })
			b, err := tb.Store.BatchGet(tb.ctx, b.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchInProgress, b.Status)

			require.NoError(t, w.Work(tb.ctx, job(batch.CompactArgs{BatchID: b.ID})))
			pieces, err := tb.Store.PieceList(tb.ctx, b.ID)
			require.NoError(t, err)
			require.Empty(t, pieces, "one small shard is less than a piece")

			tb.RunShards(t, m, func(int) bool { return true })
			require.NoError(t, w.Work(tb.ctx, job(batch.CompactArgs{BatchID: b.ID})), "a finalizing batch is left alone")
			require.NoError(t, w.Work(tb.ctx, job(batch.CompactArgs{BatchID: "batch_none"})))
		})
	}
}
