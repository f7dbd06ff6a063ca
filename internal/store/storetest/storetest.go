// Package storetest gives tests a fresh, migrated store on each backend:
// SQLite in a temporary folder, and a new database on a real Postgres.
package storetest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/testenv"
)

// Backends are the databases every store behaviour is tested on.
var Backends = []string{"sqlite", "postgres"}

// URL returns the URL of a fresh database of the backend, removed when t
// ends.
func URL(t testing.TB, backend string) string {
	t.Helper()
	switch backend {
	case "sqlite":
		return "sqlite://" + filepath.Join(t.TempDir(), "kiln.db")
	case "postgres":
		return testenv.PostgresURL(t)
	default:
		t.Fatalf("storetest: unknown backend %q", backend)
		return ""
	}
}

// New opens a fresh, migrated store on the backend, closed when t ends.
func New(t testing.TB, backend string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), URL(t, backend), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("storetest: open %s: %v", backend, err)
	}
	t.Cleanup(st.Close)
	return st
}
