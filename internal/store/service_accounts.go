package store

import (
	"context"
	"fmt"
)

// Service account roles, as OpenAI's: an account made with a key is a
// member; one made without (create_service_account_only) has no role.
const (
	ServiceAccountMember = "member"
	ServiceAccountNone   = "none"
)

// ServiceAccount is a project's non-human owner of API keys, as OpenAI's
// project service accounts.
type ServiceAccount struct {
	ID        string
	ProjectID string
	Name      string
	Role      string
	CreatedAt int64
	DeletedAt *int64
}

const serviceAccountColumns = `id, project_id, name, role, created_at, deleted_at`

func scanServiceAccount(r row) (ServiceAccount, error) {
	var a ServiceAccount
	err := r.Scan(&a.ID, &a.ProjectID, &a.Name, &a.Role, &a.CreatedAt, &a.DeletedAt)
	return a, err
}

// ServiceAccountCreate stores a service account of a live project (else
// ErrNotFound) and, when key is not nil, its key, owned by the account in
// its project, in one transaction; the audit log records both.
func (s *Store) ServiceAccountCreate(ctx context.Context, a ServiceAccount, key *APIKey) error {
	if a.CreatedAt == 0 {
		a.CreatedAt = now()
	}
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if err := liveProject(ctx, q, a.ProjectID); err != nil {
			return err
		}
		if _, err := q.exec(ctx, `INSERT INTO service_accounts (`+serviceAccountColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			a.ID, a.ProjectID, a.Name, a.Role, a.CreatedAt, a.DeletedAt); err != nil {
			return err
		}
		if err := audit(ctx, q, AuditServiceAccountCreated, a.ProjectID, map[string]any{"id": a.ID, "data": map[string]any{"role": a.Role}}); err != nil {
			return err
		}
		if key == nil {
			return nil
		}
		key.ProjectID, key.OwnerType, key.ServiceAccountID = a.ProjectID, KeyOwnerServiceAccount, &a.ID
		if err := insertKey(ctx, q, *key); err != nil {
			return err
		}
		return auditKeyCreated(ctx, q, *key)
	})
	if err != nil {
		return fmt.Errorf("store: create service account: %w", err)
	}
	return nil
}

// ServiceAccountGet is a project's service account that is not deleted.
func (s *Store) ServiceAccountGet(ctx context.Context, project, id string) (ServiceAccount, error) {
	a, err := scanServiceAccount(s.d.db().queryRow(ctx, `SELECT `+serviceAccountColumns+` FROM service_accounts
		WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL`, project, id))
	if err != nil {
		return ServiceAccount{}, fmt.Errorf("store: service account %s of %s: %w", id, project, err)
	}
	return a, nil
}

// ServiceAccountList lists a project's service accounts that are not
// deleted, oldest first, after the cursor, up to limit, and whether more
// follow.
func (s *Store) ServiceAccountList(ctx context.Context, project, after string, limit int) ([]ServiceAccount, bool, error) {
	out, err := collect(ctx, s.d.db(), scanServiceAccount, `SELECT `+serviceAccountColumns+` FROM service_accounts
		WHERE project_id = $1 AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT $3`, project, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: list service accounts of %s: %w", project, err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// ServiceAccountDelete deletes a project's service account and revokes its
// keys, in one transaction; the keys stop at once, as KeyRevoke's do, and
// the audit log records the deletion and each revocation. A service
// account that is gone is ErrNotFound.
func (s *Store) ServiceAccountDelete(ctx context.Context, project, id string) error {
	var revoked []string
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		t := now()
		n, err := q.exec(ctx, `UPDATE service_accounts SET deleted_at = $3 WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL`, project, id, t)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		revoked, err = collect(ctx, q, func(r row) (string, error) {
			var k string
			return k, r.Scan(&k)
		}, `SELECT id FROM api_keys WHERE service_account_id = $1 AND revoked_at IS NULL ORDER BY id`, id)
		if err != nil {
			return err
		}
		if _, err := q.exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE service_account_id = $1 AND revoked_at IS NULL`, id, t); err != nil {
			return err
		}
		for _, k := range revoked {
			if err := audit(ctx, q, AuditAPIKeyDeleted, project, map[string]any{"id": k}); err != nil {
				return err
			}
			if _, ok := s.d.(*pgDriver); ok {
				if _, err := q.exec(ctx, `SELECT pg_notify($1, $2)`, keysChannel, k); err != nil {
					return err
				}
			}
		}
		return audit(ctx, q, AuditServiceAccountDeleted, project, map[string]any{"id": id})
	})
	if err != nil {
		return fmt.Errorf("store: delete service account %s of %s: %w", id, project, err)
	}
	for _, k := range revoked {
		s.keyWatchers.tell(k)
	}
	return nil
}
