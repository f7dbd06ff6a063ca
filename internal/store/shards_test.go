package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testShards(t *testing.T, setup setupFunc) {
	t.Run("ClaimOrder", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		start := func(priority int64) string {
			b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "f", CompletionWindow: "24h",
				Status: store.BatchValidating, CreatedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix(), Priority: priority}
			require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
			_, err := tb.st.BatchStart(tb.ctx, b.ID, 1, "m", []store.Shard{{FirstLine: 1, LastLine: 1, Requests: 1}})
			require.NoError(t, err)
			return b.ID
		}
		low := start(0)
		lowShards, err := tb.st.ShardList(tb.ctx, low)
		require.NoError(t, err)
		for time.Now().UnixMilli() <= lowShards[0].ReadyAt {
			// the next batch becomes ready at a later millisecond
		}
		high := start(5)
		sh, b, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		require.Equal(t, high, sh.BatchID, "higher priority first")
		require.Equal(t, high, b.ID, "the claim returns the shard's batch")
		require.EqualValues(t, 5, sh.Priority)
		require.NoError(t, tb.st.ShardRelease(tb.ctx, high, 0, "a"))
		// Once the low-priority shard waited past the starvation bound, it
		// goes first.
		sh, _, err = tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, lowShards[0].ReadyAt+1)
		require.NoError(t, err)
		require.Equal(t, low, sh.BatchID, "starving work first")
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 2, 3)
		shards, err := tb.st.ShardList(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Len(t, shards, 2)
		readyAt := shards[0].ReadyAt
		require.InDelta(t, time.Now().UnixMilli(), readyAt, 60_000)
		require.Equal(t, []store.Shard{
			{BatchID: b.ID, Idx: 0, Model: "m", FirstLine: 1, LastLine: 2, Offset: 0, Requests: 2, Status: store.ShardPending, ReadyAt: readyAt},
			{BatchID: b.ID, Idx: 1, Model: "m", FirstLine: 3, LastLine: 5, Offset: 200, Requests: 3, Status: store.ShardPending, ReadyAt: readyAt},
		}, shards)

		sh, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		shards, err = tb.st.ShardList(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, store.ShardRunning, shards[0].Status)
		require.Equal(t, "a", shards[0].LeaseOwner)
		require.Equal(t, sh.LeaseExpiresAt, shards[0].LeaseExpiresAt)
		require.EqualValues(t, 1, shards[0].Claims)

		none, err := tb.st.ShardList(tb.ctx, "batch_nope")
		require.NoError(t, err)
		require.Empty(t, none)
	})

	t.Run("Backlog", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		backlog, err := tb.st.ShardBacklog(tb.ctx)
		require.NoError(t, err)
		require.Empty(t, backlog)
		requireWaiting(t, tb, backlog)

		startBatch(t, tb, "b-model", 4)
		startBatch(t, tb, "a-model", 1, 2)
		high := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "f", CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: 1, ExpiresAt: 2, Priority: 9}
		require.NoError(t, tb.st.BatchCreate(tb.ctx, high))
		_, err = tb.st.BatchStart(tb.ctx, high.ID, 5, "a-model", []store.Shard{{FirstLine: 1, LastLine: 5, Requests: 5}})
		require.NoError(t, err)
		stopping := startBatch(t, tb, "a-model", 100)
		_, err = tb.st.BatchRequestStop(tb.ctx, stopping.ID, store.StopExpired)
		require.NoError(t, err)
		// A running shard is not waiting.
		running := startBatch(t, tb, "c-model", 7)
		_, _, err = tb.st.ShardClaim(tb.ctx, "c-model", "agent", time.Minute, 0)
		require.NoError(t, err)

		backlog, err = tb.st.ShardBacklog(tb.ctx)
		require.NoError(t, err)
		requireWaiting(t, tb, backlog)
		require.Len(t, backlog, 2, "models in order, without stopping batches or running shards")
		require.Equal(t, "a-model", backlog[0].Model)
		require.EqualValues(t, 3, backlog[0].Shards)
		require.EqualValues(t, 8, backlog[0].Requests)
		require.EqualValues(t, 9, backlog[0].Priority)
		require.Equal(t, "b-model", backlog[1].Model)
		require.EqualValues(t, 1, backlog[1].Shards)
		require.EqualValues(t, 4, backlog[1].Requests)
		require.LessOrEqual(t, backlog[1].OldestReadyAt, backlog[0].OldestReadyAt, "b-model's work started first")

		// A released shard waits again.
		require.NoError(t, tb.st.ShardRelease(tb.ctx, running.ID, 0, "agent"))
		backlog, err = tb.st.ShardBacklog(tb.ctx)
		require.NoError(t, err)
		requireWaiting(t, tb, backlog)
		require.Len(t, backlog, 3)
		require.Equal(t, "c-model", backlog[2].Model)
	})

	t.Run("LeaseRunsOut", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 1)
		// A lease whose time has passed is claimable again.
		_, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", -time.Second, 0)
		require.NoError(t, err)
		live, err := tb.st.BatchLeasesLive(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Zero(t, live, "an expired lease is not live")
		sh, _, err := tb.st.ShardClaim(tb.ctx, "m", "b", time.Minute, 0)
		require.NoError(t, err)
		require.Equal(t, "b", sh.LeaseOwner)
		require.EqualValues(t, 2, sh.Claims)
		live, err = tb.st.BatchLeasesLive(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, 1, live)

		// The first agent lost the shard: it renews, commits and finishes
		// nothing, and its release leaves the new lease alone.
		_, err = tb.st.ShardRenew(tb.ctx, b.ID, 0, "a", time.Minute)
		require.ErrorIs(t, err, store.ErrConflict)
		require.ErrorIs(t, tb.st.ChunkCommit(tb.ctx, "a", store.Chunk{BatchID: b.ID, Seq: 0, ObjectKey: "k"}), store.ErrConflict)
		_, err = tb.st.ShardFinish(tb.ctx, b.ID, 0, "a", nil)
		require.ErrorIs(t, err, store.ErrConflict)
		require.NoError(t, tb.st.ShardRelease(tb.ctx, b.ID, 0, "a"))
		shards, err := tb.st.ShardList(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, "b", shards[0].LeaseOwner)
		require.Equal(t, store.ShardRunning, shards[0].Status)
	})

	t.Run("RenewExtendsLease", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 1)
		sh, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Second, 0)
		require.NoError(t, err)
		got, err := tb.st.ShardRenew(tb.ctx, b.ID, 0, "a", time.Hour)
		require.NoError(t, err)
		require.Equal(t, b.ID, got.ID)
		require.Empty(t, got.StopReason)
		shards, err := tb.st.ShardList(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Greater(t, shards[0].LeaseExpiresAt, sh.LeaseExpiresAt+30*60*1000)

		// The renewal tells the agent that its batch stops.
		_, err = tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopCancelled)
		require.NoError(t, err)
		got, err = tb.st.ShardRenew(tb.ctx, b.ID, 0, "a", time.Hour)
		require.NoError(t, err)
		require.Equal(t, store.StopCancelled, got.StopReason)
		_, err = tb.st.ShardRenew(tb.ctx, b.ID, 5, "a", time.Hour)
		require.ErrorIs(t, err, store.ErrConflict, "no such shard")
	})

	t.Run("FinishStoppingBatch", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := startBatch(t, tb, "m", 1)
		_, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		_, err = tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopCancelled)
		require.NoError(t, err)
		// The last shard of a stopping batch leaves it to its finalizer.
		got, err := tb.st.ShardFinish(tb.ctx, b.ID, 0, "a", nil)
		require.NoError(t, err)
		require.Equal(t, store.BatchCancelling, got.Status)
		require.EqualValues(t, 1, got.ShardsDone)
		require.Nil(t, got.FinalizingAt)
	})

	t.Run("WaitShards", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// A context that ends ends the wait.
		ctx, cancel := context.WithCancel(tb.ctx)
		cancel()
		start := time.Now()
		tb.st.WaitShards(ctx, time.Minute)
		require.Less(t, time.Since(start), 10*time.Second)

		// A batch that starts wakes the waiters: in this process at once,
		// on both backends (and from other processes through LISTEN on
		// Postgres). The waiter may not wait yet when a batch starts: start
		// batches until one wakes it.
		woke := make(chan time.Duration, 1)
		waitCtx := t.Context()
		go func() {
			start := time.Now()
			tb.st.WaitShards(waitCtx, time.Minute)
			woke <- time.Since(start)
		}()
		deadline := time.After(30 * time.Second)
		for {
			startBatch(t, tb, "m", 1)
			select {
			case waited := <-woke:
				require.Less(t, waited, 30*time.Second)
				return
			case <-deadline:
				t.Fatal("a started batch did not wake the waiter")
			case <-time.After(50 * time.Millisecond):
			}
		}
	})

	testShardClaimOrder(t, setup)
}

// requireWaiting checks that ShardWaiting lists the models of backlog, with
// their priority and time ready, uncounted.
func requireWaiting(t *testing.T, tb *testBundle, backlog []store.Backlog) {
	t.Helper()
	waiting, err := tb.st.ShardWaiting(tb.ctx)
	require.NoError(t, err)
	var want []store.Backlog
	for _, b := range backlog {
		want = append(want, store.Backlog{Model: b.Model, OldestReadyAt: b.OldestReadyAt, Priority: b.Priority})
	}
	require.Equal(t, want, waiting)
}
