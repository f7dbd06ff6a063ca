package store

import (
	"context"
	"errors"
	"fmt"
)

// Chunk is a durable object of results of one batch.
type Chunk struct {
	BatchID      string
	Shard        int64
	Seq          int64
	ObjectKey    string
	OutputLines  int64
	ErrorLines   int64
	InputTokens  int64
	OutputTokens int64
	// CachedTokens are the input tokens the engine read from its prompt
	// cache, and ReasoningTokens the output tokens it spent reasoning, as
	// the engine reported them.
	CachedTokens    int64
	ReasoningTokens int64
	// OutputBytes and ErrorBytes are the sizes of the chunk's output and
	// error objects, which place it in the batch's final files.
	OutputBytes int64
	ErrorBytes  int64
	// Ord is the chunk's place among its batch's chunks in order of commit,
	// from 1; ChunkCommit sets it. Chunks committed before kiln numbered
	// them have 0.
	Ord       int64
	CreatedAt int64
}

// ChunkCommit records a chunk whose object is already durable and adds its
// counts to the batch, in one transaction. The agent must hold the shard's
// lease. Committing the same (batch, seq) again is a no-op, so a commit whose
// answer was lost can be retried.
func (s *Store) ChunkCommit(ctx context.Context, owner string, c Chunk) error {
	if c.CreatedAt == 0 {
		c.CreatedAt = now()
	}
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		var holder string
		if err := q.queryRow(ctx, `SELECT lease_owner FROM batch_shards WHERE batch_id = $1 AND idx = $2`+s.d.forUpdate(),
			c.BatchID, c.Shard).Scan(&holder); err != nil {
			return err
		}
		if holder != owner {
			return fmt.Errorf("lease held by %q: %w", holder, ErrConflict)
		}
		n, err := q.exec(ctx, `INSERT INTO batch_chunks (batch_id, shard, seq, object_key, output_lines, error_lines, input_tokens, output_tokens,
			cached_tokens, reasoning_tokens, output_bytes, error_bytes, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (batch_id, shard, seq) DO NOTHING`,
			c.BatchID, c.Shard, c.Seq, c.ObjectKey, c.OutputLines, c.ErrorLines, c.InputTokens, c.OutputTokens,
			c.CachedTokens, c.ReasoningTokens, c.OutputBytes, c.ErrorBytes, c.CreatedAt)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		// A batch that has ended takes no more results: its files are
		// made, and its counts are theirs. An agent whose lease ran out
		// while the store was out of reach, and which nobody took over,
		// still holds the shard and may try.
		//
		// The update locks the batch's row until the transaction ends, so
		// the batch's chunks commit one at a time, in the order of the
		// ordinals they take here: a reader that has seen ordinal k has
		// seen every chunk before it.
		var ord int64
		err = q.queryRow(ctx, `UPDATE batches SET completed = completed + $2, failed = failed + $3,
			input_tokens = input_tokens + $4, output_tokens = output_tokens + $5,
			cached_tokens = cached_tokens + $10, reasoning_tokens = reasoning_tokens + $11,
			chunks_committed = chunks_committed + 1
			WHERE id = $1 AND status NOT IN ($6, $7, $8, $9) RETURNING chunks_committed`,
			c.BatchID, c.OutputLines, c.ErrorLines, c.InputTokens, c.OutputTokens,
			BatchCompleted, BatchFailed, BatchExpired, BatchCancelled, c.CachedTokens, c.ReasoningTokens).Scan(&ord)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("batch %s has ended: %w", c.BatchID, ErrConflict)
		}
		if err != nil {
			return err
		}
		_, err = q.exec(ctx, `UPDATE batch_chunks SET ord = $4 WHERE batch_id = $1 AND shard = $2 AND seq = $3`,
			c.BatchID, c.Shard, c.Seq, ord)
		if err != nil {
			return err
		}
		return s.d.notifyResults(ctx, q)
	})
	if err != nil {
		return fmt.Errorf("store: commit chunk %s/%d/%d: %w", c.BatchID, c.Shard, c.Seq, err)
	}
	s.resultsChanged()
	return nil
}

// ChunkList lists a batch's chunks in order of shard and sequence; with
// shard >= 0, only that shard's.
func (s *Store) ChunkList(ctx context.Context, batchID string, shard int64) ([]Chunk, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+chunkColumns+`
		FROM batch_chunks WHERE batch_id = $1 AND ($2 < 0 OR shard = $2) ORDER BY shard, seq`, batchID, shard)
	if err != nil {
		return nil, fmt.Errorf("store: list chunks of %s: %w", batchID, err)
	}
	return scanChunks(rs)
}

// ChunkListAfter lists at most limit of a batch's chunks that follow chunk
// seq of shard, in order of shard and sequence: ChunkList a page at a time,
// for a reader whose memory must not grow with the batch. The first page
// follows shard -1.
func (s *Store) ChunkListAfter(ctx context.Context, batchID string, shard, seq int64, limit int) ([]Chunk, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+chunkColumns+`
		FROM batch_chunks WHERE batch_id = $1 AND (shard > $2 OR (shard = $2 AND seq > $3)) ORDER BY shard, seq LIMIT $4`,
		batchID, shard, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list chunks of %s: %w", batchID, err)
	}
	return scanChunks(rs)
}

// ChunksAfter lists a batch's chunks whose ordinal is above after, in
// order of ordinal: the chunks committed since a reader saw ordinal after.
// Chunks committed before kiln numbered them (ordinal 0) are always listed,
// first, so that a reader can tell that it cannot follow the batch.
func (s *Store) ChunksAfter(ctx context.Context, batchID string, after int64) ([]Chunk, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+chunkColumns+`
		FROM batch_chunks WHERE batch_id = $1 AND (ord > $2 OR ord = 0) ORDER BY ord, shard, seq`, batchID, after)
	if err != nil {
		return nil, fmt.Errorf("store: list chunks of %s: %w", batchID, err)
	}
	return scanChunks(rs)
}

const chunkColumns = `batch_id, shard, seq, object_key, output_lines, error_lines, input_tokens, output_tokens,
	cached_tokens, reasoning_tokens, output_bytes, error_bytes, ord, created_at`

func scanChunks(rs rows) ([]Chunk, error) {
	defer rs.Close()
	var out []Chunk
	for rs.Next() {
		var c Chunk
		if err := rs.Scan(&c.BatchID, &c.Shard, &c.Seq, &c.ObjectKey, &c.OutputLines, &c.ErrorLines, &c.InputTokens, &c.OutputTokens,
			&c.CachedTokens, &c.ReasoningTokens, &c.OutputBytes, &c.ErrorBytes, &c.Ord, &c.CreatedAt); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rs.Err()
}
