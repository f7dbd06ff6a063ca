package batch_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// sweepAhead, as a negative grace, sweeps objects written up to now: a
// store may round an object's time up, so the cutoff is a little ahead.
const sweepAhead = time.Minute

// TestSweepObjects: the sweep removes every object that no row needs, and
// nothing that a row needs or that is younger than the grace.
func TestSweepObjects(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setupLifecycle(t, backend, batch.Limits{})
			ctx := tb.ctx
			put := func(key string) string {
				t.Helper()
				_, err := tb.bucket.Put(ctx, key, strings.NewReader("x"), 1)
				require.NoError(t, err)
				return key
			}
			var keep, gone []string

			// Files: one in use, one deleted whose bytes stayed, bytes
			// that never became a file, and a key of a shape kiln never
			// writes.
			input, err := tb.batches.CreateFile(ctx, batch.PurposeBatch, "in.jsonl", strings.NewReader(batchtest.ChatLines("m", 2)))
			require.NoError(t, err)
			keep = append(keep, input.ObjectKey, put("files/not/kilns"))
			deleted, err := tb.batches.CreateFile(ctx, "user_data", "d.txt", strings.NewReader("d"))
			require.NoError(t, err)
			_, err = tb.st.FileDelete(ctx, deleted.ID) // as if removing its object had failed
			require.NoError(t, err)
			gone = append(gone, deleted.ObjectKey, put(batch.FileKey(ids.New(ids.File))))

			// Uploads: the parts of a pending and of a completing upload
			// stay; those of a cancelled one, or of none, go. The file a
			// pending upload's multipart upload becomes stays too.
			pending, err := tb.createUpload(t, 10)
			require.NoError(t, err)
			p, err := tb.batches.AddPart(ctx, pending.ID, strings.NewReader("0123456789"), "data")
			require.NoError(t, err)
			_, err = tb.batches.PresignMultipartParts(ctx, pending.ID, 1)
			require.NoError(t, err)
			pending, err = tb.st.UploadGet(ctx, pending.ID)
			require.NoError(t, err)
			keep = append(keep, p.ObjectKey, put(batch.FileKey(*pending.MultipartFileID)))
			completing, err := tb.createUpload(t, 1)
			require.NoError(t, err)
			p, err = tb.batches.AddPart(ctx, completing.ID, strings.NewReader("x"), "data")
			require.NoError(t, err)
			_, err = tb.st.UploadTransition(ctx, completing.ID, []string{store.UploadPending}, store.UploadCompleting, 0)
			require.NoError(t, err)
			keep = append(keep, p.ObjectKey)
			cancelled, err := tb.createUpload(t, 1)
			require.NoError(t, err)
			_, err = tb.batches.CancelUpload(ctx, cancelled.ID)
			require.NoError(t, err)
			gone = append(gone, put(batch.UploadPartKey(cancelled.ID, "part_late")), put(batch.UploadPartKey("upload_gone", "part_x")))

			// Batches: a running batch's chunks stay; an ended one's go.
			running, err := tb.batches.Create(ctx, batch.CreateParams{InputFileID: input.ID, Endpoint: "/v1/chat/completions"})
			require.NoError(t, err)
			keep = append(keep, put(batch.ChunkKey(running.ID, 0, 0)))
			ended, err := tb.batches.Create(ctx, batch.CreateParams{InputFileID: input.ID, Endpoint: "/v1/chat/completions"})
			require.NoError(t, err)
			_, err = tb.batches.Cancel(ctx, ended.ID)
			require.NoError(t, err)
			require.NoError(t, tb.batches.Finalize(ctx, ended.ID))
			ended, err = tb.st.BatchGet(ctx, ended.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchCancelled, ended.Status)
			chunk := batch.ChunkKey(ended.ID, 0, 1) // an agent's chunk that came too late
			gone = append(gone, put(chunk), put(batch.ChunkOutputKey(chunk)))

			// Whatever else shares the bucket is not kiln's to remove.
			keep = append(keep, put("inbox/drop.jsonl"), put("other"))

			// A folder's write killed two hours ago.
			var temp string
			wantTemp := 0
			if tb.dir != "" {
				temp = filepath.Join(tb.dir, ".tmp", "put-killed") // as a Put's temporary file
				require.NoError(t, os.WriteFile(temp, []byte("half"), 0o640))
				old := time.Now().Add(-2 * time.Hour)
				require.NoError(t, os.Chtimes(temp, old, old))
				wantTemp = 1
			}

			// Younger than the grace, nothing goes.
			counts, err := tb.batches.SweepObjects(ctx, 3*time.Hour)
			require.NoError(t, err)
			require.Equal(t, map[string]int{batch.SweptFile: 0, batch.SweptUploadPart: 0, batch.SweptBatchObject: 0, batch.SweptTemp: 0}, counts)
			for _, key := range append(keep, gone...) {
				require.True(t, tb.exists(t, key), "%s removed within the grace", key)
			}

			counts, err = tb.batches.SweepObjects(ctx, -sweepAhead)
			require.NoError(t, err)
			require.Equal(t, map[string]int{batch.SweptFile: 2, batch.SweptUploadPart: 2, batch.SweptBatchObject: 2, batch.SweptTemp: wantTemp}, counts)
			for _, key := range keep {
				require.True(t, tb.exists(t, key), "%s removed", key)
			}
			for _, key := range gone {
				require.False(t, tb.exists(t, key), "%s kept", key)
			}
			if temp != "" {
				require.NoFileExists(t, temp)
			}
			require.Equal(t, "x", readObject(t, tb, batch.FileKey(*pending.MultipartFileID)))

			// What stays is in use: the next sweep finds nothing.
			counts, err = tb.batches.SweepObjects(ctx, -sweepAhead)
			require.NoError(t, err)
			require.Equal(t, map[string]int{batch.SweptFile: 0, batch.SweptUploadPart: 0, batch.SweptBatchObject: 0, batch.SweptTemp: 0}, counts)
		})
	}
}

// TestSweepObjectsMany: owners are looked up in chunks as the listing
// goes; every orphan of a long listing goes, and every object in use stays.
func TestSweepObjectsMany(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setupLifecycle(t, backend, batch.Limits{})
			const orphans = 1203
			var files []store.File
			for i := range orphans {
				_, err := tb.bucket.Put(tb.ctx, batch.FileKey(ids.New(ids.File)), strings.NewReader("x"), 1)
				require.NoError(t, err)
				if i%300 == 0 {
					f, err := tb.batches.CreateFile(tb.ctx, "user_data", "f.txt", strings.NewReader("f"))
					require.NoError(t, err)
					files = append(files, f)
				}
			}
			counts, err := tb.batches.SweepObjects(tb.ctx, -sweepAhead)
			require.NoError(t, err)
			require.Equal(t, orphans, counts[batch.SweptFile])
			var left []string
			require.NoError(t, tb.bucket.List(tb.ctx, "files/", func(i objectstore.Info) error {
				left = append(left, i.Key)
				return nil
			}))
			var want []string
			for _, f := range files {
				want = append(want, f.ObjectKey)
			}
			require.ElementsMatch(t, want, left)
		})
	}
}

func readObject(t *testing.T, tb *lifecycleBundle, key string) string {
	t.Helper()
	rc, err := tb.bucket.Get(tb.ctx, key)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}
