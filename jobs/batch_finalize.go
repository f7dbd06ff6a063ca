package jobs

import (
	"context"
	"errors"

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

// Work finalizes one batch.
func (w *BatchFinalizeWorker) Work(ctx context.Context, job *river.Job[batch.FinalizeArgs]) error {
	err := w.d.Batches.Finalize(ctx, job.Args.BatchID)
	if errors.Is(err, batch.ErrLeased) {
		return river.JobSnooze(batch.FinalizeWait)
	}
	return stopIfPermanent(err)
}
