package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
)

// RateLimit is a project's limits on one model, as OpenAI's project rate
// limits, with kiln's own beside them. Zero is no limit. The row of model
// "" applies to every model that has no row of its own.
type RateLimit struct {
	ID        string
	ProjectID string
	Model     string
	// MaxRequestsPer1Minute paces the agents' dispatch of the project's
	// requests to the model.
	MaxRequestsPer1Minute int64
	// Batch1DayMaxInputTokens bounds the input tokens of the project's
	// batches of the model that have not ended (the enqueued tokens): a
	// batch past it fails validation with token_limit_exceeded.
	Batch1DayMaxInputTokens int64
	// MaxPendingUploads and MaxPendingUploadBytes cap the project's
	// uploads in progress (kiln extensions; the model "" row's count).
	MaxPendingUploads     int64
	MaxPendingUploadBytes int64
}

const rateLimitColumns = `id, project_id, model, max_requests_per_1_minute, batch_1_day_max_input_tokens, max_pending_uploads, max_pending_upload_bytes`

func scanRateLimit(r row) (RateLimit, error) {
	var l RateLimit
	err := r.Scan(&l.ID, &l.ProjectID, &l.Model, &l.MaxRequestsPer1Minute, &l.Batch1DayMaxInputTokens, &l.MaxPendingUploads, &l.MaxPendingUploadBytes)
	return l, err
}

// RateLimitList lists a project's limits, by model.
func (s *Store) RateLimitList(ctx context.Context, project string) ([]RateLimit, error) {
	out, err := collect(ctx, s.d.db(), scanRateLimit, `SELECT `+rateLimitColumns+` FROM project_rate_limits WHERE project_id = $1 ORDER BY model`, project)
	if err != nil {
		return nil, fmt.Errorf("store: list rate limits of %s: %w", project, err)
	}
	return out, nil
}

// RateLimitGet is one of a project's limits, by ID.
func (s *Store) RateLimitGet(ctx context.Context, project, id string) (RateLimit, error) {
	l, err := scanRateLimit(s.d.db().queryRow(ctx, `SELECT `+rateLimitColumns+` FROM project_rate_limits WHERE project_id = $1 AND id = $2`, project, id))
	if err != nil {
		return RateLimit{}, fmt.Errorf("store: rate limit %s of %s: %w", id, project, err)
	}
	return l, nil
}

// RateLimitPut writes a project's limits on a model, keyed by (project,
// model): l.ID names a new row, and an existing row keeps its ID. The
// audit log records the limits written.
func (s *Store) RateLimitPut(ctx context.Context, l RateLimit) (RateLimit, error) {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `INSERT INTO project_rate_limits (`+rateLimitColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (project_id, model) DO UPDATE SET max_requests_per_1_minute = excluded.max_requests_per_1_minute,
			batch_1_day_max_input_tokens = excluded.batch_1_day_max_input_tokens, max_pending_uploads = excluded.max_pending_uploads,
			max_pending_upload_bytes = excluded.max_pending_upload_bytes`,
			l.ID, l.ProjectID, l.Model, l.MaxRequestsPer1Minute, l.Batch1DayMaxInputTokens, l.MaxPendingUploads, l.MaxPendingUploadBytes); err != nil {
			return err
		}
		var id string
		if err := q.queryRow(ctx, `SELECT id FROM project_rate_limits WHERE project_id = $1 AND model = $2`, l.ProjectID, l.Model).Scan(&id); err != nil {
			return err
		}
		return audit(ctx, q, AuditRateLimitUpdated, l.ProjectID, map[string]any{"id": id, "changes_requested": map[string]any{
			"model":                        l.Model,
			"max_requests_per_1_minute":    l.MaxRequestsPer1Minute,
			"batch_1_day_max_input_tokens": l.Batch1DayMaxInputTokens,
			"max_pending_uploads":          l.MaxPendingUploads,
			"max_pending_upload_bytes":     l.MaxPendingUploadBytes,
		}})
	})
	if err != nil {
		return RateLimit{}, fmt.Errorf("store: put rate limit of %s on %q: %w", l.ProjectID, l.Model, err)
	}
	return s.RateLimitFor(ctx, l.ProjectID, l.Model)
}

// RateLimitFor is the limits that apply to a project's use of a model: the
// model's row, else the project's row for every model (""), else none (a
// zero RateLimit).
func (s *Store) RateLimitFor(ctx context.Context, project, model string) (RateLimit, error) {
	l, err := scanRateLimit(s.d.db().queryRow(ctx, `SELECT `+rateLimitColumns+` FROM project_rate_limits
		WHERE project_id = $1 AND model IN ($2, '') ORDER BY model DESC LIMIT 1`, project, model))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return RateLimit{}, fmt.Errorf("store: rate limit of %s on %q: %w", project, model, err)
	}
	l.ProjectID, l.Model = cmp.Or(l.ProjectID, project), cmp.Or(l.Model, model)
	return l, nil
}
