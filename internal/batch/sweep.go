package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// The first segments of the keys in keys.go, under which SweepObjects
// looks for orphans. Nothing else in the bucket is kiln's to remove: the
// inbox, or whatever else shares the bucket.
const (
	filesRoot   = "files/"
	uploadsRoot = "uploads/"
	batchesRoot = "batches/"
)

// SweepGrace is how long ago an object must have been written before
// SweepObjects, run by the objects_sweep job, may take it for an orphan.
// An object is written before the row that records it (a file's bytes
// before its file, a multipart upload's file when it completes), so a
// young object without a row may be one being made right now; the grace
// also outlasts a folder's write in progress (objectstore.TempMaxAge).
const SweepGrace = time.Hour

// The kinds of objects SweepObjects removes, as it counts them.
const (
	// SweptFile is a file's bytes without a file, or of a deleted one.
	SweptFile = "file"
	// SweptUploadPart is a part of an upload that is no longer in
	// progress: completed, cancelled, expired, or gone.
	SweptUploadPart = "upload_part"
	// SweptBatchObject is a result chunk, or the finalizer's scratch, of a
	// batch that has ended (or is gone).
	SweptBatchObject = "batch_object"
	// SweptTemp is a temporary file of a folder's write whose process was
	// killed.
	SweptTemp = "temp"
)

// SweptKinds are the kinds SweepObjects counts, in the order it sweeps
// them.
var SweptKinds = []string{SweptFile, SweptUploadPart, SweptBatchObject, SweptTemp}

// sweepChunk is how many owners SweepObjects looks up at once.
const sweepChunk = 500

// SweepObjects finds the objects no row needs, written more than olderThan
// ago, removes them and counts them by kind (every kind of SweptKinds is
// present). Each path that removes an object has a window in which it can
// fail to (a crash, a storage error, a presigned PUT after the upload
// ended); this is the catch-all behind them:
//
//   - files/<id> whose file does not exist or is deleted, unless a pending
//     or completing upload's multipart upload becomes that file;
//   - uploads/<id>/… of an upload that is not pending or completing;
//   - batches/<id>/… of a batch that has ended: finalize has made its
//     files from them;
//   - a folder's temporary files of writes killed midway
//     (objectstore.SweepTemp).
//
// An object younger than olderThan stays whatever the rows say: it may be
// written before its row, which has yet to commit. A failure to list or
// look up a kind, or to remove an object, is returned with the others
// joined, and the sweep goes on with the rest.
func (s *Service) SweepObjects(ctx context.Context, olderThan time.Duration) (map[string]int, error) {
	cutoff := s.now().Add(-olderThan)
	counts := make(map[string]int, len(SweptKinds))
	var errs []error
	for _, p := range []sweepPass{
		{kind: SweptFile, prefix: filesRoot, owner: fileOfKey, keep: s.store.FileIDsInUse},
		{kind: SweptUploadPart, prefix: uploadsRoot, owner: uploadOfKey, keep: s.uploadsInProgress},
		{kind: SweptBatchObject, prefix: batchesRoot, owner: batchOfKey, keep: s.batchesRunning},
	} {
		n, err := s.sweep(ctx, p, cutoff)
		counts[p.kind] = n
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", p.prefix, err))
		}
	}
	n, err := objectstore.SweepTemp(ctx, s.bucket, cutoff)
	counts[SweptTemp] = n
	errs = append(errs, err)
	return counts, errors.Join(errs...)
}

// sweepPass is how SweepObjects sweeps one prefix.
type sweepPass struct {
	kind   string
	prefix string
	// owner is the ID of the row that an object under the prefix belongs
	// to; false for a key kiln does not write, which stays.
	owner func(key string) (string, bool)
	// keep is the set of those of ids whose objects must stay.
	keep func(ctx context.Context, ids []string) (map[string]bool, error)
}

// sweep removes the objects under the pass's prefix, written before
// cutoff, whose owners keep does not keep, looking them up sweepChunk
// owners at a time as the listing goes.
func (s *Service) sweep(ctx context.Context, p sweepPass, cutoff time.Time) (int, error) {
	removed := 0
	var errs []error
	var ids []string
	keys := map[string][]string{}
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		keep, err := p.keep(ctx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if keep[id] {
				continue
			}
			for _, key := range keys[id] {
				if err := s.bucket.Delete(ctx, key); err != nil {
					errs = append(errs, err)
					continue
				}
				removed++
				s.log.DebugContext(ctx, "removed an orphan object", "kind", p.kind, "key", key)
			}
		}
		ids, keys = ids[:0], map[string][]string{}
		return nil
	}
	err := s.bucket.List(ctx, p.prefix, func(i objectstore.Info) error {
		id, ok := p.owner(i.Key)
		if !ok || i.ModTime.IsZero() || !i.ModTime.Before(cutoff) {
			return nil
		}
		if _, seen := keys[id]; !seen {
			ids = append(ids, id)
		}
		keys[id] = append(keys[id], i.Key)
		if len(ids) < sweepChunk {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	return removed, errors.Join(append(errs, err)...)
}

// uploadsInProgress keeps the parts of the uploads that still need them:
// pending ones take parts, completing ones are being assembled from them.
func (s *Service) uploadsInProgress(ctx context.Context, ids []string) (map[string]bool, error) {
	statuses, err := s.store.UploadStatuses(ctx, ids)
	if err != nil {
		return nil, err
	}
	keep := make(map[string]bool, len(statuses))
	for id, status := range statuses {
		keep[id] = status == store.UploadPending || status == store.UploadCompleting
	}
	return keep, nil
}

// batchesRunning keeps the working objects of the batches that have not
// ended: until finalize has recorded their files, the chunks are the
// results.
func (s *Service) batchesRunning(ctx context.Context, ids []string) (map[string]bool, error) {
	statuses, err := s.store.BatchStatuses(ctx, ids)
	if err != nil {
		return nil, err
	}
	keep := make(map[string]bool, len(statuses))
	for id, status := range statuses {
		keep[id] = !status.Terminal()
	}
	return keep, nil
}

// fileOfKey is the file whose bytes live at key (FileKey).
func fileOfKey(key string) (string, bool) {
	id, ok := strings.CutPrefix(key, filesRoot)
	return id, ok && id != "" && !strings.Contains(id, "/")
}

// uploadOfKey is the upload whose part lives at key (UploadPartKey).
func uploadOfKey(key string) (string, bool) {
	return ownerOfKey(key, uploadsRoot)
}

// batchOfKey is the batch whose working object lives at key (BatchPrefix).
func batchOfKey(key string) (string, bool) {
	return ownerOfKey(key, batchesRoot)
}

// ownerOfKey is the ID in root<id>/<more>.
func ownerOfKey(key, root string) (string, bool) {
	rest, ok := strings.CutPrefix(key, root)
	if !ok {
		return "", false
	}
	id, more, ok := strings.Cut(rest, "/")
	return id, ok && id != "" && more != ""
}
