package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testChunks(t *testing.T, setup setupFunc) {
	t.Run("CommitAndList", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 3, 3)
		_, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		_, _, err = tb.st.ShardClaim(tb.ctx, "m", "b", time.Minute, 0)
		require.NoError(t, err)
		// Committed out of order, listed by shard and sequence.
		commits := []struct {
			owner string
			c     store.Chunk
		}{
			{"b", store.Chunk{BatchID: b.ID, Shard: 1, Seq: 0, ObjectKey: "s1-0", OutputLines: 3, InputTokens: 1, OutputTokens: 2,
				CachedTokens: 1, ReasoningTokens: 2, OutputBytes: 30, ErrorBytes: 0, CreatedAt: 7}},
			{"a", store.Chunk{BatchID: b.ID, Shard: 0, Seq: 1, ObjectKey: "s0-1", OutputLines: 1, ErrorLines: 1, InputTokens: 10, OutputTokens: 5,
				CachedTokens: 4, ReasoningTokens: 3}},
			{"a", store.Chunk{BatchID: b.ID, Shard: 0, Seq: 0, ObjectKey: "s0-0", OutputLines: 1}},
		}
		for _, c := range commits {
			require.NoError(t, tb.st.ChunkCommit(tb.ctx, c.owner, c.c))
		}
		chunks, err := tb.st.ChunkList(tb.ctx, b.ID, -1)
		require.NoError(t, err)
		var keys []string
		for _, c := range chunks {
			keys = append(keys, c.ObjectKey)
		}
		require.Equal(t, []string{"s0-0", "s0-1", "s1-0"}, keys)
		want := commits[0].c
		want.Ord = 1 // committed first
		require.Equal(t, want, chunks[2])
		require.EqualValues(t, []int64{3, 2}, []int64{chunks[0].Ord, chunks[1].Ord}, "ordinals follow the order of commit")
		require.InDelta(t, time.Now().Unix(), chunks[0].CreatedAt, 60, "a chunk without a creation time is created now")
		chunks, err = tb.st.ChunkList(tb.ctx, b.ID, 0)
		require.NoError(t, err)
		require.Len(t, chunks, 2)

		// Page by page, in the same order: two, then the last, then none.
		page, err := tb.st.ChunkListAfter(tb.ctx, b.ID, -1, -1, 2)
		require.NoError(t, err)
		require.Len(t, page, 2)
		require.Equal(t, []string{"s0-0", "s0-1"}, []string{page[0].ObjectKey, page[1].ObjectKey})
		page, err = tb.st.ChunkListAfter(tb.ctx, b.ID, page[1].Shard, page[1].Seq, 2)
		require.NoError(t, err)
		require.Equal(t, []store.Chunk{want}, page)
		page, err = tb.st.ChunkListAfter(tb.ctx, b.ID, 1, 0, 2)
		require.NoError(t, err)
		require.Empty(t, page)
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, []int64{5, 1, 11, 7, 5, 5}, []int64{got.Completed, got.Failed, got.InputTokens, got.OutputTokens,
			got.CachedTokens, got.ReasoningTokens})

		// A retried commit changes nothing, even with other counts.
		retry := commits[0].c
		retry.OutputLines = 100
		require.NoError(t, tb.st.ChunkCommit(tb.ctx, "b", retry))
		got, err = tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, 5, got.Completed)

		require.ErrorIs(t, tb.st.ChunkCommit(tb.ctx, "a", store.Chunk{BatchID: b.ID, Shard: 9, ObjectKey: "k"}), store.ErrNotFound, "no such shard")
		none, err := tb.st.ChunkList(tb.ctx, "batch_nope", -1)
		require.NoError(t, err)
		require.Empty(t, none)
	})

	// Chunks take their batch's ordinals in the order they commit, with no
	// gaps, even when several agents commit at once; ChunksAfter lists
	// those above a reader's last, so that a reader tailing them never
	// skips one.
	t.Run("OrdinalsAndChunksAfter", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		const shards, perShard = 4, 10
		b := startBatch(t, tb, "m", perShard, perShard, perShard, perShard)
		for i := range shards {
			_, _, err := tb.st.ShardClaim(tb.ctx, "m", string(rune('a'+i)), time.Minute, 0)
			require.NoError(t, err)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		reader := make(chan []int64)
		go func() { // a reader tailing as the chunks commit
			var got []int64
			last := int64(0)
			for done := false; !done; {
				select {
				case <-stop:
					done = true
				default:
				}
				cs, err := tb.st.ChunksAfter(tb.ctx, b.ID, last)
				if err != nil {
					panic(err)
				}
				for _, c := range cs {
					got = append(got, c.Ord)
					last = c.Ord
				}
			}
			reader <- got
		}()
		for i := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range perShard {
					c := store.Chunk{BatchID: b.ID, Shard: int64(i), Seq: int64(seq), ObjectKey: "k", OutputLines: 1}
					if err := tb.st.ChunkCommit(tb.ctx, string(rune('a'+i)), c); err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		got := <-reader
		all, err := tb.st.ChunksAfter(tb.ctx, b.ID, 0)
		require.NoError(t, err)
		require.Len(t, all, shards*perShard)
		for i, c := range all {
			require.EqualValues(t, i+1, c.Ord, "ordinals are dense, from 1")
		}
		require.Len(t, got, shards*perShard, "the tailing reader saw every chunk")
		for i, o := range got {
			require.EqualValues(t, i+1, o, "and in order, none skipped")
		}
		tail, err := tb.st.ChunksAfter(tb.ctx, b.ID, shards*perShard-2)
		require.NoError(t, err)
		require.Len(t, tail, 2)
	})

	// WaitResults wakes when a chunk commits. The waiter may start waiting
	// after a commit, so chunks keep committing until it wakes.
	t.Run("WaitResults", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 1)
		_, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		woke := make(chan struct{})
		go func() {
			tb.st.WaitResults(tb.ctx, time.Hour)
			close(woke)
		}()
		for seq := int64(0); ; seq++ {
			select {
			case <-woke:
				return
			default:
			}
			require.NoError(t, tb.st.ChunkCommit(tb.ctx, "a", store.Chunk{BatchID: b.ID, Shard: 0, Seq: seq, ObjectKey: "k"}))
		}
	})

	// An agent whose lease ran out while the database was out of reach,
	// and which nobody took over, still holds its shard; once the batch
	// has ended, its chunk changes neither the chunks nor the counts the
	// finalizer made. (Found by TestChaos, seed 977006241: a cancelled
	// batch said 100 completed, its output file held 50.)
	t.Run("AfterTheBatchEnded", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 2, 2)
		_, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		require.NoError(t, tb.st.ChunkCommit(tb.ctx, "a", store.Chunk{BatchID: b.ID, Shard: 0, Seq: 0, ObjectKey: "k0", OutputLines: 1}))
		_, err = tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopCancelled)
		require.NoError(t, err)
		_, err = tb.st.BatchComplete(tb.ctx, b.ID, store.Outcome{Completed: 1, Failed: 1})
		require.NoError(t, err)
		err = tb.st.ChunkCommit(tb.ctx, "a", store.Chunk{BatchID: b.ID, Shard: 0, Seq: 1, ObjectKey: "k1", OutputLines: 1})
		require.ErrorIs(t, err, store.ErrConflict)
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, []int64{1, 1}, []int64{got.Completed, got.Failed})
		chunks, err := tb.st.ChunkList(tb.ctx, b.ID, -1)
		require.NoError(t, err)
		require.Len(t, chunks, 1)
	})

	t.Run("ConcurrentCommits", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		_, err := tb.st.BatchStart(tb.ctx, b.ID, 20, "m", []store.Shard{{FirstLine: 1, LastLine: 20, Requests: 20}})
		require.NoError(t, err)
		_, _, err = tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				require.NoError(t, tb.st.ChunkCommit(tb.ctx, "a", store.Chunk{BatchID: b.ID, Seq: int64(i), ObjectKey: "k", OutputLines: 1}))
			}()
		}
		wg.Wait()
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, 20, got.Completed)
	})
}
