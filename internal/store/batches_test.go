package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testBatches(t *testing.T, setup setupFunc) {
	// A retry names its batch; a batch is retried once.
	t.Run("Retry", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		orig := newBatch(t, tb)
		_, err := tb.st.BatchRetry(tb.ctx, orig.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		retry := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-y", CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix(), RetryOf: orig.ID}
		require.NoError(t, tb.st.BatchCreate(tb.ctx, retry))
		got, err := tb.st.BatchRetry(tb.ctx, orig.ID)
		require.NoError(t, err)
		require.Equal(t, retry.ID, got.ID)
		require.Equal(t, orig.ID, got.RetryOf)
		again := retry
		again.ID, again.InputFileID = ids.New(ids.Batch), ids.New(ids.File)
		f := store.File{ID: again.InputFileID, Purpose: "batch", Filename: "retry.jsonl", ObjectKey: "files/x", Bytes: 1,
			Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
		require.ErrorIs(t, tb.st.BatchCreateWithInput(tb.ctx, f, again), store.ErrConflict, "a second retry of one batch")
		_, err = tb.st.BatchGet(tb.ctx, again.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "and nothing of it is kept")
		_, err = tb.st.FileGet(tb.ctx, f.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "not even its input file")
		other := again
		other.ID, other.RetryOf = ids.New(ids.Batch), ""
		require.NoError(t, tb.st.BatchCreateWithInput(tb.ctx, f, other))
		got, err = tb.st.BatchGet(tb.ctx, other.ID)
		require.NoError(t, err)
		require.Equal(t, f.ID, got.InputFileID)
		_, err = tb.st.FileGet(tb.ctx, f.ID)
		require.NoError(t, err)
	})

	t.Run("Statuses", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		running, cancelled := newBatch(t, tb), newBatch(t, tb)
		_, err := tb.st.BatchRequestStop(tb.ctx, cancelled.ID, store.StopCancelled)
		require.NoError(t, err)
		_, err = tb.st.BatchComplete(tb.ctx, cancelled.ID, store.Outcome{})
		require.NoError(t, err)

		got, err := tb.st.BatchStatuses(tb.ctx, []string{running.ID, cancelled.ID, "batch_never"})
		require.NoError(t, err)
		require.Equal(t, map[string]store.BatchStatus{running.ID: store.BatchValidating, cancelled.ID: store.BatchCancelled}, got)
		got, err = tb.st.BatchStatuses(tb.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"k": "v"}, got.Metadata)
		require.Equal(t, store.BatchValidating, got.Status)

		shards := []store.Shard{{FirstLine: 1, LastLine: 2, Offset: 0, Requests: 2}, {FirstLine: 3, LastLine: 3, Offset: 40, Requests: 1}}
		got, err = tb.st.BatchStart(tb.ctx, b.ID, 3, "m", shards)
		require.NoError(t, err)
		require.Equal(t, store.BatchInProgress, got.Status)
		require.EqualValues(t, 3, got.Total)
		require.EqualValues(t, 2, got.ShardsTotal)
		require.NotNil(t, got.InProgressAt)
		listed, err := tb.st.ShardList(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Len(t, listed, 2)
		for i, sh := range listed {
			require.Equal(t, store.Shard{BatchID: b.ID, Idx: int64(i), Model: "m", FirstLine: shards[i].FirstLine, LastLine: shards[i].LastLine,
				Offset: shards[i].Offset, Requests: shards[i].Requests, Status: store.ShardPending, ReadyAt: sh.ReadyAt}, sh, "shard %d", i)
			require.Positive(t, sh.ReadyAt)
		}
		_, err = tb.st.BatchStart(tb.ctx, b.ID, 3, "m", shards)
		require.ErrorIs(t, err, store.ErrConflict)

		backlog, err := tb.st.ShardBacklog(tb.ctx)
		require.NoError(t, err)
		require.Len(t, backlog, 1)
		require.Equal(t, store.Backlog{Model: "m", Shards: 2, Requests: 3, OldestReadyAt: backlog[0].OldestReadyAt}, backlog[0])

		// Agents claim shards one by one, in order, under leases.
		sh0, _, err := tb.st.ShardClaim(tb.ctx, "m", "a1", time.Minute, 0)
		require.NoError(t, err)
		require.EqualValues(t, 0, sh0.Idx)
		require.EqualValues(t, 1, sh0.Claims)
		sh1, _, err := tb.st.ShardClaim(tb.ctx, "m", "a2", time.Minute, 0)
		require.NoError(t, err)
		require.EqualValues(t, 1, sh1.Idx)
		require.EqualValues(t, 40, sh1.Offset)
		_, _, err = tb.st.ShardClaim(tb.ctx, "m", "a3", time.Minute, 0)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, _, err = tb.st.ShardClaim(tb.ctx, "other", "a3", time.Minute, 0)
		require.ErrorIs(t, err, store.ErrNotFound)
		live, err := tb.st.BatchLeasesLive(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, 2, live)

		// Only the lease holder commits chunks; commits are idempotent.
		c := store.Chunk{BatchID: b.ID, Shard: 0, Seq: 0, ObjectKey: "k0", OutputLines: 2, ErrorLines: 0, InputTokens: 10, OutputTokens: 20}
		require.NoError(t, tb.st.ChunkCommit(tb.ctx, "a1", c))
		require.NoError(t, tb.st.ChunkCommit(tb.ctx, "a1", c))
		require.ErrorIs(t, tb.st.ChunkCommit(tb.ctx, "a2", store.Chunk{BatchID: b.ID, Shard: 0, Seq: 1, ObjectKey: "k1"}), store.ErrConflict)
		require.NoError(t, tb.st.ChunkCommit(tb.ctx, "a2", store.Chunk{BatchID: b.ID, Shard: 1, Seq: 0, ObjectKey: "k2", ErrorLines: 1}))
		got, err = tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, []int64{2, 1, 10, 20}, []int64{got.Completed, got.Failed, got.InputTokens, got.OutputTokens})
		chunks, err := tb.st.ChunkList(tb.ctx, b.ID, -1)
		require.NoError(t, err)
		require.Len(t, chunks, 2)
		chunks, err = tb.st.ChunkList(tb.ctx, b.ID, 1)
		require.NoError(t, err)
		require.Equal(t, "k2", chunks[0].ObjectKey)

		_, err = tb.st.ShardRenew(tb.ctx, b.ID, 0, "a2", time.Minute)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.ShardRenew(tb.ctx, b.ID, 0, "a1", time.Minute)
		require.NoError(t, err)
		got, err = tb.st.ShardFinish(tb.ctx, b.ID, 0, "a1", nil)
		require.NoError(t, err)
		require.Equal(t, store.BatchInProgress, got.Status)
		_, err = tb.st.ShardFinish(tb.ctx, b.ID, 0, "a1", nil)
		require.ErrorIs(t, err, store.ErrConflict)
		// A released shard waits again; the next claim takes it over.
		require.NoError(t, tb.st.ShardRelease(tb.ctx, b.ID, 1, "a2"))
		sh1, _, err = tb.st.ShardClaim(tb.ctx, "m", "a3", time.Minute, 0)
		require.NoError(t, err)
		require.EqualValues(t, 2, sh1.Claims)
		got, err = tb.st.ShardFinish(tb.ctx, b.ID, 1, "a3", nil)
		require.NoError(t, err)
		require.Equal(t, store.BatchFinalizing, got.Status, "the last shard ends the run")
		require.NotNil(t, got.FinalizingAt)
		live, err = tb.st.BatchLeasesLive(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Zero(t, live)

		out := &store.File{ID: ids.New(ids.File), Purpose: "batch_output", Filename: "o", Bytes: 5, ObjectKey: "files/o", Status: store.FileProcessed, CreatedAt: 1}
		got, err = tb.st.BatchComplete(tb.ctx, b.ID, store.Outcome{Output: out, Completed: 2, Failed: 1})
		require.NoError(t, err)
		require.Equal(t, store.BatchCompleted, got.Status)
		require.Equal(t, out.ID, *got.OutputFileID)
		require.Nil(t, got.ErrorFileID)
		require.NotNil(t, got.CompletedAt)
		_, err = tb.st.FileGet(tb.ctx, out.ID)
		require.NoError(t, err)

		_, err = tb.st.BatchComplete(tb.ctx, b.ID, store.Outcome{})
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopCancelled)
		require.ErrorIs(t, err, store.ErrConflict)
	})

	t.Run("StopReasons", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		got, err := tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopCancelled)
		require.NoError(t, err)
		require.Equal(t, store.BatchCancelling, got.Status)
		// The first reason stays.
		got, err = tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopExpired)
		require.NoError(t, err)
		require.Equal(t, store.StopCancelled, got.StopReason)
		_, err = tb.st.BatchStart(tb.ctx, b.ID, 1, "m", nil)
		require.ErrorIs(t, err, store.ErrConflict)
		got, err = tb.st.BatchComplete(tb.ctx, b.ID, store.Outcome{})
		require.NoError(t, err)
		require.Equal(t, store.BatchCancelled, got.Status)
		require.NotNil(t, got.CancelledAt)

		e := newBatch(t, tb)
		_, err = tb.st.BatchStart(tb.ctx, e.ID, 1, "m", []store.Shard{{FirstLine: 1, LastLine: 1, Requests: 1}})
		require.NoError(t, err)
		_, _, err = tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		got, err = tb.st.BatchRequestStop(tb.ctx, e.ID, store.StopExpired)
		require.NoError(t, err)
		require.Equal(t, store.BatchInProgress, got.Status)
		// A stopping batch's shards are not claimed.
		require.NoError(t, tb.st.ShardRelease(tb.ctx, e.ID, 0, "a"))
		_, _, err = tb.st.ShardClaim(tb.ctx, "m", "b", time.Minute, 0)
		require.ErrorIs(t, err, store.ErrNotFound)
		got, err = tb.st.BatchComplete(tb.ctx, e.ID, store.Outcome{})
		require.NoError(t, err)
		require.Equal(t, store.BatchExpired, got.Status)
		require.NotNil(t, got.ExpiredAt)

		f := newBatch(t, tb)
		line := 3
		got, err = tb.st.BatchFail(tb.ctx, f.ID, []store.BatchError{{Code: "invalid_json_line", Message: "bad", Line: &line}})
		require.NoError(t, err)
		require.Equal(t, store.BatchFailed, got.Status)
		require.Equal(t, 3, *got.Errors[0].Line)

		// Each terminal status is an event, once.
		require.Equal(t, []string{b.ID}, eventsOf(t, tb, store.EventBatchCancelled))
		require.Equal(t, []string{e.ID}, eventsOf(t, tb, store.EventBatchExpired))
		require.Equal(t, []string{f.ID}, eventsOf(t, tb, store.EventBatchFailed))
	})

	t.Run("Fail", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		param := "input_file_id"
		got, err := tb.st.BatchFail(tb.ctx, b.ID, []store.BatchError{{Code: "a", Message: "first"}, {Code: "b", Message: "second", Param: &param}})
		require.NoError(t, err)
		require.Equal(t, store.BatchFailed, got.Status)
		require.NotNil(t, got.FailedAt)
		require.True(t, got.Terminal())
		require.Equal(t, []store.BatchError{{Code: "a", Message: "first"}, {Code: "b", Message: "second", Param: &param}}, got.Errors)
		_, err = tb.st.BatchFail(tb.ctx, b.ID, nil)
		require.ErrorIs(t, err, store.ErrConflict, "only a validating batch fails")
		started := startBatch(t, tb, "m", 1)
		_, err = tb.st.BatchFail(tb.ctx, started.ID, nil)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.BatchFail(tb.ctx, "batch_nope", nil)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("FailWithModel", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		got, err := tb.st.BatchFailWith(tb.ctx, b.ID, "m", []store.BatchError{{Code: "mismatched_model", Message: "two models"}})
		require.NoError(t, err)
		require.Equal(t, store.BatchFailed, got.Status)
		require.Equal(t, "m", got.Model)
		got, err = tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, "m", got.Model)
		// An empty model keeps the batch's.
		c := newBatch(t, tb)
		got, err = tb.st.BatchFailWith(tb.ctx, c.ID, "", nil)
		require.NoError(t, err)
		require.Equal(t, c.Model, got.Model)
	})

	t.Run("CompleteWithErrorFile", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		// A batch that had nothing to run completes from validating.
		errs := &store.File{ID: ids.New(ids.File), Purpose: "batch_output", Filename: "e", Bytes: 5, ObjectKey: "files/e", Status: store.FileProcessed, CreatedAt: 1}
		got, err := tb.st.BatchComplete(tb.ctx, b.ID, store.Outcome{Errors: errs, Failed: 4})
		require.NoError(t, err)
		require.Equal(t, store.BatchCompleted, got.Status)
		require.Nil(t, got.OutputFileID)
		require.Equal(t, errs.ID, *got.ErrorFileID)
		require.EqualValues(t, 4, got.Failed)
		require.NotNil(t, got.FinalizingAt, "finalizing is passed through")
		require.Equal(t, *got.CompletedAt, *got.FinalizingAt)
		require.Equal(t, []string{b.ID}, eventsOf(t, tb, store.EventBatchCompleted))
		require.Equal(t, []string{errs.ID}, eventsOf(t, tb, store.EventFileCreated))
		_, err = tb.st.BatchComplete(tb.ctx, "batch_nope", store.Outcome{})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("StartConquest", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		got, err := tb.st.BatchStartConquest(tb.ctx, b.ID, 1, "m", store.Conquest{Type: "email", Version: 2},
			[]store.Shard{{FirstLine: 1, LastLine: 1, Requests: 1}})
		require.NoError(t, err)
		require.Equal(t, store.BatchInProgress, got.Status)
		require.Equal(t, "m", got.Model)
		require.Equal(t, store.Conquest{Type: "email", Version: 2}, got.Conquest)
		shards, err := tb.st.ShardList(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Len(t, shards, 1)

		// A type named at creation stays.
		named := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "f", CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: 1, ExpiresAt: 2, Conquest: store.Conquest{Type: "named", Version: 1}}
		require.NoError(t, tb.st.BatchCreate(tb.ctx, named))
		got, err = tb.st.BatchStartConquest(tb.ctx, named.ID, 0, "m", store.Conquest{Type: "other", Version: 5}, nil)
		require.NoError(t, err)
		require.Equal(t, store.Conquest{Type: "named", Version: 1}, got.Conquest)
		_, err = tb.st.BatchStartConquest(tb.ctx, named.ID, 0, "m", store.Conquest{Type: "other", Version: 5}, nil)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.BatchStartConquest(tb.ctx, "batch_nope", 0, "m", store.Conquest{}, nil)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("GetUnknown", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		_, err := tb.st.BatchGet(tb.ctx, "batch_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.BatchStart(tb.ctx, "batch_nope", 1, "m", nil)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.BatchRequestStop(tb.ctx, "batch_nope", store.StopCancelled)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		var made []string
		for range 3 {
			made = append(made, newBatch(t, tb).ID)
		}
		page, more, err := tb.st.BatchList(tb.ctx, "", "", 2)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, made[2], page[0].ID)
		require.Equal(t, made[1], page[1].ID)
		page, more, err = tb.st.BatchList(tb.ctx, "", made[1], 2)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, page, 1)
		require.Equal(t, made[0], page[0].ID)
	})

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		terminal := map[store.BatchStatus]bool{
			store.BatchValidating: false, store.BatchInProgress: false, store.BatchFinalizing: false, store.BatchCancelling: false,
			store.BatchFailed: true, store.BatchCompleted: true, store.BatchExpired: true, store.BatchCancelled: true,
		}
		for status, want := range terminal {
			require.Equal(t, want, status.Terminal(), status)
			require.Equal(t, want, store.Batch{Status: status}.Terminal(), status)
		}
	})

	t.Run("StateAndJobCommitTogether", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := startWorkers(t, tb)

		// A failed state change leaves no job: the duplicate ID rolls back
		// the job inserted before it.
		b := newBatch(t, tb, noopJob("first"))
		err := tb.st.BatchCreate(tb.ctx, store.Batch{ID: b.ID, Status: "validating"}, noopJob("rolled-back"))
		require.Error(t, err)
		newBatch(t, tb, noopJob("second"))
		require.ElementsMatch(t, []string{"first", "second"}, w.wait(t, 2))
		require.Empty(t, w.got)
	})

	t.Run("TransitionJobs", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := startWorkers(t, tb)
		b := newBatch(t, tb)
		_, err := tb.st.BatchStart(tb.ctx, b.ID, 1, "m", []store.Shard{{FirstLine: 1, LastLine: 1, Requests: 1}}, noopJob("start"))
		require.NoError(t, err)
		require.Equal(t, []string{"start"}, w.wait(t, 1))
		_, err = tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopCancelled, noopJob("stop"))
		require.NoError(t, err)
		require.Equal(t, []string{"stop"}, w.wait(t, 1))
		_, err = tb.st.BatchComplete(tb.ctx, b.ID, store.Outcome{}, noopJob("complete"))
		require.NoError(t, err)
		require.Equal(t, []string{"complete"}, w.wait(t, 1))

		// A transition that conflicts enqueues nothing.
		_, err = tb.st.BatchComplete(context.Background(), b.ID, store.Outcome{}, noopJob("conflict"))
		require.ErrorIs(t, err, store.ErrConflict)
		require.NoError(t, tb.st.Enqueue(tb.ctx, noopJob("after")))
		require.Equal(t, []string{"after"}, w.wait(t, 1), "the conflicting transition's job never ran")
	})
}
