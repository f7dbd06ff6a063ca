package store

import (
	"context"
	"fmt"
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

// KeyRevoke revokes a key by ID. Revoking twice is ErrNotFound.
func (s *Store) KeyRevoke(ctx context.Context, id string) error {
	n, err := s.d.db().exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, now())
	if err != nil {
		return fmt.Errorf("store: revoke key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("store: revoke key %s: %w", id, ErrNotFound)
	}
	return nil
}
