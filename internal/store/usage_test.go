package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testUsage(t *testing.T, setup setupFunc) {
	t.Run("ByBucketProjectAndModel", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		p := newProject(t, tb, "usage")
		run := func(project, model string, chunks ...store.Chunk) {
			t.Helper()
			b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x", CompletionWindow: "24h",
				Status: store.BatchValidating, CreatedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix(), ProjectID: project}
			require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
			_, err := tb.st.BatchStart(tb.ctx, b.ID, 10, model, []store.Shard{{FirstLine: 1, LastLine: 10, Requests: 10}})
			require.NoError(t, err)
			owner := ids.New("agent_")
			_, _, err = tb.st.ShardClaim(tb.ctx, model, owner, time.Minute, 0)
			require.NoError(t, err)
			for i, c := range chunks {
				c.BatchID, c.Seq, c.ObjectKey = b.ID, int64(i), b.ID+"/"+ids.New("c")
				require.NoError(t, tb.st.ChunkCommit(tb.ctx, owner, c))
			}
		}
		const day = 86400
		run(store.DefaultProject, "m1",
			store.Chunk{OutputLines: 2, ErrorLines: 1, InputTokens: 30, OutputTokens: 20, CreatedAt: 10},
			store.Chunk{OutputLines: 1, InputTokens: 10, OutputTokens: 5, CreatedAt: day + 4})
		run(p.ID, "m1", store.Chunk{OutputLines: 4, InputTokens: 40, OutputTokens: 8, CreatedAt: 20})
		run(p.ID, "m2", store.Chunk{OutputLines: 1, InputTokens: 1, OutputTokens: 1, CreatedAt: 2 * day})

		got, err := tb.st.UsageList(tb.ctx, store.UsageFilter{Start: 0, End: 3 * day, Width: day})
		require.NoError(t, err)
		require.Less(t, p.ID, store.DefaultProject, "proj_0… sorts first")
		require.Equal(t, []store.Usage{
			{Bucket: 0, ProjectID: p.ID, Model: "m1", InputTokens: 40, OutputTokens: 8, Requests: 4},
			{Bucket: 0, ProjectID: store.DefaultProject, Model: "m1", InputTokens: 30, OutputTokens: 20, Requests: 3},
			{Bucket: 1, ProjectID: store.DefaultProject, Model: "m1", InputTokens: 10, OutputTokens: 5, Requests: 1},
			{Bucket: 2, ProjectID: p.ID, Model: "m2", InputTokens: 1, OutputTokens: 1, Requests: 1},
		}, got)

		got, err = tb.st.UsageList(tb.ctx, store.UsageFilter{Start: 5, End: 2 * day, Width: day, ProjectIDs: []string{store.DefaultProject}, Models: []string{"m1"}})
		require.NoError(t, err)
		require.Equal(t, []store.Usage{
			{Bucket: 0, ProjectID: store.DefaultProject, Model: "m1", InputTokens: 40, OutputTokens: 25, Requests: 4},
		}, got, "buckets start at Start: both chunks of the default project fall in [5, 5+day)")

		_, err = tb.st.UsageList(tb.ctx, store.UsageFilter{Start: 0, End: 1})
		require.Error(t, err, "a bucket needs a width")
	})
}
