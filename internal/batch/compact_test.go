package batch_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

// TestCompacts: a finished shard enqueues compaction only for a batch whose
// lines, at the least an output line takes, fill two pieces; a small
// batch's finalize composes its chunks without it.
func TestCompacts(t *testing.T) {
	t.Parallel()
	env := batchtest.New(t, batchtest.Backends[0], batch.Limits{})
	pieceLines := int64(batch.PieceBytesDefault / 256)
	require.False(t, env.Batches.Compacts(store.Batch{Total: 100}))
	require.False(t, env.Batches.Compacts(store.Batch{Total: 2*pieceLines - 1}))
	require.True(t, env.Batches.Compacts(store.Batch{Total: 2 * pieceLines}))
	require.True(t, env.Batches.Compacts(store.Batch{Total: 1_000_000}))
	env.Batches.SetPieceBytes(1 << 10)
	require.True(t, env.Batches.Compacts(store.Batch{Total: 8}), "smaller pieces, smaller batches")
	require.False(t, env.Batches.Compacts(store.Batch{Total: 7}))
}
