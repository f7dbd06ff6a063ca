package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testFiles(t *testing.T, setup setupFunc) {
	t.Run("IDsInUse", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		now := time.Now().Unix()
		newFile := func() store.File {
			f := store.File{ID: ids.New(ids.File), Purpose: "batch", Filename: "f.jsonl", ObjectKey: "files/x", Status: store.FileProcessed, CreatedAt: now}
			require.NoError(t, tb.st.FileCreate(tb.ctx, f))
			return f
		}
		live, deleted := newFile(), newFile()
		_, err := tb.st.FileDelete(tb.ctx, deleted.ID)
		require.NoError(t, err)
		// The file a pending upload's multipart upload becomes has no row
		// yet, and keeps its object; once the upload is cancelled it does
		// not.
		mpPending, mpCancelled := "file-mp-pending", "file-mp-cancelled"
		for _, fileID := range []string{mpPending, mpCancelled} {
			u := store.Upload{ID: ids.New(ids.Upload), Filename: "f", Purpose: "batch", Bytes: 1, MimeType: "text/plain",
				Status: store.UploadPending, CreatedAt: now, ExpiresAt: now + 3600}
			require.NoError(t, tb.st.UploadCreate(tb.ctx, u))
			_, _, err := tb.st.UploadPresignParts(tb.ctx, u.ID, 1, 10, now, fileID, func() (string, error) { return "mpu", nil },
				func(n int) store.UploadPart {
					return store.UploadPart{ID: ids.New(ids.Part), ObjectKey: "k", Bytes: -1, PartNumber: n, CreatedAt: now}
				})
			require.NoError(t, err)
			if fileID == mpCancelled {
				_, err = tb.st.UploadTransition(tb.ctx, u.ID, []string{store.UploadPending}, store.UploadCancelled, 0)
				require.NoError(t, err)
			}
		}

		got, err := tb.st.FileIDsInUse(tb.ctx, []string{live.ID, deleted.ID, "file-never", mpPending, mpCancelled})
		require.NoError(t, err)
		require.Equal(t, map[string]bool{live.ID: true, mpPending: true}, got)
		got, err = tb.st.FileIDsInUse(tb.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, got)

		// More IDs than one statement binds.
		many := make([]string, 1234)
		for i := range many {
			many[i] = fmt.Sprintf("file-none-%d", i)
		}
		many[1000] = live.ID
		got, err = tb.st.FileIDsInUse(tb.ctx, many)
		require.NoError(t, err)
		require.Equal(t, map[string]bool{live.ID: true}, got)
	})

	t.Run("Paginate", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		var made []string
		for i := range 5 {
			purpose := "batch"
			if i%2 == 1 {
				purpose = "fine-tune"
			}
			f := store.File{ID: ids.New(ids.File), Purpose: purpose, Filename: fmt.Sprintf("f%d.jsonl", i), Bytes: int64(i),
				ObjectKey: "files/x", Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
			require.NoError(t, tb.st.FileCreate(tb.ctx, f))
			made = append(made, f.ID)
		}
		page, more, err := tb.st.FileList(tb.ctx, store.FileListParams{Limit: 2})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{made[4], made[3]}, fileIDs(page))
		page, more, err = tb.st.FileList(tb.ctx, store.FileListParams{Limit: 10, After: made[3]})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{made[2], made[1], made[0]}, fileIDs(page))
		page, _, err = tb.st.FileList(tb.ctx, store.FileListParams{Limit: 10, Asc: true, Purpose: "batch"})
		require.NoError(t, err)
		require.Equal(t, []string{made[0], made[2], made[4]}, fileIDs(page))
		page, more, err = tb.st.FileList(tb.ctx, store.FileListParams{Limit: 1, Asc: true, Purpose: "batch", After: made[0]})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{made[2]}, fileIDs(page))

		f, err := tb.st.FileDelete(tb.ctx, made[0])
		require.NoError(t, err)
		require.Equal(t, "f0.jsonl", f.Filename)
		_, err = tb.st.FileDelete(tb.ctx, made[0])
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.FileGet(tb.ctx, made[0])
		require.ErrorIs(t, err, store.ErrNotFound)
		page, _, err = tb.st.FileList(tb.ctx, store.FileListParams{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []string{made[4], made[3], made[2], made[1]}, fileIDs(page), "deleted files are not listed")
	})

	t.Run("CreateGet", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		expires := time.Now().Add(time.Hour).Unix()
		f := store.File{ID: ids.New(ids.File), Purpose: "batch", Filename: "in.jsonl", Bytes: 123, ObjectKey: "files/in",
			Status: store.FileUploaded, CreatedAt: 42, ExpiresAt: &expires}
		require.NoError(t, tb.st.FileCreate(tb.ctx, f))
		got, err := tb.st.FileGet(tb.ctx, f.ID)
		require.NoError(t, err)
		f.ProjectID = store.DefaultProject // made without one
		require.Equal(t, f, got)
		require.Equal(t, []string{f.ID}, eventsOf(t, tb, store.EventFileCreated), "a file's creation is an event")

		require.Error(t, tb.st.FileCreate(tb.ctx, f), "IDs are unique")
		require.Equal(t, []string{f.ID}, eventsOf(t, tb, store.EventFileCreated), "a failed creation emits nothing")
	})

	t.Run("DeleteInUse", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := newFile(t, tb, "batch")
		b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: f.ID, CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: 1, ExpiresAt: 2}
		require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
		// The input of a batch that has not ended stays.
		_, err := tb.st.FileDelete(tb.ctx, f.ID)
		require.ErrorIs(t, err, store.ErrFileInUse)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.BatchStart(tb.ctx, b.ID, 1, "m", []store.Shard{{FirstLine: 1, LastLine: 1, Requests: 1}})
		require.NoError(t, err)
		_, err = tb.st.FileDelete(tb.ctx, f.ID)
		require.ErrorIs(t, err, store.ErrFileInUse)
		_, err = tb.st.FileGet(tb.ctx, f.ID)
		require.NoError(t, err)

		// Once the batch ended, its input may go.
		_, err = tb.st.BatchRequestStop(tb.ctx, b.ID, store.StopCancelled)
		require.NoError(t, err)
		_, err = tb.st.FileDelete(tb.ctx, f.ID)
		require.ErrorIs(t, err, store.ErrFileInUse, "a cancelling batch has not ended")
		_, err = tb.st.BatchComplete(tb.ctx, b.ID, store.Outcome{})
		require.NoError(t, err)
		got, err := tb.st.FileDelete(tb.ctx, f.ID)
		require.NoError(t, err)
		require.Equal(t, f.ID, got.ID)
		_, err = tb.st.FileGet(tb.ctx, f.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("Owners", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		now := time.Now().Unix()
		api := store.File{ID: ids.New(ids.File), Purpose: "batch", Filename: "in.jsonl", ObjectKey: "files/a", Status: store.FileProcessed, CreatedAt: now}
		export := store.File{ID: ids.New(ids.File), Purpose: "fine-tune", Filename: "export.jsonl", ObjectKey: "files/e", Status: store.FileProcessed,
			CreatedAt: now, Owner: store.FileOwnerCuration}
		require.NoError(t, tb.st.FileCreate(tb.ctx, api))
		require.NoError(t, tb.st.FileCreate(tb.ctx, export))

		list, _, err := tb.st.FileList(tb.ctx, store.FileListParams{Limit: 10})
		require.NoError(t, err)
		require.Len(t, list, 1, "the API's list holds the API's files only")
		require.Equal(t, api.ID, list[0].ID)
		list, _, err = tb.st.FileList(tb.ctx, store.FileListParams{Owner: store.FileOwnerCuration, Limit: 10})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, export.ID, list[0].ID)
		got, err := tb.st.FileGet(tb.ctx, export.ID)
		require.NoError(t, err)
		require.Equal(t, store.FileOwnerCuration, got.Owner)

		// Only the API's file is announced to the API's webhooks.
		evs, _, err := tb.st.EventList(tb.ctx, "", store.EventFileCreated, "", 10)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Contains(t, string(evs[0].Data), api.ID)
	})
	t.Run("Expire", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		const now = 1_000_000
		made := func(purpose string, expiresAt int64, owner string) store.File {
			f := store.File{ID: ids.New(ids.File), Purpose: purpose, Filename: "f.jsonl", ObjectKey: "files/f", Status: store.FileProcessed,
				CreatedAt: now - 7200, Owner: owner}
			if expiresAt != 0 {
				f.ExpiresAt = &expiresAt
			}
			require.NoError(t, tb.st.FileCreate(tb.ctx, f))
			return f
		}
		later := made("batch_output", now+1, "")
		kept := made("batch_output", 0, "")
		due := made("batch_output", now-10, "")
		dueFirst := made("user_data", now-20, "")
		export := made("fine-tune", now, store.FileOwnerCuration)
		input := made("batch", now-5, "")
		b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: input.ID, CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: 1, ExpiresAt: 2, OutputExpiresAfter: 3600}
		require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, 3600, got.OutputExpiresAfter, "a batch keeps its output_expires_after for finalize")

		list, err := tb.st.FileListExpired(tb.ctx, now, 10)
		require.NoError(t, err)
		require.Equal(t, []string{dueFirst.ID, due.ID, export.ID}, fileIDs(list), "soonest first; not the input of a batch that runs")
		list, err = tb.st.FileListExpired(tb.ctx, now, 1)
		require.NoError(t, err)
		require.Equal(t, []string{dueFirst.ID}, fileIDs(list))

		_, err = tb.st.FileExpire(tb.ctx, later.ID, now)
		require.ErrorIs(t, err, store.ErrNotFound, "not yet due")
		_, err = tb.st.FileExpire(tb.ctx, kept.ID, now)
		require.ErrorIs(t, err, store.ErrNotFound, "no expires_at")
		_, err = tb.st.FileExpire(tb.ctx, input.ID, now)
		require.ErrorIs(t, err, store.ErrFileInUse)
		for _, f := range []store.File{due, dueFirst, export} {
			gone, err := tb.st.FileExpire(tb.ctx, f.ID, now)
			require.NoError(t, err)
			require.Equal(t, f.ObjectKey, gone.ObjectKey)
			_, err = tb.st.FileGet(tb.ctx, f.ID)
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = tb.st.FileExpire(tb.ctx, f.ID, now)
			require.ErrorIs(t, err, store.ErrNotFound, "expired once")
		}
		rows, err := tb.st.QueryInt(tb.ctx, `SELECT COUNT(*) FROM files WHERE id IN ($1, $2)`, due.ID, dueFirst.ID)
		require.NoError(t, err)
		require.Zero(t, rows, "an expired file's row is gone, not marked deleted")
		require.Equal(t, []string{due.ID, dueFirst.ID}, eventsOf(t, tb, store.EventFileExpired), "the API's files only")

		// Once its batch ended, the input goes too.
		_, err = tb.st.BatchFail(tb.ctx, b.ID, nil)
		require.NoError(t, err)
		list, err = tb.st.FileListExpired(tb.ctx, now, 10)
		require.NoError(t, err)
		require.Equal(t, []string{input.ID}, fileIDs(list))
		_, err = tb.st.FileExpire(tb.ctx, input.ID, now)
		require.NoError(t, err)

		// An upload keeps its expires_after for the file it becomes.
		u := store.Upload{ID: ids.New(ids.Upload), Filename: "f", Purpose: "batch", Bytes: 1, MimeType: "text/plain",
			Status: store.UploadPending, CreatedAt: now, ExpiresAt: now + 3600, FileExpiresAfter: 86400}
		require.NoError(t, tb.st.UploadCreate(tb.ctx, u))
		gotU, err := tb.st.UploadGet(tb.ctx, u.ID)
		require.NoError(t, err)
		require.EqualValues(t, 86400, gotU.FileExpiresAfter)
	})
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		_, err := tb.st.FileGet(tb.ctx, "file-nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.FileDelete(tb.ctx, "file-nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func fileIDs(fs []store.File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}
