package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// BatchFinalizeArgs asks to build a batch's output and error files from its
// result chunks and end it.
type BatchFinalizeArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (BatchFinalizeArgs) Kind() string { return "batch_finalize" }

// FinalizeJob is the finalizer of a batch. It is unique per batch: a cancel,
// an expiry and the last shard may all ask for it.
func FinalizeJob(batchID string) store.Job {
	return store.Job{Args: BatchFinalizeArgs{BatchID: batchID}, Opts: &river.InsertOpts{
		MaxAttempts: 25,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	}}
}

// finalizeWait is how long the finalizer waits for an agent that still holds
// the batch's lease to let go.
const finalizeWait = 500 * time.Millisecond

// BatchFinalizeWorker assembles output and error files. It enforces the
// batch invariant: every request appears exactly once, in the output file or
// in the error file. Chunks may overlap after a crash; the first result of a
// line wins. Lines with no result become error lines: batch_cancelled,
// batch_expired, or batch_failed.
type BatchFinalizeWorker struct {
	river.WorkerDefaults[BatchFinalizeArgs]
	d Deps
}

// Work finalizes one batch.
func (w *BatchFinalizeWorker) Work(ctx context.Context, job *river.Job[BatchFinalizeArgs]) error {
	id := job.Args.BatchID
	b, err := w.d.Store.BatchGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if b.Terminal() || (b.Status != store.BatchFinalizing && b.StopReason == "") {
		return nil
	}
	live, err := w.d.Store.BatchLeasesLive(ctx, id)
	if err != nil {
		return err
	}
	if live > 0 {
		// An agent has yet to see the stop, or to write its last chunk.
		return river.JobSnooze(finalizeWait)
	}
	start := time.Now()
	var out store.Outcome
	if b.InProgressAt != nil { // a batch stopped before validation ends with no files
		out, err = w.assemble(ctx, b)
		if err != nil {
			return fmt.Errorf("finalize batch %s: %w", id, err)
		}
	}
	b, err = w.d.Store.BatchComplete(ctx, id, out)
	if err != nil {
		for _, f := range []*store.File{out.Output, out.Errors} {
			if f != nil {
				_ = w.d.Bucket.Delete(context.WithoutCancel(ctx), f.ObjectKey)
			}
		}
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	w.d.Log.InfoContext(ctx, "batch ended", "batch", id, "status", b.Status,
		"completed", b.Completed, "failed", b.Failed, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (w *BatchFinalizeWorker) assemble(ctx context.Context, b store.Batch) (store.Outcome, error) {
	chunks, err := w.d.Store.ChunkList(ctx, b.ID, -1)
	if err != nil {
		return store.Outcome{}, err
	}
	// winner: the first record of each line; winnerOK: it is an output line.
	var winner, winnerOK batchline.Bitmap
	var o store.Outcome
	outFile := newFile(b.ID, "output")
	size, err := writeObject(ctx, w.d.Bucket, outFile.ObjectKey, func(dst io.Writer) error {
		bw := bufio.NewWriterSize(dst, 256<<10)
		err := w.eachRecord(ctx, chunks, func(r batchline.Record) error {
			if winner.Has(r.Line) {
				return nil
			}
			winner.Set(r.Line)
			if !r.OK {
				return nil
			}
			winnerOK.Set(r.Line)
			o.Completed++
			return writeLine(bw, r.Data)
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return o, err
	}
	outFile.Bytes = size
	o.Output = &outFile

	errFile := newFile(b.ID, "error")
	var written batchline.Bitmap
	code, message := missingReason(b)
	size, err = writeObject(ctx, w.d.Bucket, errFile.ObjectKey, func(dst io.Writer) error {
		bw := bufio.NewWriterSize(dst, 256<<10)
		err := w.eachRecord(ctx, chunks, func(r batchline.Record) error {
			if r.OK || winnerOK.Has(r.Line) || written.Has(r.Line) {
				return nil
			}
			written.Set(r.Line)
			o.Failed++
			return writeLine(bw, r.Data)
		})
		if err != nil {
			return err
		}
		// Requests with no result at all.
		in, err := w.d.Store.FileGet(ctx, b.InputFileID)
		if err != nil {
			return fmt.Errorf("input file: %w", err)
		}
		rc, err := w.d.Bucket.Get(ctx, in.ObjectKey)
		if err != nil {
			return err
		}
		defer rc.Close()
		sc := batchline.NewScanner(rc, w.d.MaxLineBytes)
		for sc.Next() {
			if winner.Has(sc.Line()) || sc.TooLong() || batchline.Blank(sc.Bytes()) {
				continue
			}
			req, _, p := batchline.ParseInput(sc.Bytes(), b.Endpoint)
			if p != nil {
				continue
			}
			line, err := json.Marshal(batchline.Output{
				ID:       ids.New(ids.BatchReq),
				CustomID: req.CustomID,
				Error:    &batchline.LineError{Code: code, Message: message},
			})
			if err != nil {
				return err
			}
			o.Failed++
			if err := writeLine(bw, line); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		_ = w.d.Bucket.Delete(context.WithoutCancel(ctx), outFile.ObjectKey)
		return o, err
	}
	errFile.Bytes = size
	o.Errors = &errFile

	// Like OpenAI, a batch has an output or error file only when it has
	// such lines.
	if o.Completed == 0 {
		_ = w.d.Bucket.Delete(ctx, outFile.ObjectKey)
		o.Output = nil
	}
	if o.Failed == 0 {
		_ = w.d.Bucket.Delete(ctx, errFile.ObjectKey)
		o.Errors = nil
	}
	return o, nil
}

func missingReason(b store.Batch) (code, message string) {
	switch b.StopReason {
	case store.StopCancelled:
		return batchline.CodeBatchCancelled, "This request was not executed because the batch was cancelled."
	case store.StopExpired:
		return batchline.CodeBatchExpired, "This request could not be executed before the completion window expired."
	default:
		return batchline.CodeBatchFailed, "This request was not executed."
	}
}

func newFile(batchID, kind string) store.File {
	id := ids.New(ids.File)
	return store.File{
		ID:        id,
		Purpose:   "batch_output",
		Filename:  batchID + "_" + kind + ".jsonl",
		ObjectKey: FileKey(id),
		Status:    store.FileProcessed,
		CreatedAt: time.Now().Unix(),
	}
}

func writeLine(w *bufio.Writer, line []byte) error {
	if _, err := w.Write(line); err != nil {
		return err
	}
	return w.WriteByte('\n')
}

// eachRecord streams every record of every chunk, in chunk order.
func (w *BatchFinalizeWorker) eachRecord(ctx context.Context, chunks []store.Chunk, fn func(batchline.Record) error) error {
	for _, c := range chunks {
		rc, err := w.d.Bucket.Get(ctx, c.ObjectKey)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", c.Seq, err)
		}
		err = batchline.ReadRecords(rc, fn)
		rc.Close()
		if err != nil {
			return fmt.Errorf("chunk %d: %w", c.Seq, err)
		}
	}
	return nil
}
