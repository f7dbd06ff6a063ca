package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testEnqueuedTokens(t *testing.T, setup setupFunc) {
	t.Run("LimitCountsRunningBatches", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		newBatch := func(project string) store.Batch {
			now := time.Now()
			b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x", CompletionWindow: "24h",
				Status: store.BatchValidating, CreatedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(), ProjectID: project}
			require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
			return b
		}
		start := func(b store.Batch, tokens int64) error {
			_, err := tb.st.BatchStartWith(tb.ctx, b.ID, store.BatchStartParams{Total: 1, Model: "m", InputTokens: tokens,
				MaxEnqueuedTokens: 100, Shards: []store.ShardSpan{{FirstLine: 1, LastLine: 1, Requests: 1}}})
			return err
		}
		first := newBatch(store.DefaultProject)
		require.NoError(t, start(first, 60))
		got, err := tb.st.BatchGet(tb.ctx, first.ID)
		require.NoError(t, err)
		require.Equal(t, store.BatchInProgress, got.Status)

		second := newBatch(store.DefaultProject)
		err = start(second, 50)
		var over *store.TokenLimitError
		require.True(t, errors.As(err, &over), "%v", err)
		require.EqualValues(t, 100, over.Limit)
		require.EqualValues(t, 60, over.Enqueued)
		require.EqualValues(t, 50, over.Batch)
		require.Contains(t, over.Error(), "exceed the limit of 100")
		got, err = tb.st.BatchGet(tb.ctx, second.ID)
		require.NoError(t, err)
		require.Equal(t, store.BatchValidating, got.Status, "nothing was written")

		// Another project's running batches count for it alone.
		other := store.Project{ID: ids.New(ids.Project), Name: "other"}
		require.NoError(t, tb.st.ProjectCreate(tb.ctx, other))
		require.NoError(t, start(newBatch(other.ID), 90))

		// Once the first batch ends, its tokens leave the queue.
		_, err = tb.st.BatchRequestStop(tb.ctx, first.ID, store.StopCancelled)
		require.NoError(t, err)
		_, err = tb.st.BatchComplete(tb.ctx, first.ID, store.Outcome{})
		require.NoError(t, err)
		require.NoError(t, start(second, 50))
	})
}
