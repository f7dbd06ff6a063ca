package gpuagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/jobs"
)

// runWorker works batch_run jobs: one batch, from its first request without
// a durable result to its last.
type runWorker struct {
	river.WorkerDefaults[jobs.BatchRunArgs]
	a *Agent
}

// Timeout: a run lasts as long as its batch; the lease, not River's job
// timeout, detects a dead agent.
func (w *runWorker) Timeout(*river.Job[jobs.BatchRunArgs]) time.Duration { return -1 }

// leaseBusyWait is how long a run job waits when another live agent holds
// the batch.
const leaseBusyWait = 5 * time.Second

func (w *runWorker) Work(ctx context.Context, job *river.Job[jobs.BatchRunArgs]) error {
	a := w.a
	id := job.Args.BatchID
	b, err := a.store.BatchLease(ctx, id, a.cfg.ID, a.cfg.LeaseTTL)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case errors.Is(err, store.ErrConflict):
		return river.JobSnooze(leaseBusyWait)
	case err != nil:
		return err
	}
	if b.Terminal() || b.Status == store.BatchFinalizing {
		return a.store.BatchReleaseLease(ctx, id, a.cfg.ID)
	}
	r := &run{a: a, b: b, log: a.log.With("batch", id)}
	if b.StopReason == "" {
		// The run stops when the job's context ends or the agent drains.
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		stopDrain := context.AfterFunc(a.draining, cancel)
		defer stopDrain()
		if err := r.execute(runCtx); err != nil {
			_ = a.store.BatchReleaseLease(context.WithoutCancel(ctx), id, a.cfg.ID)
			if a.draining.Err() != nil {
				// Shutting down: the batch goes back to the queue at once,
				// without spending an attempt.
				r.log.InfoContext(ctx, "run handed back on shutdown")
				return river.JobSnooze(time.Second)
			}
			return err
		}
	}
	// All requests ran, or the batch was stopped: hand over to the finalizer.
	if _, err := a.store.BatchFinishRun(ctx, id, a.cfg.ID, jobs.FinalizeJob(id)); err != nil {
		return fmt.Errorf("finish run of %s: %w", id, err)
	}
	r.log.InfoContext(ctx, "run ended", "stop_reason", r.stopReason)
	return nil
}

// run is one execution of one batch by one agent.
type run struct {
	a   *Agent
	b   store.Batch
	log interface {
		InfoContext(ctx context.Context, msg string, args ...any)
		WarnContext(ctx context.Context, msg string, args ...any)
	}

	stopReason string
	leaseLost  bool
}

// execute runs every request without a durable result. It returns nil when
// the input is exhausted or the batch was stopped, and an error when the run
// must be retried (shutdown, lost lease, storage failure).
func (r *run) execute(ctx context.Context) error {
	a, b := r.a, r.b
	// Resume: lines with a durable result are not run again.
	chunks, err := a.store.ChunkList(ctx, b.ID)
	if err != nil {
		return err
	}
	var done batchline.Bitmap
	var seq int64
	for _, c := range chunks {
		seq = max(seq, c.Seq+1)
		rc, err := a.bucket.Get(ctx, c.ObjectKey)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", c.Seq, err)
		}
		err = batchline.ReadRecords(rc, func(rec batchline.Record) error { done.Set(rec.Line); return nil })
		rc.Close()
		if err != nil {
			return fmt.Errorf("chunk %d: %w", c.Seq, err)
		}
	}
	in, err := a.store.FileGet(ctx, b.InputFileID)
	if err != nil {
		return fmt.Errorf("input file: %w", err)
	}
	rc, err := a.bucket.Get(ctx, in.ObjectKey)
	if err != nil {
		return fmt.Errorf("input file: %w", err)
	}
	defer rc.Close()

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make(chan batchline.Record, a.cfg.Concurrency)
	collected := make(chan error, 1)
	go func() { collected <- r.collect(runCtx, cancel, results, seq) }()

	sem := make(chan struct{}, a.cfg.Concurrency)
	var wg sync.WaitGroup
	sc := batchline.NewScanner(rc, a.cfg.MaxLineBytes)
feed:
	for sc.Next() {
		if done.Has(sc.Line()) || sc.TooLong() || batchline.Blank(sc.Bytes()) {
			continue
		}
		req, _, p := batchline.ParseInput(sc.Bytes(), b.Endpoint)
		if p != nil {
			continue // validation let it through only if it was fine; be safe
		}
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
			break feed
		}
		line := sc.Line()
		body := bytes.Clone(req.Body)
		wg.Add(1)
		a.inFlight.Add(1)
		go func() {
			defer func() { a.inFlight.Add(-1); <-sem; wg.Done() }()
			rec, ok := r.request(runCtx, line, req.CustomID, body)
			if ok {
				results <- rec
			}
		}()
	}
	scanErr := sc.Err()
	wg.Wait()
	close(results)
	collectErr := <-collected
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case collectErr != nil:
		return collectErr
	case r.leaseLost:
		return errors.New("lease lost to another agent")
	case r.stopReason != "":
		return nil
	case scanErr != nil:
		return scanErr
	}
	return nil
}

// collect writes results to the object store in chunks, every ChunkLines
// results or ChunkInterval, and on each tick renews the lease and looks for
// a stop. A chunk is committed only after its object is durable.
func (r *run) collect(ctx context.Context, cancel context.CancelCauseFunc, results <-chan batchline.Record, seq int64) error {
	a := r.a
	var (
		buf      bytes.Buffer
		c        store.Chunk
		flushErr error
	)
	flush := func() {
		if c.OutputLines+c.ErrorLines == 0 || flushErr != nil {
			return
		}
		c.BatchID, c.Seq, c.ObjectKey = r.b.ID, seq, jobs.ChunkKey(r.b.ID, seq)
		// The chunk must land even while the run is being stopped: what
		// finished is kept.
		err := retry(context.WithoutCancel(ctx), func(ctx context.Context) error {
			if _, err := a.bucket.Put(ctx, c.ObjectKey, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
				return err
			}
			return a.store.ChunkCommit(ctx, a.cfg.ID, c)
		})
		if err != nil {
			flushErr = fmt.Errorf("write chunk %d: %w", seq, err)
			cancel(flushErr)
			return
		}
		seq++
		buf.Reset()
		c = store.Chunk{}
	}
	tick := time.NewTicker(a.cfg.ChunkInterval)
	defer tick.Stop()
	for {
		select {
		case rec, ok := <-results:
			if !ok {
				flush()
				return flushErr
			}
			if flushErr != nil {
				continue // drain
			}
			line, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			buf.Write(line)
			buf.WriteByte('\n')
			if rec.OK {
				c.OutputLines++
			} else {
				c.ErrorLines++
			}
			in, out := usageOf(rec)
			c.InputTokens += in
			c.OutputTokens += out
			if int(c.OutputLines+c.ErrorLines) >= a.cfg.ChunkLines {
				flush()
			}
		case <-tick.C:
			flush()
			r.renew(ctx, cancel)
		}
	}
}

func (r *run) renew(ctx context.Context, cancel context.CancelCauseFunc) {
	if r.stopReason != "" || r.leaseLost {
		return
	}
	b, err := r.a.store.BatchLease(ctx, r.b.ID, r.a.cfg.ID, r.a.cfg.LeaseTTL)
	switch {
	case errors.Is(err, store.ErrConflict):
		r.leaseLost = true
		cancel(errors.New("lease lost"))
	case err != nil:
		r.log.WarnContext(ctx, "lease renewal failed", "err", err)
	case b.StopReason != "":
		r.stopReason = b.StopReason
		cancel(errors.New("batch " + b.StopReason))
	}
}

// request runs one input line and returns its record. ok is false when the
// run was stopped before the request finished: the line has no result, and
// the finalizer or a resumed run deals with it.
func (r *run) request(ctx context.Context, line int, customID string, body []byte) (batchline.Record, bool) {
	a := r.a
	var (
		status int
		resp   []byte
		err    error
	)
	for attempt := 0; ; attempt++ {
		reqCtx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
		status, resp, err = a.backend.Do(reqCtx, r.b.Endpoint, body)
		cancel()
		if ctx.Err() != nil {
			return batchline.Record{}, false
		}
		transient := err != nil || status == http.StatusTooManyRequests || status >= 500
		if !transient || attempt >= a.cfg.Retries {
			break
		}
		if sleep(ctx, backoff(attempt)) != nil {
			return batchline.Record{}, false
		}
	}
	out := batchline.Output{ID: ids.New(ids.BatchReq), CustomID: customID}
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		out.Error = &batchline.LineError{Code: batchline.CodeRequestTimeout, Message: fmt.Sprintf("the model did not answer within %s", a.cfg.RequestTimeout)}
	case err != nil:
		out.Error = &batchline.LineError{Code: batchline.CodeRequestFailed, Message: err.Error()}
	case !json.Valid(resp):
		out.Error = &batchline.LineError{Code: "invalid_response", Message: fmt.Sprintf("the model server answered %d with a body that is not JSON", status)}
	default:
		out.Response = &batchline.Response{StatusCode: status, RequestID: ids.New(ids.Request), Body: resp}
	}
	data, merr := json.Marshal(out)
	if merr != nil {
		return batchline.Record{}, false
	}
	return batchline.Record{Line: line, OK: out.Error == nil && status >= 200 && status < 300, Data: data}, true
}

// usageOf reads the token usage of a successful output line.
func usageOf(rec batchline.Record) (in, out int64) {
	if !rec.OK {
		return 0, 0
	}
	var o struct {
		Response struct {
			Body struct {
				Usage struct {
					PromptTokens     int64 `json:"prompt_tokens"`
					CompletionTokens int64 `json:"completion_tokens"`
				} `json:"usage"`
			} `json:"body"`
		} `json:"response"`
	}
	if json.Unmarshal(rec.Data, &o) != nil {
		return 0, 0
	}
	return o.Response.Body.Usage.PromptTokens, o.Response.Body.Usage.CompletionTokens
}

// backoff is exponential with full jitter: up to 250ms, 500ms, 1s, ...
func backoff(attempt int) time.Duration {
	ceiling := 250 * time.Millisecond << min(attempt, 6)
	return time.Duration(rand.Int64N(int64(ceiling))) + 10*time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry tries fn with backoff for about a minute: long enough to ride out
// a restart of the database or the object store.
func retry(ctx context.Context, fn func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || errors.Is(err, store.ErrConflict) || time.Now().After(deadline) {
			return err
		}
		if sleep(ctx, backoff(min(attempt, 3))) != nil {
			return err
		}
	}
}
