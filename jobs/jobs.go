// Package jobs holds kiln's River job kinds and their workers: validate,
// finalize and expire batches. Agents do not take jobs: they claim a
// batch's shards under leases (see store.ShardClaim). Kinds are stable:
// never rename one, jobs of the old name would never run.
package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// QueueDefault is the queue of every job kind here.
const QueueDefault = river.QueueDefault

// Deps are what the workers need.
type Deps struct {
	Store        *store.Store
	Bucket       objectstore.Bucket
	Log          *slog.Logger
	MaxLineBytes int
	MaxRequests  int
	// ShardSize is the most requests per shard.
	ShardSize int
	// EventRetention is how long events, with their finished invocations
	// and deliveries, are kept; 0 keeps them for good.
	EventRetention time.Duration
}

// Register adds the workers of the default queue to workers.
func Register(workers *river.Workers, d Deps) {
	river.AddWorker(workers, &BatchValidateWorker{d: d})
	river.AddWorker(workers, &BatchFinalizeWorker{d: d})
	river.AddWorker(workers, &BatchExpireWorker{d: d})
	river.AddWorker(workers, &UploadExpireWorker{d: d})
	river.AddWorker(workers, &EventsPruneWorker{d: d})
}

// Periodic are the jobs that run on a schedule.
func Periodic() []*river.PeriodicJob { return []*river.PeriodicJob{EventsPrunePeriodic()} }

// writeObject streams what write produces into key, never holding it whole.
// If write fails, no object is left.
func writeObject(ctx context.Context, b objectstore.Bucket, key string, write func(w io.Writer) error) (int64, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	info, err := b.Put(ctx, key, pr, -1)
	_ = pr.CloseWithError(err) // unblocks write if Put gave up early
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return info.Size, nil
}

// ChunkKey is where a result chunk of a batch's shard lives.
func ChunkKey(batchID string, shard, seq int64) string {
	return fmt.Sprintf("batches/%s/chunks/%06d-%010d.idx", batchID, shard, seq)
}

// ChunkOutputKey is where a chunk's output lines live, beside its index.
func ChunkOutputKey(chunkKey string) string { return chunkKey + ".out" }

// ChunkErrorKey is where a chunk's error lines live, beside its index.
func ChunkErrorKey(chunkKey string) string { return chunkKey + ".err" }

// FileKey is where a file's bytes live.
func FileKey(fileID string) string { return "files/" + fileID }
