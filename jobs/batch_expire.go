package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/store"
)

// BatchExpireArgs fires at a batch's expires_at: a batch that has not ended
// by then stops, keeps the results it has, and its other requests go to the
// error file as batch_expired.
type BatchExpireArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (BatchExpireArgs) Kind() string { return "batch_expire" }

// ExpireJob is the expiry job of a batch, scheduled at its expires_at.
func ExpireJob(batchID string, at time.Time) store.Job {
	return store.Job{Args: BatchExpireArgs{BatchID: batchID}, Opts: &river.InsertOpts{ScheduledAt: at}}
}

// BatchExpireWorker stops batches at the end of their completion window.
type BatchExpireWorker struct {
	river.WorkerDefaults[BatchExpireArgs]
	d Deps
}

// Work requests the stop and enqueues the finalizer with it.
func (w *BatchExpireWorker) Work(ctx context.Context, job *river.Job[BatchExpireArgs]) error {
	id := job.Args.BatchID
	_, err := w.d.Store.BatchRequestStop(ctx, id, store.StopExpired, FinalizeJob(id))
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return nil // ended in time, or gone
	case err != nil:
		return fmt.Errorf("expire batch %s: %w", id, err)
	}
	w.d.Log.InfoContext(ctx, "batch expired", "batch", id)
	return nil
}
