package store

import (
	"cmp"
	"context"
	"fmt"
)

// File statuses, as OpenAI's (deprecated but required) File.status.
const (
	FileUploaded  = "uploaded"
	FileProcessed = "processed"
)

// File owners: who sees a file.
const (
	// FileOwnerAPI files are the API's: API keys list, read and delete
	// them.
	FileOwnerAPI = ""
	// FileOwnerCuration files are curation exports: only curators reach
	// them, through curation's routes.
	FileOwnerCuration = "curation"
)

// File is an uploaded or produced file. Its bytes live in the object store
// under ObjectKey.
type File struct {
	ID        string
	Purpose   string
	Filename  string
	Bytes     int64
	ObjectKey string
	Status    string
	CreatedAt int64
	ExpiresAt *int64
	// Owner says who sees the file: FileOwnerAPI or FileOwnerCuration.
	Owner string
	// ProjectID is the file's project. Default: DefaultProject.
	ProjectID string
}

const fileColumns = `id, purpose, filename, bytes, object_key, status, created_at, expires_at, owner, project_id`

func scanFile(r row) (File, error) {
	var f File
	err := r.Scan(&f.ID, &f.Purpose, &f.Filename, &f.Bytes, &f.ObjectKey, &f.Status, &f.CreatedAt, &f.ExpiresAt, &f.Owner, &f.ProjectID)
	return f, err
}

// insertFile records a file and, for the API's files, its file.created
// event (curation's are not the API's business).
func (s *Store) insertFile(ctx context.Context, q querier, enq enqueue, f File) error {
	f.ProjectID = cmp.Or(f.ProjectID, DefaultProject)
	_, err := q.exec(ctx, `INSERT INTO files (`+fileColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		f.ID, f.Purpose, f.Filename, f.Bytes, f.ObjectKey, f.Status, f.CreatedAt, f.ExpiresAt, f.Owner, f.ProjectID)
	if err != nil || f.Owner != FileOwnerAPI {
		return err
	}
	_, err = s.emit(ctx, q, enq, &Event{Type: EventFileCreated, Data: idData(f.ID), ProjectID: f.ProjectID})
	return err
}

// FileCreate records a file whose object is already stored.
func (s *Store) FileCreate(ctx context.Context, f File) error {
	err := s.d.tx(ctx, func(q querier, enq enqueue) error { return s.insertFile(ctx, q, enq, f) })
	if err != nil {
		return fmt.Errorf("store: create file: %w", err)
	}
	return nil
}

// FileGet returns a file that is not deleted.
func (s *Store) FileGet(ctx context.Context, id string) (File, error) {
	f, err := scanFile(s.d.db().queryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE id = $1 AND deleted_at IS NULL`, id))
	if err != nil {
		return File{}, fmt.Errorf("store: get file %s: %w", id, err)
	}
	return f, nil
}

// FileListParams filters and pages FileList.
type FileListParams struct {
	// Project lists only its files. Default: DefaultProject.
	Project string
	// Owner lists only its files; the zero value is the API's.
	Owner   string
	Purpose string // "" for all
	After   string // cursor: a file ID
	Limit   int
	Asc     bool // oldest first; the default is newest first
}

// FileList lists files that are not deleted, up to Limit, and whether more
// follow.
func (s *Store) FileList(ctx context.Context, p FileListParams) ([]File, bool, error) {
	op, order := "<", "DESC"
	if p.Asc {
		op, order = ">", "ASC"
	}
	sql := `SELECT ` + fileColumns + ` FROM files WHERE deleted_at IS NULL AND owner = $1 AND project_id = $2`
	args := []any{p.Owner, cmp.Or(p.Project, DefaultProject)}
	if p.Purpose != "" {
		args = append(args, p.Purpose)
		sql += fmt.Sprintf(` AND purpose = $%d`, len(args))
	}
	if p.After != "" {
		args = append(args, p.After)
		sql += fmt.Sprintf(` AND id %s $%d`, op, len(args))
	}
	args = append(args, p.Limit+1)
	sql += fmt.Sprintf(` ORDER BY id %s LIMIT $%d`, order, len(args))
	rs, err := s.d.db().query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list files: %w", err)
	}
	defer rs.Close()
	var out []File
	for rs.Next() {
		f, err := scanFile(rs)
		if err != nil {
			return nil, false, err
		}
		out = append(out, f)
	}
	if err := rs.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > p.Limit
	if more {
		out = out[:p.Limit]
	}
	return out, more, nil
}

// ErrFileInUse is FileDelete on the input file of a batch that has not
// ended. It is an ErrConflict.
var ErrFileInUse = fmt.Errorf("%w: the file is the input of a batch that has not ended", ErrConflict)

// FileDelete marks a file deleted and returns it, so the caller can remove
// its object. Deleting a deleted file is ErrNotFound; deleting the input
// of a batch that has not ended is ErrFileInUse. (A batch made at the same
// moment, before the delete commits, finds its file gone when it is
// validated, and fails: it never waits on the file.)
func (s *Store) FileDelete(ctx context.Context, id string) (File, error) {
	var f File
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		var err error
		f, err = scanFile(q.queryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE id = $1 AND deleted_at IS NULL`+s.d.forUpdate(), id))
		if err != nil {
			return err
		}
		var users int
		if err := q.queryRow(ctx, `SELECT COUNT(*) FROM batches WHERE input_file_id = $1 AND status NOT IN ($2, $3, $4, $5)`,
			id, BatchFailed, BatchCompleted, BatchExpired, BatchCancelled).Scan(&users); err != nil {
			return err
		}
		if users > 0 {
			return ErrFileInUse
		}
		_, err = q.exec(ctx, `UPDATE files SET deleted_at = $2 WHERE id = $1`, id, now())
		return err
	})
	if err != nil {
		return File{}, fmt.Errorf("store: delete file %s: %w", id, err)
	}
	return f, nil
}

// idsPerStatement is how many IDs a lookup by ID binds in one statement.
const idsPerStatement = 500

// queryIDs runs stmt over ids, idsPerStatement at a time: stmt makes the
// statement from the placeholders of a chunk, which it may use times
// times (the chunk's IDs are bound times over, in order), and scan reads
// each row.
func (s *Store) queryIDs(ctx context.Context, ids []string, times int, stmt func(in func(i int) string) string, scan func(rows) error) error {
	dialect := s.d.name()
	for start := 0; start < len(ids); start += idsPerStatement {
		chunk := ids[start:min(start+idsPerStatement, len(ids))]
		in := func(i int) string { return placeholders(dialect, i*len(chunk)+1, len(chunk)) }
		args := make([]any, 0, times*len(chunk))
		for range times {
			for _, id := range chunk {
				args = append(args, id)
			}
		}
		rs, err := s.d.db().query(ctx, stmt(in), args...)
		if err != nil {
			return err
		}
		for rs.Next() {
			if err := scan(rs); err != nil {
				rs.Close()
				return err
			}
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// FileIDsInUse returns those of ids whose object a row still needs: a file
// that is not deleted, or the file that a pending or completing upload's
// multipart upload becomes (its object appears before its row does). One
// statement answers both, so that a completion committing meanwhile is
// seen on one side or the other.
func (s *Store) FileIDsInUse(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool)
	err := s.queryIDs(ctx, ids, 2, func(in func(int) string) string {
		return `SELECT id FROM files WHERE id IN (` + in(0) + `) AND deleted_at IS NULL
			UNION SELECT multipart_file_id FROM uploads WHERE multipart_file_id IN (` + in(1) + `)
			AND status IN ('` + UploadPending + `', '` + UploadCompleting + `')`
	}, func(r rows) error {
		var id string
		if err := r.Scan(&id); err != nil {
			return err
		}
		out[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: files in use: %w", err)
	}
	return out, nil
}

// FileListExpired lists up to limit files whose expires_at is at or before
// now, soonest first, leaving out the inputs of batches that have not
// ended: those are kept until their batch ends, and listed after.
func (s *Store) FileListExpired(ctx context.Context, now int64, limit int) ([]File, error) {
	rs, err := s.d.db().query(ctx, `SELECT `+fileColumns+` FROM files f
		WHERE expires_at IS NOT NULL AND expires_at <= $1 AND deleted_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM batches WHERE input_file_id = f.id AND status NOT IN ($2, $3, $4, $5))
		ORDER BY expires_at, id LIMIT $6`,
		now, BatchFailed, BatchCompleted, BatchExpired, BatchCancelled, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list expired files: %w", err)
	}
	defer rs.Close()
	var out []File
	for rs.Next() {
		f, err := scanFile(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rs.Err()
}

// FileExpire deletes the row of a file whose expires_at is at or before
// now and returns it, so the caller can remove its object; for the API's
// files it emits file.expired in the same transaction. A file that is not
// there, or not yet due, is ErrNotFound; the input of a batch that has not
// ended is ErrFileInUse. Unlike FileDelete, which keeps the row marked
// deleted, the row goes: an expired file leaves nothing behind.
func (s *Store) FileExpire(ctx context.Context, id string, now int64) (File, error) {
	var f File
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		var err error
		f, err = scanFile(q.queryRow(ctx, `SELECT `+fileColumns+` FROM files
			WHERE id = $1 AND deleted_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $2`+s.d.forUpdate(), id, now))
		if err != nil {
			return err
		}
		var users int
		if err := q.queryRow(ctx, `SELECT COUNT(*) FROM batches WHERE input_file_id = $1 AND status NOT IN ($2, $3, $4, $5)`,
			id, BatchFailed, BatchCompleted, BatchExpired, BatchCancelled).Scan(&users); err != nil {
			return err
		}
		if users > 0 {
			return ErrFileInUse
		}
		if _, err := q.exec(ctx, `DELETE FROM files WHERE id = $1`, id); err != nil {
			return err
		}
		if f.Owner != FileOwnerAPI {
			return nil
		}
		_, err = s.emit(ctx, q, enq, &Event{Type: EventFileExpired, Data: idData(f.ID), ProjectID: f.ProjectID})
		return err
	})
	if err != nil {
		return File{}, fmt.Errorf("store: expire file %s: %w", id, err)
	}
	return f, nil
}
