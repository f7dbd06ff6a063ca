package store

import (
	"context"
	"fmt"
)

// AdminKey is a stored admin key: it opens the Administration API
// (/v1/organization/…) and nothing else. Only the SHA-256 of the secret is
// kept.
type AdminKey struct {
	ID         string
	Name       string
	Prefix     string // the first characters of the secret, to tell keys apart
	Hash       string
	CreatedAt  int64
	LastUsedAt *int64
	RevokedAt  *int64
}

const adminKeyColumns = `id, name, prefix, hash, created_at, last_used_at, revoked_at`

func scanAdminKey(r row) (AdminKey, error) {
	var k AdminKey
	err := r.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	return k, err
}

// AdminKeyCreate stores a new admin key, and records it in the audit log.
func (s *Store) AdminKeyCreate(ctx context.Context, k AdminKey) error {
	if k.CreatedAt == 0 {
		k.CreatedAt = now()
	}
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `INSERT INTO admin_keys (`+adminKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			k.ID, k.Name, k.Prefix, k.Hash, k.CreatedAt, k.LastUsedAt, k.RevokedAt); err != nil {
			return err
		}
		return audit(ctx, q, AuditAdminKeyCreated, "", map[string]any{"id": k.ID, "data": map[string]any{"name": k.Name}})
	})
	if err != nil {
		return fmt.Errorf("store: create admin key: %w", err)
	}
	return nil
}

// AdminKeyByHash finds a live admin key by the hash of its secret.
func (s *Store) AdminKeyByHash(ctx context.Context, hash string) (AdminKey, error) {
	k, err := scanAdminKey(s.d.db().queryRow(ctx, `SELECT `+adminKeyColumns+` FROM admin_keys WHERE hash = $1 AND revoked_at IS NULL`, hash))
	if err != nil {
		return AdminKey{}, fmt.Errorf("store: admin key by hash: %w", err)
	}
	return k, nil
}

// AdminKeyList lists admin keys, revoked ones too, oldest first.
func (s *Store) AdminKeyList(ctx context.Context) ([]AdminKey, error) {
	out, err := collect(ctx, s.d.db(), scanAdminKey, `SELECT `+adminKeyColumns+` FROM admin_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list admin keys: %w", err)
	}
	return out, nil
}

// AdminKeyTouch records that an admin key was used, at most once a minute.
func (s *Store) AdminKeyTouch(ctx context.Context, id string) error {
	t := now()
	_, err := s.d.db().exec(ctx, `UPDATE admin_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)`, id, t, t-60)
	return err
}

// AdminKeyRevoke revokes an admin key by ID, at once (admin keys are not
// cached), and records it in the audit log. Revoking twice is ErrNotFound.
func (s *Store) AdminKeyRevoke(ctx context.Context, id string) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		n, err := q.exec(ctx, `UPDATE admin_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, now())
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return audit(ctx, q, AuditAdminKeyDeleted, "", map[string]any{"id": id})
	})
	if err != nil {
		return fmt.Errorf("store: revoke admin key %s: %w", id, err)
	}
	return nil
}
