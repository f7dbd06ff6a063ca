package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batch"
)

// uploadCompletingWait is how long the expiry of an upload that is being
// completed waits before it looks again.
const uploadCompletingWait = 10 * time.Second

// UploadExpireWorker expires abandoned uploads and removes their parts
// (batch.ExpireUpload).
type UploadExpireWorker struct {
	river.WorkerDefaults[batch.UploadExpireArgs]
	d Deps
}

// Work expires one upload.
func (w *UploadExpireWorker) Work(ctx context.Context, job *river.Job[batch.UploadExpireArgs]) error {
	err := w.d.Batches.ExpireUpload(ctx, job.Args.UploadID)
	if errors.Is(err, batch.ErrCompleting) {
		return river.JobSnooze(uploadCompletingWait)
	}
	return stopIfPermanent(err)
}
