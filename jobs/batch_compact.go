package jobs

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batch"
)

// BatchCompactWorker gathers a running batch's finished chunks into pieces
// (batch.Compact), so that its finalize copies them server-side.
type BatchCompactWorker struct {
	river.WorkerDefaults[batch.CompactArgs]
	d Deps
}

// Work compacts one batch.
func (w *BatchCompactWorker) Work(ctx context.Context, job *river.Job[batch.CompactArgs]) error {
	return stopIfPermanent(w.d.Batches.Compact(ctx, job.Args.BatchID))
}
