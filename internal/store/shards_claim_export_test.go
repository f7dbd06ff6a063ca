package store

import (
	"context"
	"time"
)

// ShardNextBySort is the shard that ShardClaim's order puts first now, found
// as ShardClaim found it before its claims were served by index: by sorting
// every claimable shard of model. It is the plain statement of the order,
// against which a test checks ShardClaim's.
func (s *Store) ShardNextBySort(ctx context.Context, model string, starvedBefore int64) (batchID string, idx int64, err error) {
	err = s.d.db().queryRow(ctx, `WITH running AS (
			SELECT rb.project_id, COUNT(*) AS n FROM batch_shards r JOIN batches rb ON rb.id = r.batch_id
			WHERE r.status = 'running' AND r.lease_expires_at >= $1 GROUP BY rb.project_id)
		SELECT s.batch_id, s.idx
		FROM batch_shards s JOIN batches b ON b.id = s.batch_id JOIN projects p ON p.id = b.project_id
		LEFT JOIN running ON running.project_id = b.project_id
		WHERE `+claimable+` AND s.model = $2
		ORDER BY CASE WHEN s.ready_at < $3 THEN 0 ELSE 1 END, COALESCE(running.n, 0), p.claim_seq,
			s.priority DESC, s.ready_at, s.batch_id, s.idx
		LIMIT 1`, time.Now().UnixMilli(), model, starvedBefore).Scan(&batchID, &idx)
	return batchID, idx, err
}
