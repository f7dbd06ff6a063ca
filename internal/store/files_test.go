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
