package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

type noopArgs struct {
	BatchID string `json:"batch_id"`
}

func (noopArgs) Kind() string { return "storetest_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	got chan string
}

func (w *noopWorker) Work(_ context.Context, j *river.Job[noopArgs]) error {
	w.got <- j.Args.BatchID
	return nil
}

// TestConformance runs every store behaviour on every backend.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testStore(t, backend)
		})
	}
}

type testBundle struct {
	st  *store.Store
	ctx context.Context
}

func testStore(t *testing.T, backend string) {
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{st: storetest.New(t, backend), ctx: context.Background()}
	}
	newBatch := func(t *testing.T, tb *testBundle, jobs ...store.Job) store.Batch {
		t.Helper()
		b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x",
			CompletionWindow: "24h", Status: store.BatchValidating, CreatedAt: time.Now().Unix(),
			ExpiresAt: time.Now().Add(24 * time.Hour).Unix(), Metadata: map[string]string{"k": "v"}}
		require.NoError(t, tb.st.BatchCreate(tb.ctx, b, jobs...))
		return b
	}

	t.Run("MigrateTwice", func(t *testing.T) {
		t.Parallel()
		url := storetest.URL(t, backend)
		for range 2 {
			st, err := store.Open(context.Background(), url, testLog())
			require.NoError(t, err)
			st.Close()
		}
	})

	t.Run("Keys", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		k := store.APIKey{ID: ids.New(ids.Key), Name: "ci", Prefix: "sk-kiln-ab", Hash: "h1"}
		require.NoError(t, tb.st.KeyCreate(tb.ctx, k))
		got, err := tb.st.KeyByHash(tb.ctx, "h1")
		require.NoError(t, err)
		require.Equal(t, "ci", got.Name)
		require.NoError(t, tb.st.KeyTouch(tb.ctx, k.ID))
		n, err := tb.st.KeyCount(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, tb.st.KeyRevoke(tb.ctx, k.ID))
		require.ErrorIs(t, tb.st.KeyRevoke(tb.ctx, k.ID), store.ErrNotFound)
		_, err = tb.st.KeyByHash(tb.ctx, "h1")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := tb.st.KeyList(tb.ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.NotNil(t, list[0].RevokedAt)
		require.NotNil(t, list[0].LastUsedAt)
	})

	t.Run("FilesPaginate", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		var made []string
		for i := range 5 {
			purpose := "batch"
			if i%2 == 1 {
				purpose = "fine-tune"
			}
			f := store.File{ID: ids.New(ids.File), Purpose: purpose, Filename: fmt.Sprintf("f%d.jsonl", i), Bytes: int64(i),
				ObjectKey: "files/x", Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
			require.NoError(t, tb.st.FileCreate(tb.ctx, f))
			made = append(made, f.ID)
		}
		page, more, err := tb.st.FileList(tb.ctx, store.FileListParams{Limit: 2})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{made[4], made[3]}, fileIDs(page))
		page, more, err = tb.st.FileList(tb.ctx, store.FileListParams{Limit: 10, After: made[3]})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{made[2], made[1], made[0]}, fileIDs(page))
		page, _, err = tb.st.FileList(tb.ctx, store.FileListParams{Limit: 10, Asc: true, Purpose: "batch"})
		require.NoError(t, err)
		require.Equal(t, []string{made[0], made[2], made[4]}, fileIDs(page))

		f, err := tb.st.FileDelete(tb.ctx, made[0])
		require.NoError(t, err)
		require.Equal(t, "f0.jsonl", f.Filename)
		_, err = tb.st.FileDelete(tb.ctx, made[0])
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.FileGet(tb.ctx, made[0])
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("BatchLifecycle", func(t *testing.T) {
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
		got, err = tb.st.ShardFinish(tb.ctx, b.ID, 0, "a1")
		require.NoError(t, err)
		require.Equal(t, store.BatchInProgress, got.Status)
		_, err = tb.st.ShardFinish(tb.ctx, b.ID, 0, "a1")
		require.ErrorIs(t, err, store.ErrConflict)
		// A released shard waits again; the next claim takes it over.
		require.NoError(t, tb.st.ShardRelease(tb.ctx, b.ID, 1, "a2"))
		sh1, _, err = tb.st.ShardClaim(tb.ctx, "m", "a3", time.Minute, 0)
		require.NoError(t, err)
		require.EqualValues(t, 2, sh1.Claims)
		got, err = tb.st.ShardFinish(tb.ctx, b.ID, 1, "a3")
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

	t.Run("BatchStopReasons", func(t *testing.T) {
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
	})

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
		sh, _, err := tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, 0)
		require.NoError(t, err)
		require.Equal(t, high, sh.BatchID, "higher priority first")
		require.NoError(t, tb.st.ShardRelease(tb.ctx, high, 0, "a"))
		// Once the low-priority shard waited past the starvation bound, it
		// goes first.
		sh, _, err = tb.st.ShardClaim(tb.ctx, "m", "a", time.Minute, lowShards[0].ReadyAt+1)
		require.NoError(t, err)
		require.Equal(t, low, sh.BatchID, "starving work first")
	})

	t.Run("BatchListNewestFirst", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		var made []string
		for range 3 {
			made = append(made, newBatch(t, tb).ID)
		}
		page, more, err := tb.st.BatchList(tb.ctx, "", 2)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, made[2], page[0].ID)
		require.Equal(t, made[1], page[1].ID)
		page, more, err = tb.st.BatchList(tb.ctx, made[1], 2)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, page, 1)
		require.Equal(t, made[0], page[0].ID)
	})

	t.Run("StateAndJobCommitTogether", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := &noopWorker{got: make(chan string, 4)}
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		require.NoError(t, tb.st.StartWorkers(tb.ctx, store.WorkerOpts{Workers: workers, Queues: map[string]int{river.QueueDefault: 2}, PollInterval: 50 * time.Millisecond}))
		t.Cleanup(func() { _ = tb.st.StopWorkers(context.Background()) })

		// A failed state change leaves no job: the duplicate ID rolls back
		// the job inserted before it.
		b := newBatch(t, tb, store.Job{Args: noopArgs{BatchID: "first"}})
		err := tb.st.BatchCreate(tb.ctx, store.Batch{ID: b.ID, Status: "validating"}, store.Job{Args: noopArgs{BatchID: "rolled-back"}})
		require.Error(t, err)
		newBatch(t, tb, store.Job{Args: noopArgs{BatchID: "second"}})
		var got []string
		for len(got) < 2 {
			select {
			case id := <-w.got:
				got = append(got, id)
			case <-time.After(30 * time.Second):
				t.Fatalf("jobs did not run; got %v", got)
			}
		}
		require.ElementsMatch(t, []string{"first", "second"}, got)
		require.Empty(t, w.got)
	})

	t.Run("ConcurrentChunkCommits", func(t *testing.T) {
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

	t.Run("Agents", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		now := time.Now().Unix()
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "a", Hostname: "h", Models: []string{"m1"}, StartedAt: now, Synthetic: true}))
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "a", Hostname: "h", Models: []string{"m1", "m2"}, StartedAt: now, InFlight: 3}))
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "old", Hostname: "h", Models: []string{"m3"}, StartedAt: 1, HeartbeatAt: 1}))
		list, err := tb.st.AgentList(tb.ctx, now-60)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, []string{"m1", "m2"}, list[0].Models)
		require.EqualValues(t, 3, list[0].InFlight)
		require.NoError(t, tb.st.AgentRemove(tb.ctx, "a"))
		list, err = tb.st.AgentList(tb.ctx, now-60)
		require.NoError(t, err)
		require.Empty(t, list)
	})
}

func fileIDs(fs []store.File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

// TestMigrateConcurrently: kiln serve and kiln agent may start together on
// one new database; both migrate without stepping on each other.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			url := storetest.URL(t, backend)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := store.Open(context.Background(), url, testLog())
					if err == nil {
						st.Close()
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		})
	}
}
