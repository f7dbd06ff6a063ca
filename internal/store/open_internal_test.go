package store

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/testenv"
)

// openTestStore opens a store on a new database of backend ("sqlite", in
// t's temporary folder, or "postgres"), closed when t ends.
func openTestStore(t *testing.T, backend string) *Store {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "kiln.db")
	if backend == "postgres" {
		url = testenv.PostgresURL(t)
	}
	s, err := Open(context.Background(), url, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}
