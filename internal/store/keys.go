package store

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// DefaultProject is the project that holds what was made without one.
const DefaultProject = "proj_default"

// Key owners, as OpenAI's project API keys have them.
const (
	KeyOwnerUser           = "user"
	KeyOwnerServiceAccount = "service_account"
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
	// ProjectID is the project the key opens. Default: DefaultProject.
	ProjectID string
	// OwnerType is KeyOwnerUser (kiln keys create) or
	// KeyOwnerServiceAccount. Default: KeyOwnerUser.
	OwnerType string
	// ServiceAccountID is the owning service account, if any.
	ServiceAccountID *string
	// Scopes limit the key (auth.Scope…); none is every scope.
	Scopes []string
	// ExpiresAt ends a rotated key's grace period: the key stops working
	// then. Nil: it works until revoked.
	ExpiresAt *int64
}

const keyColumns = `id, name, prefix, hash, created_at, last_used_at, revoked_at, project_id, owner_type, service_account_id, scopes, expires_at`

func scanKey(r row) (APIKey, error) {
	var k APIKey
	var scopes string
	err := r.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt, &k.ProjectID, &k.OwnerType,
		&k.ServiceAccountID, &scopes, &k.ExpiresAt)
	if scopes != "" {
		k.Scopes = strings.Split(scopes, ",")
	}
	return k, err
}

func insertKey(ctx context.Context, q querier, k APIKey) error {
	if k.CreatedAt == 0 {
		k.CreatedAt = now()
	}
	k.ProjectID = cmp.Or(k.ProjectID, DefaultProject)
	k.OwnerType = cmp.Or(k.OwnerType, KeyOwnerUser)
	_, err := q.exec(ctx, `INSERT INTO api_keys (`+keyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		k.ID, k.Name, k.Prefix, k.Hash, k.CreatedAt, k.LastUsedAt, k.RevokedAt, k.ProjectID, k.OwnerType, k.ServiceAccountID,
		strings.Join(k.Scopes, ","), k.ExpiresAt)
	return err
}

// KeyCreate stores a new key, and records it in the audit log. Its project
// must exist and not be archived: else ErrNotFound.
func (s *Store) KeyCreate(ctx context.Context, k APIKey) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if err := liveProject(ctx, q, cmp.Or(k.ProjectID, DefaultProject)); err != nil {
			return err
		}
		if err := insertKey(ctx, q, k); err != nil {
			return err
		}
		return auditKeyCreated(ctx, q, k)
	})
	if err != nil {
		return fmt.Errorf("store: create key: %w", err)
	}
	return nil
}

// KeyByHash finds a live key by the hash of its secret: not revoked, not
// past a rotation's grace, of a project that is not archived.
func (s *Store) KeyByHash(ctx context.Context, hash string) (APIKey, error) {
	k, err := scanKey(s.d.db().queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1 AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > $2)
		AND project_id IN (SELECT id FROM projects WHERE archived_at IS NULL)`, hash, now()))
	if err != nil {
		return APIKey{}, fmt.Errorf("store: key by hash: %w", err)
	}
	return k, nil
}

// KeyGet is a key by ID, revoked or not.
func (s *Store) KeyGet(ctx context.Context, id string) (APIKey, error) {
	k, err := scanKey(s.d.db().queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
	if err != nil {
		return APIKey{}, fmt.Errorf("store: get key %s: %w", id, err)
	}
	return k, nil
}

// KeyRotate replaces a live key by next, in one transaction: next takes
// the key's name, project, owner and scopes, and the old key keeps working
// until grace has passed (0: it stops at once). It returns next as stored.
// The audit log records next's creation and the old key's expiry.
// A key that is revoked or gone is ErrNotFound.
func (s *Store) KeyRotate(ctx context.Context, id string, next APIKey, grace time.Duration) (APIKey, error) {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		old, err := scanKey(q.queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1 AND revoked_at IS NULL
			AND (expires_at IS NULL OR expires_at > $2)`+s.d.forUpdate(), id, now()))
		if err != nil {
			return err
		}
		next.Name, next.ProjectID, next.OwnerType, next.ServiceAccountID, next.Scopes = old.Name, old.ProjectID, old.OwnerType, old.ServiceAccountID, old.Scopes
		until := time.Now().Add(grace).Unix()
		if _, err := q.exec(ctx, `UPDATE api_keys SET expires_at = $2 WHERE id = $1`, id, until); err != nil {
			return err
		}
		if err := insertKey(ctx, q, next); err != nil {
			return err
		}
		if err := auditKeyCreated(ctx, q, next); err != nil {
			return err
		}
		return audit(ctx, q, AuditAPIKeyUpdated, old.ProjectID, map[string]any{"id": id,
			"changes_requested": map[string]any{"expires_at": until, "rotated_to": next.ID}})
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("store: rotate key %s: %w", id, err)
	}
	if grace <= 0 {
		s.keyWatchers.tell(id)
	}
	return next, nil
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

// KeyListByProject lists a project's live keys (not revoked, not past a
// rotation's grace) oldest first, after the cursor, up to limit, and
// whether more follow.
func (s *Store) KeyListByProject(ctx context.Context, project, after string, limit int) ([]APIKey, bool, error) {
	out, err := collect(ctx, s.d.db(), scanKey, `SELECT `+keyColumns+` FROM api_keys WHERE project_id = $1 AND id > $2
		AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3) ORDER BY id LIMIT $4`, project, after, now(), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: list keys of %s: %w", project, err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
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

// KeyRevoke revokes a key by ID, and records it in the audit log. Revoking
// twice is ErrNotFound. The revocation is announced to KeyWatch's
// watchers: this store's before KeyRevoke returns, and on Postgres every
// other store's on the database (a NOTIFY that commits with the
// revocation).
func (s *Store) KeyRevoke(ctx context.Context, id string) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		n, err := q.exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, now())
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		var project string
		if err := q.queryRow(ctx, `SELECT project_id FROM api_keys WHERE id = $1`, id).Scan(&project); err != nil {
			return err
		}
		if err := audit(ctx, q, AuditAPIKeyDeleted, project, map[string]any{"id": id}); err != nil {
			return err
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
