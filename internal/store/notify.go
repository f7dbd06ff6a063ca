package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// shardSignal wakes the waiters of this process when something they wait
// for may have committed.
//
// shards wakes agents when shards become claimable: at once for a commit
// in this process (BatchStartWith), and on Postgres also for other
// processes' commits, by LISTEN on shardsChannel; across processes on
// SQLite agents poll.
//
// results wakes readers tailing a batch's results (resultsChannel, which
// ChunkCommit and BatchComplete notify), the same way.
//
// deliveries wakes webhook senders when deliveries become due
// (deliveriesChannel), the same way.
type shardSignal struct {
	once       sync.Once
	shards     broadcast
	results    broadcast
	deliveries broadcast
}

// broadcast is a channel closed, and replaced, at each fire.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// startListening starts, once, the connection that LISTENs on Postgres.
func (s *Store) startListening() {
	pg, ok := s.d.(*pgDriver)
	if !ok {
		return
	}
	s.signal.once.Do(func() { go s.listen(pg) })
}

// WaitShards waits until shards may have become claimable, or timeout
// passes, or ctx ends. On SQLite only this process's commits wake it; the
// timeout bounds the rest.
func (s *Store) WaitShards(ctx context.Context, timeout time.Duration) {
	s.startListening()
	wake := s.signal.shards.wait()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// shardsChanged wakes this process's WaitShards, after a commit.
func (s *Store) shardsChanged() { s.signal.shards.fire() }

// WaitResults waits until a chunk may have committed or a batch ended,
// in any process, or timeout passes, or ctx ends. On SQLite only this
// process's commits wake it; the timeout bounds the rest.
func (s *Store) WaitResults(ctx context.Context, timeout time.Duration) {
	s.startListening()
	wake := s.signal.results.wait()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// resultsChanged wakes this process's WaitResults, after a commit.
func (s *Store) resultsChanged() { s.signal.results.fire() }

// DeliveriesWake is closed when webhook deliveries may have become due
// (made, or made pending again) after the call, in any process. On SQLite
// only this process's commits close it: senders also poll. Take it before
// looking for deliveries, so that none made meanwhile is missed.
func (s *Store) DeliveriesWake() <-chan struct{} {
	s.startListening()
	return s.signal.deliveries.wait()
}

// deliveriesChanged closes this process's DeliveriesWake, after a commit.
func (s *Store) deliveriesChanged() { s.signal.deliveries.fire() }

// listen holds one connection that LISTENs for shard notifications until the
// store closes, reconnecting after failures.
func (s *Store) listen(pg *pgDriver) {
	for attempt := 0; ; attempt++ {
		if s.closed.Err() != nil {
			return
		}
		err := func() error {
			conn, err := pg.pool.Acquire(s.closed)
			if err != nil {
				return err
			}
			defer conn.Release()
			for _, ch := range []string{shardsChannel, resultsChannel, deliveriesChannel} {
				if _, err := conn.Exec(s.closed, "LISTEN "+ch); err != nil {
					return err
				}
			}
			attempt = 0
			for {
				n, err := conn.Conn().WaitForNotification(s.closed)
				if err != nil {
					conn.Conn().Close(context.Background())
					return err
				}
				switch n.Channel {
				case resultsChannel:
					s.signal.results.fire()
				case deliveriesChannel:
					s.signal.deliveries.fire()
				default:
					s.signal.shards.fire()
				}
			}
		}()
		if s.closed.Err() != nil {
			return
		}
		s.log.Debug("shard notifications interrupted; agents poll meanwhile", "err", err)
		select {
		case <-s.closed.Done():
			return
		case <-time.After(time.Second << min(attempt, 5)):
		}
	}
}

// sqliteRiverDriver is River's SQLite driver whose listener also reads
// River's notifications at once when this process commits jobs (jobs
// fires), not only at its next poll (50 ms): the workers of this process
// then fetch a job its own commit enqueued without waiting. Other
// processes' jobs still wait for the poll.
type sqliteRiverDriver struct {
	*riversqlite.Driver
	jobs *broadcast
}

// GetListener is River's SQLite listener, woken by d.jobs.
func (d sqliteRiverDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	return &wokenListener{Listener: d.Driver.GetListener(params), wake: d.jobs}
}

// newSQLiteWorkerClient is a River client of the workers on db.
func newSQLiteWorkerClient(db *sql.DB, jobs *broadcast, cfg *river.Config) (*river.Client[*sql.Tx], error) {
	return river.NewClient[*sql.Tx](sqliteRiverDriver{Driver: riversqlite.New(db), jobs: jobs}, cfg)
}

// wokenListener is a polling listener that polls at once when wake fires.
type wokenListener struct {
	riverdriver.Listener
	wake *broadcast
}

// WaitForNotification returns the next notification, as the polling
// listener does, polling again each time wake fires.
func (l *wokenListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	for {
		wake := l.wake.wait()
		poll, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-wake:
				cancel()
			case <-poll.Done():
			}
		}()
		n, err := l.Listener.WaitForNotification(poll)
		woken := poll.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil && woken && errors.Is(err, context.Canceled) {
			continue // read River's notifications now
		}
		return n, err
	}
}
