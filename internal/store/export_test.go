package store

import (
	"context"
	"log/slog"
)

// OpenAt opens a database migrated up to version and no further, as an
// older kiln left it.
func OpenAt(ctx context.Context, databaseURL string, log *slog.Logger, version int) (*Store, error) {
	return OpenWith(ctx, databaseURL, log, &OpenOpts{migrateTo: version})
}

// Exec runs one statement: rows written as an older schema had them.
func (s *Store) Exec(ctx context.Context, query string, args ...any) error {
	_, err := s.d.db().exec(ctx, query, args...)
	return err
}
