package batch

import "fmt"

// Object keys. Every object kiln writes lives under one of these; nothing
// else names them.
//
//	files/<file id>                              a file's bytes
//	uploads/<upload id>/<part id>                an upload's part
//	batches/<batch id>/chunks/<shard>-<seq>.idx  a result chunk's index
//	batches/<batch id>/chunks/….idx.out|.err     its output and error lines
//	batches/<batch id>/missing.jsonl             the finalizer's scratch
//	batches/<batch id>/compose/<page>.out|.err   the finalizer's scratch too

// FileKey is where a file's bytes live.
func FileKey(fileID string) string { return "files/" + fileID }

// UploadPrefix holds every part of an upload.
func UploadPrefix(uploadID string) string { return "uploads/" + uploadID + "/" }

// UploadPartKey is where an upload's part lives.
func UploadPartKey(uploadID, partID string) string { return UploadPrefix(uploadID) + partID }

// BatchPrefix holds a batch's working objects: its result chunks and the
// finalizer's scratch. They are removed once the batch's files are made.
func BatchPrefix(batchID string) string { return "batches/" + batchID + "/" }

// ChunkKey is where a result chunk of a batch's shard lives: its index.
func ChunkKey(batchID string, shard, seq int64) string {
	return fmt.Sprintf("%schunks/%06d-%010d.idx", BatchPrefix(batchID), shard, seq)
}

// ChunkOutputKey is where a chunk's output lines live, beside its index.
func ChunkOutputKey(chunkKey string) string { return chunkKey + ".out" }

// ChunkErrorKey is where a chunk's error lines live, beside its index.
func ChunkErrorKey(chunkKey string) string { return chunkKey + ".err" }

// missingKey is where the finalizer writes the error lines of requests
// that never ran.
func missingKey(batchID string) string { return BatchPrefix(batchID) + "missing.jsonl" }

// pieceKey is where Compact puts the output (what "out") or error ("err")
// lines of the piece of a batch's chunks that starts at shard first.
func pieceKey(batchID string, first int64, what string) string {
	return fmt.Sprintf("%spieces/%09d.%s", BatchPrefix(batchID), first, what)
}

// composeKey is where the finalizer composes the output (what "out") or
// error ("err") lines of page n of a batch's chunks, when it has more than
// one page.
func composeKey(batchID string, n int, what string) string {
	return fmt.Sprintf("%scompose/%06d.%s", BatchPrefix(batchID), n, what)
}
