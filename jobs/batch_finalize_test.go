package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

func TestBatchFinalizeWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			w := &BatchFinalizeWorker{d: tb.deps}

			t.Run("every request once, in the output or the error file", func(t *testing.T) {
				const m = "finalize-model"
				b := tb.CreateBatch(t, batchtest.ChatLines(m, 5))
				require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
				tb.RunShards(t, m, func(line int) bool { return line != 2 })
				b, err := tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchFinalizing, b.Status)

				require.NoError(t, w.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})))
				b, err = tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCompleted, b.Status)
				require.EqualValues(t, 4, b.Completed)
				require.EqualValues(t, 1, b.Failed)
				out, errs := tb.ReadFile(t, *b.OutputFileID), tb.ReadFile(t, *b.ErrorFileID)
				for _, id := range []string{`"r1"`, `"r3"`, `"r4"`, `"r5"`} {
					require.Equal(t, 1, strings.Count(out, id), id)
				}
				require.Equal(t, 1, strings.Count(errs, `"r2"`))
				// The chunks are in the files now, and gone.
				var left []string
				require.NoError(t, tb.Bucket.List(tb.ctx, batch.BatchPrefix(b.ID), func(i objectstore.Info) error {
					left = append(left, i.Key)
					return nil
				}))
				require.Empty(t, left)

				// A second run is a no-op.
				require.NoError(t, w.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})))
			})
			t.Run("it waits while an agent holds a shard", func(t *testing.T) {
				const m = "held-model"
				b := tb.CreateBatch(t, batchtest.ChatLines(m, 2))
				require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
				_, _, err := tb.Store.ShardClaim(tb.ctx, m, batchtest.Agent, time.Minute, 0)
				require.NoError(t, err)
				_, err = tb.Batches.Cancel(tb.ctx, b.ID)
				require.NoError(t, err)

				err = w.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID}))
				var snooze *rivertype.JobSnoozeError
				require.True(t, errors.As(err, &snooze), "want a snooze, got %v", err)

				require.NoError(t, tb.Store.ShardRelease(tb.ctx, b.ID, 0, batchtest.Agent))
				require.NoError(t, w.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})))
				b, err = tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCancelled, b.Status)
				require.Equal(t, 2, strings.Count(tb.ReadFile(t, *b.ErrorFileID), batchline.CodeBatchCancelled))
			})
			// The chunks stayed when the object store failed after the
			// batch ended (or kiln died then): the job fails, and its
			// next run removes them. (Found by TestChaos: whole batches'
			// chunks stayed until the hourly objects sweep.)
			t.Run("chunks it could not remove go on its next run", func(t *testing.T) {
				const m = "cleanup-model"
				b := tb.CreateBatch(t, batchtest.ChatLines(m, 3))
				require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
				tb.RunShards(t, m, nil)
				broken := &BatchFinalizeWorker{d: tb.deps}
				broken.d.Batches = batch.New(tb.Store, failDeletes{tb.Bucket}, batch.Limits{}, tb.Log)
				require.ErrorIs(t, broken.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})), errDeleteFails)
				b, err := tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCompleted, b.Status)
				left := func() (keys []string) {
					require.NoError(t, tb.Bucket.List(tb.ctx, batch.BatchPrefix(b.ID), func(i objectstore.Info) error {
						keys = append(keys, i.Key)
						return nil
					}))
					return keys
				}
				require.NotEmpty(t, left())

				require.NoError(t, w.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})))
				require.Empty(t, left())
			})
			t.Run("a batch stopped before validation ends with no files", func(t *testing.T) {
				b := tb.CreateBatch(t, batchtest.ChatLines(model, 1))
				_, err := tb.Batches.Cancel(tb.ctx, b.ID)
				require.NoError(t, err)
				require.NoError(t, w.Work(tb.ctx, job(batch.FinalizeArgs{BatchID: b.ID})))
				b, err = tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCancelled, b.Status)
				require.Nil(t, b.OutputFileID)
				require.Nil(t, b.ErrorFileID)
			})
		})
	}
}

var errDeleteFails = errors.New("delete fails")

// failDeletes is a bucket whose deletes fail.
type failDeletes struct{ objectstore.Bucket }

func (failDeletes) Delete(context.Context, string) error { return errDeleteFails }

// TestBatchFinalizeRetries: a failed finalize is tried again as River's
// backoff says, but never more than batch.FinalizeRetryMax later, so that
// it goes on soon after its object store comes back; and it is tried for a
// week before River gives up on it.
func TestBatchFinalizeRetries(t *testing.T) {
	t.Parallel()
	w := &BatchFinalizeWorker{}
	next := func(failures int) time.Time {
		j := job(batch.FinalizeArgs{BatchID: "batch_retried"})
		j.JobRow = &rivertype.JobRow{Errors: make([]rivertype.AttemptError, failures)}
		return w.NextRetry(j)
	}
	// River's first retry is a second later, give or take its jitter.
	require.WithinDuration(t, time.Now().Add(time.Second), next(0), 500*time.Millisecond)
	// Later River would wait 40 minutes (7^4 s), then days, then centuries.
	for _, failures := range []int{6, 24, 300} {
		require.WithinDuration(t, time.Now().Add(batch.FinalizeRetryMax), next(failures), time.Second, failures)
	}
	require.Equal(t, 7*24*time.Hour, time.Duration(batch.FinalizeMaxAttempts)*batch.FinalizeRetryMax)
}
