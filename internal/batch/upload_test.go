package batch_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// lifecycleBundle is the lifecycle on one backend, as kiln deploys it:
// SQLite with a folder whose presigned URLs a loopback server serves (and
// refuses as kiln's API does, through AuthorizeObject), or Postgres with
// S3.
type lifecycleBundle struct {
	ctx     context.Context
	backend string
	st      *store.Store
	bucket  objectstore.Bucket
	batches *batch.Service
	// dir is the folder's root; "" on S3.
	dir string
}

func setupLifecycle(t *testing.T, backend string, limits batch.Limits) *lifecycleBundle {
	t.Helper()
	tb := &lifecycleBundle{ctx: context.Background(), backend: backend, st: storetest.New(t, backend)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux := http.NewServeMux()
	var err error
	if backend == "postgres" {
		tb.bucket, err = objectstore.Open(tb.ctx, testenv.S3URL(t))
	} else {
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		tb.dir = t.TempDir()
		tb.bucket, err = objectstore.OpenWith(tb.ctx, "file://"+tb.dir, objectstore.Options{PublicURL: srv.URL})
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = tb.bucket.Close() })
	tb.batches = batch.New(tb.st, tb.bucket, limits, log)
	mux.Handle(objectstore.SignedPath, objectstore.HandlerWith(tb.bucket, &objectstore.HandlerOpts{Authorize: tb.batches.AuthorizeObject}))
	return tb
}

func (tb *lifecycleBundle) createUpload(t *testing.T, bytes int64) (store.Upload, error) {
	t.Helper()
	return tb.batches.CreateUpload(tb.ctx, batch.UploadParams{Filename: "in.txt", Purpose: "user_data", Bytes: bytes, MimeType: "text/plain"})
}

// put PUTs body at a presigned URL and returns the status.
func (tb *lifecycleBundle) put(t *testing.T, url, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(tb.ctx, http.MethodPut, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode
}

func (tb *lifecycleBundle) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := tb.bucket.Stat(tb.ctx, key)
	if err != nil {
		require.ErrorIs(t, err, objectstore.ErrNotExist)
	}
	return err == nil
}

// requireTooManyPending checks that err is the 429 of the cap on uploads
// in progress, naming the limit.
func requireTooManyPending(t *testing.T, err error, limit string) {
	t.Helper()
	var ae *apierror.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusTooManyRequests, ae.Status)
	require.Equal(t, "too_many_pending_uploads", ae.Code)
	require.Empty(t, ae.Param)
	require.Contains(t, ae.Message, limit)
}

func TestCreateUploadCap(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()

			t.Run("CountAndBytes", func(t *testing.T) {
				t.Parallel()
				tb := setupLifecycle(t, backend, batch.Limits{MaxPendingUploads: 3, MaxPendingUploadBytes: 100})
				a, err := tb.createUpload(t, 40)
				require.NoError(t, err)
				_, err = tb.createUpload(t, 50)
				require.NoError(t, err)
				_, err = tb.createUpload(t, 11)
				requireTooManyPending(t, err, "limit of 100 bytes")
				_, err = tb.createUpload(t, 10)
				require.NoError(t, err, "exactly at the cap on bytes")
				_, err = tb.createUpload(t, 1)
				requireTooManyPending(t, err, "3 uploads in progress")

				// An upload that ends frees its place.
				_, err = tb.batches.CancelUpload(tb.ctx, a.ID)
				require.NoError(t, err)
				_, err = tb.createUpload(t, 40)
				require.NoError(t, err)
				p, err := tb.st.UploadPendingTotals(tb.ctx, a.CreatedAt)
				require.NoError(t, err)
				require.Equal(t, store.UploadsPending{Count: 3, Bytes: 100}, p)
			})

			t.Run("NegativeIsNoCap", func(t *testing.T) {
				t.Parallel()
				tb := setupLifecycle(t, backend, batch.Limits{MaxPendingUploads: -1, MaxPendingUploadBytes: -1})
				for range 3 {
					_, err := tb.createUpload(t, tb.batches.Limits().MaxFileBytes)
					require.NoError(t, err)
				}
			})

			t.Run("Defaults", func(t *testing.T) {
				t.Parallel()
				l := batch.Limits{}.WithDefaults()
				require.Equal(t, 1000, l.MaxPendingUploads)
				require.EqualValues(t, 100<<30, l.MaxPendingUploadBytes)
			})

			// Creates that race for the last places take no more than
			// there are: the store counts in the insert's transaction.
			t.Run("Concurrent", func(t *testing.T) {
				t.Parallel()
				const tries, limit = 16, 4
				tb := setupLifecycle(t, backend, batch.Limits{MaxPendingUploads: limit})
				start := make(chan struct{})
				errs := make(chan error, tries)
				for range tries {
					go func() {
						<-start
						_, err := tb.createUpload(t, 1)
						errs <- err
					}()
				}
				close(start)
				created := 0
				for range tries {
					if err := <-errs; err != nil {
						requireTooManyPending(t, err, "4 uploads in progress")
						continue
					}
					created++
				}
				require.Equal(t, limit, created)
			})
		})
	}
}

// A presigned part's URL must not write after its upload has ended: the
// upload's parts were removed then, and a late part would be an object
// nothing removes. The folder store refuses the PUT (403); S3's URLs
// cannot be revoked, so the part is written and the sweep removes it.
func TestPresignedPartAfterUploadEnds(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			for _, end := range []string{store.UploadCompleted, store.UploadCancelled} {
				t.Run(end, func(t *testing.T) {
					t.Parallel()
					tb := setupLifecycle(t, backend, batch.Limits{})
					u, err := tb.createUpload(t, 3)
					require.NoError(t, err)
					parts, err := tb.batches.PresignParts(tb.ctx, u.ID, 2)
					require.NoError(t, err)
					multipart, err := tb.batches.PresignMultipartParts(tb.ctx, u.ID, 1)
					require.NoError(t, err)
					require.Equal(t, http.StatusOK, tb.put(t, parts[0].URL, "abc"), "in time")
					switch end {
					case store.UploadCompleted:
						_, err = tb.batches.CompleteUpload(tb.ctx, u.ID, batch.CompleteParams{PartIDs: []string{parts[0].ID}})
					default:
						_, err = tb.batches.CancelUpload(tb.ctx, u.ID)
					}
					require.NoError(t, err)
					require.False(t, tb.exists(t, parts[0].ObjectKey), "the upload's parts are removed when it ends")

					// The multipart upload is aborted with its upload, on
					// both stores.
					require.NotEqual(t, http.StatusOK, tb.put(t, multipart[0].URL, "late"))

					late := parts[1]
					if backend == "postgres" {
						require.Equal(t, http.StatusOK, tb.put(t, late.URL, "late"), "S3 cannot revoke a presigned URL")
						require.True(t, tb.exists(t, late.ObjectKey))
						counts, err := tb.batches.SweepObjects(tb.ctx, -sweepAhead)
						require.NoError(t, err)
						require.Equal(t, 1, counts[batch.SweptUploadPart])
					} else {
						require.Equal(t, http.StatusForbidden, tb.put(t, late.URL, "late"))
					}
					require.False(t, tb.exists(t, late.ObjectKey), "nothing of the upload is left")
				})
			}
		})
	}
}
