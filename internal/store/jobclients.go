package store

import (
	"context"
	"fmt"
	"time"
)

// jobClientLoop beats for the process's job client and hands back the jobs
// of clients that stopped beating, until ctx ends.
func (s *Store) jobClientLoop(ctx context.Context, id string, ttl time.Duration, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(max(ttl/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.jobClientBeat(ctx, id, ttl); err != nil && ctx.Err() == nil {
			s.log.Warn("job heartbeat failed", "err", err)
		}
	}
}

// jobClientBeat records that client id is alive, then makes the running
// jobs of clients silent for longer than ttl available again and forgets
// those clients. River's own rescuer would wait for its fixed rescue delay;
// a job whose process died is known to be stuck as soon as the process
// stops beating. Job kinds are idempotent, as River's rescue also demands.
func (s *Store) jobClientBeat(ctx context.Context, id string, ttl time.Duration) error {
	t := time.Now().UnixMilli()
	cutoff := t - ttl.Milliseconds()
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `INSERT INTO job_clients (id, heartbeat_at) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`, id, t); err != nil {
			return err
		}
		n, err := q.exec(ctx, `UPDATE river_job SET state = 'available'
			WHERE state = 'running' AND `+s.d.lastAttemptedBy()+` IN (SELECT id FROM job_clients WHERE heartbeat_at < $1)`, cutoff)
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Warn("handed back jobs of a stopped process", "jobs", n)
		}
		_, err = q.exec(ctx, `DELETE FROM job_clients WHERE heartbeat_at < $1`, cutoff)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: job heartbeat: %w", err)
	}
	return nil
}
