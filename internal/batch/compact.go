package batch

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// PieceBytesDefault is the output a piece of a large batch gathers at
// least: above S3's least part (5 MiB), so that finalize copies pieces
// server-side, and large enough that a batch of millions of lines has few
// parts to copy.
const PieceBytesDefault = 8 << 20

// smallPieceBytes is the output a piece of a smaller batch gathers at
// least: S3's least part, so that its pieces are still copied server-side
// and its first forms while much of the batch still runs.
const smallPieceBytes = 5 << 20

// compactShards bounds the shards Compact looks at in one read.
const compactShards = 1000

// outputLineBytesMin is the least an output line takes: its id, custom_id,
// status, request id and a chat completion's envelope, with no content.
const outputLineBytesMin = 256

// outputLineBytesUsual is what an output line usually takes at least: the
// envelope, usage, and an answer of a sentence or more.
const outputLineBytesUsual = 512

// pieceBytesFor is the output each piece of b gathers at least: pieceBytes
// (Service) for a batch sure to fill two such pieces at the least an
// output line takes, and no more than smallPieceBytes for a smaller one,
// whose few pieces would otherwise form only near its end, leaving its
// finalize to read most chunks through kiln. It depends on the batch's
// size alone, so every compaction of a batch cuts the same pieces.
func (s *Service) pieceBytesFor(b store.Batch) int64 {
	if b.Total*outputLineBytesMin >= 2*s.pieceBytes {
		return s.pieceBytes
	}
	return min(s.pieceBytes, smallPieceBytes)
}

// compacts reports whether a running batch is large enough for Compact to
// be worth its jobs: its lines, at the size an output line usually takes,
// fill a piece. A smaller batch's finalize composes its few chunks as
// fast.
func (s *Service) compacts(b store.Batch) bool {
	return b.Total*outputLineBytesUsual >= s.pieceBytesFor(b)
}

// Compact gathers the chunks of a running batch's finished shards, in
// order from the end of its last piece, into pieces of at least
// pieceBytesFor of output each, while the batch runs, so that finalize
// composes its files server-side from the pieces instead of reading every
// small chunk through kiln. The bytes of a piece are its chunks' in order
// of shard and sequence, exactly what finalize would compose from the
// chunks, which stay until finalize so that
// partial results read them as before. A batch that is no longer running,
// or whose finished shards hold less than a piece, is left alone.
func (s *Service) Compact(ctx context.Context, id string) error {
	b, err := s.store.BatchGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if b.Status != store.BatchInProgress || b.StopReason != "" {
		return nil
	}
	pieces, err := s.store.PieceList(ctx, id)
	if err != nil {
		return err
	}
	want := s.pieceBytesFor(b)
	next := int64(0)
	if len(pieces) > 0 {
		next = pieces[len(pieces)-1].LastShard + 1
	}
	for {
		done, err := s.store.ShardsDoneFrom(ctx, id, next, compactShards)
		if err != nil || len(done) == 0 {
			return err
		}
		chunks, err := s.store.ChunksOfShards(ctx, id, next, done[len(done)-1])
		if err != nil {
			return err
		}
		// The shortest run of whole shards with a piece's output.
		var bytes int64
		end := -1
		for i, c := range chunks {
			bytes += c.OutputBytes
			last := i == len(chunks)-1 || chunks[i+1].Shard != c.Shard
			if last && bytes >= want {
				end = i
				break
			}
		}
		if end < 0 {
			return nil
		}
		made, err := s.makePiece(ctx, id, chunks[:end+1])
		if err != nil || !made {
			return err
		}
		next = chunks[end].Shard + 1
	}
}

// makePiece composes chunks (whole shards, in order) into a piece, and
// reports false when another compactor recorded the same piece first.
func (s *Service) makePiece(ctx context.Context, id string, chunks []store.Chunk) (bool, error) {
	first, last := chunks[0].Shard, chunks[len(chunks)-1].Shard
	p := store.Piece{BatchID: id, FirstShard: first, LastShard: last, Chunks: int64(len(chunks)),
		IndexKey: pieceKey(id, first, "idx"), OutputKey: pieceKey(id, first, "out")}
	var idxSrcs, outSrcs, errSrcs []objectstore.Source
	for _, c := range chunks {
		if c.Ord == 0 {
			return false, nil // committed before kiln recorded the sizes
		}
		idxSrcs = append(idxSrcs, objectstore.Source{Key: c.ObjectKey, Size: -1})
		if c.OutputLines > 0 {
			outSrcs = append(outSrcs, objectstore.Source{Key: ChunkOutputKey(c.ObjectKey), Size: c.OutputBytes})
		}
		if c.ErrorLines > 0 {
			errSrcs = append(errSrcs, objectstore.Source{Key: ChunkErrorKey(c.ObjectKey), Size: c.ErrorBytes})
		}
	}
	drop := func() {
		s.deleteObjects(ctx, p.IndexKey, p.OutputKey)
		if p.ErrorKey != "" {
			s.deleteObjects(ctx, p.ErrorKey)
		}
	}
	if _, err := s.bucket.ComposeSources(ctx, p.IndexKey, idxSrcs); err != nil {
		drop()
		return false, fmt.Errorf("compact batch %s shards %d-%d: %w", id, first, last, err)
	}
	info, err := s.bucket.ComposeSources(ctx, p.OutputKey, outSrcs)
	if err != nil {
		drop()
		return false, fmt.Errorf("compact batch %s shards %d-%d: %w", id, first, last, err)
	}
	p.OutputBytes = info.Size
	if len(errSrcs) > 0 {
		p.ErrorKey = pieceKey(id, first, "err")
		info, err := s.bucket.ComposeSources(ctx, p.ErrorKey, errSrcs)
		if err != nil {
			drop()
			return false, fmt.Errorf("compact batch %s shards %d-%d: %w", id, first, last, err)
		}
		p.ErrorBytes = info.Size
	}
	made, err := s.store.PieceCreate(ctx, p)
	if err != nil || !made {
		drop()
	}
	return made, err
}
