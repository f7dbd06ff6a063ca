package store

import (
	"context"
	"fmt"
)

// InboxObject is an object dropped in the inbox prefix and what it became.
type InboxObject struct {
	Key     string
	ETag    string
	FileID  string
	BatchID string
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
		n, err := q.exec(ctx, `INSERT INTO inbox_objects (object_key, etag, file_id, batch_id, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (object_key, etag) DO NOTHING`, key, etag, f.ID, batchID, now())
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
	err := s.d.db().queryRow(ctx, `SELECT file_id, batch_id FROM inbox_objects WHERE object_key = $1 AND etag = $2`, key, etag).Scan(&fileID, &batchID)
	if err != nil {
		return InboxObject{}, fmt.Errorf("store: inbox object %s: %w", key, err)
	}
	obj.FileID, obj.BatchID = deref(fileID), deref(batchID)
	return obj, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
