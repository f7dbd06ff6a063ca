package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// APIKey is a stored API key. Only the SHA-256 of the secret is kept.
type APIKey struct {
	ID         string
	Name       string
	Prefix     string // the first characters of the secret, to tell keys apart
	Hash       string
	CreatedAt  int64
	LastUsedAt *int64
	RevokedAt  *int64
}

const keyColumns = `id, name, prefix, hash, created_at, last_used_at, revoked_at`

func scanKey(r row) (APIKey, error) {
	var k APIKey
	err := r.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	return k, err
}

// KeyCreate stores a new key.
func (s *Store) KeyCreate(ctx context.Context, k APIKey) error {
	if k.CreatedAt == 0 {
		k.CreatedAt = now()
	}
	_, err := s.d.db().exec(ctx, `INSERT INTO api_keys (`+keyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.Name, k.Prefix, k.Hash, k.CreatedAt, k.LastUsedAt, k.RevokedAt)
	if err != nil {
		return fmt.Errorf("store: create key: %w", err)
	}
	return nil
}

// KeyByHash finds an unrevoked key by the hash of its secret.
func (s *Store) KeyByHash(ctx context.Context, hash string) (APIKey, error) {
	k, err := scanKey(s.d.db().queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`, hash))
	if err != nil {
		return APIKey{}, fmt.Errorf("store: key by hash: %w", err)
	}
	return k, nil
}

// KeyTouch records that a key was used, at most once a minute.
func (s *Store) KeyTouch(ctx context.Context, id string) error {
	t := now()
	_, err := s.d.db().exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)`, id, t, t-60)
	return err
}

// KeyList lists keys, revoked ones too, oldest first.
func (s *Store) KeyList(ctx context.Context) ([]APIKey, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	defer rs.Close()
	var out []APIKey
	for rs.Next() {
		k, err := scanKey(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rs.Err()
}

// KeyCount counts keys that are not revoked.
func (s *Store) KeyCount(ctx context.Context) (int, error) {
	var n int
	err := s.d.db().queryRow(ctx, `SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL`).Scan(&n)
	return n, err
}

// keysChannel is the Postgres notification channel on which KeyRevoke
// announces the ID of a key it revoked.
const keysChannel = "kiln_keys"

// KeyRevoke revokes a key by ID. Revoking twice is ErrNotFound. The
// revocation is announced to KeyWatch's watchers: this store's before
// KeyRevoke returns, and on Postgres every other store's on the database
// (a NOTIFY that commits with the revocation).
func (s *Store) KeyRevoke(ctx context.Context, id string) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		n, err := q.exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, now())
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if _, ok := s.d.(*pgDriver); ok {
			_, err = q.exec(ctx, `SELECT pg_notify($1, $2)`, keysChannel, id)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: revoke key %s: %w", id, err)
	}
	s.keyWatchers.tell(id)
	return nil
}

// KeyWatch calls fn with the ID of every key revoked from now on, until ctx
// ends or the store closes, so that a cache of keys can drop it: at once,
// before KeyRevoke returns, for revocations through this store; and on
// Postgres for revocations through any other store on the database, in
// this process or another, as soon as their notification arrives
// (LISTEN/NOTIFY). Each time that notification connection is established,
// first or again after a failure, fn("") says that revocations may have
// gone unheard: drop everything. KeyWatch reports whether revocations
// through other stores reach fn (Postgres) or not (SQLite, which cannot
// notify: a cache must bound how long it trusts an answer). fn may be
// called from several goroutines and must not block.
func (s *Store) KeyWatch(ctx context.Context, fn func(id string)) bool {
	ctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.closed, cancel)
	w := &keyWatcher{fn: fn}
	s.keyWatchers.add(w)
	context.AfterFunc(ctx, func() {
		stopOnClose()
		s.keyWatchers.remove(w)
	})
	pg, ok := s.d.(*pgDriver)
	if !ok {
		return false
	}
	go s.listenKeys(ctx, pg, fn)
	return true
}

// listenKeys holds one connection that LISTENs for revocations until ctx
// ends, reconnecting after failures.
func (s *Store) listenKeys(ctx context.Context, pg *pgDriver, fn func(id string)) {
	for attempt := 0; ; attempt++ {
		err := func() error {
			conn, err := pg.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "LISTEN "+keysChannel); err != nil {
				conn.Conn().Close(context.Background())
				return err
			}
			attempt = 0
			fn("") // what was revoked before LISTEN went unheard
			for {
				n, err := conn.Conn().WaitForNotification(ctx)
				if err != nil {
					// The connection may hold a half-read message, or LISTEN:
					// it is not returned to the pool.
					conn.Conn().Close(context.Background())
					return err
				}
				fn(n.Payload)
			}
		}()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("key revocation notifications interrupted; cached keys are trusted for their TTL meanwhile", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second << min(attempt, 5)):
		}
	}
}

// keyWatcher is one KeyWatch registration.
type keyWatcher struct{ fn func(id string) }

// watcherSet are a store's KeyWatch registrations, which KeyRevoke tells
// at once.
type watcherSet struct {
	mu sync.Mutex
	m  map[*keyWatcher]struct{}
}

func (ws *watcherSet) add(w *keyWatcher) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.m == nil {
		ws.m = map[*keyWatcher]struct{}{}
	}
	ws.m[w] = struct{}{}
}

func (ws *watcherSet) remove(w *keyWatcher) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.m, w)
}

func (ws *watcherSet) tell(id string) {
	ws.mu.Lock()
	fns := make([]func(string), 0, len(ws.m))
	for w := range ws.m {
		fns = append(fns, w.fn)
	}
	ws.mu.Unlock()
	for _, fn := range fns {
		fn(id)
	}
}
