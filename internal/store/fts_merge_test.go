package store

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSearchIndexMergesSixteen: SQLite's search index merges sixteen
// segments of a level at a time (migration 22); the curation package's
// search tests find tasks through it.
func TestSearchIndexMergesSixteen(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "kiln.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	var automerge int
	require.NoError(t, s.d.db().queryRow(ctx, `SELECT v FROM curation_tasks_fts_config WHERE k = 'automerge'`).Scan(&automerge))
	require.Equal(t, 16, automerge)
}
