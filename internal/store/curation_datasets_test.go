package store_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testCurationDatasets(t *testing.T, setup setupFunc) {
	t.Run("Versions", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		v := store.DatasetVersion{Name: "emails", Format: "openai_sft", FileFormat: "parquet", Manifest: json.RawMessage(`{"rows":2}`),
			ContentHash: "abc", Rows: 2, Tasks: 2, Prefix: "curation/datasets/x", Curator: "Ada", CreatedAt: 100}
		one, err := tb.st.DatasetVersionCreate(tb.ctx, v, []store.DatasetItem{{TaskID: "task_2", Rows: 1, Hash: "h2"}, {TaskID: "task_1", Rows: 1, Hash: "h1"}})
		require.NoError(t, err)
		require.EqualValues(t, 1, one.Version)
		require.Equal(t, store.DefaultProject, one.ProjectID)
		v.ContentHash = "def"
		two, err := tb.st.DatasetVersionCreate(tb.ctx, v, []store.DatasetItem{{TaskID: "task_1", Rows: 1, Hash: "h1b"}})
		require.NoError(t, err)
		require.EqualValues(t, 2, two.Version)
		other := v
		other.Name, other.ProjectID = "emails", "proj_other"
		o, err := tb.st.DatasetVersionCreate(tb.ctx, other, nil)
		require.NoError(t, err)
		require.EqualValues(t, 1, o.Version, "versions count per project")

		got, err := tb.st.DatasetVersionGet(tb.ctx, "", "emails", 1)
		require.NoError(t, err)
		require.Equal(t, one, got)
		require.JSONEq(t, `{"rows":2}`, string(got.Manifest))
		_, err = tb.st.DatasetVersionGet(tb.ctx, "", "emails", 3)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.DatasetVersionGet(tb.ctx, "proj_none", "emails", 1)
		require.ErrorIs(t, err, store.ErrNotFound)

		list, err := tb.st.DatasetVersionList(tb.ctx, "", "")
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.EqualValues(t, 2, list[0].Version, "newest first")
		named, err := tb.st.DatasetVersionList(tb.ctx, "proj_other", "emails")
		require.NoError(t, err)
		require.Len(t, named, 1)

		items, err := tb.st.DatasetItems(tb.ctx, "", "emails", 1)
		require.NoError(t, err)
		require.Equal(t, []store.DatasetItem{{TaskID: "task_1", Rows: 1, Hash: "h1"}, {TaskID: "task_2", Rows: 1, Hash: "h2"}}, items)
		items, err = tb.st.DatasetItems(tb.ctx, "", "emails", 2)
		require.NoError(t, err)
		require.Len(t, items, 1)
	})

	t.Run("ManyItems", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		items := make([]store.DatasetItem, 1200)
		for i := range items {
			items[i] = store.DatasetItem{TaskID: fmt.Sprintf("task_%05d", i), Rows: 1, Hash: "h"}
		}
		_, err := tb.st.DatasetVersionCreate(tb.ctx, store.DatasetVersion{Name: "big", Format: "trl", FileFormat: "jsonl", Manifest: json.RawMessage(`{}`)}, items)
		require.NoError(t, err)
		got, err := tb.st.DatasetItems(tb.ctx, "", "big", 1)
		require.NoError(t, err)
		require.Len(t, got, len(items))
	})

	t.Run("NearDups", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		un, err := tb.st.NearDupUnscanned(tb.ctx, "", "email", "", 10)
		require.NoError(t, err)
		require.Len(t, un, 2)
		next, err := tb.st.NearDupUnscanned(tb.ctx, "", "email", un[0].ID, 10)
		require.NoError(t, err)
		require.Equal(t, un[1:], next, "a page goes on after the cursor")
		all, err := tb.st.NearDupUnscanned(tb.ctx, "", "", "", 10)
		require.NoError(t, err)
		require.Len(t, all, 3)
		// The top bit set: the hash survives the signed column.
		require.NoError(t, tb.st.NearDupPut(tb.ctx, []store.NearDup{
			{TaskID: f.emailK1, ConquestType: "email", SimHash: 1<<63 | 5, ClusterID: f.emailK1},
			{TaskID: f.emailK2, ConquestType: "email", SimHash: 7, ClusterID: f.emailK1},
		}))
		require.NoError(t, tb.st.NearDupPut(tb.ctx, []store.NearDup{{TaskID: f.emailK2, ConquestType: "email", SimHash: 9, ClusterID: f.emailK2}}),
			"a fingerprint is kept")
		un, err = tb.st.NearDupUnscanned(tb.ctx, "", "email", "", 10)
		require.NoError(t, err)
		require.Empty(t, un)
		list, err := tb.st.NearDupList(tb.ctx, "", "email", nil)
		require.NoError(t, err)
		require.Len(t, list, 2)
		byID := map[string]store.NearDup{}
		for _, n := range list {
			byID[n.TaskID] = n
		}
		require.Equal(t, uint64(1<<63|5), byID[f.emailK1].SimHash)
		require.Equal(t, f.emailK1, byID[f.emailK2].ClusterID)
		require.EqualValues(t, 7, byID[f.emailK2].SimHash)
		some, err := tb.st.NearDupList(tb.ctx, "", "", []string{f.emailK2, f.otherK1})
		require.NoError(t, err)
		require.Len(t, some, 1)
		none, err := tb.st.NearDupList(tb.ctx, "proj_other", "", nil)
		require.NoError(t, err)
		require.Empty(t, none)
	})
}
