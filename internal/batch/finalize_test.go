package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// chunkLine is the result line a test chunk holds for line: it names the
// line and the chunk, so that a test sees which chunk's result was kept.
func chunkLine(line int, ok bool, seq int64) string {
	res := batchline.Output{ID: fmt.Sprintf("batch_req_%d_%d", line, seq), CustomID: fmt.Sprintf("r%d", line)}
	if ok {
		res.Response = &batchline.Response{StatusCode: 200, RequestID: "req_test", Body: json.RawMessage(`{"ok":true}`)}
	} else {
		res.Error = &batchline.LineError{Code: batchline.CodeRequestFailed, Message: "failed"}
	}
	l, _ := json.Marshal(res)
	return string(l) + "\n"
}

// chunkOpts shape a test chunk.
type chunkOpts struct {
	// record writes an index record; default: as the agent does.
	record func(line int, ok bool) string
	// outputBytes, when not 0, is recorded instead of the output's size.
	outputBytes int64
}

// writeChunk writes and commits chunk seq of shard sh with the results of
// lines, as an agent does: line i fails when ok says so.
func writeChunk(t *testing.T, env *batchtest.Env, sh store.Shard, seq int64, lines []int, ok func(int) bool, o chunkOpts) {
	t.Helper()
	ctx := context.Background()
	var idx, out, errs strings.Builder
	c := store.Chunk{BatchID: sh.BatchID, Shard: sh.Idx, Seq: seq, ObjectKey: batch.ChunkKey(sh.BatchID, sh.Idx, seq)}
	for _, line := range lines {
		good := ok(line)
		if o.record != nil {
			idx.WriteString(o.record(line, good))
		} else {
			rec, err := json.Marshal(batchline.Record{Line: line, OK: good})
			require.NoError(t, err)
			idx.Write(append(rec, '\n'))
		}
		if good {
			out.WriteString(chunkLine(line, true, seq))
			c.OutputLines++
		} else {
			errs.WriteString(chunkLine(line, false, seq))
			c.ErrorLines++
		}
	}
	c.OutputBytes, c.ErrorBytes = int64(out.Len()), int64(errs.Len())
	if o.outputBytes != 0 {
		c.OutputBytes = o.outputBytes
	}
	for key, s := range map[string]string{batch.ChunkOutputKey(c.ObjectKey): out.String(), batch.ChunkErrorKey(c.ObjectKey): errs.String(), c.ObjectKey: idx.String()} {
		if s != "" {
			_, err := env.Bucket.Put(ctx, key, strings.NewReader(s), int64(len(s)))
			require.NoError(t, err)
		}
	}
	require.NoError(t, env.Store.ChunkCommit(ctx, batchtest.Agent, c))
}

// claimShard claims the next shard of model m.
func claimShard(t *testing.T, env *batchtest.Env) store.Shard {
	t.Helper()
	sh, _, err := env.Store.ShardClaim(context.Background(), "m", batchtest.Agent, time.Minute, 0)
	require.NoError(t, err)
	return sh
}

func lineRange(first, last int) []int {
	var lines []int
	for l := first; l <= last; l++ {
		lines = append(lines, l)
	}
	return lines
}

// chunkKeys lists what is left of a batch's working objects.
func chunkKeys(t *testing.T, env *batchtest.Env, id string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, env.Bucket.List(context.Background(), batch.BatchPrefix(id), func(i objectstore.Info) error {
		keys = append(keys, i.Key)
		return nil
	}))
	return keys
}

// TestFinalize: the files are the chunks' lines in order of shard and
// sequence, byte for byte, from many small chunks (the object store
// composes them several at a time), then the lines of the requests that
// never ran; the chunks are removed. With pieces, the first shard's chunks
// were compacted into a piece while the batch ran (Compact), and the files
// are made of it and the second shard's chunks: the same bytes. Both
// backends.
func TestFinalize(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		// 134 chunks: in one page, and in pages of 10 (the last short) that
		// the finalizer composes one by one.
		for _, page := range []int{0, 10} {
			t.Run(fmt.Sprintf("%s/page%d", backend, page), func(t *testing.T) { testFinalize(t, backend, page, false) })
		}
		// With a piece and 67 chunks outside it: in one page, and in pages
		// of 10, too few to hold them (the chunks are composed instead).
		for _, page := range []int{0, 10} {
			t.Run(fmt.Sprintf("%s/pieces/page%d", backend, page), func(t *testing.T) { testFinalize(t, backend, page, true) })
		}
	}
}

func testFinalize(t *testing.T, backend string, page int, pieces bool) {
	t.Parallel()
	ctx := context.Background()
	const n, shardSize, chunkLines = 600, 200, 3
	env := batchtest.New(t, backend, batch.Limits{ShardSize: shardSize})
	if page > 0 {
		env.Batches.SetChunkPage(page)
	}
	b := env.CreateBatch(t, batchtest.ChatLines("m", n))
	require.NoError(t, env.Batches.Validate(ctx, b.ID))
	ok := func(line int) bool { return line%7 != 0 }

	// Two shards run, in chunks of three lines; the last never does.
	var wantOut, wantErr strings.Builder
	for range 2 {
		sh := claimShard(t, env)
		seq := int64(0)
		for first := int(sh.FirstLine); first <= int(sh.LastLine); first += chunkLines {
			lines := lineRange(first, min(first+chunkLines-1, int(sh.LastLine)))
			writeChunk(t, env, sh, seq, lines, ok, chunkOpts{})
			for _, l := range lines {
				if ok(l) {
					wantOut.WriteString(chunkLine(l, true, seq))
				} else {
					wantErr.WriteString(chunkLine(l, false, seq))
				}
			}
			seq++
		}
		_, err := env.Batches.FinishShard(ctx, sh.BatchID, sh.Idx, batchtest.Agent)
		require.NoError(t, err)
		if pieces && sh.Idx == 0 {
			env.Batches.SetPieceBytes(1)
			require.NoError(t, env.Batches.Compact(ctx, b.ID))
			made, err := env.Store.PieceList(ctx, b.ID)
			require.NoError(t, err)
			require.Len(t, made, 1, "the finished shard's chunks in one piece")
			require.Equal(t, int64(0), made[0].LastShard)
			require.EqualValues(t, 67, made[0].Chunks)
			require.NoError(t, env.Batches.Compact(ctx, b.ID), "nothing more to compact")
			again, err := env.Store.PieceList(ctx, b.ID)
			require.NoError(t, err)
			require.Equal(t, made, again)
			if page == 0 {
				// The files and the index scan must come from the piece:
				// the chunks' own output and index objects are gone.
				chunks, err := env.Store.ChunkList(ctx, b.ID, 0)
				require.NoError(t, err)
				for _, c := range chunks {
					require.NoError(t, env.Bucket.Delete(ctx, batch.ChunkOutputKey(c.ObjectKey)))
					require.NoError(t, env.Bucket.Delete(ctx, c.ObjectKey))
				}
			}
		}
	}
	// A chunk written whose commit never came: no row names it, and it
	// goes too.
	orphan := batch.ChunkKey(b.ID, 2, 0)
	_, err := env.Bucket.Put(ctx, orphan, strings.NewReader("x"), 1)
	require.NoError(t, err)
	_, err = env.Batches.Cancel(ctx, b.ID)
	require.NoError(t, err)
	require.NoError(t, env.Batches.Finalize(ctx, b.ID))

	b, err = env.Store.BatchGet(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, store.BatchCancelled, b.Status)
	require.Equal(t, int64(n), b.Completed+b.Failed)
	out := env.ReadFile(t, *b.OutputFileID)
	require.Equal(t, wantOut.String(), out)
	errFile := env.ReadFile(t, *b.ErrorFileID)
	require.True(t, strings.HasPrefix(errFile, wantErr.String()), "the chunks' error lines first")
	tail := splitLines(strings.TrimPrefix(errFile, wantErr.String()))
	require.Len(t, tail, n-2*shardSize)
	for _, l := range tail {
		require.Contains(t, l, batchline.CodeBatchCancelled)
	}
	for _, f := range []struct {
		id      string
		content string
	}{{*b.OutputFileID, out}, {*b.ErrorFileID, errFile}} {
		row, err := env.Store.FileGet(ctx, f.id)
		require.NoError(t, err)
		require.Equal(t, int64(len(f.content)), row.Bytes)
	}
	require.Empty(t, chunkKeys(t, env, b.ID))
}

// finalizeTwoChunks makes a batch of 10 requests in one shard, commits
// two chunks of it, of the lines first and second (all succeeded; the
// second chunk written with o), and finalizes it, reading page chunks at
// once (0: the default).
func finalizeTwoChunks(t *testing.T, backend string, page int, first, second []int, o chunkOpts) (*batchtest.Env, store.Batch) {
	t.Helper()
	ctx := context.Background()
	env := batchtest.New(t, backend, batch.Limits{ShardSize: 10})
	if page > 0 {
		env.Batches.SetChunkPage(page)
	}
	b := env.CreateBatch(t, batchtest.ChatLines("m", 10))
	require.NoError(t, env.Batches.Validate(ctx, b.ID))
	sh := claimShard(t, env)
	all := func(int) bool { return true }
	writeChunk(t, env, sh, 0, first, all, chunkOpts{})
	writeChunk(t, env, sh, 1, second, all, o)
	_, err := env.Batches.FinishShard(ctx, sh.BatchID, sh.Idx, batchtest.Agent)
	require.NoError(t, err)
	require.NoError(t, env.Batches.Finalize(ctx, b.ID))
	return env, b
}

// TestFinalizeOverlap: chunks that hold the same line, which the leases
// prevent but a crash could leave, make files in which each line's first
// result is kept, once; the index records are read whatever their JSON
// form. Both backends.
func TestFinalizeOverlap(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		for _, page := range []int{0, 1} { // both chunks in one page, or one a page
			t.Run(fmt.Sprintf("%s/page%d", backend, page), func(t *testing.T) {
				t.Parallel()
				// Lines 5 and 6 again, in records of another form.
				env, b := finalizeTwoChunks(t, backend, page, lineRange(1, 6), lineRange(5, 10), chunkOpts{record: func(line int, ok bool) string {
					return fmt.Sprintf("{ \"ok\": %t, \"line\": %d }\n", ok, line)
				}})
				b, err := env.Store.BatchGet(context.Background(), b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCompleted, b.Status)
				require.Equal(t, int64(10), b.Completed)
				var want strings.Builder
				for l := 1; l <= 10; l++ {
					want.WriteString(chunkLine(l, true, int64(min(l/7, 1))))
				}
				require.Equal(t, want.String(), env.ReadFile(t, *b.OutputFileID))
				require.Nil(t, b.ErrorFileID)
				require.Empty(t, chunkKeys(t, env, b.ID))
			})
		}
	}
}

// TestFinalizeSizeMismatch: a chunk whose recorded size is not its
// object's does not stop the finalizer for ever: it composes the files
// again from the objects as they are, and every line is there. Both
// backends.
func TestFinalizeSizeMismatch(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		for _, page := range []int{0, 1} { // both chunks in one page, or one a page
			t.Run(fmt.Sprintf("%s/page%d", backend, page), func(t *testing.T) {
				t.Parallel()
				env, b := finalizeTwoChunks(t, backend, page, lineRange(1, 5), lineRange(6, 10), chunkOpts{outputBytes: 7})
				b, err := env.Store.BatchGet(context.Background(), b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCompleted, b.Status)
				require.NotNil(t, b.OutputFileID)
				out := env.ReadFile(t, *b.OutputFileID)
				require.Equal(t, 10, strings.Count(out, "\n"), "every line, the mis-sized chunk's too")
				require.Empty(t, chunkKeys(t, env, b.ID))
			})
		}
	}
}
