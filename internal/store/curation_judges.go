package store

import (
	"cmp"
	"context"
	"fmt"
)

// Model judges: a kiln batch that asks a local model for pairwise verdicts
// or ratings of a type's outputs, and its answers kept as pre-labels. The
// curation package builds the batch and reads its answers; these persist
// them. Pre-labels are no curator's verdicts: the leaderboard, the exports
// and the pair counts leave them out, and agreement counts each judge as a
// coder of its own (JudgementFilter.Judges).

// Judge statuses.
const (
	JudgeRunning  = "running"
	JudgeImported = "imported"
	JudgeFailed   = "failed"
)

// Judge is one judge run.
type Judge struct {
	ID        string
	ProjectID string
	Type      string
	Model     string
	// Kind is JudgePreference or JudgeRating.
	Kind    string
	BatchID string
	Status  string
	// Requests is how many the batch asked; Labels how many answers were
	// kept, Unreadable how many were not (no answer, or not the schema's).
	Requests, Labels, Unreadable int64
	Error                        string
	CuratorID                    string
	CreatedAt                    int64
	EndedAt                      *int64
}

// Prelabel is a judge's answer on one unit: a pair (OutputA < OutputB)
// and a winner, or an output (OutputA, OutputB "") and a rating.
type Prelabel struct {
	JudgeID, ProjectID, Type, TaskID string
	Kind                             string
	OutputA, OutputB                 string
	Value, Reason                    string
	CreatedAt                        int64
	// Model is the judge's model (read only).
	Model string
}

const judgeColumns = `id, project_id, conquest_type, model, kind, batch_id, status, requests, labels, unreadable, error, curator_id, created_at, ended_at`

func scanJudge(r row) (Judge, error) {
	var j Judge
	err := r.Scan(&j.ID, &j.ProjectID, &j.Type, &j.Model, &j.Kind, &j.BatchID, &j.Status, &j.Requests, &j.Labels, &j.Unreadable, &j.Error,
		&j.CuratorID, &j.CreatedAt, &j.EndedAt)
	return j, err
}

// JudgeCreate records a judge run as running.
func (s *Store) JudgeCreate(ctx context.Context, j Judge) error {
	_, err := s.d.db().exec(ctx, `INSERT INTO curation_judges (`+judgeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, '', $9, $10, NULL)`,
		j.ID, cmp.Or(j.ProjectID, DefaultProject), j.Type, j.Model, j.Kind, j.BatchID, JudgeRunning, j.Requests, j.CuratorID, j.CreatedAt)
	if err != nil {
		return fmt.Errorf("store: create judge: %w", err)
	}
	return nil
}

// JudgeGet returns a project's judge run.
func (s *Store) JudgeGet(ctx context.Context, project, id string) (Judge, error) {
	j, err := scanJudge(s.d.db().queryRow(ctx, `SELECT `+judgeColumns+` FROM curation_judges WHERE project_id = $1 AND id = $2`,
		cmp.Or(project, DefaultProject), id))
	if err != nil {
		return Judge{}, fmt.Errorf("store: judge %s: %w", id, err)
	}
	return j, nil
}

// JudgeByBatch returns the judge run of a batch; ErrNotFound when the
// batch is no judge's.
func (s *Store) JudgeByBatch(ctx context.Context, batchID string) (Judge, error) {
	j, err := scanJudge(s.d.db().queryRow(ctx, `SELECT `+judgeColumns+` FROM curation_judges WHERE batch_id = $1`, batchID))
	if err != nil {
		return Judge{}, fmt.Errorf("store: judge of batch %s: %w", batchID, err)
	}
	return j, nil
}

// JudgeList lists a project's judge runs, newest first, at most limit.
func (s *Store) JudgeList(ctx context.Context, project string, limit int) ([]Judge, error) {
	out, err := collect(ctx, s.d.db(), scanJudge, `SELECT `+judgeColumns+` FROM curation_judges WHERE project_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, cmp.Or(project, DefaultProject), limit)
	if err != nil {
		return nil, fmt.Errorf("store: list judges: %w", err)
	}
	return out, nil
}

var insertPrelabels = bulkInsert{table: "curation_prelabels",
	columns: []string{"judge_id", "project_id", "conquest_type", "task_id", "kind", "output_a", "output_b", "value", "reason", "created_at"},
	suffix:  " ON CONFLICT (judge_id, task_id, output_a, output_b) DO NOTHING"}

// JudgeEnd ends a running judge run: imported with its pre-labels, or
// failed with errMsg (labels then empty), in one transaction. A run that
// has ended already is left as it is, so that an import run twice keeps
// the first; ended says whether this call ended it.
func (s *Store) JudgeEnd(ctx context.Context, id, status, errMsg string, labels []Prelabel, unreadable, at int64) (ended bool, err error) {
	dialect := s.d.name()
	err = s.d.tx(ctx, func(q querier, _ enqueue) error {
		n, err := q.exec(ctx, `UPDATE curation_judges SET status = $2, labels = $3, unreadable = $4, error = $5, ended_at = $6
			WHERE id = $1 AND status = $7`, id, status, int64(len(labels)), unreadable, errMsg, at, JudgeRunning)
		if err != nil || n == 0 {
			return err
		}
		ended = true
		values := make([]any, 0, len(labels)*len(insertPrelabels.columns))
		for _, l := range labels {
			values = append(values, id, cmp.Or(l.ProjectID, DefaultProject), l.Type, l.TaskID, l.Kind, l.OutputA, l.OutputB, l.Value, l.Reason, at)
		}
		_, err = insertPrelabels.exec(ctx, q, dialect, 500, values)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: end judge %s: %w", id, err)
	}
	return ended, nil
}

// PrelabelsOfTask returns the pre-labels of a project's task, with their
// judges' models, oldest judge first.
func (s *Store) PrelabelsOfTask(ctx context.Context, project, taskID string) ([]Prelabel, error) {
	out, err := collect(ctx, s.d.db(), func(r row) (Prelabel, error) {
		var l Prelabel
		err := r.Scan(&l.JudgeID, &l.ProjectID, &l.Type, &l.TaskID, &l.Kind, &l.OutputA, &l.OutputB, &l.Value, &l.Reason, &l.CreatedAt, &l.Model)
		return l, err
	}, `SELECT l.judge_id, l.project_id, l.conquest_type, l.task_id, l.kind, l.output_a, l.output_b, l.value, l.reason, l.created_at, j.model
		FROM curation_prelabels l JOIN curation_judges j ON j.id = l.judge_id
		WHERE l.project_id = $1 AND l.task_id = $2 ORDER BY j.created_at, l.judge_id, l.output_a, l.output_b`,
		cmp.Or(project, DefaultProject), taskID)
	if err != nil {
		return nil, fmt.Errorf("store: pre-labels of task %s: %w", taskID, err)
	}
	return out, nil
}

// RatedBy returns which of a task's outputs a curator has rated.
func (s *Store) RatedBy(ctx context.Context, taskID, curatorID string) (map[string]bool, error) {
	ids, err := collect(ctx, s.d.db(), func(r row) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, `SELECT output_id FROM curation_ratings WHERE task_id = $1 AND curator_id = $2`, taskID, curatorID)
	if err != nil {
		return nil, fmt.Errorf("store: ratings of task %s: %w", taskID, err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// judgedPreferences and judgedRatings are the curators' verdicts and
// ratings with the judges' pre-labels as votes of their own (the judge's
// ID as the curator's), for agreement.
const (
	judgedPreferences = `(SELECT project_id, conquest_type, task_id, output_a, output_b, winner, curator_id, final FROM curation_preferences
		UNION ALL SELECT project_id, conquest_type, task_id, output_a, output_b, value, judge_id, 0 FROM curation_prelabels WHERE kind = 'preference')`
	judgedRatings = `(SELECT project_id, conquest_type, task_id, output_id, curator_id, rating FROM curation_ratings
		UNION ALL SELECT project_id, conquest_type, task_id, output_a, judge_id, CAST(value AS BIGINT) FROM curation_prelabels WHERE kind = 'rating')`
)

// PrelabelKeys are the units the judges of a model have answered in a
// project, of a kind, each as "task output_a output_b" (output_b "" for a
// rating).
func (s *Store) PrelabelKeys(ctx context.Context, project, model, kind string) ([]string, error) {
	out, err := collect(ctx, s.d.db(), func(r row) (string, error) {
		var task, a, b string
		err := r.Scan(&task, &a, &b)
		return task + " " + a + " " + b, err
	}, `SELECT l.task_id, l.output_a, l.output_b FROM curation_prelabels l JOIN curation_judges j ON j.id = l.judge_id
		WHERE l.project_id = $1 AND j.model = $2 AND l.kind = $3`, cmp.Or(project, DefaultProject), model, kind)
	if err != nil {
		return nil, fmt.Errorf("store: pre-labels of %s: %w", model, err)
	}
	return out, nil
}
