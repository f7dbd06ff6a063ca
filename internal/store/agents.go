package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// Agent is a GPU agent as it last reported itself.
type Agent struct {
	ID          string
	Hostname    string
	Models      []string
	Synthetic   bool // the agent's backend is the simulator
	InFlight    int64
	StartedAt   int64
	HeartbeatAt int64
}

// AgentHeartbeat inserts or refreshes an agent's row.
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
	_, err = s.d.db().exec(ctx, `INSERT INTO agents (id, hostname, models, synthetic, in_flight, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET models = excluded.models, synthetic = excluded.synthetic,
			in_flight = excluded.in_flight, heartbeat_at = excluded.heartbeat_at`,
		a.ID, a.Hostname, string(models), syn, a.InFlight, a.StartedAt, a.HeartbeatAt)
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
	rs, err := s.d.db().query(ctx, `SELECT id, hostname, models, synthetic, in_flight, started_at, heartbeat_at
		FROM agents WHERE heartbeat_at >= $1 ORDER BY id`, since)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	defer rs.Close()
	var out []Agent
	for rs.Next() {
		var a Agent
		var models string
		var syn int64
		if err := rs.Scan(&a.ID, &a.Hostname, &models, &syn, &a.InFlight, &a.StartedAt, &a.HeartbeatAt); err != nil {
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
