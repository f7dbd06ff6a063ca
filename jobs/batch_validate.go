package jobs

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batch"
)

// BatchValidateWorker validates a new batch's input file (batch.Validate):
// the batch moves to in_progress with its shards, or to failed.
type BatchValidateWorker struct {
	river.WorkerDefaults[batch.ValidateArgs]
	d Deps
}

// Work validates one batch.
func (w *BatchValidateWorker) Work(ctx context.Context, job *river.Job[batch.ValidateArgs]) error {
	return stopIfPermanent(w.d.Batches.Validate(ctx, job.Args.BatchID))
}
