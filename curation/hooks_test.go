package curation

// SetChunkItems makes im hand the store chunks of n items, so that a
// test's small batch is written in several.
func SetChunkItems(im *Importer, n int) { im.chunkItems = n }
