package store

import (
	"context"
	"sync"
	"time"
)

// shardSignal wakes agents when shards become claimable: on Postgres by
// LISTEN on shardsChannel, which BatchStart notifies; on SQLite, which cannot
// notify, it never fires and agents poll.
//
// It also carries resultsChannel, which ChunkCommit and BatchComplete
// notify, for readers tailing a batch's results: on Postgres through the
// same connection; in this process (SQLite or Postgres) at once.
type shardSignal struct {
	once    sync.Once
	mu      sync.Mutex
	wake    chan struct{}
	results broadcast
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
	s.signal.once.Do(func() {
		s.signal.mu.Lock()
		s.signal.wake = make(chan struct{})
		s.signal.mu.Unlock()
		go s.listen(pg)
	})
}

// WaitShards waits until shards may have become claimable, or timeout
// passes, or ctx ends.
func (s *Store) WaitShards(ctx context.Context, timeout time.Duration) {
	s.startListening()
	s.signal.mu.Lock()
	wake := s.signal.wake
	s.signal.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake: // nil on SQLite: never
	}
}

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
			for _, ch := range []string{shardsChannel, resultsChannel} {
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
				if n.Channel == resultsChannel {
					s.signal.results.fire()
					continue
				}
				s.signal.mu.Lock()
				close(s.signal.wake)
				s.signal.wake = make(chan struct{})
				s.signal.mu.Unlock()
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
