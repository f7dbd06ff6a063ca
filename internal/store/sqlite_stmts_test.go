package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// openSQLiteDB opens a fresh SQLite database as the store does, with its
// statement cache, and a table t of n rows (id 0 to n-1).
func openSQLiteDB(t *testing.T, n int) (*sql.DB, *stmtCacheConn) {
	t.Helper()
	ctx := context.Background()
	d, err := openSQLite(ctx, "sqlite://"+filepath.Join(t.TempDir(), "kiln.db"), nil)
	require.NoError(t, err)
	t.Cleanup(d.close)
	db := d.sqldb
	_, err = db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)`)
	require.NoError(t, err)
	for i := range n {
		_, err = db.ExecContext(ctx, `INSERT INTO t (id, v) VALUES ($1, $2)`, i, fmt.Sprint("v", i))
		require.NoError(t, err)
	}
	var cc *stmtCacheConn
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	require.NoError(t, conn.Raw(func(dc any) error {
		cc = dc.(*stmtCacheConn)
		return nil
	}))
	require.NoError(t, conn.Close())
	return db, cc
}

// kept reports whether the connection keeps query prepared, and the
// statement it keeps.
func (c *stmtCacheConn) kept(query string) (*cachedStmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.stmts[query]
	if !ok {
		return nil, false
	}
	return e.Value.(*cachedStmt), true
}

// TestSQLiteKeepsStatements: a statement run again, in a transaction or
// not, runs the statement the connection prepared the first time; a
// script is not kept; at most sqliteStmtCacheSize statements are.
func TestSQLiteKeepsStatements(t *testing.T) {
	db, cc := openSQLiteDB(t, 3)
	ctx := context.Background()
	const q = `SELECT v FROM t WHERE id = $1`
	var v string
	require.NoError(t, db.QueryRowContext(ctx, q, 1).Scan(&v))
	require.Equal(t, "v1", v)
	first, ok := cc.kept(q)
	require.True(t, ok)
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, tx.QueryRowContext(ctx, q, 2).Scan(&v))
	require.Equal(t, "v2", v)
	require.NoError(t, tx.Commit())
	again, ok := cc.kept(q)
	require.True(t, ok)
	require.Same(t, first, again, "the second run prepared the statement anew")
	require.False(t, again.busy, "closed rows leave the statement free")

	const script = `UPDATE t SET v = 'a' WHERE id = 0; UPDATE t SET v = 'b' WHERE id = 1`
	_, err = db.ExecContext(ctx, script)
	require.NoError(t, err)
	_, ok = cc.kept(script)
	require.False(t, ok, "a script is not kept")
	require.NoError(t, db.QueryRowContext(ctx, q, 1).Scan(&v))
	require.Equal(t, "b", v, "both statements of the script ran")

	for i := range 2 * sqliteStmtCacheSize {
		require.NoError(t, db.QueryRowContext(ctx, fmt.Sprintf(`SELECT v FROM t WHERE id = $1 AND %d = %d`, i, i), 2).Scan(&v))
		require.Equal(t, "v2", v)
	}
	cc.mu.Lock()
	kept, indexed := cc.lru.Len(), len(cc.stmts)
	cc.mu.Unlock()
	require.Equal(t, sqliteStmtCacheSize, kept)
	require.Equal(t, sqliteStmtCacheSize, indexed)
	_, ok = cc.kept(q)
	require.False(t, ok, "the least recently used statement is dropped")
}

// TestSQLiteKeptStatementReentered: a statement run again while rows of its
// first run are still open (a query in another's loop) runs on its own,
// and both give their rows; a statement whose rows are open is not dropped
// to make room, however many others run meanwhile.
func TestSQLiteKeptStatementReentered(t *testing.T) {
	db, cc := openSQLiteDB(t, 5)
	ctx := context.Background()
	const q = `SELECT id, v FROM t WHERE id >= $1 ORDER BY id`
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	outer, err := tx.QueryContext(ctx, q, 0)
	require.NoError(t, err)
	var got []string
	for outer.Next() {
		var id int
		var v string
		require.NoError(t, outer.Scan(&id, &v))
		var inner []string
		rows, err := tx.QueryContext(ctx, q, id)
		require.NoError(t, err)
		for rows.Next() {
			var iid int
			var iv string
			require.NoError(t, rows.Scan(&iid, &iv))
			inner = append(inner, iv)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Len(t, inner, 5-id)
		got = append(got, v)
		if id == 1 {
			for i := range sqliteStmtCacheSize + 1 {
				var n int
				require.NoError(t, tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM t WHERE %d = %d`, i, i)).Scan(&n))
				require.Equal(t, 5, n)
			}
			s, ok := cc.kept(q)
			require.True(t, ok, "a statement with open rows was dropped")
			require.True(t, s.busy)
		}
	}
	require.NoError(t, outer.Err())
	require.NoError(t, outer.Close())
	require.Equal(t, []string{"v0", "v1", "v2", "v3", "v4"}, got)
	s, ok := cc.kept(q)
	require.True(t, ok)
	require.False(t, s.busy, "closed rows leave the statement free")
}

// TestSQLiteKeptStatementAfterError: a kept statement that failed (a
// unique key) runs again with other arguments.
func TestSQLiteKeptStatementAfterError(t *testing.T) {
	db, _ := openSQLiteDB(t, 1)
	ctx := context.Background()
	const ins = `INSERT INTO t (id, v) VALUES ($1, $2)`
	_, err := db.ExecContext(ctx, ins, 1, "v0")
	require.Error(t, err, "v is unique")
	_, err = db.ExecContext(ctx, ins, 1, "v1")
	require.NoError(t, err)
	const sel = `SELECT v FROM t WHERE id = CAST($1 AS INTEGER) + 0`
	var v string
	require.ErrorIs(t, db.QueryRowContext(ctx, sel, 7).Scan(&v), sql.ErrNoRows)
	require.NoError(t, db.QueryRowContext(ctx, sel, 1).Scan(&v))
	require.Equal(t, "v1", v)
}
