// Package store keeps kiln's state (API keys, files, batches, result chunks,
// agents) in PostgreSQL or SQLite, and the River queue beside it, so that a
// state change and the job that follows it commit in one transaction.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/kilnhq/kiln/internal/ids"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is a state change that the current state does not allow.
	ErrConflict = errors.New("store: conflict")
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is kiln's state on one database.
type Store struct {
	d   driver
	log *slog.Logger

	mu       sync.Mutex
	workers  workerClient
	stopBeat func()
	clientID string

	jobMiddleware []rivertype.Middleware

	signal      shardSignal
	dispatch    dispatcherSlot
	keyWatchers watcherSet
	// tasksAnalyzed: curation_tasks has statistics (analyzeTasksOnce).
	tasksAnalyzed atomic.Bool
	// closed ends when the store closes.
	closed context.Context
	close  context.CancelFunc
}

// Open connects to a postgres:// or sqlite:// URL and migrates the database
// (River's tables and kiln's) to the newest version.
func Open(ctx context.Context, databaseURL string, log *slog.Logger) (*Store, error) {
	return OpenWith(ctx, databaseURL, log, nil)
}

// OpenOpts are options of OpenWith; nil means defaults.
type OpenOpts struct {
	// JobMiddleware wraps every job's insertion and work, in this store's
	// inserts and its workers alike (tracing: see internal/tracing). Default:
	// none.
	JobMiddleware []rivertype.Middleware
	// NoMigrate opens the database as it is, applying no migration: for
	// checks that must change nothing (kiln doctor; see
	// PendingMigrations). Default: migrate.
	NoMigrate bool
	// migrateTo stops the migrations after this version (0: all), as an
	// older kiln left the database; for tests of the migrations.
	migrateTo int
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, databaseURL string, log *slog.Logger, opts *OpenOpts) (*Store, error) {
	if opts == nil {
		opts = &OpenOpts{}
	}
	d, err := openDriver(ctx, databaseURL, opts.JobMiddleware)
	if err != nil {
		return nil, err
	}
	s := &Store{d: d, log: log, jobMiddleware: opts.JobMiddleware}
	s.closed, s.close = context.WithCancel(context.Background())
	if opts.NoMigrate {
		// A query that proves the server answers, as a migration would.
		if _, err := d.db().exec(ctx, `SELECT 1`); err != nil {
			d.close()
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	}
	if err := s.migrate(ctx, opts.migrateTo); err != nil {
		d.close()
		return nil, err
	}
	return s, nil
}

// Dialect names the database: "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.d.name() }

// Close stops the workers, if any, and closes the database.
func (s *Store) Close() {
	s.close()
	s.d.close()
}

// PendingMigrations are the versions of kiln's migrations that the
// database has not applied, in order: none once kiln serve has started on
// it with this kiln's schema.
func (s *Store) PendingMigrations(ctx context.Context) ([]int, error) {
	versions, err := migrationVersions()
	if err != nil {
		return nil, err
	}
	exists := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'kiln_migrations'`
	if s.d.name() == "postgres" {
		exists = `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'kiln_migrations'`
	}
	var n int
	if err := s.d.db().queryRow(ctx, exists).Scan(&n); err != nil {
		return nil, fmt.Errorf("store: pending migrations: %w", err)
	}
	if n == 0 {
		return versions, nil // a database kiln never migrated
	}
	applied := map[int]bool{}
	rows, err := s.d.db().query(ctx, `SELECT version FROM kiln_migrations`)
	if err != nil {
		return nil, fmt.Errorf("store: pending migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var pending []int
	for _, v := range versions {
		if !applied[v] {
			pending = append(pending, v)
		}
	}
	return pending, nil
}

// migrationVersions are the versions of kiln's migrations, in order.
func migrationVersions() ([]int, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range files {
		v, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(f, "migrations/"), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("store: migration %s: name must start with a number", f)
		}
		out = append(out, v)
	}
	sort.Ints(out)
	return out, nil
}

// migrate applies the migrations not yet applied, up to version upTo (0:
// all).
func (s *Store) migrate(ctx context.Context, upTo int) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	err = s.d.migrate(ctx, func(q querier) error {
		if _, err := q.exec(ctx, `CREATE TABLE IF NOT EXISTS kiln_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("store: migrations table: %w", err)
		}
		for _, f := range files {
			base := strings.TrimPrefix(f, "migrations/")
			version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
			if err != nil {
				return fmt.Errorf("store: migration %s: name must start with a number", base)
			}
			var n int
			if err := q.queryRow(ctx, `SELECT COUNT(*) FROM kiln_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 || (upTo > 0 && version > upTo) {
				continue
			}
			body, err := migrations.ReadFile(f)
			if err != nil {
				return err
			}
			for _, stmt := range splitSQL(string(body), s.d.name()) {
				if _, err := q.exec(ctx, stmt); err != nil {
					return fmt.Errorf("store: migration %s: %w", base, err)
				}
			}
			if _, err := q.exec(ctx, `INSERT INTO kiln_migrations (version, applied_at) VALUES ($1, $2)`, version, time.Now().Unix()); err != nil {
				return err
			}
			s.log.Debug("applied migration", "version", version, "dialect", s.d.name())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// splitSQL splits a migration into statements on semicolons at line ends and
// drops comment lines. Migrations keep to that shape. A comment line
// "-- dialect: postgres" or "-- dialect: sqlite" makes the statements that
// follow it that dialect's only, until "-- dialect: all".
func splitSQL(body, dialect string) []string {
	var out []string
	var cur strings.Builder
	only := ""
	for _, line := range strings.Split(body, "\n") {
		t := strings.TrimSpace(line)
		if d, ok := strings.CutPrefix(t, "-- dialect:"); ok {
			only = strings.TrimSpace(d)
			if only == "all" {
				only = ""
			}
			continue
		}
		if strings.HasPrefix(t, "--") || t == "" {
			continue
		}
		if only != "" && only != dialect {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// WorkerOpts configures the job workers of one process.
type WorkerOpts struct {
	// Workers are the job kinds this process works.
	Workers *river.Workers
	// Queues maps queue names to their maximum concurrent jobs.
	Queues map[string]int
	// PollInterval is how often to poll for jobs where the database cannot
	// notify (SQLite).
	PollInterval time.Duration
	// ID names this process among River's clients. Default: a new ID.
	ID string
	// Periodic are jobs to enqueue on a schedule.
	Periodic []*river.PeriodicJob
	// RescueAfter is how long a process may miss heartbeats before the
	// jobs it was running are handed to another (or, after a restart, to
	// itself). Zero leaves stuck jobs to River's own rescuer (an hour).
	RescueAfter time.Duration
}

// fetchCooldown is the shortest time between two fetches of one queue's
// jobs, and between two insert notifications of one queue: short, so that
// a job enqueued right after another (an invocation's delivery) starts
// within milliseconds, and long enough to gather the jobs of a burst into
// one fetch.
const fetchCooldown = 5 * time.Millisecond

// StartWorkers starts River's workers on the store's database.
func (s *Store) StartWorkers(ctx context.Context, opts WorkerOpts) error {
	queues := make(map[string]river.QueueConfig, len(opts.Queues))
	for name, n := range opts.Queues {
		queues[name] = river.QueueConfig{MaxWorkers: n}
	}
	poll := opts.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	if opts.ID == "" {
		opts.ID = ids.New("jobs_")
	}
	c, err := s.d.newWorkerClient(&river.Config{
		ID:                opts.ID,
		Queues:            queues,
		Workers:           opts.Workers,
		FetchPollInterval: poll,
		FetchCooldown:     min(poll, fetchCooldown),
		JobTimeout:        time.Hour,
		PeriodicJobs:      opts.Periodic,
		Middleware:        s.jobMiddleware,
		Logger:            s.log.With("component", "river"),
	})
	if err != nil {
		return fmt.Errorf("store: river client: %w", err)
	}
	if opts.RescueAfter > 0 {
		// Beat once before the first job can start, so that a crash right
		// after it is found.
		if err := s.jobClientBeat(ctx, opts.ID, opts.RescueAfter); err != nil {
			return err
		}
	}
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("store: start workers: %w", err)
	}
	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	beatDone := make(chan struct{})
	if opts.RescueAfter > 0 {
		go s.jobClientLoop(beatCtx, opts.ID, opts.RescueAfter, beatDone)
	} else {
		close(beatDone)
	}
	s.mu.Lock()
	s.workers = c
	s.stopBeat = func() {
		stopBeat()
		<-beatDone
	}
	s.clientID = opts.ID
	s.mu.Unlock()
	return nil
}

// StopWorkers stops fetching jobs and waits for running ones until ctx ends.
func (s *Store) StopWorkers(ctx context.Context) error {
	s.mu.Lock()
	c, stopBeat, id := s.workers, s.stopBeat, s.clientID
	s.workers, s.stopBeat = nil, nil
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	err := c.Stop(ctx)
	stopBeat()
	if err == nil {
		// Nothing of ours runs any more: forget this process.
		_, _ = s.d.db().exec(ctx, `DELETE FROM job_clients WHERE id = $1`, id)
	}
	return err
}

// Enqueue inserts jobs outside any state change.
func (s *Store) Enqueue(ctx context.Context, jobs ...Job) error {
	return s.d.tx(ctx, func(_ querier, enq enqueue) error {
		for _, j := range jobs {
			if err := enq(ctx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

func now() int64 { return time.Now().Unix() }

// ExecForTest runs one statement on the store's database, for tests and
// benchmarks that shape data beyond the store's API.
func (s *Store) ExecForTest(ctx context.Context, sql string) error {
	_, err := s.d.db().exec(ctx, sql)
	return err
}
