package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/testenv"
)

// TestKeyedStatementIsItsOwnTransaction: on Postgres, keyed sends its
// settings and the statement as one pipeline. The settings hold for the
// statement and end with it, on a pool of one connection, so the next
// statement runs on the same one; a failure at the commit, which a
// pipeline reports after the statement's rows, is the statement's error,
// and nothing it wrote stays.
func TestKeyedStatementIsItsOwnTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := openPostgres(ctx, testenv.PostgresURL(t)+"&pool_max_conns=1", nil)
	require.NoError(t, err)
	t.Cleanup(d.close)

	var mode string
	require.NoError(t, d.keyed().queryRow(ctx, `SELECT current_setting('plan_cache_mode')`).Scan(&mode))
	require.Equal(t, "force_generic_plan", mode, "the statement planned with keyed's settings")
	require.NoError(t, d.db().queryRow(ctx, `SELECT current_setting('plan_cache_mode')`).Scan(&mode))
	require.Equal(t, "auto", mode, "the settings ended with the statement")

	_, err = d.db().exec(ctx, `CREATE TABLE keyed_t (id BIGINT PRIMARY KEY,
		ref BIGINT REFERENCES keyed_t (id) DEFERRABLE INITIALLY DEFERRED)`)
	require.NoError(t, err)
	n, err := d.keyed().exec(ctx, `INSERT INTO keyed_t (id, ref) VALUES ($1, $1)`, 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// A row whose reference is checked at the commit, and fails there.
	ids, err := collect(ctx, d.keyed(), func(r row) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `INSERT INTO keyed_t (id, ref) VALUES ($1, $2) RETURNING id`, 2, 99)
	require.ErrorContains(t, err, "keyed_t_ref_fkey", "the commit's failure is the statement's: %v", ids)
	_, err = d.keyed().exec(ctx, `INSERT INTO keyed_t (id, ref) VALUES ($1, $2)`, 3, 99)
	require.ErrorContains(t, err, "keyed_t_ref_fkey")
	var count int
	require.NoError(t, d.db().queryRow(ctx, `SELECT COUNT(*) FROM keyed_t`).Scan(&count))
	require.Equal(t, 1, count, "nothing of the failed statements stayed")

	// A statement that fails at once.
	require.Error(t, d.keyed().queryRow(ctx, `SELECT 1 / $1::int`, 0).Scan(&count))
	require.NoError(t, d.db().queryRow(ctx, `SELECT 2`).Scan(&count), "the connection is usable after")
}
