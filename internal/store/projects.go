package store

import (
	"context"
	"fmt"
)

// Project is a tenant of kiln, as OpenAI's: every resource belongs to one,
// and a key opens only its own.
type Project struct {
	ID         string
	Name       string
	CreatedAt  int64
	ArchivedAt *int64
}

const projectColumns = `id, name, created_at, archived_at`

func scanProject(r row) (Project, error) {
	var p Project
	err := r.Scan(&p.ID, &p.Name, &p.CreatedAt, &p.ArchivedAt)
	return p, err
}

// liveProject is nil when the project exists and is not archived, else
// ErrNotFound.
func liveProject(ctx context.Context, q querier, id string) error {
	var n int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM projects WHERE id = $1 AND archived_at IS NULL`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("project %s: %w", id, ErrNotFound)
	}
	return nil
}

// ProjectCreate stores a new project, and records it in the audit log.
func (s *Store) ProjectCreate(ctx context.Context, p Project) error {
	if p.CreatedAt == 0 {
		p.CreatedAt = now()
	}
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `INSERT INTO projects (`+projectColumns+`) VALUES ($1, $2, $3, $4)`, p.ID, p.Name, p.CreatedAt, p.ArchivedAt); err != nil {
			return err
		}
		return audit(ctx, q, AuditProjectCreated, p.ID, map[string]any{"id": p.ID, "data": map[string]any{"name": p.Name, "title": p.Name}})
	})
	if err != nil {
		return fmt.Errorf("store: create project: %w", err)
	}
	return nil
}

// ProjectGet is a project, archived or not.
func (s *Store) ProjectGet(ctx context.Context, id string) (Project, error) {
	p, err := scanProject(s.d.db().queryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, id))
	if err != nil {
		return Project{}, fmt.Errorf("store: get project %s: %w", id, err)
	}
	return p, nil
}

// ProjectByName is the project of that name, archived or not.
func (s *Store) ProjectByName(ctx context.Context, name string) (Project, error) {
	p, err := scanProject(s.d.db().queryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE name = $1 ORDER BY id LIMIT 1`, name))
	if err != nil {
		return Project{}, fmt.Errorf("store: project named %q: %w", name, err)
	}
	return p, nil
}

// ProjectList lists projects oldest first, after the cursor, up to limit,
// archived ones only when asked, and whether more follow.
func (s *Store) ProjectList(ctx context.Context, after string, limit int, archived bool) ([]Project, bool, error) {
	sql := `SELECT ` + projectColumns + ` FROM projects WHERE id > $1`
	if !archived {
		sql += ` AND archived_at IS NULL`
	}
	rs, err := s.d.db().query(ctx, sql+` ORDER BY id LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: list projects: %w", err)
	}
	defer rs.Close()
	var out []Project
	for rs.Next() {
		p, err := scanProject(rs)
		if err != nil {
			return nil, false, err
		}
		out = append(out, p)
	}
	if err := rs.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// ProjectRename renames a project that is not archived (else
// ErrNotFound), and records it in the audit log.
func (s *Store) ProjectRename(ctx context.Context, id, name string) (Project, error) {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		n, err := q.exec(ctx, `UPDATE projects SET name = $2 WHERE id = $1 AND archived_at IS NULL`, id, name)
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		if err != nil {
			return err
		}
		return audit(ctx, q, AuditProjectUpdated, id, map[string]any{"id": id, "changes_requested": map[string]any{"title": name, "name": name}})
	})
	if err != nil {
		return Project{}, fmt.Errorf("store: rename project %s: %w", id, err)
	}
	return s.ProjectGet(ctx, id)
}

// ProjectArchive archives a project, recorded in the audit log: its keys
// stop working at once (the
// project's keys are announced to KeyWatch's watchers as revocations, as
// KeyRevoke does), and its data stays. The default project cannot be
// archived (ErrConflict); archiving twice is a no-op.
func (s *Store) ProjectArchive(ctx context.Context, id string) (Project, error) {
	if id == DefaultProject {
		return Project{}, fmt.Errorf("store: archive project %s: the default project stays: %w", id, ErrConflict)
	}
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		p, err := scanProject(q.queryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`+s.d.forUpdate(), id))
		if err != nil || p.ArchivedAt != nil {
			return err
		}
		if _, err := q.exec(ctx, `UPDATE projects SET archived_at = $2 WHERE id = $1`, id, now()); err != nil {
			return err
		}
		if err := audit(ctx, q, AuditProjectArchived, id, map[string]any{"id": id}); err != nil {
			return err
		}
		if _, ok := s.d.(*pgDriver); ok {
			_, err = q.exec(ctx, `SELECT pg_notify($1, '')`, keysChannel)
		}
		return err
	})
	if err != nil {
		return Project{}, fmt.Errorf("store: archive project %s: %w", id, err)
	}
	s.keyWatchers.tell("") // drop every cached key: the project's are dead
	return s.ProjectGet(ctx, id)
}
