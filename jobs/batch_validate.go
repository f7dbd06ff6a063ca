package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/store"
)

// BatchValidateArgs asks to validate a new batch's input file.
type BatchValidateArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (BatchValidateArgs) Kind() string { return "batch_validate" }

// ValidateJob is the validation job of a new batch.
func ValidateJob(batchID string) store.Job {
	return store.Job{Args: BatchValidateArgs{BatchID: batchID}, Opts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}}
}

// BatchValidateWorker streams a batch's input file once, line by line, and
// moves the batch to in_progress with its shards, which agents then claim,
// or to failed with line-numbered errors.
type BatchValidateWorker struct {
	river.WorkerDefaults[BatchValidateArgs]
	d Deps
}

// Work validates one batch.
func (w *BatchValidateWorker) Work(ctx context.Context, job *river.Job[BatchValidateArgs]) error {
	id := job.Args.BatchID
	b, err := w.d.Store.BatchGet(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if b.Status != store.BatchValidating || b.StopReason != "" {
		return nil // cancelled or expired while it waited; the finalizer ends it
	}
	fail := func(errs ...store.BatchError) error {
		_, err := w.d.Store.BatchFail(ctx, id, errs)
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	f, err := w.d.Store.FileGet(ctx, b.InputFileID)
	if errors.Is(err, store.ErrNotFound) {
		return fail(store.BatchError{Code: "file_not_found", Message: fmt.Sprintf("input file %s no longer exists", b.InputFileID), Param: ptr("input_file_id")})
	}
	if err != nil {
		return err
	}
	open := func() (io.ReadCloser, error) { return w.d.Bucket.Get(ctx, f.ObjectKey) }
	sum, problems, err := batchline.Validate(open, batchline.ValidateOpts{
		Endpoint:    b.Endpoint,
		MaxLineSize: w.d.MaxLineBytes,
		MaxRequests: w.d.MaxRequests,
		ShardSize:   w.d.ShardSize,
		Model:       b.Model, // named at creation by an inbox sidecar; "" otherwise
	})
	if err != nil {
		return fmt.Errorf("validate batch %s: %w", id, err)
	}
	if len(problems) > 0 {
		errs := make([]store.BatchError, len(problems))
		for i, p := range problems {
			errs[i] = store.BatchError{Code: p.Code, Message: p.Message}
			if p.Param != "" {
				errs[i].Param = ptr(p.Param)
			}
			if p.Line > 0 {
				errs[i].Line = ptr(p.Line)
			}
		}
		w.d.Log.InfoContext(ctx, "batch failed validation", "batch", id, "problems", len(problems))
		return fail(errs...)
	}
	shards := make([]store.Shard, len(sum.Shards))
	for i, sp := range sum.Shards {
		shards[i] = store.Shard{FirstLine: int64(sp.FirstLine), LastLine: int64(sp.LastLine), Offset: sp.Offset, Requests: int64(sp.Requests)}
	}
	// Requests built from a conquest type name it in their response
	// format: the batch records it, and its outputs are checked once it
	// ends.
	var cq store.Conquest
	if typ, version, ok := conquest.ParseSchemaName(sum.SchemaName); ok {
		cq = store.Conquest{Type: typ, Version: int64(version)}
	}
	_, err = w.d.Store.BatchStartConquest(ctx, id, int64(sum.Requests), sum.Model, cq, shards)
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	w.d.Log.InfoContext(ctx, "batch validated", "batch", id, "requests", sum.Requests, "model", sum.Model, "shards", len(shards))
	return nil
}

func ptr[T any](v T) *T { return &v }
