package jobs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

func TestUploadExpireWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			w := &UploadExpireWorker{d: tb.deps}
			parts := func(uploadID string) []string {
				var keys []string
				require.NoError(t, tb.Bucket.List(tb.ctx, batch.UploadPrefix(uploadID), func(i objectstore.Info) error {
					keys = append(keys, i.Key)
					return nil
				}))
				return keys
			}

			t.Run("a pending upload expires and its parts go", func(t *testing.T) {
				u, err := tb.Batches.CreateUpload(tb.ctx, batch.UploadParams{Filename: "a.jsonl", Purpose: "batch", Bytes: 10, MimeType: "text/jsonl"})
				require.NoError(t, err)
				_, err = tb.Batches.AddPart(tb.ctx, u.ID, strings.NewReader("0123456789"), "data")
				require.NoError(t, err)
				require.Len(t, parts(u.ID), 1)

				require.NoError(t, w.Work(tb.ctx, job(batch.UploadExpireArgs{UploadID: u.ID})))
				u, err = tb.Store.UploadGet(tb.ctx, u.ID)
				require.NoError(t, err)
				require.Equal(t, store.UploadExpired, u.Status)
				require.Empty(t, parts(u.ID))
			})
			t.Run("a completed upload keeps its file", func(t *testing.T) {
				u, err := tb.Batches.CreateUpload(tb.ctx, batch.UploadParams{Filename: "b.txt", Purpose: "user_data", Bytes: 3, MimeType: "text/plain"})
				require.NoError(t, err)
				p, err := tb.Batches.AddPart(tb.ctx, u.ID, strings.NewReader("abc"), "data")
				require.NoError(t, err)
				u, err = tb.Batches.CompleteUpload(tb.ctx, u.ID, batch.CompleteParams{PartIDs: []string{p.ID}})
				require.NoError(t, err)

				require.NoError(t, w.Work(tb.ctx, job(batch.UploadExpireArgs{UploadID: u.ID})))
				u, err = tb.Store.UploadGet(tb.ctx, u.ID)
				require.NoError(t, err)
				require.Equal(t, store.UploadCompleted, u.Status)
				require.Equal(t, "abc", tb.ReadFile(t, *u.FileID))
			})
			t.Run("an unknown upload is no error", func(t *testing.T) {
				require.NoError(t, w.Work(tb.ctx, job(batch.UploadExpireArgs{UploadID: "upload_gone"})))
			})
		})
	}
}
