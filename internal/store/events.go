package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kilnhq/kiln/internal/ids"
)

// Event types. Batch events are named as OpenAI's webhook events.
const (
	EventBatchCompleted = "batch.completed"
	EventBatchFailed    = "batch.failed"
	EventBatchExpired   = "batch.expired"
	EventBatchCancelled = "batch.cancelled"
	EventFileCreated    = "file.created"
	// EventFileExpired is a kiln extension: a file reached its expires_at
	// and was deleted.
	EventFileExpired   = "file.expired"
	EventObjectCreated = "object.created"
)

// EventTypes lists every event type kiln emits.
var EventTypes = []string{EventBatchCompleted, EventBatchFailed, EventBatchExpired, EventBatchCancelled,
	EventFileCreated, EventFileExpired, EventObjectCreated}

// Event is something that happened, written in the same transaction as the
// change it reports.
type Event struct {
	ID        string
	Type      string
	CreatedAt int64
	// Data is the event's data object as JSON, e.g. {"id":"batch_..."}.
	Data json.RawMessage
	// DedupeKey, when set, makes the event unique: emitting a second event
	// with the same key does nothing.
	DedupeKey string
	// ProjectID is the project of the resource the event is about; its
	// invocations and deliveries belong to it too. Default: DefaultProject.
	ProjectID string
}

// Invocation statuses.
const (
	InvocationPending   = "pending"
	InvocationSucceeded = "succeeded"
	// InvocationDead is the dead letter: retries are exhausted.
	InvocationDead = "dead"
)

// Invocation is one function's handling of one event.
type Invocation struct {
	ID        string
	EventID   string
	Function  string
	Status    string
	Attempts  int64
	LastError string
	CreatedAt int64
	UpdatedAt int64
	// ProjectID is its event's project.
	ProjectID string
}

// Dispatcher routes events to functions. The store asks it, inside the
// transaction that writes an event, which functions subscribe to the event
// and which job runs each invocation, so that the event, its invocations and
// their jobs commit together.
type Dispatcher interface {
	Functions(eventType string) []string
	Job(inv Invocation) Job
}

type dispatcherSlot struct {
	mu sync.RWMutex
	d  Dispatcher
}

// SetDispatcher routes the events written from now on. Without one, events
// are recorded and trigger nothing.
func (s *Store) SetDispatcher(d Dispatcher) {
	s.dispatch.mu.Lock()
	s.dispatch.d = d
	s.dispatch.mu.Unlock()
}

func (s *Store) dispatcher() Dispatcher {
	s.dispatch.mu.RLock()
	defer s.dispatch.mu.RUnlock()
	return s.dispatch.d
}

// emit writes ev, its invocations and their jobs inside a transaction. It
// reports false, writing nothing, when an event with ev's DedupeKey exists.
func (s *Store) emit(ctx context.Context, q querier, enq enqueue, ev *Event) (bool, error) {
	if ev.ID == "" {
		ev.ID = ids.New(ids.Event)
	}
	if ev.CreatedAt == 0 {
		ev.CreatedAt = now()
	}
	var dedupe *string
	if ev.DedupeKey != "" {
		dedupe = &ev.DedupeKey
	}
	ev.ProjectID = cmp.Or(ev.ProjectID, DefaultProject)
	n, err := q.exec(ctx, `INSERT INTO events (id, type, created_at, data, dedupe_key, project_id) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (dedupe_key) DO NOTHING`, ev.ID, ev.Type, ev.CreatedAt, string(ev.Data), dedupe, ev.ProjectID)
	if err != nil {
		return false, fmt.Errorf("event %s: %w", ev.Type, err)
	}
	if n == 0 {
		return false, nil
	}
	d := s.dispatcher()
	if d == nil {
		return true, nil
	}
	t := time.Now().Unix()
	for _, fn := range d.Functions(ev.Type) {
		inv := Invocation{ID: ids.New(ids.Invocation), EventID: ev.ID, Function: fn, Status: InvocationPending, CreatedAt: t, UpdatedAt: t,
			ProjectID: ev.ProjectID}
		if _, err := q.exec(ctx, `INSERT INTO function_invocations (id, event_id, function, status, created_at, updated_at, project_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, inv.ID, inv.EventID, inv.Function, inv.Status, inv.CreatedAt, inv.UpdatedAt, inv.ProjectID); err != nil {
			return false, fmt.Errorf("invocation %s of %s: %w", fn, ev.ID, err)
		}
		if err := enq(ctx, d.Job(inv)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// idData is the data of an event about one object: {"id": id}.
func idData(id string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"id": id})
	return b
}

// batchEvent is the event of a batch's terminal status, or "".
func batchEvent(status BatchStatus) string {
	switch status {
	case BatchCompleted:
		return EventBatchCompleted
	case BatchFailed:
		return EventBatchFailed
	case BatchExpired:
		return EventBatchExpired
	case BatchCancelled:
		return EventBatchCancelled
	}
	return ""
}

// EventEmit writes an event that reports no other change of the store's
// (an object that appeared in the bucket). It reports false when an event
// with the same DedupeKey was already written.
func (s *Store) EventEmit(ctx context.Context, ev *Event) (bool, error) {
	var created bool
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		var err error
		created, err = s.emit(ctx, q, enq, ev)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: emit %s: %w", ev.Type, err)
	}
	return created, nil
}

const eventColumns = `id, type, created_at, data, COALESCE(dedupe_key, ''), project_id`

func scanEvent(r row) (Event, error) {
	var ev Event
	var data string
	if err := r.Scan(&ev.ID, &ev.Type, &ev.CreatedAt, &data, &ev.DedupeKey, &ev.ProjectID); err != nil {
		return Event{}, err
	}
	ev.Data = json.RawMessage(data)
	return ev, nil
}

// EventGet returns one event.
func (s *Store) EventGet(ctx context.Context, id string) (Event, error) {
	ev, err := scanEvent(s.d.db().queryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id))
	if err != nil {
		return Event{}, fmt.Errorf("store: get event %s: %w", id, err)
	}
	return ev, nil
}

// EventList lists the events of a project (every project's with ""),
// newest first, of one type or all (""), after the cursor, up to limit,
// and whether more follow.
func (s *Store) EventList(ctx context.Context, project, typ, after string, limit int) ([]Event, bool, error) {
	out, more, err := newestPage(ctx, s.d.db(), scanEvent, `SELECT `+eventColumns+` FROM events`, nil,
		[][2]string{{"project_id", project}, {"type", typ}}, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("store: list events: %w", err)
	}
	return out, more, nil
}

const invocationColumns = `id, event_id, function, status, attempts, last_error, created_at, updated_at, project_id`

func scanInvocation(r row) (Invocation, error) {
	var inv Invocation
	err := r.Scan(&inv.ID, &inv.EventID, &inv.Function, &inv.Status, &inv.Attempts, &inv.LastError, &inv.CreatedAt, &inv.UpdatedAt, &inv.ProjectID)
	return inv, err
}

// InvocationGet returns one invocation.
func (s *Store) InvocationGet(ctx context.Context, id string) (Invocation, error) {
	inv, err := scanInvocation(s.d.db().queryRow(ctx, `SELECT `+invocationColumns+` FROM function_invocations WHERE id = $1`, id))
	if err != nil {
		return Invocation{}, fmt.Errorf("store: get invocation %s: %w", id, err)
	}
	return inv, nil
}

// InvocationList lists the invocations of a project (every project's
// with ""), newest first, with one status or all (""), after the cursor,
// up to limit, and whether more follow.
func (s *Store) InvocationList(ctx context.Context, project, status, after string, limit int) ([]Invocation, bool, error) {
	out, more, err := newestPage(ctx, s.d.db(), scanInvocation, `SELECT `+invocationColumns+` FROM function_invocations`, nil,
		[][2]string{{"project_id", project}, {"status", status}}, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("store: list invocations: %w", err)
	}
	return out, more, nil
}

// InvocationRecord records an attempt of a pending invocation: its count,
// its error ("" on success) and its new status. A finished invocation is
// left as it is (ErrConflict): a late duplicate job changes nothing.
func (s *Store) InvocationRecord(ctx context.Context, id string, attempts int64, status, lastErr string) error {
	n, err := s.d.db().exec(ctx, `UPDATE function_invocations SET attempts = $2, status = $3, last_error = $4, updated_at = $5
		WHERE id = $1 AND status = $6`, id, attempts, status, lastErr, now(), InvocationPending)
	if err != nil {
		return fmt.Errorf("store: record invocation %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("store: record invocation %s: %w", id, ErrConflict)
	}
	return nil
}

// InvocationRetry sends a dead invocation back to pending with a new job,
// in one transaction. One that is not dead is ErrConflict.
func (s *Store) InvocationRetry(ctx context.Context, id string) (Invocation, error) {
	var inv Invocation
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		var err error
		inv, err = scanInvocation(q.queryRow(ctx, `SELECT `+invocationColumns+` FROM function_invocations WHERE id = $1`+s.d.forUpdate(), id))
		if err != nil {
			return err
		}
		if inv.Status != InvocationDead {
			return ErrConflict
		}
		d := s.dispatcher()
		if d == nil {
			return errors.New("no dispatcher")
		}
		inv.Status, inv.UpdatedAt = InvocationPending, now()
		if _, err := q.exec(ctx, `UPDATE function_invocations SET status = $2, updated_at = $3 WHERE id = $1`, id, inv.Status, inv.UpdatedAt); err != nil {
			return err
		}
		return enq(ctx, d.Job(inv))
	})
	if err != nil {
		return Invocation{}, fmt.Errorf("store: retry invocation %s: %w", id, err)
	}
	return inv, nil
}

// collect runs a query and scans every row.
func collect[T any](ctx context.Context, q querier, scan func(row) (T, error), sql string, args ...any) ([]T, error) {
	rs, err := q.query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rs.Err()
}

// newestPage runs base (a SELECT without WHERE) for the rows that match
// every column = value of eq whose value is not "", and the conditions of
// where (with their args as $1…), newest first (by id) after the cursor,
// up to limit, and reports whether more follow.
func newestPage[T any](ctx context.Context, q querier, scan func(row) (T, error), base string, where []string, eq [][2]string,
	after string, limit int, args ...any) ([]T, bool, error) {
	conds := append([]string{"1 = 1"}, where...)
	for _, c := range eq {
		if c[1] != "" {
			args = append(args, c[1])
			conds = append(conds, fmt.Sprintf("%s = $%d", c[0], len(args)))
		}
	}
	if after != "" {
		args = append(args, after)
		conds = append(conds, fmt.Sprintf("id < $%d", len(args)))
	}
	args = append(args, limit+1)
	out, err := collect(ctx, q, scan, base+` WHERE `+strings.Join(conds, " AND ")+fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, false, err
	}
	return page(out, limit)
}

// page cuts a query's limit+1 rows to limit and reports whether more follow.
func page[T any](out []T, limit int) ([]T, bool, error) {
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// EventsPrune deletes events created before the Unix time before, with
// their finished invocations and deliveries; an event with one still
// pending is kept until it finishes. It returns how many events went.
func (s *Store) EventsPrune(ctx context.Context, before int64) (int64, error) {
	var n int64
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		old := `SELECT id FROM events WHERE created_at < $1`
		if _, err := q.exec(ctx, `DELETE FROM webhook_deliveries WHERE status <> $2 AND event_id IN (`+old+`)`, before, DeliveryPending); err != nil {
			return err
		}
		if _, err := q.exec(ctx, `DELETE FROM function_invocations WHERE status <> $2 AND event_id IN (`+old+`)`, before, InvocationPending); err != nil {
			return err
		}
		var err error
		n, err = q.exec(ctx, `DELETE FROM events WHERE created_at < $1
			AND NOT EXISTS (SELECT 1 FROM function_invocations i WHERE i.event_id = events.id)
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id)`, before)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune events: %w", err)
	}
	return n, nil
}
