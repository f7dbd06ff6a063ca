package jobs

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batch"
)

// BatchExpireWorker stops batches at the end of their completion window
// (batch.Expire); one that ended in time is left alone.
type BatchExpireWorker struct {
	river.WorkerDefaults[batch.ExpireArgs]
	d Deps
}

// Work expires one batch.
func (w *BatchExpireWorker) Work(ctx context.Context, job *river.Job[batch.ExpireArgs]) error {
	_, err := w.d.Batches.Expire(ctx, job.Args.BatchID)
	return stopIfPermanent(err)
}
