package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testInbox(t *testing.T, setup setupFunc) {
	inboxFile := func() store.File {
		return store.File{ID: ids.New(ids.File), Purpose: "batch", Filename: "in.jsonl", Bytes: 3, ObjectKey: "inbox/in.jsonl",
			Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
	}

	t.Run("ImportOnce", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := startWorkers(t, tb)
		f := inboxFile()
		b := &store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: f.ID, CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: 1, ExpiresAt: 2}
		obj, created, err := tb.st.InboxImport(tb.ctx, "inbox/in.jsonl", "etag1", f, b, noopJob("validate"))
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, store.InboxObject{Key: "inbox/in.jsonl", ETag: "etag1", FileID: f.ID, BatchID: b.ID}, obj)
		require.Equal(t, []string{"validate"}, w.wait(t, 1))
		_, err = tb.st.FileGet(tb.ctx, f.ID)
		require.NoError(t, err)
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, f.ID, got.InputFileID)

		// The same version again is the earlier import; nothing is added.
		again := inboxFile()
		obj, created, err = tb.st.InboxImport(tb.ctx, "inbox/in.jsonl", "etag1", again, nil, noopJob("again"))
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, store.InboxObject{Key: "inbox/in.jsonl", ETag: "etag1", FileID: f.ID, BatchID: b.ID}, obj)
		_, err = tb.st.FileGet(tb.ctx, again.ID)
		require.ErrorIs(t, err, store.ErrNotFound)

		obj, err = tb.st.InboxGet(tb.ctx, "inbox/in.jsonl", "etag1")
		require.NoError(t, err)
		require.Equal(t, store.InboxObject{Key: "inbox/in.jsonl", ETag: "etag1", FileID: f.ID, BatchID: b.ID}, obj)

		// Another version of the key is another object.
		other := inboxFile()
		obj, created, err = tb.st.InboxImport(tb.ctx, "inbox/in.jsonl", "etag2", other, nil)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, other.ID, obj.FileID)
		require.Empty(t, obj.BatchID)
		require.Equal(t, []string{f.ID, other.ID}, eventsOf(t, tb, store.EventFileCreated))
	})

	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := inboxFile()
		_, _, err := tb.st.InboxImport(tb.ctx, "k", "e", f, nil)
		require.NoError(t, err)
		before := time.Now().UnixMilli()
		require.NoError(t, tb.st.InboxRelease(tb.ctx, "k", "e"))
		obj, err := tb.st.InboxGet(tb.ctx, "k", "e")
		require.NoError(t, err)
		require.True(t, obj.Released)
		require.GreaterOrEqual(t, obj.ReleasedAt, before, "milliseconds")
		require.Equal(t, f.ID, obj.FileID)

		// The same bytes uploaded again after a release are a new import.
		f2 := inboxFile()
		obj, created, err := tb.st.InboxImport(tb.ctx, "k", "e", f2, nil)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, f2.ID, obj.FileID)
		obj, err = tb.st.InboxGet(tb.ctx, "k", "e")
		require.NoError(t, err)
		require.False(t, obj.Released)
		require.Zero(t, obj.ReleasedAt)
		require.Equal(t, f2.ID, obj.FileID)
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		_, err := tb.st.InboxGet(tb.ctx, "k", "e")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, tb.st.InboxRelease(tb.ctx, "k", "e"), "releasing an object never imported does nothing")
		_, err = tb.st.InboxGet(tb.ctx, "k", "e")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
