package gpuagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/tracing"
)

// shardKey names a shard.
type shardKey struct {
	batchID string
	idx     int64
}

// claimSeqs is how many chunk sequence numbers each claim of a shard has:
// claim c writes chunks c*claimSeqs, c*claimSeqs+1, …, and never more than
// one per line. So no two runs of a shard write the same chunk object,
// not even an agent that was paused past its lease and writes on before
// it learns that another agent took the shard over.
const claimSeqs = 1_000_000_000

// shardRun is one agent's run of one shard: it feeds the shard's lines
// without a durable result to the engine, collects their results into
// chunks, and renews the lease.
type shardRun struct {
	a       *Agent
	sh      store.Shard
	b       store.Batch
	backend Backend
	log     *slog.Logger

	ctx    context.Context // ends on a stop, a lost lease or a hard stop
	cancel context.CancelCauseFunc
	// span is the run's span in its batch's trace; chunks are its children.
	span trace.Span

	// Feeding, under a.mu.
	rc        io.ReadCloser
	sc        *batchline.Scanner
	done      batchline.Bitmap
	fed       bool           // no more requests start
	exhausted bool           // every line of the shard was started
	issued    sync.WaitGroup // requests started and not yet collected

	results   chan result
	collected chan error
	seq       int64

	// The project's series of the request and token counters, looked up
	// at the shard's first answer.
	countersOnce sync.Once
	requests     prometheus.Counter
	tokens       prometheus.Counter

	mu         sync.Mutex
	stopReason string
	leaseLost  bool
}

// openShard prepares a claimed shard: which of its lines already have a
// durable result, where its input starts.
func (a *Agent) openShard(ctx context.Context, sh store.Shard, b store.Batch, backend Backend) (*shardRun, error) {
	sr := &shardRun{a: a, sh: sh, b: b, backend: backend, log: a.log.With("batch", sh.BatchID, "shard", sh.Idx),
		results: make(chan result, a.cfg.ChunkLines), collected: make(chan error, 1)}
	fail := func(err error) (*shardRun, error) {
		_ = a.store.ShardRelease(context.WithoutCancel(ctx), sh.BatchID, sh.Idx, a.cfg.ID)
		return nil, fmt.Errorf("open shard %s/%d: %w", sh.BatchID, sh.Idx, err)
	}
	chunks, err := a.store.ChunkList(ctx, sh.BatchID, sh.Idx)
	if err != nil {
		return fail(err)
	}
	sr.seq = sh.Claims * claimSeqs
	for _, c := range chunks {
		sr.seq = max(sr.seq, c.Seq+1)
		rc, err := a.bucket.Get(ctx, c.ObjectKey)
		if err != nil {
			return fail(err)
		}
		err = batchline.ReadRecords(rc, func(rec batchline.Record) error { sr.done.Set(rec.Line); return nil })
		rc.Close()
		if err != nil {
			return fail(err)
		}
	}
	in, err := a.store.FileGet(ctx, b.InputFileID)
	if err != nil {
		return fail(err)
	}
	sr.rc, err = a.bucket.GetRange(ctx, in.ObjectKey, sh.Offset, -1)
	if err != nil {
		return fail(err)
	}
	sr.sc = batchline.NewScanner(sr.rc, a.cfg.MaxLineBytes)
	sr.ctx, sr.cancel = context.WithCancelCause(a.runCtx)
	_, sr.span = tracing.StartBatchWith(ctx, a.cfg.TracerProvider, b.TraceContext, "agent.shard", tracing.BatchID(sh.BatchID),
		attribute.Int64("kiln.shard", sh.Idx), attribute.Int64("kiln.shard.claims", sh.Claims), attribute.String("kiln.agent", a.cfg.ID),
		attribute.String("kiln.model", b.Model))
	if sh.Claims > 1 {
		sr.log.Info("shard taken over", "claims", sh.Claims, "lines_done", len(chunks))
	}
	a.running.Add(1)
	a.mu.Lock()
	a.runs[shardKey{sh.BatchID, sh.Idx}] = true
	a.mu.Unlock()
	sr.issued.Add(1) // the feed's own hold, released when fed
	go func() { sr.collected <- sr.collect() }()
	go sr.finish()
	return sr, nil
}

// next returns the shard's next line without a durable result, or false
// when the shard is fed. The caller holds a.mu.
func (sr *shardRun) next() (*request, bool) {
	if sr.fed {
		return nil, false
	}
	if sr.ctx.Err() == nil {
		for sr.sc.Next() {
			line := int(sr.sh.FirstLine) + sr.sc.Line() - 1
			if line > int(sr.sh.LastLine) {
				sr.exhausted = true
				break
			}
			if sr.done.Has(line) || sr.sc.TooLong() || batchline.Blank(sr.sc.Bytes()) {
				continue
			}
			in, _, p := batchline.ParseInput(sr.sc.Bytes(), sr.b.Endpoint)
			if p != nil {
				continue // validation passed it; be safe
			}
			sr.issued.Add(1)
			// in.Body is the line's body as it is, in a copy of its own.
			return &request{sr: sr, line: line, customID: in.CustomID, body: in.Body}, true
		}
		sr.exhausted = sr.sc.Err() == nil
	}
	sr.closeFeed()
	return nil, false
}

// closeFeed starts no more requests; those started finish. The caller holds
// a.mu.
func (sr *shardRun) closeFeed() {
	if sr.fed {
		return
	}
	sr.fed = true
	_ = sr.rc.Close()
	// The input's buffers go now, not once the shard's last chunk is in:
	// under a slow store many fed shards wait for their last chunks.
	sr.rc, sr.sc = nil, nil
	sr.issued.Done()
}

// finish waits for the shard's requests and chunks, then records the
// outcome: done, or handed back after a stop, a lost lease or a drain.
func (sr *shardRun) finish() {
	a := sr.a
	defer a.running.Done()
	sr.issued.Wait()
	close(sr.results)
	err := <-sr.collected
	// The batch's next steps (the finalizer, enqueued by the last shard)
	// continue the shard's trace.
	ctx := trace.ContextWithSpan(context.WithoutCancel(sr.ctx), sr.span)
	defer sr.span.End()
	sr.mu.Lock()
	stopped, lost := sr.stopReason != "", sr.leaseLost
	sr.mu.Unlock()
	a.mu.Lock()
	fedAll := sr.exhausted && sr.ctx.Err() == nil
	a.mu.Unlock()
	switch {
	case lost:
		sr.log.Warn("shard lease lost; the shard's current holder finishes it")
	case err != nil || !fedAll || stopped:
		if err != nil {
			sr.log.Warn("shard handed back", "err", err)
		}
		// Retried like chunk commits, so that a database restart does not
		// leave the shard waiting for its lease to run out.
		if rerr := retry(ctx, func(ctx context.Context) error {
			return a.store.ShardRelease(ctx, sr.sh.BatchID, sr.sh.Idx, a.cfg.ID)
		}); rerr != nil {
			sr.log.Warn("cannot release shard; its lease will expire", "err", rerr)
		}
	default:
		var b store.Batch
		ferr := retry(ctx, func(ctx context.Context) error {
			var err error
			b, err = a.batches.FinishShard(ctx, sr.sh.BatchID, sr.sh.Idx, a.cfg.ID)
			return err
		})
		if ferr != nil {
			sr.log.Warn("cannot record shard done; its lease will expire and it runs again", "err", ferr)
			break
		}
		if b.Status == store.BatchFinalizing {
			sr.log.Info("batch ran to the end", "requests", b.Total)
		}
	}
	sr.cancel(nil)
	a.mu.Lock()
	delete(a.runs, shardKey{sr.sh.BatchID, sr.sh.Idx})
	a.mu.Unlock()
}

// collect writes results to the object store in chunks, every ChunkLines
// results or ChunkInterval, and on each tick renews the lease and looks for
// a stop. A chunk is committed only after its object is durable.
func (sr *shardRun) collect() error {
	a := sr.a
	// A chunk is three objects: the result lines bound for the output file,
	// those bound for the error file (so the finalizer can concatenate them
	// server-side), and an index of which input line each answers, in the
	// same order. The buffers come from chunkBufPool for each chunk and go
	// back once it is written: a shard waiting for its last answers holds
	// none.
	var (
		bufs     *chunkBufs
		c        store.Chunk
		flushErr error
	)
	defer func() {
		if bufs != nil {
			putChunkBufs(bufs)
		}
	}()
	flush := func() {
		if c.OutputLines+c.ErrorLines == 0 || flushErr != nil {
			return
		}
		idx, out, errs := &bufs.idx, &bufs.out, &bufs.errs
		c.BatchID, c.Shard, c.Seq = sr.sh.BatchID, sr.sh.Idx, sr.seq
		c.ObjectKey = batch.ChunkKey(c.BatchID, c.Shard, c.Seq)
		c.OutputBytes, c.ErrorBytes = int64(out.Len()), int64(errs.Len())
		start := time.Now()
		_, span := a.cfg.TracerProvider.Tracer(tracing.Scope).Start(trace.ContextWithSpan(sr.ctx, sr.span), "agent.chunk",
			trace.WithAttributes(attribute.Int64("kiln.chunk.seq", c.Seq), attribute.Int64("kiln.chunk.output_lines", c.OutputLines),
				attribute.Int64("kiln.chunk.error_lines", c.ErrorLines)))
		// The chunk must land even while the shard is being stopped: what
		// finished is kept.
		err := retry(context.WithoutCancel(sr.ctx), func(ctx context.Context) error {
			for _, o := range []struct {
				key string
				buf *bytes.Buffer
			}{{batch.ChunkOutputKey(c.ObjectKey), out}, {batch.ChunkErrorKey(c.ObjectKey), errs}, {c.ObjectKey, idx}} {
				if o.buf.Len() == 0 {
					continue
				}
				if _, err := a.bucket.Put(ctx, o.key, bytes.NewReader(o.buf.Bytes()), int64(o.buf.Len())); err != nil {
					return err
				}
			}
			return a.store.ChunkCommit(ctx, a.cfg.ID, c)
		})
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "chunk not written")
			span.End()
			flushErr = fmt.Errorf("write chunk %d: %w", sr.seq, err)
			a.releaseHeld(int(c.OutputLines + c.ErrorLines)) // dropped: they run again
			if errors.Is(err, store.ErrConflict) {
				sr.mu.Lock()
				sr.leaseLost = true
				sr.mu.Unlock()
			}
			sr.cancel(flushErr)
			return
		}
		a.metrics.chunkWrite.Observe(time.Since(start).Seconds())
		span.End()
		a.releaseHeld(int(c.OutputLines + c.ErrorLines))
		sr.seq++
		putChunkBufs(bufs)
		bufs = nil
		c = store.Chunk{}
	}
	tick := time.NewTicker(a.cfg.ChunkInterval)
	defer tick.Stop()
	for {
		select {
		case res, ok := <-sr.results:
			if !ok {
				flush()
				return flushErr
			}
			if flushErr != nil {
				putLine(res.buf)
				a.releaseHeld(1)
				continue // drain
			}
			rec, u := res.rec, res.u
			if bufs == nil {
				bufs = chunkBufPool.Get().(*chunkBufs)
			}
			idx, out, errs := &bufs.idx, &bufs.out, &bufs.errs
			idx.Write(batchline.AppendIndexRecord(idx.AvailableBuffer(), rec.Line, rec.OK))
			if rec.OK {
				out.Write(rec.Data)
				out.WriteByte('\n')
				c.OutputLines++
			} else {
				errs.Write(rec.Data)
				errs.WriteByte('\n')
				c.ErrorLines++
			}
			putLine(res.buf)
			c.InputTokens += u.in
			c.OutputTokens += u.out
			c.CachedTokens += u.cached
			c.ReasoningTokens += u.reasoning
			if int(c.OutputLines+c.ErrorLines) >= a.cfg.ChunkLines {
				flush()
			}
		case <-tick.C:
			flush()
			sr.renew()
		}
	}
}

// chunkBufs are the buffers a chunk is written in. They are kept from one
// chunk to the next, across shards: grown anew by doubling for each shard,
// they were the agent's largest allocation (a seventh of its bytes).
type chunkBufs struct{ idx, out, errs bytes.Buffer }

var chunkBufPool = sync.Pool{New: func() any { return new(chunkBufs) }}

// maxPooledChunk bounds a chunk buffer kept for the next shard: a shard of
// huge answers does not leave its buffers to every shard after it.
const maxPooledChunk = 16 << 20

func putChunkBufs(b *chunkBufs) {
	for _, buf := range []*bytes.Buffer{&b.idx, &b.out, &b.errs} {
		if buf.Cap() > maxPooledChunk {
			*buf = bytes.Buffer{}
		}
		buf.Reset()
	}
	chunkBufPool.Put(b)
}

func (sr *shardRun) renew() {
	sr.mu.Lock()
	over := sr.stopReason != "" || sr.leaseLost
	sr.mu.Unlock()
	if over || sr.ctx.Err() != nil {
		return
	}
	b, err := sr.a.store.ShardRenew(sr.ctx, sr.sh.BatchID, sr.sh.Idx, sr.a.cfg.ID, sr.a.cfg.LeaseTTL)
	switch {
	case errors.Is(err, store.ErrConflict):
		sr.mu.Lock()
		sr.leaseLost = true
		sr.mu.Unlock()
		sr.cancel(errors.New("lease lost"))
	case err != nil:
		sr.log.Warn("lease renewal failed", "err", err)
	case b.StopReason != "":
		sr.mu.Lock()
		sr.stopReason = b.StopReason
		sr.mu.Unlock()
		sr.log.Info("shard stopping", "reason", b.StopReason)
		sr.cancel(errors.New("batch " + b.StopReason))
	}
}

// result is one request's output line on its way to the shard's chunk.
type result struct {
	rec batchline.Record
	u   usage   // the tokens it used
	buf *[]byte // from linePool, holding rec.Data: back to it once copied
}

// request is one input line on its way to the engine.
type request struct {
	sr       *shardRun
	line     int
	customID string
	body     []byte
}

// run sends the request, with retries, and hands its record to the shard.
// It holds a limiter slot, which it frees with the engine's verdict once
// the shard has the record. So while a shard's chunk writes stall (a slow
// store, a commit waiting on the database), its full queue of results
// holds the slots, and the agent starts nothing more: the answers waiting
// for a chunk are bounded by the slots and the shards' queues, rather
// than by how fast the engine answers while the writes stall.
func (r *request) run() {
	sr, a := r.sr, r.sr.a
	defer sr.issued.Done()
	defer a.metrics.inFlight.Dec()
	res, signal, ok := r.do(sr.ctx)
	defer a.limit.done(signal)
	if !ok {
		a.releaseHeld(1)
		return // stopped: the line stays without a result
	}
	a.completed.Add(1)
	toks := res.u.in + res.u.out
	a.tokens.Add(toks)
	sr.countersOnce.Do(func() {
		project := a.metrics.projects.of(sr.b.ProjectID)
		sr.requests = a.metrics.requests.WithLabelValues(project)
		sr.tokens = a.metrics.tokens.WithLabelValues(project)
	})
	sr.requests.Inc()
	sr.tokens.Add(float64(toks))
	select {
	case sr.results <- res:
	default:
		// The shard's queue is full: its chunk write is slow.
		a.metrics.answersWaiting.Inc()
		sr.results <- res
		a.metrics.answersWaiting.Dec()
	}
}

// do runs the request, retrying transient failures with backoff and jitter.
// signal is the verdict for adaptive concurrency: 1 answered in time, -1
// overloaded, 0 neither. ok is false when ctx ended first.
func (r *request) do(ctx context.Context) (res result, signal int, ok bool) {
	a := r.sr.a
	var (
		status  int
		resp    []byte
		err     error
		latency time.Duration
	)
	gen, _ := a.engine.Ready(ctx)
	for attempt := 0; ; attempt++ {
		reqCtx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
		began := time.Now()
		status, resp, err = r.sr.backend.Do(reqCtx, r.sr.b.Endpoint, r.body)
		latency = time.Since(began)
		cancel()
		if ctx.Err() != nil {
			return result{}, 0, false
		}
		overloaded := status == http.StatusTooManyRequests || status >= 500 || errors.Is(err, context.DeadlineExceeded)
		if overloaded {
			signal = -1
		}
		if errors.Is(err, ErrResponseTooLarge) {
			break // the same request would answer the same again
		}
		transient := err != nil || overloaded
		if !transient {
			break
		}
		if err != nil {
			// No answer: if the engine died and came back, the request
			// did not fail; it runs again without spending a retry.
			now, rerr := a.engine.Ready(ctx)
			if rerr != nil {
				return result{}, 0, false
			}
			if now != gen {
				gen = now
				attempt--
				continue
			}
		}
		if attempt >= a.cfg.Retries {
			break
		}
		if sleep(ctx, backoff(attempt)) != nil {
			return result{}, 0, false
		}
	}
	if signal == 0 {
		signal = 1
	}
	out := batchline.Output{ID: ids.New(ids.BatchReq), CustomID: r.customID}
	code := ""
	// The body is read once, for both its shape and its usage.
	var (
		ans     answer
		notJSON bool
		ansErr  error
	)
	if err == nil {
		ans, notJSON, ansErr = parseAnswer(resp)
	}
	switch {
	case errors.Is(err, ErrResponseTooLarge):
		code = "response_too_large"
		out.Error = &batchline.LineError{Code: code, Message: "the model's answer is larger than the agent accepts: " + err.Error()}
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		code = batchline.CodeRequestTimeout
		out.Error = &batchline.LineError{Code: code, Message: fmt.Sprintf("the model did not answer within %s", a.cfg.RequestTimeout)}
	case err != nil:
		code = batchline.CodeRequestFailed
		out.Error = &batchline.LineError{Code: code, Message: err.Error()}
	case notJSON:
		code = "invalid_response"
		out.Error = &batchline.LineError{Code: code, Message: fmt.Sprintf("the model server answered %d with a body that is not JSON", status)}
	case status >= 200 && status < 300 && !ans.is(r.sr.b.Endpoint, ansErr):
		code = "invalid_response"
		out.Error = &batchline.LineError{Code: code, Message: fmt.Sprintf("the model server answered %d with JSON that is not an answer of %s", status, r.sr.b.Endpoint)}
	default:
		out.Response = &batchline.Response{StatusCode: status, RequestID: ids.New(ids.Request), Body: resp,
			LatencyMS: max(latency.Milliseconds(), 1)}
		if status >= 300 {
			code = fmt.Sprint(status)
		}
	}
	if code != "" {
		a.metrics.errors.WithLabelValues(a.metrics.projects.of(r.sr.b.ProjectID), code).Inc()
	}
	res.rec = batchline.Record{Line: r.line, OK: out.Error == nil && status >= 200 && status < 300}
	if res.rec.OK {
		res.u = ans.Usage.usage()
	}
	if out.Error == nil {
		buf := linePool.Get().(*[]byte)
		if line, written := appendOutputLine(*buf, out.ID, out.CustomID, out.Response); written {
			*buf = line
			res.rec.Data, res.buf = line, buf
			return res, signal, true
		}
		linePool.Put(buf)
	}
	data, merr := json.Marshal(out)
	if merr != nil {
		return result{}, signal, false
	}
	res.rec.Data = data
	return res, signal, true
}

// usage is the token usage of one output line, as the engine reported it.
type usage struct {
	in, out           int64
	cached, reasoning int64 // details of in and out
}
