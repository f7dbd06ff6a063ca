package batch

// SetChunkPage makes the finalizer read n chunks from the store at once,
// so that a test's few chunks take several pages.
func (s *Service) SetChunkPage(n int) { s.chunkPage = n }

// SetPieceBytes makes Compact gather pieces of at least n bytes of output,
// so that a test's small chunks make several.
func (s *Service) SetPieceBytes(n int64) { s.pieceBytes = n }
