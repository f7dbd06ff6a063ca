package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batch"
)

// BatchFinalizeWorker assembles a stopped or finished batch's output and
// error files and ends it (batch.Finalize). While an agent still holds one
// of its shards, it waits a moment and tries again.
type BatchFinalizeWorker struct {
	river.WorkerDefaults[batch.FinalizeArgs]
	d Deps
}

// NextRetry spaces a failed finalize's attempts as River does, but never
// more than batch.FinalizeRetryMax apart.
func (w *BatchFinalizeWorker) NextRetry(job *river.Job[batch.FinalizeArgs]) time.Time {
	backoff := (&river.DefaultClientRetryPolicy{}).NextRetry(job.JobRow)
	if latest := time.Now().Add(batch.FinalizeRetryMax); backoff.After(latest) {
		return latest
	}
	return backoff
}

// Work finalizes one batch.
func (w *BatchFinalizeWorker) Work(ctx context.Context, job *river.Job[batch.FinalizeArgs]) error {
	err := w.d.Batches.Finalize(ctx, job.Args.BatchID)
	if errors.Is(err, batch.ErrLeased) {
		return river.JobSnooze(batch.FinalizeWait)
	}
	return stopIfPermanent(err)
}
