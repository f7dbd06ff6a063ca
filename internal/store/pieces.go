package store

import (
	"context"
	"fmt"
)

// Piece is a run of a batch's finished shards whose chunks' output and
// error objects were concatenated into one object each, in order of shard
// and sequence, while the batch ran, and their indexes likewise into
// IndexKey. An empty ErrorKey means the chunks had no error lines.
type Piece struct {
	BatchID     string
	FirstShard  int64
	LastShard   int64
	Chunks      int64
	IndexKey    string
	OutputKey   string
	OutputBytes int64
	ErrorKey    string
	ErrorBytes  int64
	CreatedAt   int64
}

const pieceColumns = `batch_id, first_shard, last_shard, chunks, index_key, output_key, output_bytes, error_key, error_bytes, created_at`

func scanPiece(r row) (Piece, error) {
	var p Piece
	err := r.Scan(&p.BatchID, &p.FirstShard, &p.LastShard, &p.Chunks, &p.IndexKey, &p.OutputKey, &p.OutputBytes, &p.ErrorKey, &p.ErrorBytes, &p.CreatedAt)
	return p, err
}

// PieceCreate records a piece, and reports false when one starting at the
// same shard exists already (another compactor made it first).
func (s *Store) PieceCreate(ctx context.Context, p Piece) (bool, error) {
	n, err := s.d.db().exec(ctx, `INSERT INTO batch_pieces (`+pieceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (batch_id, first_shard) DO NOTHING`,
		p.BatchID, p.FirstShard, p.LastShard, p.Chunks, p.IndexKey, p.OutputKey, p.OutputBytes, p.ErrorKey, p.ErrorBytes, now())
	if err != nil {
		return false, fmt.Errorf("store: create piece of %s: %w", p.BatchID, err)
	}
	return n == 1, nil
}

// PieceList lists a batch's pieces in order of shard.
func (s *Store) PieceList(ctx context.Context, batchID string) ([]Piece, error) {
	out, err := collect(ctx, s.d.db(), scanPiece, `SELECT `+pieceColumns+` FROM batch_pieces WHERE batch_id = $1 ORDER BY first_shard`, batchID)
	if err != nil {
		return nil, fmt.Errorf("store: list pieces of %s: %w", batchID, err)
	}
	return out, nil
}

// ShardsDoneFrom lists the indexes of a batch's shards from shard from on
// that are done, in order, up to the first that is not, at most limit.
func (s *Store) ShardsDoneFrom(ctx context.Context, batchID string, from int64, limit int) ([]int64, error) {
	type st struct {
		idx  int64
		done bool
	}
	rows, err := collect(ctx, s.d.db(), func(r row) (st, error) {
		var x st
		var status string
		err := r.Scan(&x.idx, &status)
		x.done = status == ShardDone
		return x, err
	}, `SELECT idx, status FROM batch_shards WHERE batch_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3`, batchID, from, limit)
	if err != nil {
		return nil, fmt.Errorf("store: shards of %s: %w", batchID, err)
	}
	var out []int64
	for i, x := range rows {
		if !x.done || x.idx != from+int64(i) {
			break
		}
		out = append(out, x.idx)
	}
	return out, nil
}

// ChunksOfShards lists the chunks of a batch's shards first to last, in
// order of shard and sequence.
func (s *Store) ChunksOfShards(ctx context.Context, batchID string, first, last int64) ([]Chunk, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+chunkColumns+`
		FROM batch_chunks WHERE batch_id = $1 AND shard >= $2 AND shard <= $3 ORDER BY shard, seq`, batchID, first, last)
	if err != nil {
		return nil, fmt.Errorf("store: list chunks of %s: %w", batchID, err)
	}
	return scanChunks(rs)
}
