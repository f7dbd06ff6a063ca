package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlaceholders(t *testing.T) {
	t.Parallel()
	require.Equal(t, "$3, $4, $5", placeholders("postgres", 3, 3))
	require.Equal(t, "?, ?, ?", placeholders("sqlite", 3, 3))
	require.Equal(t, "$1", placeholders("postgres", 1, 1))
	require.Empty(t, placeholders("postgres", 1, 0))
}

func TestBulkInsertSQL(t *testing.T) {
	t.Parallel()
	b := bulkInsert{table: "t", columns: []string{"a", "b", "c"}, suffix: "ON CONFLICT (a) DO NOTHING"}
	require.Equal(t, "INSERT INTO t (a, b, c) VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT (a) DO NOTHING", b.sql("postgres", 2))
	require.Equal(t, "INSERT INTO t (a, b, c) VALUES (?, ?, ?), (?, ?, ?) ON CONFLICT (a) DO NOTHING", b.sql("sqlite", 2))
	b.suffix = ""
	require.Equal(t, "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)", b.sql("postgres", 1))
}

// recorder is a querier that records the statements it is given.
type recorder struct {
	stmts []string
	args  [][]any
	fail  error // returned by the second exec, when set
}

func (r *recorder) exec(_ context.Context, sql string, args ...any) (int64, error) {
	r.stmts = append(r.stmts, sql)
	r.args = append(r.args, args)
	if r.fail != nil && len(r.stmts) == 2 {
		return 0, r.fail
	}
	return int64(strings.Count(sql, "(") - 1), nil // its rows
}

func (r *recorder) query(context.Context, string, ...any) (rows, error) { panic("not used") }
func (r *recorder) queryRow(context.Context, string, ...any) row        { panic("not used") }

func TestBulkInsertStatements(t *testing.T) {
	t.Parallel()
	b := bulkInsert{table: "t", columns: []string{"a", "b"}}
	values := func(rows int) []any {
		var out []any
		for i := range rows {
			out = append(out, i, "v")
		}
		return out
	}

	t.Run("RowsPerStatement", func(t *testing.T) {
		t.Parallel()
		for _, dialect := range []string{"postgres", "sqlite"} {
			var r recorder
			n, err := b.exec(context.Background(), &r, dialect, 3, values(7))
			require.NoError(t, err)
			require.EqualValues(t, 7, n, "the rows of every statement")
			require.Equal(t, []string{b.sql(dialect, 3), b.sql(dialect, 3), b.sql(dialect, 1)}, r.stmts)
			require.Equal(t, [][]any{{0, "v", 1, "v", 2, "v"}, {3, "v", 4, "v", 5, "v"}, {6, "v"}}, r.args, "the values in order")
		}
	})

	t.Run("ParameterLimit", func(t *testing.T) {
		t.Parallel()
		for dialect, limit := range map[string]int{"postgres": maxParamsPostgres, "sqlite": maxParamsSQLite} {
			var r recorder
			rows := limit + 1 // twice the parameters one statement may have, and more
			n, err := b.exec(context.Background(), &r, dialect, rows, values(rows))
			require.NoError(t, err)
			require.EqualValues(t, rows, n)
			require.Len(t, r.stmts, 3, dialect)
			for _, args := range r.args {
				require.LessOrEqual(t, len(args), limit, dialect)
			}
			require.Len(t, r.args[0], limit/2*2, "as many whole rows as the limit allows")
		}
	})

	t.Run("NoValues", func(t *testing.T) {
		t.Parallel()
		var r recorder
		n, err := b.exec(context.Background(), &r, "postgres", 100, nil)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Empty(t, r.stmts, "no statement runs")
	})

	t.Run("PartialRow", func(t *testing.T) {
		t.Parallel()
		var r recorder
		_, err := b.exec(context.Background(), &r, "postgres", 100, []any{1, "v", 2})
		require.ErrorContains(t, err, "3 values for 2 columns")
		require.Empty(t, r.stmts)
	})

	t.Run("StopsAtAnError", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		r := recorder{fail: boom}
		n, err := b.exec(context.Background(), &r, "postgres", 1, values(3))
		require.ErrorIs(t, err, boom)
		require.EqualValues(t, 1, n, "the rows inserted before")
		require.Len(t, r.stmts, 2)
	})
}

// TestBulkInsertOnBothBackends runs the helper's statements on each
// database, past either's limit on a statement's parameters.
func TestBulkInsertOnBothBackends(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			s := openTestStore(t, backend)
			require.Equal(t, backend, s.Dialect())
			ctx, q := context.Background(), s.d.db()
			_, err := q.exec(ctx, `CREATE TABLE bulk_test (a BIGINT PRIMARY KEY, b TEXT, c BIGINT)`)
			require.NoError(t, err)
			b := bulkInsert{table: "bulk_test", columns: []string{"a", "b", "c"}, suffix: "ON CONFLICT (a) DO NOTHING"}

			// 75,000 parameters: more than either database takes at once.
			const rows = 25_000
			var values []any
			for i := range rows {
				var c *int64
				if i%2 == 0 {
					c = new(int64(i))
				}
				values = append(values, int64(i), "row", c)
			}
			n, err := b.exec(ctx, q, s.Dialect(), rows, values)
			require.NoError(t, err)
			require.EqualValues(t, rows, n)
			var count, nulls, sum int64
			require.NoError(t, q.queryRow(ctx, `SELECT COUNT(*), COUNT(*) - COUNT(c), SUM(a) FROM bulk_test WHERE b = 'row'`).Scan(&count, &nulls, &sum))
			require.EqualValues(t, rows, count)
			require.EqualValues(t, rows/2, nulls)
			require.EqualValues(t, rows*(rows-1)/2, sum, "every row's own values")
			var c int64
			require.NoError(t, q.queryRow(ctx, `SELECT c FROM bulk_test WHERE a = 24998`).Scan(&c))
			require.EqualValues(t, 24998, c)

			// Rows that conflict are skipped, as the suffix says, and not
			// counted.
			n, err = b.exec(ctx, q, s.Dialect(), 100, []any{int64(0), "again", nil, int64(rows), "new", nil})
			require.NoError(t, err)
			require.EqualValues(t, 1, n)
		})
	}
}
