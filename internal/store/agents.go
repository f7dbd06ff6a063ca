package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// Agent is a GPU agent as it last reported itself.
type Agent struct {
	ID       string
	Hostname string
	// Models are the models the agent's engine can serve.
	Models    []string
	Synthetic bool // the agent's engine is the simulator
	// LoadedModel is the model on the GPU now; "" before the first load.
	LoadedModel string
	// State is idle, loading, running or draining.
	State          string
	InFlight       int64
	Concurrency    int64 // the adaptive limit on requests in flight
	RequestsPerSec float64
	TokensPerSec   float64
	ModelSwitches  int64
	StartedAt      int64
	HeartbeatAt    int64
}

const agentColumns = `id, hostname, models, synthetic, loaded_model, state, in_flight, concurrency,
	requests_per_sec, tokens_per_sec, model_switches, started_at, heartbeat_at`

// AgentHeartbeat inserts or refreshes an agent's row, and adds the models
// it serves to the catalogue (ModelList).
func (s *Store) AgentHeartbeat(ctx context.Context, a Agent) error {
	models, err := json.Marshal(a.Models)
	if err != nil {
		return err
	}
	syn := 0
	if a.Synthetic {
		syn = 1
	}
	if a.HeartbeatAt == 0 {
		a.HeartbeatAt = now()
	}
	err = s.d.tx(ctx, func(q querier, _ enqueue) error {
		_, err := q.exec(ctx, `INSERT INTO agents (`+agentColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (id) DO UPDATE SET models = excluded.models, synthetic = excluded.synthetic,
			loaded_model = excluded.loaded_model, state = excluded.state, in_flight = excluded.in_flight,
			concurrency = excluded.concurrency, requests_per_sec = excluded.requests_per_sec,
			tokens_per_sec = excluded.tokens_per_sec, model_switches = excluded.model_switches,
			heartbeat_at = excluded.heartbeat_at`,
			a.ID, a.Hostname, string(models), syn, a.LoadedModel, a.State, a.InFlight, a.Concurrency,
			a.RequestsPerSec, a.TokensPerSec, a.ModelSwitches, a.StartedAt, a.HeartbeatAt)
		if err != nil {
			return err
		}
		// The models it serves join the catalogue, and stay there after
		// the agent goes.
		for _, m := range a.Models {
			if err := declareModel(ctx, q, m, a.Synthetic, a.HeartbeatAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: agent heartbeat: %w", err)
	}
	return nil
}

// AgentRemove deletes an agent's row, as it stops.
func (s *Store) AgentRemove(ctx context.Context, id string) error {
	_, err := s.d.db().exec(ctx, `DELETE FROM agents WHERE id = $1`, id)
	return err
}

// AgentList lists agents whose heartbeat is at or after since (Unix seconds).
func (s *Store) AgentList(ctx context.Context, since int64) ([]Agent, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+agentColumns+` FROM agents WHERE heartbeat_at >= $1 ORDER BY id`, since)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	defer rs.Close()
	var out []Agent
	for rs.Next() {
		var a Agent
		var models string
		var syn int64
		if err := rs.Scan(&a.ID, &a.Hostname, &models, &syn, &a.LoadedModel, &a.State, &a.InFlight, &a.Concurrency,
			&a.RequestsPerSec, &a.TokensPerSec, &a.ModelSwitches, &a.StartedAt, &a.HeartbeatAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(models), &a.Models); err != nil {
			return nil, fmt.Errorf("store: agent %s models: %w", a.ID, err)
		}
		a.Synthetic = syn != 0
		out = append(out, a)
	}
	return out, rs.Err()
}
