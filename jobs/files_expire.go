package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// FilesExpireInterval is how often the files past their expires_at are
// deleted: a file outlives its expires_at by at most about this long.
const FilesExpireInterval = time.Minute

// FilesExpireArgs deletes the files whose expires_at has passed
// (batch.ExpireFiles). It runs every FilesExpireInterval, and at start.
type FilesExpireArgs struct{}

// Kind is stable; never rename it.
func (FilesExpireArgs) Kind() string { return "files_expire" }

// FilesExpirePeriodic is the periodic expiry, also run at start.
func FilesExpirePeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(FilesExpireInterval),
		func() (river.JobArgs, *river.InsertOpts) {
			// A failed run is not retried: the next one, a minute on,
			// finds whatever is still due.
			return FilesExpireArgs{}, &river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByPeriod: FilesExpireInterval}}
		},
		&river.PeriodicJobOpts{RunOnStart: true, ID: "files_expire"})
}

// FilesExpireWorker deletes expired files.
type FilesExpireWorker struct {
	river.WorkerDefaults[FilesExpireArgs]
	d Deps
}

// Work deletes the files that are due, those it can, and reports the
// others' failure.
func (w *FilesExpireWorker) Work(ctx context.Context, _ *river.Job[FilesExpireArgs]) error {
	n, err := w.d.Batches.ExpireFiles(ctx)
	if n > 0 {
		w.d.Log.InfoContext(ctx, "deleted expired files", "files", n)
	}
	if err != nil {
		return fmt.Errorf("expire files: %w", err)
	}
	return nil
}
