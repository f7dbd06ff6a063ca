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

// QueryInt runs a query of one integer: what the store's API does not
// show, such as whether a row is there at all.
func (s *Store) QueryInt(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.d.db().queryRow(ctx, query, args...).Scan(&n)
	return n, err
}
