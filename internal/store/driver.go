package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"modernc.org/sqlite"
	"riverqueue.com/riverui/uiendpoints"
)

// shardsChannel is the Postgres notification channel that wakes agents.
const shardsChannel = "kiln_shards"

// resultsChannel is the Postgres notification channel that wakes readers
// tailing batches' results: a chunk committed, or a batch ended.
const resultsChannel = "kiln_results"

// deliveriesChannel is the Postgres notification channel that wakes webhook
// senders: deliveries were made or made pending again.
const deliveriesChannel = "kiln_deliveries"

// querier is the part of a connection or transaction the store's SQL needs.
// Both drivers accept the same SQL, with $N placeholders.
type querier interface {
	exec(ctx context.Context, sql string, args ...any) (int64, error)
	query(ctx context.Context, sql string, args ...any) (rows, error)
	queryRow(ctx context.Context, sql string, args ...any) row
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type row interface{ Scan(dest ...any) error }

// enqueue inserts a River job inside the current transaction.
type enqueue func(ctx context.Context, job Job) error

// Job is a follow-up job that commits with a state change.
type Job struct {
	Args river.JobArgs
	Opts *river.InsertOpts
}

// driver is the seam between the store's SQL and one database: PostgreSQL
// through pgx v5 and River's riverpgxv5, or SQLite through modernc.org/sqlite
// and River's riversqlite.
type driver interface {
	name() string
	db() querier
	tx(ctx context.Context, fn func(q querier, enq enqueue) error) error
	// migrate applies River's migrations, then runs own in a transaction,
	// holding a lock across processes: kiln serve and kiln agent may start
	// together on one database.
	migrate(ctx context.Context, own func(q querier) error) error
	newWorkerClient(cfg *river.Config) (workerClient, error)
	// forUpdate is the clause that locks selected rows in a transaction.
	forUpdate() string
	// skipLocked is the clause that locks the selected rows of table alias
	// and skips rows other transactions hold.
	skipLocked(alias string) string
	// keyed runs each statement given to it in a transaction of its own,
	// planned as index lookups joined by nested loops whatever the
	// statistics say: for the small keyed statements of a queue (webhook
	// deliveries) whose table changes faster than its statistics follow,
	// where a plan made for "few rows" scans and sorts the whole backlog
	// instead. Such a plan does not depend on the parameters, so each
	// connection plans each statement once: planning the claim's joins
	// anew each time cost more than running it.
	keyed() querier
	// notifyShards tells listening agents that shards wait, at commit.
	notifyShards(ctx context.Context, q querier) error
	// notifyDeliveries tells listening webhook senders that deliveries
	// are due, at commit.
	notifyDeliveries(ctx context.Context, q querier) error
	// notifyResults tells readers tailing results that a chunk committed
	// or a batch ended, at commit.
	notifyResults(ctx context.Context, q querier) error
	// lastAttemptedBy is the SQL expression of the River client that last
	// took a river_job row.
	lastAttemptedBy() string
	// riverUIEndpoints are River UI's endpoints on the driver's queue.
	riverUIEndpoints() uiendpoints.Bundle
	// stats are the driver's connections now (metrics.go).
	stats() poolStats
	close()
}

type workerClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

func openDriver(ctx context.Context, rawURL string, mw []rivertype.Middleware) (driver, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL, mw)
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(ctx, rawURL, mw)
	default:
		return nil, fmt.Errorf("store: unsupported database URL %q: want postgres://... or sqlite:///path", redact(rawURL))
	}
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// --- PostgreSQL ---

type pgDriver struct {
	pool     *pgxpool.Pool
	inserter *river.Client[pgx.Tx]
	// connectErrors counts failed attempts to reach the server.
	connectErrors *atomic.Int64
}

func openPostgres(ctx context.Context, rawURL string, mw []rivertype.Middleware) (*pgDriver, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres %s: %w", redact(rawURL), err)
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		// pgx's default (4 on a small machine) is too few: River's notifier
		// and the agents' shard listener each hold one for good.
		cfg.MaxConns = 16
	}
	connectErrors := new(atomic.Int64)
	cfg.ConnConfig.DialFunc = countingDial(cfg.ConnConfig.DialFunc, connectErrors)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres %s: %w", redact(rawURL), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to postgres %s: %w", redact(rawURL), err)
	}
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Middleware: mw, FetchCooldown: fetchCooldown})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: river client: %w", err)
	}
	return &pgDriver{pool: pool, inserter: inserter, connectErrors: connectErrors}, nil
}

func (d *pgDriver) name() string      { return "postgres" }
func (d *pgDriver) db() querier       { return pgQuerier{d.pool} }
func (d *pgDriver) close()            { d.pool.Close() }
func (d *pgDriver) forUpdate() string { return " FOR UPDATE" }
func (d *pgDriver) skipLocked(alias string) string {
	return " FOR UPDATE OF " + alias + " SKIP LOCKED"
}
func (d *pgDriver) keyed() querier { return pgKeyed{d.pool} }

// keyedSettings are keyed's settings, for the transaction only: one
// statement, as each statement of a pipeline is one.
const keyedSettings = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
	set_config('plan_cache_mode', 'force_generic_plan', true)`

// pgKeyed is the pgDriver's keyed: the settings and the statement go in
// one pipeline, whose statements Postgres runs as one transaction, in one
// round trip. A transaction of BEGIN, settings, statement and COMMIT took
// four, each of which waits for its turn on a busy process's scheduler.
type pgKeyed struct{ pool *pgxpool.Pool }

func (k pgKeyed) query(ctx context.Context, sql string, args ...any) (rows, error) {
	rs, err := k.send(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// send sends the settings and the statement, and returns the statement's
// rows.
func (k pgKeyed) send(ctx context.Context, sql string, args ...any) (*batchRows, error) {
	b := &pgx.Batch{}
	b.Queue(keyedSettings)
	b.Queue(sql, args...)
	br := k.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close() // the same error, once the pipeline ends
		return nil, err
	}
	r, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: r, br: br}, nil
}

func (k pgKeyed) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	rs, err := k.send(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	for rs.Next() {
	}
	return rs.CommandTag().RowsAffected(), rs.Err()
}

func (k pgKeyed) queryRow(ctx context.Context, sql string, args ...any) row {
	rs, err := k.query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return noRows{firstRow{rs}}
}

// batchRows are the rows of a pipeline's last statement. Err includes the
// pipeline's end, where its transaction commits; Close ends it.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) end() error {
	if !r.closed {
		r.closed = true
		r.Rows.Close()
		r.err = r.Rows.Err()
		if err := r.br.Close(); r.err == nil {
			r.err = err
		}
	}
	return r.err
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.end()
}

// Close ends the pipeline, and frees its connection.
func (r *batchRows) Close() { _ = r.end() }

// firstRow scans the first of rows and closes them, as QueryRow does.
type firstRow struct{ rs rows }

func (f firstRow) Scan(dest ...any) error {
	defer f.rs.Close()
	if !f.rs.Next() {
		if err := f.rs.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := f.rs.Scan(dest...); err != nil {
		return err
	}
	return f.rs.Err()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (d *pgDriver) notifyShards(ctx context.Context, q querier) error {
	_, err := q.exec(ctx, `SELECT pg_notify('`+shardsChannel+`', '')`)
	return err
}
func (d *pgDriver) notifyDeliveries(ctx context.Context, q querier) error {
	_, err := q.exec(ctx, `SELECT pg_notify('`+deliveriesChannel+`', '')`)
	return err
}
func (d *pgDriver) notifyResults(ctx context.Context, q querier) error {
	_, err := q.exec(ctx, `SELECT pg_notify('`+resultsChannel+`', '')`)
	return err
}
func (d *pgDriver) tx(ctx context.Context, fn func(querier, enqueue) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		return fn(pgQuerier{tx}, func(ctx context.Context, j Job) error {
			_, err := d.inserter.InsertTx(ctx, tx, j.Args, j.Opts)
			return err
		})
	})
}

func (d *pgDriver) migrate(ctx context.Context, own func(querier) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	const lockKey = 0x6b696c6e // "kiln"
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey) }()
	m, err := rivermigrate.New(riverpgxv5.New(d.pool), nil)
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river: %w", err)
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return own(pgQuerier{tx}) })
}

func (d *pgDriver) lastAttemptedBy() string { return `attempted_by[array_upper(attempted_by, 1)]` }

func (d *pgDriver) newWorkerClient(cfg *river.Config) (workerClient, error) {
	return river.NewClient(riverpgxv5.New(d.pool), cfg)
}

type pgConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgQuerier struct{ c pgConn }

func (q pgQuerier) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (q pgQuerier) query(ctx context.Context, sql string, args ...any) (rows, error) {
	r, err := q.c.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (q pgQuerier) queryRow(ctx context.Context, sql string, args ...any) row {
	return noRows{q.c.QueryRow(ctx, sql, args...)}
}

// --- SQLite ---

type sqliteDriver struct {
	path     string
	sqldb    *sql.DB
	inserter *river.Client[*sql.Tx]
	// jobs fires after a commit that enqueued jobs (sqliteRiverDriver).
	jobs *broadcast
}

// sqliteDSN turns sqlite:///abs/path or sqlite://./rel/path into a
// modernc.org/sqlite DSN with WAL and a busy timeout, without which River and
// kiln's writers fail with SQLITE_BUSY.
func sqliteDSN(rawURL string) (path, dsn string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", fmt.Errorf("store: parse %q: %w", rawURL, err)
	}
	path = u.Host + u.Path
	if path == "" || strings.Contains(path, ":memory:") {
		return "", "", fmt.Errorf("store: sqlite URL %q needs a file path (sqlite:///abs/path or sqlite://./rel/path)", rawURL)
	}
	return path, "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(on)&_pragma=synchronous(normal)&_txlock=immediate", nil
}

func openSQLite(ctx context.Context, rawURL string, mw []rivertype.Middleware) (*sqliteDriver, error) {
	path, dsn, err := sqliteDSN(rawURL)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: create folder for %s: %w", path, err)
	}
	connector, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	db := sql.OpenDB(stmtCacheConnector{inner: connector, size: sqliteStmtCacheSize})
	// One connection: SQLite has one writer, and River's SQLite driver
	// expects it.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	if err := pingSQLite(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	inserter, err := river.NewClient(riversqlite.New(db), &river.Config{Middleware: mw, FetchCooldown: fetchCooldown})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: river client: %w", err)
	}
	return &sqliteDriver{path: path, sqldb: db, inserter: inserter, jobs: &broadcast{}}, nil
}

// sqliteOpenWait bounds how long opening a database waits for another
// process that holds it locked while it opens it too.
const sqliteOpenWait = 10 * time.Second

// pingSQLite opens the connection, which sets its pragmas. Two processes
// opening a new database at once (kiln serve and kiln agent) may find it
// locked while the other turns on WAL, and SQLite answers that at once,
// without its busy timeout: so the open is tried again, a little later
// each time, for up to sqliteOpenWait.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteOpenWait)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		err := db.PingContext(ctx)
		if err == nil || !isSQLiteBusy(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (d *sqliteDriver) name() string { return "sqlite" }
func (d *sqliteDriver) db() querier  { return sqlQuerier{d.sqldb} }

// keyed is db: SQLite plans by its indexes without statistics.
func (d *sqliteDriver) keyed() querier    { return d.db() }
func (d *sqliteDriver) close()            { _ = d.sqldb.Close() }
func (d *sqliteDriver) forUpdate() string { return "" }

// SQLite's transactions begin IMMEDIATE: the writer holds the database.
func (d *sqliteDriver) skipLocked(string) string                        { return "" }
func (d *sqliteDriver) notifyShards(context.Context, querier) error     { return nil }
func (d *sqliteDriver) notifyDeliveries(context.Context, querier) error { return nil }
func (d *sqliteDriver) notifyResults(context.Context, querier) error    { return nil }

func (d *sqliteDriver) tx(ctx context.Context, fn func(querier, enqueue) error) error {
	tx, err := d.sqldb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	enqueued := false
	err = fn(sqlQuerier{tx}, func(ctx context.Context, j Job) error {
		enqueued = true
		_, err := d.inserter.InsertTx(ctx, tx, j.Args, j.Opts)
		return err
	})
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if enqueued {
		d.jobs.fire()
	}
	return nil
}

func (d *sqliteDriver) lastAttemptedBy() string { return `json_extract(attempted_by, '$[#-1]')` }

func (d *sqliteDriver) migrate(ctx context.Context, own func(querier) error) error {
	// A lock file beside the database serialises migrators across
	// processes; SQLite's own locks cover one statement or transaction.
	lock, err := os.OpenFile(d.path+".migrate-lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	m, err := rivermigrate.New(riversqlite.New(d.sqldb), nil)
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river: %w", err)
	}
	return d.tx(ctx, func(q querier, _ enqueue) error { return own(q) })
}

func (d *sqliteDriver) newWorkerClient(cfg *river.Config) (workerClient, error) {
	return newSQLiteWorkerClient(d.sqldb, d.jobs, cfg)
}

type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqlQuerier struct{ c sqlConn }

func (q sqlQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.c.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := q.c.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (q sqlQuerier) queryRow(ctx context.Context, query string, args ...any) row {
	return noRows{q.c.QueryRowContext(ctx, query, args...)}
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// noRows maps both drivers' "no rows" errors to ErrNotFound.
type noRows struct{ r row }

func (n noRows) Scan(dest ...any) error {
	err := n.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
