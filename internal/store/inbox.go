package store

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// InboxObject is an object dropped in the inbox prefix and what it became.
type InboxObject struct {
	Key     string
	ETag    string
	FileID  string
	BatchID string
	// Released: the object has left the inbox since, at ReleasedAt.
	Released   bool
	ReleasedAt int64
}

// InboxImport records that the object key, at version etag, became file f
// and, when b is not nil, batch b with its jobs, in one transaction. An
// object version imported before is not imported again: the result is the
// earlier import and false.
func (s *Store) InboxImport(ctx context.Context, key, etag string, f File, b *Batch, jobs ...Job) (InboxObject, bool, error) {
	obj := InboxObject{Key: key, ETag: etag, FileID: f.ID}
	if b != nil {
		obj.BatchID = b.ID
	}
	created := true
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		var batchID *string
		if b != nil {
			batchID = &b.ID
		}
		// A released version (the same bytes uploaded again after an
		// import) is imported anew; one not released is a duplicate.
		n, err := q.exec(ctx, `INSERT INTO inbox_objects (object_key, etag, file_id, batch_id, created_at, project_id) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (object_key, etag) DO UPDATE SET file_id = excluded.file_id, batch_id = excluded.batch_id,
				created_at = excluded.created_at, released_at = NULL, project_id = excluded.project_id
			WHERE inbox_objects.released_at IS NOT NULL`, key, etag, f.ID, batchID, now(), cmp.Or(f.ProjectID, DefaultProject))
		if err != nil {
			return err
		}
		if n == 0 {
			created = false
			var fileID, bID *string
			if err := q.queryRow(ctx, `SELECT file_id, batch_id FROM inbox_objects WHERE object_key = $1 AND etag = $2`, key, etag).Scan(&fileID, &bID); err != nil {
				return err
			}
			obj.FileID, obj.BatchID = deref(fileID), deref(bID)
			return nil
		}
		if err := s.insertFile(ctx, q, enq, f); err != nil {
			return err
		}
		if b != nil {
			if err := insertBatch(ctx, q, *b); err != nil {
				return err
			}
		}
		return enqueueAll(ctx, enq, jobs)
	})
	if err != nil {
		return InboxObject{}, false, fmt.Errorf("store: import %s: %w", key, err)
	}
	return obj, created, nil
}

// InboxGet returns what an object version became.
func (s *Store) InboxGet(ctx context.Context, key, etag string) (InboxObject, error) {
	obj := InboxObject{Key: key, ETag: etag}
	var fileID, batchID *string
	var released *int64
	err := s.d.db().queryRow(ctx, `SELECT file_id, batch_id, released_at FROM inbox_objects WHERE object_key = $1 AND etag = $2`, key, etag).
		Scan(&fileID, &batchID, &released)
	if err != nil {
		return InboxObject{}, fmt.Errorf("store: inbox object %s: %w", key, err)
	}
	obj.FileID, obj.BatchID, obj.Released = deref(fileID), deref(batchID), released != nil
	if released != nil {
		obj.ReleasedAt = *released
	}
	return obj, nil
}

// InboxRelease records that an imported object version has left the inbox:
// the same version seen in it again is a new object.
func (s *Store) InboxRelease(ctx context.Context, key, etag string) error {
	// Milliseconds: each release tells a re-upload's event apart.
	if _, err := s.d.db().exec(ctx, `UPDATE inbox_objects SET released_at = $3 WHERE object_key = $1 AND etag = $2`,
		key, etag, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("store: release inbox object %s: %w", key, err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
