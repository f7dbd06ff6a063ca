package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

const model = "sim-model"

// testBundle is the lifecycle on one backend and the workers under test,
// not started: tests call their Work directly, unless they start River.
type testBundle struct {
	*batchtest.Env
	ctx  context.Context
	deps Deps
}

func setup(t *testing.T, backend string) *testBundle {
	t.Helper()
	env := batchtest.New(t, backend, batch.Limits{ShardSize: 2})
	reg, err := functions.NewRegistry(functions.Retry{})
	require.NoError(t, err)
	return &testBundle{Env: env, ctx: context.Background(), deps: Deps{
		Batches: env.Batches, Store: env.Store, Log: env.Log, EventRetention: time.Hour,
		Functions: reg, Webhooks: &functions.Webhooks{Store: env.Store, Log: env.Log},
		Exporter: &curation.Exporter{Store: env.Store, Bucket: env.Bucket, Log: env.Log},
	}}
}

// startWorkers runs every worker of a serving process on the bundle's
// store, as kiln serve does.
func (tb *testBundle) startWorkers(t *testing.T) {
	t.Helper()
	workers := river.NewWorkers()
	Register(workers, tb.deps)
	require.NoError(t, tb.Store.StartWorkers(tb.ctx, store.WorkerOpts{Workers: workers, Queues: Queues(), PollInterval: 10 * time.Millisecond}))
	t.Cleanup(func() { _ = tb.Store.StopWorkers(context.Background()) })
}

// waitStatus polls the batch until it reaches want, or fails after a
// deadline.
func (tb *testBundle) waitStatus(t *testing.T, id string, want store.BatchStatus) store.Batch {
	t.Helper()
	var b store.Batch
	require.Eventually(t, func() bool {
		var err error
		b, err = tb.Store.BatchGet(tb.ctx, id)
		require.NoError(t, err)
		return b.Status == want
	}, 30*time.Second, 10*time.Millisecond, "batch %s never became %s (last: %s)", id, want, b.Status)
	return b
}

// TestLifecycleThroughRiver: every transition enqueues the job that follows
// it in its own transaction, so that a batch runs from creation to its end
// on the workers of jobs.Register alone, however it ends.
func TestLifecycleThroughRiver(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			tb.startWorkers(t)

			t.Run("completed", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines(model, 5))
				tb.waitStatus(t, b.ID, store.BatchInProgress)
				require.Equal(t, 3, tb.RunShards(t, model, nil))
				b = tb.waitStatus(t, b.ID, store.BatchCompleted)
				require.EqualValues(t, 5, b.Completed)
				require.NotNil(t, b.OutputFileID)
			})
			t.Run("cancelled", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines("other-model", 3))
				tb.waitStatus(t, b.ID, store.BatchInProgress)
				_, err := tb.Batches.Cancel(tb.ctx, b.ID)
				require.NoError(t, err)
				b = tb.waitStatus(t, b.ID, store.BatchCancelled)
				require.EqualValues(t, 3, b.Failed)
			})
			t.Run("expired", func(t *testing.T) {
				f, err := tb.Batches.CreateFile(tb.ctx, batch.PurposeBatch, "in.jsonl", stringsReader(batchtest.ChatLines("idle-model", 2)))
				require.NoError(t, err)
				b, err := tb.Batches.Create(tb.ctx, batch.CreateParams{InputFileID: f.ID, Endpoint: "/v1/chat/completions", CompletionWindow: "1s"})
				require.NoError(t, err)
				b = tb.waitStatus(t, b.ID, store.BatchExpired)
				require.EqualValues(t, 2, b.Failed)
			})
		})
	}
}
