package batch_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

// TestCompacts: a finished shard enqueues compaction for a batch whose
// lines, at the size an output line usually takes, fill a piece; pieces
// are PieceBytesDefault for a batch sure to fill two of them at the least
// an output line takes, and S3's least part (5 MiB) for a smaller one, so
// that its first piece forms while much of it still runs. A small batch's
// finalize composes its chunks without compaction.
func TestCompacts(t *testing.T) {
	t.Parallel()
	env := batchtest.New(t, batchtest.Backends[0], batch.Limits{})
	const small = 5 << 20
	largeLines := int64(2 * batch.PieceBytesDefault / 256)
	require.False(t, env.Batches.Compacts(store.Batch{Total: 100}))
	require.False(t, env.Batches.Compacts(store.Batch{Total: small/512 - 1}))
	require.True(t, env.Batches.Compacts(store.Batch{Total: small / 512}))
	require.Equal(t, int64(small), env.Batches.PieceBytesFor(store.Batch{Total: small / 512}))
	require.Equal(t, int64(small), env.Batches.PieceBytesFor(store.Batch{Total: largeLines - 1}))
	require.Equal(t, int64(batch.PieceBytesDefault), env.Batches.PieceBytesFor(store.Batch{Total: largeLines}))
	require.True(t, env.Batches.Compacts(store.Batch{Total: 1_000_000}))
	env.Batches.SetPieceBytes(1 << 10)
	require.Equal(t, int64(1<<10), env.Batches.PieceBytesFor(store.Batch{Total: 2}), "tests' pieces are smaller still")
	require.True(t, env.Batches.Compacts(store.Batch{Total: 2}), "smaller pieces, smaller batches")
	require.False(t, env.Batches.Compacts(store.Batch{Total: 1}))
}
