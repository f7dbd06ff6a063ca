package batch

import "github.com/kilnhq/kiln/internal/store"

// SetChunkPage makes the finalizer read n chunks from the store at once,
// so that a test's few chunks take several pages.
func (s *Service) SetChunkPage(n int) { s.chunkPage = n }

// SetPieceBytes makes Compact gather pieces of at least n bytes of output,
// so that a test's small chunks make several.
func (s *Service) SetPieceBytes(n int64) { s.pieceBytes = n }

// Compacts reports whether FinishShard enqueues Compact for b.
func (s *Service) Compacts(b store.Batch) bool { return s.compacts(b) }

// PieceBytesFor is the output each piece of b gathers at least.
func (s *Service) PieceBytesFor(b store.Batch) int64 { return s.pieceBytesFor(b) }
