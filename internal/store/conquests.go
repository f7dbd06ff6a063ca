package store

import (
	"context"
	"fmt"
)

// ConquestOutput is the validity of one output of a conquest batch.
type ConquestOutput struct {
	CustomID string
	Line     int64
	Valid    bool
	Reason   string
	Message  string
}

// insertConquestOutputs is ConquestRecord's multi-row insert.
var insertConquestOutputs = bulkInsert{table: "conquest_outputs",
	columns: []string{"batch_id", "custom_id", "line", "valid", "reason", "message"},
	suffix:  "ON CONFLICT (batch_id, custom_id) DO NOTHING"}

// ConquestRecord replaces the recorded validity of a batch's outputs and
// its counts, in one transaction, so that a check run twice leaves one
// result. errMsg, when not empty, says why no output could be checked.
func (s *Store) ConquestRecord(ctx context.Context, batchID string, outs []ConquestOutput, errMsg string) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `DELETE FROM conquest_outputs WHERE batch_id = $1`, batchID); err != nil {
			return err
		}
		var valid, invalid int64
		var args []any
		size := s.importChunk()
		for start := 0; start < len(outs); start += size {
			args = args[:0]
			for _, o := range outs[start:min(start+size, len(outs))] {
				v := 0
				if o.Valid {
					v = 1
					valid++
				} else {
					invalid++
				}
				args = append(args, batchID, o.CustomID, o.Line, v, o.Reason, o.Message)
			}
			if _, err := insertConquestOutputs.exec(ctx, q, s.d.name(), size, args); err != nil {
				return err
			}
		}
		_, err := q.exec(ctx, `UPDATE batches SET conquest_valid = $2, conquest_invalid = $3, conquest_checked_at = $4, conquest_error = $5 WHERE id = $1`,
			batchID, valid, invalid, now(), errMsg)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record conquest outputs of %s: %w", batchID, err)
	}
	return nil
}

// ConquestOutputList lists a batch's checked outputs in output-file order:
// all, or only the valid (valid = 1) or invalid (valid = 0) ones (-1: all),
// after the custom_id cursor, up to limit, and whether more follow.
func (s *Store) ConquestOutputList(ctx context.Context, batchID string, valid int, afterLine int64, limit int) ([]ConquestOutput, bool, error) {
	sql := `SELECT custom_id, line, valid, reason, message FROM conquest_outputs WHERE batch_id = $1 AND line > $2`
	args := []any{batchID, afterLine}
	if valid >= 0 {
		args = append(args, valid)
		sql += fmt.Sprintf(` AND valid = $%d`, len(args))
	}
	args = append(args, limit+1)
	sql += fmt.Sprintf(` ORDER BY line LIMIT $%d`, len(args))
	out, err := collect(ctx, s.d.db(), func(r row) (ConquestOutput, error) {
		var o ConquestOutput
		var v int64
		err := r.Scan(&o.CustomID, &o.Line, &v, &o.Reason, &o.Message)
		o.Valid = v == 1
		return o, err
	}, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list conquest outputs of %s: %w", batchID, err)
	}
	return page(out, limit)
}
