package batch

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/kilnhq/kiln/internal/store"
)

// The follow-up jobs of the lifecycle. Their workers live in jobs/ and call
// back into this package. Kinds are stable: never rename one, or jobs
// already queued under the old name never run.

// ValidateArgs asks to validate a new batch's input file.
type ValidateArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (ValidateArgs) Kind() string { return "batch_validate" }

// FinalizeArgs asks to build a batch's output and error files from its
// result chunks and end it.
type FinalizeArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (FinalizeArgs) Kind() string { return "batch_finalize" }

// ExpireArgs fires at a batch's expires_at: a batch that has not ended by
// then stops, keeps the results it has, and its other requests go to the
// error file as batch_expired.
type ExpireArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (ExpireArgs) Kind() string { return "batch_expire" }

// UploadExpireArgs fires at an upload's expires_at: a pending upload
// expires and its parts are removed.
type UploadExpireArgs struct {
	UploadID string `json:"upload_id"`
}

// Kind is stable; never rename it.
func (UploadExpireArgs) Kind() string { return "upload_expire" }

// FinalizeRetryMax bounds the wait between a failed finalize's attempts.
// River waits the fourth power of the attempts so far, in seconds (21
// minutes before the seventh, 3.8 days before the twenty-fifth); a
// finalize that fails while its object store is full or away should go on
// within minutes of its coming back.
const FinalizeRetryMax = 5 * time.Minute

// FinalizeMaxAttempts is how often the finalizer is tried before River
// gives up on it: a week of attempts FinalizeRetryMax apart.
const FinalizeMaxAttempts = int(7 * 24 * time.Hour / FinalizeRetryMax)

func validateJob(batchID string) store.Job {
	return store.Job{Args: ValidateArgs{BatchID: batchID}, Opts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}}
}

// finalizeJob is unique per batch: a cancel, an expiry and the last shard
// may all ask for it.
func finalizeJob(batchID string) store.Job {
	return store.Job{Args: FinalizeArgs{BatchID: batchID}, Opts: &river.InsertOpts{
		MaxAttempts: FinalizeMaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	}}
}

func expireJob(batchID string, at time.Time) store.Job {
	return store.Job{Args: ExpireArgs{BatchID: batchID}, Opts: &river.InsertOpts{ScheduledAt: at}}
}

func uploadExpireJob(uploadID string, at time.Time) store.Job {
	return store.Job{Args: UploadExpireArgs{UploadID: uploadID}, Opts: &river.InsertOpts{ScheduledAt: at}}
}

// CompactArgs is the job that gathers a running batch's finished chunks
// into pieces (Service.Compact).
type CompactArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (CompactArgs) Kind() string { return "batch_compact" }

// compactJob is a batch's compaction: one waits or runs per batch at a
// time. A shard that finishes while one runs is taken by the next shard's.
func compactJob(batchID string) store.Job {
	return store.Job{Args: CompactArgs{BatchID: batchID}, Opts: &river.InsertOpts{
		MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled}},
	}}
}
