package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// WebhookEndpoint is a registered receiver of events.
type WebhookEndpoint struct {
	ID         string
	URL        string
	Name       string
	EventTypes []string
	Secret     string
	// PreviousSecret also signs deliveries until PreviousExpiresAt, after
	// a rotation that keeps it active.
	PreviousSecret    string
	PreviousExpiresAt int64
	CreatedAt         int64
	UpdatedAt         int64
	// ProjectID is the endpoint's project: it receives that project's
	// events only. Default: DefaultProject.
	ProjectID string
}

// Secrets are the secrets that sign a delivery now.
func (e WebhookEndpoint) Secrets() []string {
	if e.PreviousSecret != "" && now() < e.PreviousExpiresAt {
		return []string{e.Secret, e.PreviousSecret}
	}
	return []string{e.Secret}
}

const endpointColumns = `id, url, name, event_types, secret, previous_secret, previous_expires_at, created_at, updated_at, project_id`

func scanEndpoint(r row) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	var types string
	if err := r.Scan(&e.ID, &e.URL, &e.Name, &types, &e.Secret, &e.PreviousSecret, &e.PreviousExpiresAt, &e.CreatedAt, &e.UpdatedAt, &e.ProjectID); err != nil {
		return WebhookEndpoint{}, err
	}
	if err := json.Unmarshal([]byte(types), &e.EventTypes); err != nil {
		return WebhookEndpoint{}, fmt.Errorf("endpoint %s event types: %w", e.ID, err)
	}
	return e, nil
}

// WebhookEndpointCreate registers an endpoint.
func (s *Store) WebhookEndpointCreate(ctx context.Context, e WebhookEndpoint) error {
	types, err := json.Marshal(e.EventTypes)
	if err != nil {
		return err
	}
	if _, err := s.d.db().exec(ctx, `INSERT INTO webhook_endpoints (id, url, name, event_types, secret, created_at, updated_at, project_id)
		VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`, e.ID, e.URL, e.Name, string(types), e.Secret, e.CreatedAt, cmp.Or(e.ProjectID, DefaultProject)); err != nil {
		return fmt.Errorf("store: create webhook endpoint: %w", err)
	}
	return nil
}

// WebhookEndpointUpdate changes an endpoint's URL, name and event types.
func (s *Store) WebhookEndpointUpdate(ctx context.Context, e WebhookEndpoint) (WebhookEndpoint, error) {
	types, err := json.Marshal(e.EventTypes)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	n, err := s.d.db().exec(ctx, `UPDATE webhook_endpoints SET url = $2, name = $3, event_types = $4, updated_at = $5
		WHERE id = $1 AND deleted_at IS NULL`, e.ID, e.URL, e.Name, string(types), now())
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("store: update webhook endpoint %s: %w", e.ID, err)
	}
	return s.WebhookEndpointGet(ctx, e.ID)
}

// WebhookEndpointRotate replaces an endpoint's secret. With keepOld > 0 the
// old secret also signs deliveries for that long.
func (s *Store) WebhookEndpointRotate(ctx context.Context, id, secret string, keepOld time.Duration) (WebhookEndpoint, error) {
	t := now()
	expires := int64(0)
	if keepOld > 0 {
		expires = t + int64(keepOld.Seconds())
	}
	n, err := s.d.db().exec(ctx, `UPDATE webhook_endpoints SET previous_secret = CASE WHEN CAST($3 AS BIGINT) > 0 THEN secret ELSE '' END,
		previous_expires_at = $3, secret = $2, updated_at = $4 WHERE id = $1 AND deleted_at IS NULL`, id, secret, expires, t)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("store: rotate webhook secret %s: %w", id, err)
	}
	return s.WebhookEndpointGet(ctx, id)
}

// WebhookEndpointGet returns an endpoint that is not deleted.
func (s *Store) WebhookEndpointGet(ctx context.Context, id string) (WebhookEndpoint, error) {
	e, err := scanEndpoint(s.d.db().queryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`, id))
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("store: get webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// WebhookEndpointList lists a project's endpoints that are not deleted,
// newest first, after the cursor ("" for the first page) and up to limit
// (0 for all), and whether more follow.
func (s *Store) WebhookEndpointList(ctx context.Context, project, after string, limit int) ([]WebhookEndpoint, bool, error) {
	sql := `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE deleted_at IS NULL AND project_id = $1`
	args := []any{cmp.Or(project, DefaultProject)}
	if after != "" {
		args = append(args, after)
		sql += ` AND id < $2`
	}
	sql += ` ORDER BY id DESC`
	if limit > 0 {
		args = append(args, limit+1)
		sql += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	out, err := collect(ctx, s.d.db(), scanEndpoint, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list webhook endpoints: %w", err)
	}
	if limit <= 0 {
		return out, false, nil
	}
	return page(out, limit)
}

// WebhookEndpointDelete deletes an endpoint. Its pending deliveries fail
// at their next attempt. Deleting a deleted endpoint is ErrNotFound.
func (s *Store) WebhookEndpointDelete(ctx context.Context, id string) error {
	n, err := s.d.db().exec(ctx, `UPDATE webhook_endpoints SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL`, id, now())
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: delete webhook endpoint %s: %w", id, err)
	}
	return nil
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	// DeliveryFailed is final: retries are exhausted, or the endpoint is
	// gone. A redelivery makes it pending again.
	DeliveryFailed = "failed"
)

// Delivery is one event sent, or to be sent, to one URL of an endpoint.
type Delivery struct {
	ID             string
	EventID        string
	EndpointID     string
	URL            string
	Status         string
	Attempts       int64
	ResponseStatus int64
	ResponseBody   string
	LastError      string
	CreatedAt      int64
	UpdatedAt      int64
	DeliveredAt    *int64
	// ProjectID is its event's project.
	ProjectID string
	// NextAttemptAt is when a pending delivery is next due, in Unix
	// milliseconds (0: at once).
	NextAttemptAt int64
	// TraceContext is the W3C traceparent of the span that made the
	// delivery (the event's function), which its sending continues.
	TraceContext string
}

const deliveryColumns = `id, event_id, endpoint_id, url, status, attempts, response_status, response_body, last_error,
	created_at, updated_at, delivered_at, project_id, next_attempt_ms, trace_context`

func scanDelivery(r row) (Delivery, error) {
	var d Delivery
	err := r.Scan(&d.ID, &d.EventID, &d.EndpointID, &d.URL, &d.Status, &d.Attempts, &d.ResponseStatus, &d.ResponseBody,
		&d.LastError, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt, &d.ProjectID, &d.NextAttemptAt, &d.TraceContext)
	return d, err
}

// DeliveriesCreate records pending deliveries, due at once, in one
// transaction, and wakes the senders (WaitDeliveries) at commit. A delivery
// of the same event to the same endpoint and URL that exists already is
// skipped, so creating them again is harmless.
func (s *Store) DeliveriesCreate(ctx context.Context, ds []Delivery) error {
	t := time.Now().UnixMilli()
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		for _, d := range ds {
			if _, err := q.exec(ctx, `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, url, status, created_at, updated_at, project_id,
					next_attempt_ms, round_started_ms, trace_context)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) ON CONFLICT (event_id, endpoint_id, url) DO NOTHING`,
				d.ID, d.EventID, d.EndpointID, d.URL, DeliveryPending, d.CreatedAt, d.CreatedAt, cmp.Or(d.ProjectID, DefaultProject),
				t, d.TraceContext); err != nil {
				return err
			}
		}
		return s.d.notifyDeliveries(ctx, q)
	})
	if err != nil {
		return fmt.Errorf("store: create deliveries: %w", err)
	}
	s.deliveriesChanged()
	return nil
}

// DeliveryGet returns one delivery.
func (s *Store) DeliveryGet(ctx context.Context, id string) (Delivery, error) {
	d, err := scanDelivery(s.d.db().queryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`, id))
	if err != nil {
		return Delivery{}, fmt.Errorf("store: get delivery %s: %w", id, err)
	}
	return d, nil
}

// DeliveryList lists an endpoint's deliveries newest first, with one
// status or all (""), after the cursor, up to limit, and whether more follow.
func (s *Store) DeliveryList(ctx context.Context, endpointID, status, after string, limit int) ([]Delivery, bool, error) {
	out, more, err := newestPage(ctx, s.d.db(), scanDelivery, `SELECT `+deliveryColumns+` FROM webhook_deliveries`, []string{"endpoint_id = $1"},
		[][2]string{{"status", status}}, after, limit, endpointID)
	if err != nil {
		return nil, false, fmt.Errorf("store: list deliveries: %w", err)
	}
	return out, more, nil
}

// DeliveryAttempt is the outcome of one attempt.
type DeliveryAttempt struct {
	Attempts int64
	Status   string // DeliveryPending after a failure that will be retried
	// NextAttemptAt is when a delivery left pending is due again, in Unix
	// milliseconds.
	NextAttemptAt  int64
	ResponseStatus int64
	ResponseBody   string
	Error          string
}

// DeliveryRecord records an attempt of a pending delivery. A delivery that
// is no longer pending is left as it is (ErrConflict).
func (s *Store) DeliveryRecord(ctx context.Context, id string, a DeliveryAttempt) error {
	pending, err := s.DeliveriesRecord(ctx, []DeliveryAttemptOf{{DeliveryID: id, Attempt: a}})
	if err == nil && !pending[0] {
		err = ErrConflict
	}
	if err != nil {
		return fmt.Errorf("store: record delivery %s: %w", id, err)
	}
	return nil
}

// DeliveryAttemptOf is an attempt of one delivery, for DeliveriesRecord.
type DeliveryAttemptOf struct {
	DeliveryID string
	Attempt    DeliveryAttempt
}

// DeliveriesRecord records attempts of pending deliveries in one statement,
// each as DeliveryRecord does, and reports for each whether its delivery
// was still pending (false: left as it is). Senders of many deliveries at
// once gather their attempts into one write. On Postgres the attempts
// travel as one JSON document, so that the statement's text, parsed or
// prepared once, is the same however many there are; on SQLite each is an
// UPDATE of its own, of one statement kept prepared. Each carries the
// status its delivery must still have ("was"): compared with a value
// rather than a constant, it matches no partial index, and each delivery
// is found by its key (keyed) however few pending deliveries the
// statistics expect.
func (s *Store) DeliveriesRecord(ctx context.Context, as []DeliveryAttemptOf) ([]bool, error) {
	if len(as) == 0 {
		return nil, nil
	}
	t := now()
	type rec struct {
		ID             string `json:"id"`
		Attempts       int64  `json:"attempts"`
		Status         string `json:"status"`
		ResponseStatus int64  `json:"response_status"`
		ResponseBody   string `json:"response_body"`
		LastError      string `json:"last_error"`
		DeliveredAt    *int64 `json:"delivered_at"`
		NextAttemptAt  int64  `json:"next_attempt_ms"`
		Was            string `json:"was"`
	}
	recs := make([]rec, len(as))
	for i, a := range as {
		var delivered *int64
		if a.Attempt.Status == DeliverySucceeded {
			delivered = &t
		}
		recs[i] = rec{ID: a.DeliveryID, Attempts: a.Attempt.Attempts, Status: a.Attempt.Status, ResponseStatus: a.Attempt.ResponseStatus,
			ResponseBody: a.Attempt.ResponseBody, LastError: a.Attempt.Error, DeliveredAt: delivered, NextAttemptAt: a.Attempt.NextAttemptAt,
			Was: DeliveryPending}
	}
	var done []string
	if s.d.name() == "sqlite" {
		// SQLite runs in kiln's process and keeps the statement prepared:
		// one UPDATE per attempt costs less than reading the attempts
		// from a document, whose every field is parsed anew.
		err := s.d.tx(ctx, func(q querier, _ enqueue) error {
			for _, r := range recs {
				n, err := q.exec(ctx, `UPDATE webhook_deliveries SET `+recordSetSQLite+` WHERE id = $2 AND status = $10`, t, r.ID, r.Attempts, r.Status, r.ResponseStatus, r.ResponseBody, r.LastError,
					r.DeliveredAt, r.NextAttemptAt, r.Was)
				if err != nil {
					return err
				}
				if n > 0 {
					done = append(done, r.ID)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store: record deliveries: %w", err)
		}
		return recordedOf(as, done), nil
	}
	doc, err := json.Marshal(recs)
	if err != nil {
		return nil, fmt.Errorf("store: record deliveries: %w", err)
	}
	v := `SELECT * FROM jsonb_to_recordset(CAST($2 AS JSONB)) AS v (id TEXT, attempts BIGINT, status TEXT, response_status BIGINT,
		response_body TEXT, last_error TEXT, delivered_at BIGINT, next_attempt_ms BIGINT, was TEXT)`
	done, err = collect(ctx, s.d.keyed(), func(r row) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, `WITH v AS (`+v+`)
		UPDATE webhook_deliveries SET `+recordSetPostgres+`
		FROM v WHERE webhook_deliveries.id = v.id AND webhook_deliveries.status = v.was
		RETURNING webhook_deliveries.id`, t, string(doc))
	if err != nil {
		return nil, fmt.Errorf("store: record deliveries: %w", err)
	}
	return recordedOf(as, done), nil
}

// recordSet is the SET clause that records an attempt of a delivery, with
// $1 the time of the write and its arguments where the attempt's values
// come from: attempts, status, response status and body, last error, time
// delivered (NULL: unchanged) and next attempt.
const recordSet = `attempts = %s, status = %s, response_status = %s, response_body = %s, last_error = %s, updated_at = $1,
	delivered_at = COALESCE(%s, webhook_deliveries.delivered_at), next_attempt_ms = %s, lease_until_ms = 0,
	round_attempts = webhook_deliveries.round_attempts + 1`

var (
	// recordSetPostgres takes the values from v, the attempts' document.
	recordSetPostgres = fmt.Sprintf(recordSet, "v.attempts", "v.status", "v.response_status", "v.response_body", "v.last_error",
		"v.delivered_at", "v.next_attempt_ms")
	// recordSetSQLite takes them from parameters $3 to $9.
	recordSetSQLite = fmt.Sprintf(recordSet, "$3", "$4", "$5", "$6", "$7", "$8", "$9")
)

// recordedOf reports, for each attempt of as, whether its delivery is
// among those recorded (done).
func recordedOf(as []DeliveryAttemptOf, done []string) []bool {
	recorded := make(map[string]bool, len(done))
	for _, id := range done {
		recorded[id] = true
	}
	out := make([]bool, len(as))
	for i, a := range as {
		out[i] = recorded[a.DeliveryID]
	}
	return out
}

// idIn is a condition that column is one of the IDs of parameter n, and
// that parameter's value for ids: the statement's text is the same however
// many there are.
func (s *Store) idIn(column string, n int, ids []string) (string, any) {
	if s.d.name() == "sqlite" {
		doc, _ := json.Marshal(ids) // strings always encode
		return fmt.Sprintf("%s IN (SELECT value FROM json_each($%d))", column, n), string(doc)
	}
	return fmt.Sprintf("%s = ANY($%d)", column, n), ids
}

// DeliveryToSend is a delivery with what sending it takes.
type DeliveryToSend struct {
	Delivery Delivery
	// Endpoint is the delivery's endpoint, unless EndpointDeleted.
	Endpoint        WebhookEndpoint
	EndpointDeleted bool
	Event           Event
	// RoundAttempts are the attempts made since the delivery was made or
	// last redelivered, and RoundStarted (Unix milliseconds) when that
	// was: the retry policy bounds both.
	RoundAttempts int64
	RoundStarted  int64
}

// deliveryToSendSelect reads deliveries with their endpoints and events;
// the caller adds the WHERE. deliveryToSendColumns and deliveryToSendJoins
// read them from deliveries d that the caller names.
const deliveryToSendSelect = deliveryToSendColumns + ` FROM webhook_deliveries d` + deliveryToSendJoins

const deliveryToSendColumns = `SELECT d.id, d.event_id, d.endpoint_id, d.url, d.status, d.attempts, d.response_status, d.response_body,
			d.last_error, d.created_at, d.updated_at, d.delivered_at, d.project_id, d.next_attempt_ms, d.trace_context,
			d.round_attempts, d.round_started_ms,
			ev.id, ev.type, ev.created_at, ev.data, COALESCE(ev.dedupe_key, ''), ev.project_id,
			e.id, e.url, e.name, e.event_types, e.secret, e.previous_secret, e.previous_expires_at, e.created_at, e.updated_at, e.project_id`

const deliveryToSendJoins = ` JOIN events ev ON ev.id = d.event_id
		LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.deleted_at IS NULL`

func scanDeliveryToSend(r row) (DeliveryToSend, error) { return scanDeliveryToSendWith(r, nil) }

// scanDeliveriesToSend scans many deliveries to send, most of them to few
// endpoints: each endpoint's event types are decoded once.
func scanDeliveriesToSend() func(row) (DeliveryToSend, error) {
	types := map[string][]string{}
	return func(r row) (DeliveryToSend, error) { return scanDeliveryToSendWith(r, types) }
}

// scanDeliveryToSendWith scans a delivery to send; types, when not nil,
// keeps the event types decoded so far, by their JSON.
func scanDeliveryToSendWith(r row, types map[string][]string) (DeliveryToSend, error) {
	var out DeliveryToSend
	d, ev := &out.Delivery, &out.Event
	var e struct {
		id, url, name, types, secret, previous sql.NullString
		previousExpires, created, updated      sql.NullInt64
		project                                sql.NullString
	}
	var data string
	err := r.Scan(
		&d.ID, &d.EventID, &d.EndpointID, &d.URL, &d.Status, &d.Attempts, &d.ResponseStatus, &d.ResponseBody,
		&d.LastError, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt, &d.ProjectID, &d.NextAttemptAt, &d.TraceContext,
		&out.RoundAttempts, &out.RoundStarted,
		&ev.ID, &ev.Type, &ev.CreatedAt, &data, &ev.DedupeKey, &ev.ProjectID,
		&e.id, &e.url, &e.name, &e.types, &e.secret, &e.previous, &e.previousExpires, &e.created, &e.updated, &e.project)
	if err != nil {
		return DeliveryToSend{}, err
	}
	ev.Data = json.RawMessage(data)
	if !e.id.Valid {
		out.EndpointDeleted = true
		return out, nil
	}
	out.Endpoint = WebhookEndpoint{ID: e.id.String, URL: e.url.String, Name: e.name.String, Secret: e.secret.String,
		PreviousSecret: e.previous.String, PreviousExpiresAt: e.previousExpires.Int64, CreatedAt: e.created.Int64,
		UpdatedAt: e.updated.Int64, ProjectID: e.project.String}
	if known, ok := types[e.types.String]; ok {
		out.Endpoint.EventTypes = slices.Clone(known)
		return out, nil
	}
	if err := json.Unmarshal([]byte(e.types.String), &out.Endpoint.EventTypes); err != nil {
		return DeliveryToSend{}, fmt.Errorf("store: endpoint %s event types: %w", e.id.String, err)
	}
	if types != nil {
		types[e.types.String] = slices.Clone(out.Endpoint.EventTypes)
	}
	return out, nil
}

// DeliveryGetToSend returns a delivery with its endpoint and its event, in
// one query.
func (s *Store) DeliveryGetToSend(ctx context.Context, id string) (DeliveryToSend, error) {
	out, err := scanDeliveryToSend(s.d.db().queryRow(ctx, deliveryToSendSelect+` WHERE d.id = $1`, id))
	if err != nil {
		return DeliveryToSend{}, fmt.Errorf("store: get delivery %s to send: %w", id, err)
	}
	return out, nil
}

// DeliveriesClaim claims up to limit pending deliveries that are due, the
// longest due first, for lease: no other sender claims them until the
// lease ends or their attempt is recorded (DeliveriesRecord), which also
// ends it. A sender that dies lets its deliveries go when their leases end.
// It returns them with their endpoints and events. On PostgreSQL the claim
// and the read of what sending takes are one statement: one round trip,
// and one pass over the claimed rows.
func (s *Store) DeliveriesClaim(ctx context.Context, limit int, lease time.Duration) ([]DeliveryToSend, error) {
	t := time.Now().UnixMilli()
	// The status is written out, not a parameter: the plan, made once for
	// any parameters (keyed), then reads the partial index of pending
	// deliveries by due time.
	claim := `UPDATE webhook_deliveries SET lease_until_ms = $1 WHERE id IN (
			SELECT d.id FROM webhook_deliveries d WHERE d.status = '` + DeliveryPending + `' AND d.next_attempt_ms <= $2
			AND d.lease_until_ms <= $2 ORDER BY d.next_attempt_ms LIMIT $3` + s.d.skipLocked("d") + `)`
	args := []any{t + lease.Milliseconds(), t, limit}
	var out []DeliveryToSend
	var err error
	if s.d.name() != "sqlite" {
		// One statement: the claimed rows, as the UPDATE left them, stand
		// in for the table (a statement sees the table as it was before).
		out, err = collect(ctx, s.d.keyed(), scanDeliveriesToSend(), `WITH d AS (`+claim+` RETURNING *)
			`+deliveryToSendColumns+` FROM d`+deliveryToSendJoins+` ORDER BY d.next_attempt_ms, d.id`, args...)
	} else {
		// SQLite has no UPDATE in a WITH: the claimed IDs come back, then
		// the rest is read in the same transaction.
		err = s.d.tx(ctx, func(q querier, _ enqueue) error {
			ids, err := collect(ctx, q, func(r row) (string, error) {
				var id string
				return id, r.Scan(&id)
			}, claim+` RETURNING id`, args...)
			if err != nil || len(ids) == 0 {
				return err
			}
			in, arg := s.idIn("d.id", 1, ids)
			out, err = collect(ctx, q, scanDeliveriesToSend(), deliveryToSendSelect+` WHERE `+in+` ORDER BY d.next_attempt_ms, d.id`, arg)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	return out, nil
}

// DeliveriesRelease ends the leases of claimed deliveries whose attempt was
// never made (their sender is stopping): another sender may claim them at
// once. No attempt is counted.
func (s *Store) DeliveriesRelease(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	in, arg := s.idIn("id", 2, ids)
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `UPDATE webhook_deliveries SET lease_until_ms = 0 WHERE status = $1 AND `+in, DeliveryPending, arg); err != nil {
			return err
		}
		return s.d.notifyDeliveries(ctx, q)
	})
	if err != nil {
		return fmt.Errorf("store: release deliveries: %w", err)
	}
	return nil
}

// DeliveryNextDue is when the next pending delivery that no sender holds
// falls due (Unix milliseconds), or the end of the earliest lease of one
// that a sender holds, whichever comes first; ok is false when nothing is
// pending.
func (s *Store) DeliveryNextDue(ctx context.Context) (at int64, ok bool, err error) {
	var next sql.NullInt64
	err = s.d.db().queryRow(ctx, `SELECT MIN(CASE WHEN lease_until_ms > next_attempt_ms THEN lease_until_ms ELSE next_attempt_ms END)
		FROM webhook_deliveries WHERE status = $1`, DeliveryPending).Scan(&next)
	if err != nil {
		return 0, false, fmt.Errorf("store: next delivery due: %w", err)
	}
	return next.Int64, next.Valid, nil
}

// DeliveryRedeliver makes a delivery pending again, due at once, in a new
// round of attempts, and wakes the senders. One already pending is
// ErrConflict.
func (s *Store) DeliveryRedeliver(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		var err error
		d, err = scanDelivery(q.queryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`+s.d.forUpdate(), id))
		if err != nil {
			return err
		}
		if d.Status == DeliveryPending {
			return ErrConflict
		}
		t := time.Now().UnixMilli()
		d.Status, d.UpdatedAt, d.NextAttemptAt = DeliveryPending, now(), t
		if _, err := q.exec(ctx, `UPDATE webhook_deliveries SET status = $2, updated_at = $3, next_attempt_ms = $4, lease_until_ms = 0,
				round_started_ms = $4, round_attempts = 0 WHERE id = $1`, id, d.Status, d.UpdatedAt, t); err != nil {
			return err
		}
		return s.d.notifyDeliveries(ctx, q)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("store: redeliver %s: %w", id, err)
	}
	s.deliveriesChanged()
	return d, nil
}
