package store

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// sqliteConstraint is SQLite's SQLITE_CONSTRAINT; extended codes keep it in
// their low byte.
const sqliteConstraint = 19

// sqliteBusy is SQLite's SQLITE_BUSY, in the low byte of extended codes.
const sqliteBusy = 5

// isSQLiteBusy reports whether err is SQLite's "database is locked".
func isSQLiteBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqliteBusy
}

// IsPermanent reports whether err is the database refusing the data itself:
// a data exception (such as a NUL in text) or a violated constraint, which
// PostgreSQL reports in SQLSTATE classes 22 and 23 and SQLite as a
// constraint error. The same statement fails the same way however often it
// is retried, so a job that meets one stops at once.
func IsPermanent(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqliteConstraint
	}
	return false
}
