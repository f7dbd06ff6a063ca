package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
)

// ErrTooManyParts is returned (wrapped) by UploadPresignParts past the
// limit on an upload's presigned parts.
var ErrTooManyParts = errors.New("too many parts")

// Upload statuses. completing is kiln's own: a completion in progress,
// which a concurrent cancel cannot interrupt.
const (
	UploadPending    = "pending"
	UploadCompleting = "completing"
	UploadCompleted  = "completed"
	UploadCancelled  = "cancelled"
	UploadExpired    = "expired"
)

// Upload is an upload in parts (OpenAI's Upload).
type Upload struct {
	ID        string
	Filename  string
	Purpose   string
	Bytes     int64
	MimeType  string
	Status    string
	CreatedAt int64
	ExpiresAt int64
	FileID    *string
	// MultipartID is the object store's multipart upload of the presigned
	// parts, nil until the first is presigned.
	MultipartID *string
	// MultipartFileID is the file the multipart upload becomes.
	MultipartFileID *string
	// ProjectID is the upload's project, and its file's. Default:
	// DefaultProject.
	ProjectID string
	// FileExpiresAfter is how many seconds after it is made the upload's
	// file expires (its expires_after); 0 leaves it to the purpose's
	// retention.
	FileExpiresAfter int64
}

// UploadPart is one part of an upload.
type UploadPart struct {
	ID        string
	UploadID  string
	ObjectKey string
	Bytes     int64 // -1 until known, for presigned parts
	Presigned bool
	// PartNumber is a presigned part's number in the multipart upload,
	// from 1; 0 for a part sent through kiln.
	PartNumber int
	CreatedAt  int64
}

const uploadColumns = `id, filename, purpose, bytes, mime_type, status, created_at, expires_at, file_id, multipart_id, multipart_file_id, project_id,
	file_expires_after`

func scanUpload(r row) (Upload, error) {
	var u Upload
	err := r.Scan(&u.ID, &u.Filename, &u.Purpose, &u.Bytes, &u.MimeType, &u.Status, &u.CreatedAt, &u.ExpiresAt, &u.FileID, &u.MultipartID, &u.MultipartFileID, &u.ProjectID,
		&u.FileExpiresAfter)
	return u, err
}

// UploadCreate stores a new upload and, in the same transaction, its jobs
// (the expiry).
func (s *Store) UploadCreate(ctx context.Context, u Upload, jobs ...Job) error {
	err := s.d.tx(ctx, func(q querier, enq enqueue) error { return insertUpload(ctx, q, enq, u, jobs) })
	if err != nil {
		return fmt.Errorf("store: create upload: %w", err)
	}
	return nil
}

func insertUpload(ctx context.Context, q querier, enq enqueue, u Upload, jobs []Job) error {
	if _, err := q.exec(ctx, `INSERT INTO uploads (`+uploadColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		u.ID, u.Filename, u.Purpose, u.Bytes, u.MimeType, u.Status, u.CreatedAt, u.ExpiresAt, u.FileID, u.MultipartID, u.MultipartFileID,
		cmp.Or(u.ProjectID, DefaultProject), u.FileExpiresAfter); err != nil {
		return err
	}
	return enqueueAll(ctx, enq, jobs)
}

// UploadCap bounds the uploads in progress: pending (and not yet past
// their expiry) or completing. A field of zero or less is no bound. The
// cap is kiln-wide; with projects it gets the project whose uploads it
// counts, and its own lock.
type UploadCap struct {
	// MaxPending is the most uploads in progress.
	MaxPending int64
	// MaxPendingBytes is the most bytes they may declare in all.
	MaxPendingBytes int64
}

// The caps of an UploadCap, as UploadCapError names them.
const (
	UploadCapCount = "count"
	UploadCapBytes = "bytes"
)

// UploadCapError is UploadCreateCapped refusing an upload that would take
// the uploads in progress past a cap.
type UploadCapError struct {
	// Cap is the cap reached: UploadCapCount or UploadCapBytes.
	Cap string
	// Max is its value.
	Max int64
	// Pending are the uploads in progress before this one.
	Pending UploadsPending
}

func (e *UploadCapError) Error() string {
	if e.Cap == UploadCapBytes {
		return fmt.Sprintf("store: the uploads in progress declare %d bytes of the %d allowed", e.Pending.Bytes, e.Max)
	}
	return fmt.Sprintf("store: %d uploads in progress, the most allowed", e.Max)
}

// UploadsPending counts the uploads in progress.
type UploadsPending struct {
	Count int64
	// Bytes are the bytes they declare.
	Bytes int64
}

// pendingUploads is the condition of an upload in progress at $1 (Unix
// seconds): pending and not yet expired, or completing.
const pendingUploads = `(status = '` + UploadCompleting + `' OR (status = '` + UploadPending + `' AND expires_at > $1))`

func countPending(ctx context.Context, q querier, now int64) (UploadsPending, error) {
	var p UploadsPending
	err := q.queryRow(ctx, `SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM uploads WHERE `+pendingUploads, now).Scan(&p.Count, &p.Bytes)
	return p, err
}

// UploadPendingTotals counts the uploads in progress at now (Unix
// seconds), as UploadCap does.
func (s *Store) UploadPendingTotals(ctx context.Context, now int64) (UploadsPending, error) {
	p, err := countPending(ctx, s.d.db(), now)
	if err != nil {
		return p, fmt.Errorf("store: pending uploads: %w", err)
	}
	return p, nil
}

// UploadCreateCapped is UploadCreate within caps: if u would take the
// uploads in progress (at u.CreatedAt) past one, it is an *UploadCapError
// and nothing is written. Creates are serialised while they count, so
// that two cannot both take the last place.
func (s *Store) UploadCreateCapped(ctx context.Context, u Upload, c UploadCap, jobs ...Job) error {
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		// SQLite's transactions hold the database's one write lock
		// already; Postgres's need one for the count to stay true until
		// the insert commits.
		if s.d.name() == "postgres" {
			if _, err := q.exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('kiln:uploads_pending', 0))`); err != nil {
				return err
			}
		}
		p, err := countPending(ctx, q, u.CreatedAt)
		if err != nil {
			return err
		}
		switch {
		case c.MaxPending > 0 && p.Count+1 > c.MaxPending:
			return &UploadCapError{Cap: UploadCapCount, Max: c.MaxPending, Pending: p}
		case c.MaxPendingBytes > 0 && p.Bytes+u.Bytes > c.MaxPendingBytes:
			return &UploadCapError{Cap: UploadCapBytes, Max: c.MaxPendingBytes, Pending: p}
		}
		return insertUpload(ctx, q, enq, u, jobs)
	})
	if err != nil {
		return fmt.Errorf("store: create upload: %w", err)
	}
	return nil
}

// UploadStatuses returns the status of each of ids that is an upload; an
// ID that is none is absent.
func (s *Store) UploadStatuses(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string)
	err := s.queryIDs(ctx, ids, 1, func(in func(int) string) string {
		return `SELECT id, status FROM uploads WHERE id IN (` + in(0) + `)`
	}, func(r rows) error {
		var id, status string
		if err := r.Scan(&id, &status); err != nil {
			return err
		}
		out[id] = status
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: upload statuses: %w", err)
	}
	return out, nil
}

// UploadGet returns an upload.
func (s *Store) UploadGet(ctx context.Context, id string) (Upload, error) {
	u, err := scanUpload(s.d.db().queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, id))
	if err != nil {
		return Upload{}, fmt.Errorf("store: get upload %s: %w", id, err)
	}
	return u, nil
}

// UploadPartAdd records a part of a pending upload. An upload that is not
// pending, or is past its expiry (Unix seconds now), is ErrConflict.
func (s *Store) UploadPartAdd(ctx context.Context, p UploadPart, now int64) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		u, err := scanUpload(q.queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`+s.d.forUpdate(), p.UploadID))
		if err != nil {
			return err
		}
		if u.Status != UploadPending || u.ExpiresAt <= now {
			return ErrConflict
		}
		presigned := 0
		if p.Presigned {
			presigned = 1
		}
		_, err = q.exec(ctx, `INSERT INTO upload_parts (id, upload_id, object_key, bytes, presigned, part_number, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			p.ID, p.UploadID, p.ObjectKey, p.Bytes, presigned, p.PartNumber, p.CreatedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add part to upload %s: %w", p.UploadID, err)
	}
	return nil
}

// UploadParts lists an upload's parts, oldest first.
func (s *Store) UploadParts(ctx context.Context, uploadID string) ([]UploadPart, error) {
	rs, err := s.d.db().query(ctx, `SELECT id, upload_id, object_key, bytes, presigned, part_number, created_at FROM upload_parts WHERE upload_id = $1 ORDER BY id`, uploadID)
	if err != nil {
		return nil, fmt.Errorf("store: parts of %s: %w", uploadID, err)
	}
	defer rs.Close()
	var out []UploadPart
	for rs.Next() {
		var p UploadPart
		var presigned int64
		if err := rs.Scan(&p.ID, &p.UploadID, &p.ObjectKey, &p.Bytes, &presigned, &p.PartNumber, &p.CreatedAt); err != nil {
			return nil, err
		}
		p.Presigned = presigned != 0
		out = append(out, p)
	}
	return out, rs.Err()
}

// UploadPresignParts records count presigned parts of a pending upload (Unix
// seconds now, as in UploadPartAdd), numbered on from the highest number
// given before, 1 for the first; newPart makes each from its number. When
// the upload has no multipart upload yet, create makes one, in the
// transaction, for the file fileID. It returns the upload, with MultipartID set, and the parts.
// More than maxParts numbers in all is ErrTooManyParts.
func (s *Store) UploadPresignParts(ctx context.Context, uploadID string, count, maxParts int, now int64,
	fileID string, create func() (string, error), newPart func(n int) UploadPart) (Upload, []UploadPart, error) {
	var u Upload
	var parts []UploadPart
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		var err error
		parts = parts[:0]
		u, err = scanUpload(q.queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`+s.d.forUpdate(), uploadID))
		if err != nil {
			return err
		}
		if u.Status != UploadPending || u.ExpiresAt <= now {
			return ErrConflict
		}
		var last int64
		if err := q.queryRow(ctx, `SELECT COALESCE(MAX(part_number), 0) FROM upload_parts WHERE upload_id = $1`, uploadID).Scan(&last); err != nil {
			return err
		}
		if int(last)+count > maxParts {
			return fmt.Errorf("%w: %d parts presigned already, %d more exceed %d", ErrTooManyParts, last, count, maxParts)
		}
		if u.MultipartID == nil {
			id, err := create()
			if err != nil {
				return err
			}
			u.MultipartID, u.MultipartFileID = &id, &fileID
			if _, err := q.exec(ctx, `UPDATE uploads SET multipart_id = $2, multipart_file_id = $3 WHERE id = $1`, uploadID, id, fileID); err != nil {
				return err
			}
		}
		for i := range count {
			p := newPart(int(last) + 1 + i)
			p.UploadID, p.Presigned = uploadID, true
			if _, err := q.exec(ctx, `INSERT INTO upload_parts (id, upload_id, object_key, bytes, presigned, part_number, created_at) VALUES ($1, $2, $3, $4, 1, $5, $6)`,
				p.ID, p.UploadID, p.ObjectKey, p.Bytes, p.PartNumber, p.CreatedAt); err != nil {
				return err
			}
			parts = append(parts, p)
		}
		return nil
	})
	if err != nil {
		return u, nil, fmt.Errorf("store: presign parts of upload %s: %w", uploadID, err)
	}
	return u, parts, nil
}

// UploadMultipartReset forgets an upload's multipart upload and its parts,
// once the object store no longer has it: the next presigned part starts a
// new one, from part 1.
func (s *Store) UploadMultipartReset(ctx context.Context, uploadID string) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `DELETE FROM upload_parts WHERE upload_id = $1 AND part_number > 0`, uploadID); err != nil {
			return err
		}
		_, err := q.exec(ctx, `UPDATE uploads SET multipart_id = NULL, multipart_file_id = NULL WHERE id = $1`, uploadID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: reset multipart of upload %s: %w", uploadID, err)
	}
	return nil
}

// UploadTransition moves an upload from one of from to to. An upload in
// another status, or (when notAfter > 0) past its expiry, is ErrConflict.
func (s *Store) UploadTransition(ctx context.Context, id string, from []string, to string, notAfter int64) (Upload, error) {
	var u Upload
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		var err error
		u, err = scanUpload(q.queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`+s.d.forUpdate(), id))
		if err != nil {
			return err
		}
		ok := false
		for _, f := range from {
			ok = ok || u.Status == f
		}
		if !ok || (notAfter > 0 && u.ExpiresAt <= notAfter) {
			return ErrConflict
		}
		u.Status = to
		_, err = q.exec(ctx, `UPDATE uploads SET status = $2 WHERE id = $1`, id, to)
		return err
	})
	if err != nil {
		return u, fmt.Errorf("store: upload %s to %s: %w", id, to, err)
	}
	return u, nil
}

// UploadComplete records the assembled file and completes the upload, in
// one transaction. The upload must be completing.
func (s *Store) UploadComplete(ctx context.Context, id string, f File) (Upload, error) {
	var u Upload
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		var err error
		u, err = scanUpload(q.queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`+s.d.forUpdate(), id))
		if err != nil {
			return err
		}
		if u.Status != UploadCompleting {
			return ErrConflict
		}
		if err := s.insertFile(ctx, q, enq, f); err != nil {
			return err
		}
		u.Status, u.FileID = UploadCompleted, &f.ID
		_, err = q.exec(ctx, `UPDATE uploads SET status = $2, file_id = $3 WHERE id = $1`, id, u.Status, f.ID)
		return err
	})
	if err != nil {
		return u, fmt.Errorf("store: complete upload %s: %w", id, err)
	}
	return u, nil
}
