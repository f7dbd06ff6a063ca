package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testPieces(t *testing.T, setup setupFunc) {
	t.Run("DoneShardsChunksAndPieces", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 1, 1, 1, 1)
		var shards []store.Shard
		for _, owner := range []string{"a", "b", "c"} {
			sh, _, err := tb.st.ShardClaim(tb.ctx, "m", owner, time.Minute, 0)
			require.NoError(t, err)
			shards = append(shards, sh)
			for seq := range int64(2) {
				require.NoError(t, tb.st.ChunkCommit(tb.ctx, owner, store.Chunk{BatchID: b.ID, Shard: sh.Idx, Seq: seq,
					ObjectKey: owner + string(rune('0'+seq)), OutputLines: 1, OutputBytes: 10}))
			}
		}
		// Shards 0 and 2 finish; 1 still runs, 3 waits.
		for _, i := range []int{0, 2} {
			_, err := tb.st.ShardFinish(tb.ctx, b.ID, shards[i].Idx, []string{"a", "b", "c"}[i], nil)
			require.NoError(t, err)
		}
		done, err := tb.st.ShardsDoneFrom(tb.ctx, b.ID, 0, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{0}, done, "up to the first shard not done")
		done, err = tb.st.ShardsDoneFrom(tb.ctx, b.ID, 2, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{2}, done)
		_, err = tb.st.ShardFinish(tb.ctx, b.ID, shards[1].Idx, "b", nil)
		require.NoError(t, err)
		done, err = tb.st.ShardsDoneFrom(tb.ctx, b.ID, 0, 2)
		require.NoError(t, err)
		require.Equal(t, []int64{0, 1}, done, "at most limit")

		chunks, err := tb.st.ChunksOfShards(tb.ctx, b.ID, 1, 2)
		require.NoError(t, err)
		var keys []string
		for _, c := range chunks {
			keys = append(keys, c.ObjectKey)
		}
		require.Equal(t, []string{"b0", "b1", "c0", "c1"}, keys, "in order of shard and sequence")

		p := store.Piece{BatchID: b.ID, FirstShard: 0, LastShard: 1, Chunks: 4, IndexKey: "p.idx", OutputKey: "p.out", OutputBytes: 40}
		made, err := tb.st.PieceCreate(tb.ctx, p)
		require.NoError(t, err)
		require.True(t, made)
		again := p
		again.OutputKey = "other.out"
		made, err = tb.st.PieceCreate(tb.ctx, again)
		require.NoError(t, err)
		require.False(t, made, "a piece starting at the same shard exists")
		second := store.Piece{BatchID: b.ID, FirstShard: 2, LastShard: 2, Chunks: 2, IndexKey: "q.idx", OutputKey: "q.out", OutputBytes: 20,
			ErrorKey: "q.err", ErrorBytes: 5}
		made, err = tb.st.PieceCreate(tb.ctx, second)
		require.NoError(t, err)
		require.True(t, made)
		list, err := tb.st.PieceList(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.InDelta(t, time.Now().Unix(), list[0].CreatedAt, 60)
		list[0].CreatedAt, list[1].CreatedAt = 0, 0
		require.Equal(t, []store.Piece{p, second}, list)
		none, err := tb.st.PieceList(tb.ctx, "batch_none")
		require.NoError(t, err)
		require.Empty(t, none)
	})
}
