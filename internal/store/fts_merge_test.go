package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSearchIndexMergesSixteen: SQLite's search index merges sixteen
// segments of a level at a time (migration 22); the curation package's
// search tests find tasks through it.
func TestSearchIndexMergesSixteen(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, "sqlite")
	var automerge int
	require.NoError(t, s.d.db().queryRow(ctx, `SELECT v FROM curation_tasks_fts_config WHERE k = 'automerge'`).Scan(&automerge))
	require.Equal(t, 16, automerge)
}
