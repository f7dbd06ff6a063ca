package jobs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// TestFilesExpireWorker drives the lifecycle's clock past files'
// expires_at, instead of waiting for it, and runs the job.
func TestFilesExpireWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			w := &FilesExpireWorker{d: tb.deps}
			// at sets the lifecycle's clock d from now.
			at := func(d time.Duration) { tb.Batches.SetClock(func() time.Time { return time.Now().Add(d) }) }
			t.Cleanup(func() { tb.Batches.SetClock(time.Now) })
			expire := func() {
				t.Helper()
				require.NoError(t, w.Work(tb.ctx, job(FilesExpireArgs{})))
			}
			requireGone := func(f store.File) {
				t.Helper()
				_, err := tb.Store.FileGet(tb.ctx, f.ID)
				require.ErrorIs(t, err, store.ErrNotFound, "the row")
				_, err = tb.Bucket.Stat(tb.ctx, f.ObjectKey)
				require.ErrorIs(t, err, objectstore.ErrNotExist, "the object")
				require.Contains(t, expiredEvents(t, tb), f.ID, "file.expired")
			}
			requireKept := func(f store.File) {
				t.Helper()
				_, err := tb.Store.FileGet(tb.ctx, f.ID)
				require.NoError(t, err)
				_, err = tb.Bucket.Stat(tb.ctx, f.ObjectKey)
				require.NoError(t, err)
				require.NotContains(t, expiredEvents(t, tb), f.ID)
			}
			upload := func(purpose, content string, after *batch.ExpiresAfter) store.File {
				t.Helper()
				d, err := tb.Batches.PutFile(tb.ctx, "f.jsonl", strings.NewReader(content), "file")
				require.NoError(t, err)
				f, err := d.Commit(tb.ctx, purpose, after)
				require.NoError(t, err)
				return f
			}

			t.Run("an uploaded file goes at its expires_at", func(t *testing.T) {
				at(0)
				f := upload("user_data", "hello", &batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: 3600})
				require.NotNil(t, f.ExpiresAt)
				require.Equal(t, f.CreatedAt+3600, *f.ExpiresAt)
				got, err := tb.Store.FileGet(tb.ctx, f.ID)
				require.NoError(t, err)
				require.Equal(t, f.ExpiresAt, got.ExpiresAt)
				forever := upload("user_data", "kept", nil)
				require.Nil(t, forever.ExpiresAt, "no retention is set: kept until deleted")

				at(59 * time.Minute)
				expire()
				requireKept(f)
				at(61 * time.Minute)
				expire()
				requireGone(f)
				requireKept(forever)
			})

			t.Run("a batch's output and error files go at their expires_at", func(t *testing.T) {
				at(0)
				const m = "expiring-model"
				in := upload(batch.PurposeBatch, batchtest.ChatLines(m, 3), nil)
				b, err := tb.Batches.Create(tb.ctx, batch.CreateParams{InputFileID: in.ID, Endpoint: "/v1/chat/completions",
					OutputExpiresAfter: &batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: 7200}})
				require.NoError(t, err)
				require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
				tb.RunShards(t, m, func(line int) bool { return line != 2 })
				require.NoError(t, tb.Batches.Finalize(tb.ctx, b.ID))
				b, err = tb.Store.BatchGet(tb.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, store.BatchCompleted, b.Status)
				out, err := tb.Store.FileGet(tb.ctx, *b.OutputFileID)
				require.NoError(t, err)
				errs, err := tb.Store.FileGet(tb.ctx, *b.ErrorFileID)
				require.NoError(t, err)
				for _, f := range []store.File{out, errs} {
					require.NotNil(t, f.ExpiresAt, f.ID)
					require.Equal(t, f.CreatedAt+7200, *f.ExpiresAt, "anchored at the file's creation, not the batch's")
				}

				at(time.Hour)
				expire()
				requireKept(out)
				at(3 * time.Hour)
				expire()
				requireGone(out)
				requireGone(errs)
				requireKept(in)
			})

			t.Run("a running batch's input waits for the batch to end", func(t *testing.T) {
				at(0)
				in := upload(batch.PurposeBatch, batchtest.ChatLines("idle-model", 1), &batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: 3600})
				b, err := tb.Batches.Create(tb.ctx, batch.CreateParams{InputFileID: in.ID, Endpoint: "/v1/chat/completions"})
				require.NoError(t, err)

				at(2 * time.Hour)
				expire()
				requireKept(in)
				_, err = tb.Store.BatchFail(tb.ctx, b.ID, nil)
				require.NoError(t, err)
				expire()
				requireGone(in)
			})

			t.Run("nothing due is no error", func(t *testing.T) {
				at(0)
				expire()
			})
		})
	}
}

// TestFileRetention: without expires_after, a file expires as its
// purpose's retention says.
func TestFileRetention(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := batchtest.New(t, backend, batch.Limits{FileRetention: map[string]time.Duration{
				batch.PurposeBatchOutput: 48 * time.Hour, "user_data": 0, config.FileRetentionAny: 24 * time.Hour,
			}})
			made := func(purpose string, after *batch.ExpiresAfter) store.File {
				t.Helper()
				d, err := env.Batches.PutFile(t.Context(), "f.jsonl", strings.NewReader(`{"a":1}`), "file")
				require.NoError(t, err)
				f, err := d.Commit(t.Context(), purpose, after)
				require.NoError(t, err)
				return f
			}
			expiresIn := func(f store.File) int64 {
				t.Helper()
				if f.ExpiresAt == nil {
					return 0
				}
				return *f.ExpiresAt - f.CreatedAt
			}
			require.EqualValues(t, 24*3600, expiresIn(made(batch.PurposeBatch, nil)), "*: every purpose not listed")
			require.EqualValues(t, 0, expiresIn(made("user_data", nil)), "0 keeps")
			require.EqualValues(t, 3600, expiresIn(made("user_data", &batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: 3600})),
				"a client's expires_after comes first")

			const m = "retention-model"
			b := env.CreateBatch(t, batchtest.ChatLines(m, 2))
			require.NoError(t, env.Batches.Validate(t.Context(), b.ID))
			env.RunShards(t, m, nil)
			require.NoError(t, env.Batches.Finalize(t.Context(), b.ID))
			b, err := env.Store.BatchGet(t.Context(), b.ID)
			require.NoError(t, err)
			out, err := env.Store.FileGet(t.Context(), *b.OutputFileID)
			require.NoError(t, err)
			require.EqualValues(t, 48*3600, expiresIn(out), "batch_output's retention")
		})
	}
}

// expiredEvents are the file IDs of every file.expired event.
func expiredEvents(t *testing.T, tb *testBundle) []string {
	t.Helper()
	evs, _, err := tb.Store.EventList(tb.ctx, "", store.EventFileExpired, "", 1000)
	require.NoError(t, err)
	var out []string
	for _, ev := range evs {
		var data struct{ ID string }
		require.NoError(t, json.Unmarshal(ev.Data, &data))
		out = append(out, data.ID)
	}
	return out
}
