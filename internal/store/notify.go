package store

import (
	"context"
	"sync"
	"time"
)

// shardSignal wakes agents when shards become claimable: on Postgres by
// LISTEN on shardsChannel, which BatchStart notifies; on SQLite, which cannot
// notify, it never fires and agents poll.
type shardSignal struct {
	once sync.Once
	mu   sync.Mutex
	wake chan struct{}
}

// WaitShards waits until shards may have become claimable, or timeout
// passes, or ctx ends.
func (s *Store) WaitShards(ctx context.Context, timeout time.Duration) {
	pg, ok := s.d.(*pgDriver)
	if ok {
		s.signal.once.Do(func() {
			s.signal.wake = make(chan struct{})
			go s.listen(pg)
		})
	}
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
			if _, err := conn.Exec(s.closed, "LISTEN "+shardsChannel); err != nil {
				return err
			}
			attempt = 0
			for {
				if _, err := conn.Conn().WaitForNotification(s.closed); err != nil {
					conn.Conn().Close(context.Background())
					return err
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
