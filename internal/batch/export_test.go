package batch

// SetChunkPage makes the finalizer read n chunks from the store at once,
// so that a test's few chunks take several pages.
func (s *Service) SetChunkPage(n int) { s.chunkPage = n }
