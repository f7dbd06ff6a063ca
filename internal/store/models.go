package store

import (
	"context"
	"fmt"
)

// CatalogModel is a model of the catalogue: one that an agent has
// declared, whether or not an agent serves it now.
type CatalogModel struct {
	ID string
	// Synthetic: the last agent to declare it served it from the simulator.
	Synthetic   bool
	FirstSeenAt int64 // Unix seconds
	LastSeenAt  int64
}

func declareModel(ctx context.Context, q querier, id string, synthetic bool, at int64) error {
	syn := 0
	if synthetic {
		syn = 1
	}
	_, err := q.exec(ctx, `INSERT INTO models (id, synthetic, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (id) DO UPDATE SET synthetic = excluded.synthetic, last_seen_at = excluded.last_seen_at`, id, syn, at)
	if err != nil {
		return fmt.Errorf("declare model %q: %w", id, err)
	}
	return nil
}

// ModelList lists the catalogue: every model an agent has declared, by ID.
func (s *Store) ModelList(ctx context.Context) ([]CatalogModel, error) {
	rs, err := s.d.db().query(ctx, `SELECT id, synthetic, first_seen_at, last_seen_at FROM models ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list models: %w", err)
	}
	defer rs.Close()
	var out []CatalogModel
	for rs.Next() {
		var m CatalogModel
		var syn int64
		if err := rs.Scan(&m.ID, &syn, &m.FirstSeenAt, &m.LastSeenAt); err != nil {
			return nil, err
		}
		m.Synthetic = syn != 0
		out = append(out, m)
	}
	return out, rs.Err()
}

// ModelKnown reports whether an agent has declared the model.
func (s *Store) ModelKnown(ctx context.Context, id string) (bool, error) {
	var n int64
	if err := s.d.db().queryRow(ctx, `SELECT COUNT(*) FROM models WHERE id = $1`, id).Scan(&n); err != nil {
		return false, fmt.Errorf("store: look up model %q: %w", id, err)
	}
	return n > 0, nil
}

// ModelForget removes a model from the catalogue, as an operator does for
// a model no agent will serve again. An agent that still declares it adds
// it back at its next heartbeat. A model not in the catalogue is
// ErrNotFound.
func (s *Store) ModelForget(ctx context.Context, id string) error {
	n, err := s.d.db().exec(ctx, `DELETE FROM models WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("store: forget model %q: %w", id, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
