package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Shard statuses.
const (
	ShardPending = "pending"
	ShardRunning = "running"
	ShardDone    = "done"
)

// Shard is a run of consecutive input lines of a batch that one agent runs
// under a lease.
type Shard struct {
	BatchID        string
	Idx            int64
	Model          string
	Priority       int64
	FirstLine      int64 // physical line numbers, from 1, inclusive
	LastLine       int64
	Offset         int64 // byte offset of FirstLine in the input file
	Requests       int64
	Status         string
	LeaseOwner     string
	LeaseExpiresAt int64 // Unix milliseconds
	ReadyAt        int64 // Unix milliseconds
	Claims         int64
}

const shardColumns = `s.batch_id, s.idx, s.model, s.priority, s.first_line, s.last_line, s.byte_offset, s.requests,
	s.status, s.lease_owner, s.lease_expires_at, s.ready_at, s.claims`

func scanShard(r row) (Shard, error) {
	var sh Shard
	err := r.Scan(&sh.BatchID, &sh.Idx, &sh.Model, &sh.Priority, &sh.FirstLine, &sh.LastLine, &sh.Offset, &sh.Requests,
		&sh.Status, &sh.LeaseOwner, &sh.LeaseExpiresAt, &sh.ReadyAt, &sh.Claims)
	return sh, err
}

// claimable is the condition on shards s of batches b that an agent may
// take: the batch runs and is not stopping, and the shard waits or its
// agent's lease ran out.
const claimable = `b.status = 'in_progress' AND b.stop_reason = ''
	AND (s.status = 'pending' OR (s.status = 'running' AND s.lease_expires_at < $1))`

// Backlog is the work waiting for one model.
type Backlog struct {
	Model    string
	Shards   int64
	Requests int64
	// OldestReadyAt is when the longest-waiting shard became claimable, Unix
	// milliseconds.
	OldestReadyAt int64
	// Priority is the highest priority among the waiting shards.
	Priority int64
}

// ShardBacklog sums the claimable shards per model.
func (s *Store) ShardBacklog(ctx context.Context) ([]Backlog, error) {
	rs, err := s.d.db().query(ctx, `SELECT s.model, COUNT(*), SUM(s.requests), MIN(s.ready_at), MAX(s.priority)
		FROM batch_shards s JOIN batches b ON b.id = s.batch_id
		WHERE `+claimable+` GROUP BY s.model ORDER BY s.model`, time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: shard backlog: %w", err)
	}
	defer rs.Close()
	var out []Backlog
	for rs.Next() {
		var b Backlog
		if err := rs.Scan(&b.Model, &b.Shards, &b.Requests, &b.OldestReadyAt, &b.Priority); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rs.Err()
}

// ShardWaiting lists the models with claimable shards, in order of model,
// as ShardBacklog does but without counting their shards (Shards and
// Requests are 0): agents read it before every claim, and its cost grows
// with the running batches, not with the shards waiting. The heads of the
// running batches (batchHeads) stand for all their shards.
func (s *Store) ShardWaiting(ctx context.Context) ([]Backlog, error) {
	out, err := collect(ctx, s.d.db(), func(r row) (Backlog, error) {
		var b Backlog
		return b, r.Scan(&b.Model, &b.OldestReadyAt, &b.Priority)
	}, `WITH `+batchHeads+`
		SELECT s.model, MIN(s.ready_at), MAX(s.priority) FROM heads JOIN batch_shards s ON s.batch_id = heads.batch_id AND s.idx = heads.idx
		GROUP BY s.model ORDER BY s.model`, time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: shards waiting: %w", err)
	}
	return out, nil
}

// ShardClaim leases the next claimable shard of model to owner until
// now+ttl: shards that became ready before starvedBefore (Unix ms) first;
// then those of the project with the fewest shards running, and among
// those the project served least recently, so that projects sharing the
// agents get equal shares of them, taking turns; then the highest
// priority (which orders a project's own batches: no project can take
// another's share by asking for more), then the longest waiting, so that
// a stream of urgent batches cannot starve the others. It returns
// ErrNotFound when none waits.
//
// Its cost does not grow with the shards waiting: it orders the heads of
// the batches (claimHeads, a few rows), then takes the first shard of the
// first head's batch from an index (claimProbe), skipping the shards that
// other claims hold, and goes on to the next head only when that batch
// has none left to give.
func (s *Store) ShardClaim(ctx context.Context, model, owner string, ttl time.Duration, starvedBefore int64) (Shard, Batch, error) {
	var sh Shard
	var b Batch
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		t := time.Now()
		heads, err := collect(ctx, q, func(r row) (claimHead, error) {
			var h claimHead
			return h, r.Scan(&h.batchID, &h.status)
		}, claimHeads, t.UnixMilli(), model, starvedBefore)
		if err != nil {
			return err
		}
		err = ErrNotFound
		for _, h := range heads {
			probe := claimProbe(ShardPending)
			if h.status == ShardRunning {
				probe = claimProbe(ShardRunning)
			}
			sh, err = scanShard(q.queryRow(ctx, probe+s.d.skipLocked("s"), t.UnixMilli(), model, h.batchID))
			if !errors.Is(err, ErrNotFound) {
				break
			}
		}
		if err != nil {
			return err
		}
		sh.Status, sh.LeaseOwner, sh.LeaseExpiresAt, sh.Claims = ShardRunning, owner, t.Add(ttl).UnixMilli(), sh.Claims+1
		if _, err := q.exec(ctx, `UPDATE batch_shards SET status = $3, lease_owner = $4, lease_expires_at = $5, claims = $6
			WHERE batch_id = $1 AND idx = $2`, sh.BatchID, sh.Idx, sh.Status, owner, sh.LeaseExpiresAt, sh.Claims); err != nil {
			return err
		}
		if b, err = getBatch(ctx, q, sh.BatchID); err != nil {
			return err
		}
		_, err = q.exec(ctx, `UPDATE projects SET claim_seq = (SELECT MAX(claim_seq) FROM projects) + 1 WHERE id = $1`, b.ProjectID)
		return err
	})
	if err != nil {
		return Shard{}, Batch{}, fmt.Errorf("store: claim shard of %s: %w", model, err)
	}
	return sh, b, nil
}

// A claimHead is a batch that has shards to claim of one status: pending,
// or running under a lease that ran out.
type claimHead struct {
	batchID, status string
}

// batchHeads is the SQL of heads(batch_id, project_id, idx): the head of
// each running batch that is not stopping, its first pending shard, and
// its first shard whose lease ran out before $1 (Unix ms), each found by
// index (batch_shards_pending and batch_shards_running, migration 0019).
// A batch's shards share its model, priority and time ready (BatchStart
// writes them once and nothing changes them), so its heads stand for all
// its claimable shards, and its shards go in the order of its index after
// them.
const batchHeads = `heads AS (
		SELECT b.id AS batch_id, b.project_id, (SELECT h.idx FROM batch_shards h
			WHERE h.batch_id = b.id AND h.status = 'pending' ORDER BY h.priority DESC, h.ready_at, h.idx LIMIT 1) AS idx
		FROM batches b WHERE b.status = 'in_progress' AND b.stop_reason = ''
		UNION ALL
		SELECT b.id, b.project_id, (SELECT h.idx FROM batch_shards h
			WHERE h.batch_id = b.id AND h.status = 'running' AND h.lease_expires_at < $1 ORDER BY h.priority DESC, h.ready_at, h.idx LIMIT 1)
		FROM batches b WHERE b.status = 'in_progress' AND b.stop_reason = '')`

// claimHeads lists the heads (batchHeads) of the running batches of model
// ($2) in ShardClaim's order, with $3 its starvedBefore: the first head's
// batch holds the next shard to claim, and while other claims hold every
// one of them, the next head's does. The CROSS JOIN makes SQLite count the
// running shards from their index rather than visit every batch there
// ever was (Postgres plans it as the inner join it is).
const claimHeads = `WITH running AS (
		SELECT rb.project_id, COUNT(*) AS n FROM batch_shards r CROSS JOIN batches rb
		WHERE rb.id = r.batch_id AND r.status = 'running' AND r.lease_expires_at >= $1 GROUP BY rb.project_id),
	` + batchHeads + `
	SELECT s.batch_id, s.status FROM heads
	JOIN batch_shards s ON s.batch_id = heads.batch_id AND s.idx = heads.idx
	JOIN projects p ON p.id = heads.project_id LEFT JOIN running ON running.project_id = heads.project_id
	WHERE s.model = $2
	ORDER BY CASE WHEN s.ready_at < $3 THEN 0 ELSE 1 END, COALESCE(running.n, 0), p.claim_seq,
		s.priority DESC, s.ready_at, s.batch_id, s.idx`

// claimProbe is the query of the first claimable shard of status (pending
// or running) of batch $3 of model $2 at $1 (Unix ms), served by that
// status's index; the caller adds the clause that locks it.
func claimProbe(status string) string {
	return `SELECT ` + shardColumns + ` FROM batch_shards s JOIN batches b ON b.id = s.batch_id
		WHERE s.batch_id = $3 AND s.model = $2 AND s.status = '` + status + `' AND ` + claimable + `
		ORDER BY s.priority DESC, s.ready_at, s.idx LIMIT 1`
}

// ShardRenew extends owner's lease on a shard and returns the batch, whose
// stop reason tells the agent to stop. A lease another agent took over is
// ErrConflict.
func (s *Store) ShardRenew(ctx context.Context, batchID string, idx int64, owner string, ttl time.Duration) (Batch, error) {
	var b Batch
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		n, err := q.exec(ctx, `UPDATE batch_shards SET lease_expires_at = $4
			WHERE batch_id = $1 AND idx = $2 AND lease_owner = $3 AND status = 'running'`,
			batchID, idx, owner, time.Now().Add(ttl).UnixMilli())
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrConflict
		}
		b, err = getBatch(ctx, q, batchID)
		return err
	})
	if err != nil {
		return Batch{}, fmt.Errorf("store: renew shard %s/%d: %w", batchID, idx, err)
	}
	return b, nil
}

// ShardRelease gives a shard back unfinished, as on shutdown or a stop: it
// waits again for any agent, and its finished lines stay done.
func (s *Store) ShardRelease(ctx context.Context, batchID string, idx int64, owner string) error {
	_, err := s.d.db().exec(ctx, `UPDATE batch_shards SET status = $4, lease_owner = '', lease_expires_at = 0
		WHERE batch_id = $1 AND idx = $2 AND lease_owner = $3 AND status = 'running'`,
		batchID, idx, owner, ShardPending)
	if err != nil {
		return fmt.Errorf("store: release shard %s/%d: %w", batchID, idx, err)
	}
	return nil
}

// ShardFinish records that every line of a shard has a durable result. When
// it is the batch's last shard, the batch moves to finalizing. jobs, if not
// nil, names the jobs that commit with the change, given the batch as it is
// after it and whether this shard moved it to finalizing (the finalizer
// then; work on the running batch otherwise). A lease another agent took
// over is ErrConflict.
func (s *Store) ShardFinish(ctx context.Context, batchID string, idx int64, owner string, jobs func(b Batch, finalizing bool) []Job) (Batch, error) {
	return s.transition(ctx, batchID, func(q querier, enq enqueue, b Batch) error {
		n, err := q.exec(ctx, `UPDATE batch_shards SET status = $4, lease_owner = '', lease_expires_at = 0
			WHERE batch_id = $1 AND idx = $2 AND lease_owner = $3 AND status = 'running'`, batchID, idx, owner, ShardDone)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrConflict
		}
		if _, err := q.exec(ctx, `UPDATE batches SET shards_done = shards_done + 1 WHERE id = $1`, batchID); err != nil {
			return err
		}
		b.ShardsDone++
		finalizing := b.ShardsDone >= b.ShardsTotal && b.Status == BatchInProgress && b.StopReason == ""
		if finalizing {
			t := now()
			if _, err := q.exec(ctx, `UPDATE batches SET status = $2, finalizing_at = $3 WHERE id = $1`, batchID, BatchFinalizing, t); err != nil {
				return err
			}
			b.Status, b.FinalizingAt = BatchFinalizing, &t
		}
		if jobs != nil {
			if err := enqueueAll(ctx, enq, jobs(b, finalizing)); err != nil {
				return err
			}
		}
		return errNoJobs
	}, nil)
}

// BatchLeasesLive counts the shards of a batch that an agent holds now.
func (s *Store) BatchLeasesLive(ctx context.Context, batchID string) (int, error) {
	var n int
	err := s.d.db().queryRow(ctx, `SELECT COUNT(*) FROM batch_shards WHERE batch_id = $1 AND status = 'running' AND lease_expires_at >= $2`,
		batchID, time.Now().UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: leases of %s: %w", batchID, err)
	}
	return n, nil
}

// ShardList lists a batch's shards in order.
func (s *Store) ShardList(ctx context.Context, batchID string) ([]Shard, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+shardColumns+` FROM batch_shards s WHERE s.batch_id = $1 ORDER BY s.idx`, batchID)
	if err != nil {
		return nil, fmt.Errorf("store: list shards of %s: %w", batchID, err)
	}
	defer rs.Close()
	var out []Shard
	for rs.Next() {
		sh, err := scanShard(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	return out, rs.Err()
}
