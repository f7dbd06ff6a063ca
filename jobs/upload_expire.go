package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// UploadExpireArgs fires at an upload's expires_at: a pending upload
// expires and its parts are removed.
type UploadExpireArgs struct {
	UploadID string `json:"upload_id"`
}

// Kind is stable; never rename it.
func (UploadExpireArgs) Kind() string { return "upload_expire" }

// UploadExpireJob is the expiry job of an upload.
func UploadExpireJob(uploadID string, at time.Time) store.Job {
	return store.Job{Args: UploadExpireArgs{UploadID: uploadID}, Opts: &river.InsertOpts{ScheduledAt: at}}
}

// completingGrace is how long past its expiry an upload may stay
// completing before the completion is taken for dead.
const completingGrace = 15 * time.Minute

// UploadPartKey is where an upload's part lives.
func UploadPartKey(uploadID, partID string) string {
	return "uploads/" + uploadID + "/" + partID
}

// UploadExpireWorker expires abandoned uploads and removes their parts.
type UploadExpireWorker struct {
	river.WorkerDefaults[UploadExpireArgs]
	d Deps
}

// Work expires one upload. An upload completing right now gets a moment to
// finish.
func (w *UploadExpireWorker) Work(ctx context.Context, job *river.Job[UploadExpireArgs]) error {
	id := job.Args.UploadID
	u, err := w.d.Store.UploadTransition(ctx, id, []string{store.UploadPending}, store.UploadExpired, 0)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case errors.Is(err, store.ErrConflict) && u.Status == store.UploadCompleting:
		if time.Since(time.Unix(u.ExpiresAt, 0)) < completingGrace {
			return river.JobSnooze(10 * time.Second)
		}
		// A completion that outlived the grace period died with its
		// process: the upload expires after all.
		if _, err := w.d.Store.UploadTransition(ctx, id, []string{store.UploadCompleting}, store.UploadExpired, 0); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		w.d.Log.WarnContext(ctx, "upload expired in the middle of a completion that never ended", "upload", id)
	case errors.Is(err, store.ErrConflict):
		// Completed or cancelled: its parts are gone already, or go now.
	case err != nil:
		return err
	default:
		w.d.Log.InfoContext(ctx, "upload expired", "upload", id)
	}
	if u.ID == "" {
		if u, err = w.d.Store.UploadGet(ctx, id); err != nil {
			return err
		}
	}
	return errors.Join(RemoveUploadParts(ctx, w.d.Store, w.d.Bucket, id), AbortUploadMultipart(ctx, w.d.Bucket, u))
}

// AbortUploadMultipart discards the upload's multipart upload, if it has
// one: its presigned parts. After its completion, it does nothing.
func AbortUploadMultipart(ctx context.Context, b objectstore.Bucket, u store.Upload) error {
	if u.MultipartID == nil || u.MultipartFileID == nil {
		return nil
	}
	return b.AbortMultipart(ctx, FileKey(*u.MultipartFileID), *u.MultipartID)
}

// RemoveUploadParts deletes every object under the upload's prefix: the
// parts it recorded and any a client put at a presigned URL.
func RemoveUploadParts(ctx context.Context, st *store.Store, b objectstore.Bucket, uploadID string) error {
	var keys []string
	err := b.List(ctx, "uploads/"+uploadID+"/", func(i objectstore.Info) error {
		keys = append(keys, i.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list parts of %s: %w", uploadID, err)
	}
	var errs []error
	for _, k := range keys {
		errs = append(errs, b.Delete(ctx, k))
	}
	return errors.Join(errs...)
}
