package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The most bound parameters one statement may have: Postgres's protocol
// counts them in 16 bits, and SQLite's SQLITE_MAX_VARIABLE_NUMBER is 32766
// (since SQLite 3.32).
const (
	maxParamsPostgres = 65535
	maxParamsSQLite   = 32766
)

func maxParams(dialect string) int {
	if dialect == "sqlite" {
		return maxParamsSQLite
	}
	return maxParamsPostgres
}

// placeholders lists n parameters for a statement of dialect, the first
// numbered first: "$3, $4, $5" on Postgres. On SQLite they are anonymous
// ("?, ?, ?"), numbered in order of appearance, so a statement that uses
// them must number all its parameters so. SQLite finds each numbered or
// named parameter ($1, ?1) by a linear search of the statement's
// parameters, when it parses the statement and again when the driver asks
// each parameter's name to bind it, so that a statement's cost grows with
// the square of their number: a 100-row insert of 13 columns took 9 ms with
// $N and 0.6 ms with ?.
func placeholders(dialect string, first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		if dialect == "sqlite" {
			b.WriteByte('?')
			continue
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(first + i))
	}
	return b.String()
}

// bulkInsert is a multi-row INSERT: its table, its columns and what follows
// its VALUES list (an ON CONFLICT clause, or "").
type bulkInsert struct {
	table   string
	columns []string
	suffix  string
}

// exec inserts rows whose values follow one another in values, len(columns)
// a row, in statements of at most rowsPerStmt rows, and fewer where the
// dialect's limit on parameters demands. It returns the rows the statements
// affected, summed; no values run no statement.
func (b bulkInsert) exec(ctx context.Context, q querier, dialect string, rowsPerStmt int, values []any) (int64, error) {
	cols := len(b.columns)
	if cols == 0 || len(values)%cols != 0 {
		return 0, fmt.Errorf("store: insert into %s: %d values for %d columns", b.table, len(values), cols)
	}
	per := max(1, min(rowsPerStmt, maxParams(dialect)/cols)) * cols
	var total int64
	for start := 0; start < len(values); start += per {
		chunk := values[start:min(start+per, len(values))]
		n, err := q.exec(ctx, b.sql(dialect, len(chunk)/cols), chunk...)
		if err != nil {
			return total, fmt.Errorf("insert into %s: %w", b.table, err)
		}
		total += n
	}
	return total, nil
}

// sql is the statement that inserts rows rows.
func (b bulkInsert) sql(dialect string, rows int) string {
	cols := len(b.columns)
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(b.table)
	sb.WriteString(" (")
	sb.WriteString(strings.Join(b.columns, ", "))
	sb.WriteString(") VALUES ")
	for r := range rows {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		sb.WriteString(placeholders(dialect, r*cols+1, cols))
		sb.WriteByte(')')
	}
	if b.suffix != "" {
		sb.WriteByte(' ')
		sb.WriteString(b.suffix)
	}
	return sb.String()
}

// copier is the part of a Postgres connection or transaction that COPY
// needs.
type copier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// copyFrom streams n rows into table through Postgres's COPY, in q's
// transaction: next returns each row's values in the order of columns (it
// may reuse its slice). It is for Postgres only.
func copyFrom(ctx context.Context, q querier, table string, columns []string, n int, next func() ([]any, error)) (int64, error) {
	pq, ok := q.(pgQuerier)
	if !ok {
		return 0, fmt.Errorf("store: copy into %s: not a Postgres connection", table)
	}
	c, ok := pq.c.(copier)
	if !ok {
		return 0, fmt.Errorf("store: copy into %s: the connection cannot copy", table)
	}
	left := n
	return c.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromFunc(func() ([]any, error) {
		if left == 0 {
			return nil, nil
		}
		left--
		return next()
	}))
}
