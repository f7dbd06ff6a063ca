package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// BatchStatus is a batch's place in OpenAI's lifecycle, as openai-go's
// BatchStatus. Which transitions are allowed is internal/batch's rule; the
// store carries them out.
type BatchStatus string

// Batch statuses: OpenAI's lifecycle.
const (
	BatchValidating BatchStatus = "validating"
	BatchFailed     BatchStatus = "failed"
	BatchInProgress BatchStatus = "in_progress"
	BatchFinalizing BatchStatus = "finalizing"
	BatchCompleted  BatchStatus = "completed"
	BatchExpired    BatchStatus = "expired"
	BatchCancelling BatchStatus = "cancelling"
	BatchCancelled  BatchStatus = "cancelled"
)

// Terminal reports whether the status is final: the batch has ended.
func (s BatchStatus) Terminal() bool {
	switch s {
	case BatchFailed, BatchCompleted, BatchExpired, BatchCancelled:
		return true
	}
	return false
}

// Stop reasons: why a batch stops before all its requests ran.
const (
	StopCancelled = "cancelled"
	StopExpired   = "expired"
)

// BatchError is one entry of Batch.errors.data, as OpenAI's BatchError.
type BatchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

// Batch is a stored batch.
type Batch struct {
	ID               string
	Endpoint         string
	Model            string
	InputFileID      string
	CompletionWindow string
	Status           BatchStatus
	OutputFileID     *string
	ErrorFileID      *string
	Errors           []BatchError
	Metadata         map[string]string
	CreatedAt        int64
	InProgressAt     *int64
	ExpiresAt        int64
	FinalizingAt     *int64
	CompletedAt      *int64
	FailedAt         *int64
	ExpiredAt        *int64
	CancellingAt     *int64
	CancelledAt      *int64
	Total            int64
	Completed        int64
	Failed           int64
	InputTokens      int64
	OutputTokens     int64
	// CachedTokens and ReasoningTokens are the details of InputTokens and
	// OutputTokens the engines reported: prompt-cache hits and reasoning.
	CachedTokens    int64
	ReasoningTokens int64
	StopReason      string
	Priority        int64
	ShardsTotal     int64
	ShardsDone      int64
	// Conquest is the conquest type the batch was built from, if any.
	Conquest Conquest
	// ProjectID is the batch's project; its shards, chunks, files and
	// events belong to it too. Default: DefaultProject.
	ProjectID string
	// TraceContext is the W3C traceparent of the span that created the
	// batch, under which later work on it is traced; "" without tracing.
	TraceContext string
	// OutputExpiresAfter is how many seconds after finalize makes them the
	// batch's output and error files expire (its output_expires_after); 0
	// leaves them to the purpose's retention.
	OutputExpiresAfter int64
	// RetryOf is the batch whose failed lines this batch retries; "" for
	// a batch of its own. A batch is retried at most once.
	RetryOf string
}

// Conquest is what a batch knows of its conquest type and its outputs'
// validity.
type Conquest struct {
	Type    string // "" when the batch is no conquest
	Version int64
	Valid   int64
	Invalid int64
	// CheckedAt is when the outputs were checked; nil before.
	CheckedAt *int64
	// Error says why the outputs could not be checked at all.
	Error string
}

// Terminal reports whether the batch has reached a final status.
func (b Batch) Terminal() bool { return b.Status.Terminal() }

const batchColumns = `id, endpoint, model, input_file_id, completion_window, status, output_file_id, error_file_id,
	errors, metadata, created_at, in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at,
	cancelling_at, cancelled_at, total, completed, failed, input_tokens, output_tokens, stop_reason, priority, shards_total, shards_done,
	conquest_type, conquest_version, conquest_valid, conquest_invalid, conquest_checked_at, conquest_error, project_id, trace_context,
	output_expires_after, cached_tokens, reasoning_tokens, retry_of`

func scanBatch(r row) (Batch, error) {
	var b Batch
	var errs, meta *string
	err := r.Scan(&b.ID, &b.Endpoint, &b.Model, &b.InputFileID, &b.CompletionWindow, &b.Status, &b.OutputFileID, &b.ErrorFileID,
		&errs, &meta, &b.CreatedAt, &b.InProgressAt, &b.ExpiresAt, &b.FinalizingAt, &b.CompletedAt, &b.FailedAt, &b.ExpiredAt,
		&b.CancellingAt, &b.CancelledAt, &b.Total, &b.Completed, &b.Failed, &b.InputTokens, &b.OutputTokens, &b.StopReason,
		&b.Priority, &b.ShardsTotal, &b.ShardsDone,
		&b.Conquest.Type, &b.Conquest.Version, &b.Conquest.Valid, &b.Conquest.Invalid, &b.Conquest.CheckedAt, &b.Conquest.Error, &b.ProjectID,
		&b.TraceContext, &b.OutputExpiresAfter, &b.CachedTokens, &b.ReasoningTokens, &b.RetryOf)
	if err != nil {
		return Batch{}, err
	}
	if errs != nil {
		if err := json.Unmarshal([]byte(*errs), &b.Errors); err != nil {
			return Batch{}, fmt.Errorf("store: batch %s errors: %w", b.ID, err)
		}
	}
	if meta != nil {
		if err := json.Unmarshal([]byte(*meta), &b.Metadata); err != nil {
			return Batch{}, fmt.Errorf("store: batch %s metadata: %w", b.ID, err)
		}
	}
	return b, nil
}

func jsonOrNil(v any, empty bool) (*string, error) {
	if empty {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

// BatchCreate stores a new batch and, in the same transaction, the jobs that
// follow its creation.
func (s *Store) BatchCreate(ctx context.Context, b Batch, jobs ...Job) error {
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		if err := insertBatch(ctx, q, b); err != nil {
			return err
		}
		return enqueueAll(ctx, enq, jobs)
	})
	if err != nil {
		return fmt.Errorf("store: create batch: %w", err)
	}
	return nil
}

// BatchCreateWithInput stores a new batch with its new input file f, and
// the jobs that follow its creation, in one transaction: both are kept, or
// neither.
func (s *Store) BatchCreateWithInput(ctx context.Context, f File, b Batch, jobs ...Job) error {
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		if err := s.insertFile(ctx, q, enq, f); err != nil {
			return err
		}
		if err := insertBatch(ctx, q, b); err != nil {
			return err
		}
		return enqueueAll(ctx, enq, jobs)
	})
	if err != nil {
		return fmt.Errorf("store: create batch: %w", err)
	}
	return nil
}

func insertBatch(ctx context.Context, q querier, b Batch) error {
	meta, err := jsonOrNil(b.Metadata, b.Metadata == nil)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO batches (id, endpoint, model, input_file_id, completion_window, status, metadata, created_at, expires_at, priority,
		conquest_type, conquest_version, project_id, trace_context, output_expires_after, retry_of)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		b.ID, b.Endpoint, b.Model, b.InputFileID, b.CompletionWindow, b.Status, meta, b.CreatedAt, b.ExpiresAt, b.Priority,
		b.Conquest.Type, b.Conquest.Version, cmp.Or(b.ProjectID, DefaultProject), b.TraceContext, b.OutputExpiresAfter, b.RetryOf)
	if b.RetryOf != "" && IsPermanent(err) {
		// The unique index on retry_of: the batch was retried already.
		return fmt.Errorf("batch %s was retried already: %w", b.RetryOf, ErrConflict)
	}
	return err
}

func enqueueAll(ctx context.Context, enq enqueue, jobs []Job) error {
	for _, j := range jobs {
		if err := enq(ctx, j); err != nil {
			return fmt.Errorf("enqueue %s: %w", j.Args.Kind(), err)
		}
	}
	return nil
}

// BatchGet returns one batch.
func (s *Store) BatchGet(ctx context.Context, id string) (Batch, error) {
	return getBatch(ctx, s.d.db(), id)
}

func getBatch(ctx context.Context, q querier, id string) (Batch, error) {
	b, err := scanBatch(q.queryRow(ctx, `SELECT `+batchColumns+` FROM batches WHERE id = $1`, id))
	if err != nil {
		return Batch{}, fmt.Errorf("store: get batch %s: %w", id, err)
	}
	return b, nil
}

// BatchList lists batches newest first, after the cursor, up to limit, and
// whether more follow.
func (s *Store) BatchList(ctx context.Context, project, after string, limit int) ([]Batch, bool, error) {
	sql := `SELECT ` + batchColumns + ` FROM batches WHERE project_id = $2`
	args := []any{limit + 1, cmp.Or(project, DefaultProject)}
	if after != "" {
		sql += ` AND id < $3`
		args = append(args, after)
	}
	sql += ` ORDER BY id DESC LIMIT $1`
	rs, err := s.d.db().query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list batches: %w", err)
	}
	defer rs.Close()
	var out []Batch
	for rs.Next() {
		b, err := scanBatch(rs)
		if err != nil {
			return nil, false, err
		}
		out = append(out, b)
	}
	if err := rs.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// BatchStart moves a validated batch from validating to in_progress, with
// its request count, model and shards, which agents may claim from then on.
// Jobs commit with it. A batch that was cancelled or expired meanwhile is
// ErrConflict.
func (s *Store) BatchStart(ctx context.Context, id string, total int64, model string, shards []Shard, jobs ...Job) (Batch, error) {
	return s.BatchStartWith(ctx, id, BatchStartParams{Total: total, Model: model, Shards: spansOf(shards)}, jobs...)
}

// BatchStartConquest is BatchStart that also records the conquest type the
// batch's requests were built from, unless one was named at creation.
func (s *Store) BatchStartConquest(ctx context.Context, id string, total int64, model string, cq Conquest, shards []Shard, jobs ...Job) (Batch, error) {
	return s.BatchStartWith(ctx, id, BatchStartParams{Total: total, Model: model, Conquest: cq, Shards: spansOf(shards)}, jobs...)
}

// BatchStartParams are what validation found of a batch.
type BatchStartParams struct {
	Total    int64
	Model    string
	Conquest Conquest // the type the requests were built from, if any
	// Shards are the batch's shards, in order: what validation found of
	// each, 32 bytes a shard where a Shard is over a hundred (a batch of
	// 10,000,000 requests has 20,000).
	Shards []ShardSpan
	// InputTokens is the batch's estimate of its input tokens; with
	// MaxEnqueuedTokens > 0, the batch starts only if the input tokens of
	// its project's running batches of the model, its own included, stay
	// within MaxEnqueuedTokens (else a *TokenLimitError).
	InputTokens       int64
	MaxEnqueuedTokens int64
}

// insertShards writes a starting batch's shards, pending and ready now. On
// Postgres they go as arrays in one statement: one a shard took 20,000
// round trips for a batch of 10,000,000 requests. SQLite, in kiln's
// process, runs one kept statement a shard.
func (s *Store) insertShards(ctx context.Context, q querier, id, model string, priority int64, shards []ShardSpan) error {
	readyAt := time.Now().UnixMilli()
	if s.d.name() == "postgres" {
		first, last := make([]int64, len(shards)), make([]int64, len(shards))
		offset, requests := make([]int64, len(shards)), make([]int64, len(shards))
		for i, sh := range shards {
			first[i], last[i], offset[i], requests[i] = sh.FirstLine, sh.LastLine, sh.Offset, sh.Requests
		}
		_, err := q.exec(ctx, `INSERT INTO batch_shards `+shardInsertColumns+`
			SELECT $1, s.idx - 1, $2, $3, s.first_line, s.last_line, s.byte_offset, s.requests, $4, $5
			FROM unnest($6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[]) WITH ORDINALITY
				AS s (first_line, last_line, byte_offset, requests, idx)`,
			id, model, priority, ShardPending, readyAt, first, last, offset, requests)
		return err
	}
	for i, sh := range shards {
		if _, err := q.exec(ctx, `INSERT INTO batch_shards `+shardInsertColumns+`
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			id, i, model, priority, sh.FirstLine, sh.LastLine, sh.Offset, sh.Requests, ShardPending, readyAt); err != nil {
			return err
		}
	}
	return nil
}

// shardInsertColumns are the columns insertShards writes.
const shardInsertColumns = `(batch_id, idx, model, priority, first_line, last_line, byte_offset, requests, status, ready_at)`

// ShardSpan is what validation finds of a shard: its lines, the byte
// offset of its first, and its requests.
type ShardSpan struct {
	FirstLine, LastLine, Offset, Requests int64
}

// spansOf is the spans of shards.
func spansOf(shards []Shard) []ShardSpan {
	out := make([]ShardSpan, len(shards))
	for i, sh := range shards {
		out[i] = ShardSpan{FirstLine: sh.FirstLine, LastLine: sh.LastLine, Offset: sh.Offset, Requests: sh.Requests}
	}
	return out
}

// TokenLimitError is a batch that would take its project's enqueued input
// tokens for a model past the limit.
type TokenLimitError struct {
	Limit, Enqueued, Batch int64
}

func (e *TokenLimitError) Error() string {
	return fmt.Sprintf("store: %d enqueued input tokens and %d more exceed the limit of %d", e.Enqueued, e.Batch, e.Limit)
}

// BatchStartWith is BatchStart with everything validation found.
func (s *Store) BatchStartWith(ctx context.Context, id string, p BatchStartParams, jobs ...Job) (Batch, error) {
	b, err := s.batchStart(ctx, id, p, jobs)
	if err == nil {
		s.shardsChanged()
	}
	return b, err
}

func (s *Store) batchStart(ctx context.Context, id string, p BatchStartParams, jobs []Job) (Batch, error) {
	return s.transition(ctx, id, func(q querier, _ enqueue, b Batch) error {
		if b.Status != BatchValidating || b.StopReason != "" {
			return ErrConflict
		}
		if p.MaxEnqueuedTokens > 0 {
			// One start at a time per project: two cannot both take the
			// last tokens (SQLite's write lock does this already).
			if _, ok := s.d.(*pgDriver); ok {
				if _, err := q.exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('kiln.enqueued_tokens:' || $1))`, b.ProjectID); err != nil {
					return err
				}
			}
			var enqueued int64
			if err := q.queryRow(ctx, `SELECT COALESCE(SUM(enqueued_tokens), 0) FROM batches
				WHERE project_id = $1 AND model = $2 AND status IN ($3, $4, $5)`,
				b.ProjectID, p.Model, BatchInProgress, BatchFinalizing, BatchCancelling).Scan(&enqueued); err != nil {
				return err
			}
			if enqueued+p.InputTokens > p.MaxEnqueuedTokens {
				return &TokenLimitError{Limit: p.MaxEnqueuedTokens, Enqueued: enqueued, Batch: p.InputTokens}
			}
		}
		if err := s.insertShards(ctx, q, id, p.Model, b.Priority, p.Shards); err != nil {
			return err
		}
		_, err := q.exec(ctx, `UPDATE batches SET status = $2, in_progress_at = $3, total = $4, model = $5, shards_total = $6, enqueued_tokens = $7 WHERE id = $1`,
			id, BatchInProgress, now(), p.Total, p.Model, len(p.Shards), p.InputTokens)
		if err != nil {
			return err
		}
		if cq := p.Conquest; cq.Type != "" && b.Conquest.Type == "" {
			if _, err := q.exec(ctx, `UPDATE batches SET conquest_type = $2, conquest_version = $3 WHERE id = $1`, id, cq.Type, cq.Version); err != nil {
				return err
			}
		}
		return s.d.notifyShards(ctx, q)
	}, jobs)
}

// BatchFail moves a batch from validating to failed with its errors.
func (s *Store) BatchFail(ctx context.Context, id string, errs []BatchError) (Batch, error) {
	return s.BatchFailWith(ctx, id, "", errs)
}

// BatchFailWith is BatchFail that also records the model validation read
// from the file (the first line's, when lines mix models), as OpenAI fills
// a failed batch's model. An empty model keeps the batch's.
func (s *Store) BatchFailWith(ctx context.Context, id, model string, errs []BatchError) (Batch, error) {
	doc, err := jsonOrNil(errs, false)
	if err != nil {
		return Batch{}, err
	}
	return s.transition(ctx, id, func(q querier, _ enqueue, b Batch) error {
		if b.Status != BatchValidating {
			return ErrConflict
		}
		_, err := q.exec(ctx, `UPDATE batches SET status = $2, failed_at = $3, errors = $4, model = $5 WHERE id = $1`,
			id, BatchFailed, now(), doc, cmp.Or(model, b.Model))
		return err
	}, nil)
}

// BatchRequestStop asks a batch to stop, for reason StopCancelled or
// StopExpired, and enqueues jobs (the finalizer) in the same transaction.
// Cancelling moves the batch to cancelling. A batch that is finalizing or
// terminal is ErrConflict; a batch already stopping keeps its first reason.
func (s *Store) BatchRequestStop(ctx context.Context, id, reason string, jobs ...Job) (Batch, error) {
	return s.transition(ctx, id, func(q querier, _ enqueue, b Batch) error {
		switch {
		case b.Terminal(), b.Status == BatchFinalizing:
			return ErrConflict
		case b.StopReason != "":
			return nil
		case reason == StopCancelled:
			_, err := q.exec(ctx, `UPDATE batches SET status = $2, cancelling_at = $3, stop_reason = $4 WHERE id = $1`,
				id, BatchCancelling, now(), reason)
			return err
		default:
			_, err := q.exec(ctx, `UPDATE batches SET stop_reason = $2 WHERE id = $1`, id, reason)
			return err
		}
	}, jobs)
}

// Outcome is what finalizing a batch produced.
type Outcome struct {
	Output, Errors    *File // nil when there are no such lines
	Completed, Failed int64 // lines in each file
}

// BatchComplete records the output and error files and moves the batch to
// its terminal status: completed, or cancelled or expired after a stop. The
// counts become the files' line counts. A batch already terminal is
// ErrConflict, and nothing is written.
func (s *Store) BatchComplete(ctx context.Context, id string, o Outcome, jobs ...Job) (Batch, error) {
	output, errorsFile := o.Output, o.Errors
	return s.transition(ctx, id, func(q querier, enq enqueue, b Batch) error {
		if b.Terminal() {
			return ErrConflict
		}
		var outID, errID *string
		for _, f := range []*File{output, errorsFile} {
			if f == nil {
				continue
			}
			if err := s.insertFile(ctx, q, enq, *f); err != nil {
				return err
			}
		}
		if output != nil {
			outID = &output.ID
		}
		if errorsFile != nil {
			errID = &errorsFile.ID
		}
		t := now()
		status, col := BatchCompleted, "completed_at"
		switch b.StopReason {
		case StopCancelled:
			status, col = BatchCancelled, "cancelled_at"
		case StopExpired:
			status, col = BatchExpired, "expired_at"
		}
		sql := `UPDATE batches SET status = $2, output_file_id = $3, error_file_id = $4, ` + col + ` = $5,
			completed = $6, failed = $7`
		if b.FinalizingAt == nil {
			sql += `, finalizing_at = $5`
		}
		_, err := q.exec(ctx, sql+` WHERE id = $1`, id, status, outID, errID, t, o.Completed, o.Failed)
		return err
	}, jobs)
}

// errNoJobs, returned by a transition's fn, commits the change without its
// jobs.
var errNoJobs = errors.New("store: commit without jobs")

// transition reads the batch inside a transaction (locking its row on
// PostgreSQL; SQLite transactions already hold the write lock), applies fn,
// enqueues jobs and returns the batch as it is after the change.
func (s *Store) transition(ctx context.Context, id string, fn func(q querier, enq enqueue, b Batch) error, jobs []Job) (Batch, error) {
	var out Batch
	ended := false
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		b, err := scanBatch(q.queryRow(ctx, `SELECT `+batchColumns+` FROM batches WHERE id = $1`+s.d.forUpdate(), id))
		if err != nil {
			return err
		}
		switch err := fn(q, enq, b); {
		case errors.Is(err, errNoJobs):
		case err != nil:
			return err
		default:
			if err := enqueueAll(ctx, enq, jobs); err != nil {
				return err
			}
		}
		out, err = getBatch(ctx, q, id)
		if err != nil {
			return err
		}
		// Reaching a terminal status is an event, in the same transaction,
		// and wakes readers tailing the batch's results.
		if out.Terminal() && !b.Terminal() {
			ended = true
			if _, err = s.emit(ctx, q, enq, &Event{Type: batchEvent(out.Status), Data: idData(id), ProjectID: out.ProjectID}); err != nil {
				return err
			}
			return s.d.notifyResults(ctx, q)
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("store: batch %s: %w", id, err)
	}
	if ended {
		s.resultsChanged()
	}
	return out, nil
}

// BatchRetry is the batch that retries batch id's failed lines, or
// ErrNotFound when none does.
func (s *Store) BatchRetry(ctx context.Context, id string) (Batch, error) {
	b, err := scanBatch(s.d.db().queryRow(ctx, `SELECT `+batchColumns+` FROM batches WHERE retry_of = $1`, id))
	if err != nil {
		return Batch{}, fmt.Errorf("store: retry of batch %s: %w", id, err)
	}
	return b, nil
}

// BatchStatuses returns the status of each of ids that is a batch; an ID
// that is none is absent.
func (s *Store) BatchStatuses(ctx context.Context, ids []string) (map[string]BatchStatus, error) {
	out := make(map[string]BatchStatus)
	err := s.queryIDs(ctx, ids, 1, func(in func(int) string) string {
		return `SELECT id, status FROM batches WHERE id IN (` + in(0) + `)`
	}, func(r rows) error {
		var id string
		var status BatchStatus
		if err := r.Scan(&id, &status); err != nil {
			return err
		}
		out[id] = status
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: batch statuses: %w", err)
	}
	return out, nil
}

// BatchOpen is how many batches of a model have a status that is not final,
// and the earliest end of their completion windows.
type BatchOpen struct {
	Status BatchStatus
	Model  string // "" before validation names it
	Count  int64
	// NextExpiresAt is the earliest expires_at (Unix seconds) of the batches.
	NextExpiresAt int64
}

// BatchOpenStats counts the batches not yet ended per status and model,
// each with its earliest expiry, for metrics: batches near the end of their
// window that still wait or run are about to expire.
func (s *Store) BatchOpenStats(ctx context.Context) ([]BatchOpen, error) {
	out, err := collect(ctx, s.d.db(), func(r row) (BatchOpen, error) {
		var o BatchOpen
		err := r.Scan(&o.Status, &o.Model, &o.Count, &o.NextExpiresAt)
		return o, err
	}, `SELECT status, model, COUNT(*), MIN(expires_at) FROM batches
		WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling')
		GROUP BY status, model ORDER BY status, model`)
	if err != nil {
		return nil, fmt.Errorf("store: open batches: %w", err)
	}
	return out, nil
}
