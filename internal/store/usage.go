package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Usage is the work the agents did for one project and model in one time
// bucket: the tokens and requests of the result chunks they committed.
type Usage struct {
	// Bucket is the bucket's index: its chunks were committed from
	// Start+Bucket*Width on, before the next bucket.
	Bucket       int64
	ProjectID    string
	Model        string
	InputTokens  int64
	OutputTokens int64
	// Requests are the requests the agents ran, answered or failed.
	Requests int64
}

// UsageFilter selects usage: chunks committed in [Start, End), in buckets
// of Width seconds from Start, of the projects and models named (none:
// all).
type UsageFilter struct {
	Start, End int64
	Width      int64
	ProjectIDs []string
	Models     []string
}

// UsageList sums the batches' usage per bucket, project and model, from
// their result chunks, ordered by bucket, project and model. Each chunk
// counts in the bucket of the time it was committed, so a batch that runs
// past midnight counts on both days.
func (s *Store) UsageList(ctx context.Context, f UsageFilter) ([]Usage, error) {
	if f.Width <= 0 {
		return nil, fmt.Errorf("store: usage: bucket width %d: %w", f.Width, ErrConflict)
	}
	args := []any{f.Start, f.Width, f.End}
	where := []string{"c.created_at >= $1", "c.created_at < $3"}
	in := func(col string, vs []string) {
		if len(vs) == 0 {
			return
		}
		ph := make([]string, len(vs))
		for i, v := range vs {
			args = append(args, v)
			ph[i] = "$" + strconv.Itoa(len(args))
		}
		where = append(where, col+" IN ("+strings.Join(ph, ", ")+")")
	}
	in("b.project_id", f.ProjectIDs)
	in("b.model", f.Models)
	sql := `SELECT (c.created_at - $1) / $2 AS bucket, b.project_id, b.model,
			CAST(SUM(c.input_tokens) AS BIGINT), CAST(SUM(c.output_tokens) AS BIGINT),
			CAST(SUM(c.output_lines + c.error_lines) AS BIGINT)
		FROM batch_chunks c JOIN batches b ON b.id = c.batch_id
		WHERE ` + strings.Join(where, " AND ") + `
		GROUP BY bucket, b.project_id, b.model`
	out, err := collect(ctx, s.d.db(), func(r row) (Usage, error) {
		var u Usage
		err := r.Scan(&u.Bucket, &u.ProjectID, &u.Model, &u.InputTokens, &u.OutputTokens, &u.Requests)
		return u, err
	}, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	// Sorted here, not in SQL: the databases' collations differ.
	slices.SortFunc(out, func(a, b Usage) int {
		return cmp.Or(cmp.Compare(a.Bucket, b.Bucket), strings.Compare(a.ProjectID, b.ProjectID), strings.Compare(a.Model, b.Model))
	})
	return out, nil
}
