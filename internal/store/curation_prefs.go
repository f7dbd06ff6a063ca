package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kilnhq/kiln/internal/ids"
)

// Pairwise preferences, per-curator ratings, queues per curator and what
// agreement between curators is computed from. The curation package
// decides; these persist and count.

// Preference winners.
const (
	PreferA       = "a"
	PreferB       = "b"
	PreferTie     = "tie"
	PreferBothBad = "both_bad"
)

// preferencePrefix starts a preference's ID.
const preferencePrefix = "pref_"

// Preference is one curator's verdict on two outputs of one task.
type Preference struct {
	ID        string
	ProjectID string
	TaskID    string
	// ConquestType is the task's type.
	ConquestType string
	// OutputA < OutputB (by ID) once stored, whichever order they were
	// given in; Winner follows them.
	OutputA, OutputB string
	// ModelA and ModelB are the outputs' models.
	ModelA, ModelB string
	Winner         string
	Reason         string
	CuratorID      string
	// Final is an admin's verdict that settles the pair: it alone counts.
	Final     bool
	CreatedAt int64
}

// flip swaps a preference's sides, and its winner with them.
func (p *Preference) flip() {
	p.OutputA, p.OutputB = p.OutputB, p.OutputA
	p.ModelA, p.ModelB = p.ModelB, p.ModelA
	switch p.Winner {
	case PreferA:
		p.Winner = PreferB
	case PreferB:
		p.Winner = PreferA
	}
}

const preferenceColumns = `id, project_id, task_id, conquest_type, output_a, output_b, model_a, model_b, winner, reason, curator_id, final, created_at`

func scanPreference(r row) (Preference, error) {
	var p Preference
	var final int64
	err := r.Scan(&p.ID, &p.ProjectID, &p.TaskID, &p.ConquestType, &p.OutputA, &p.OutputB, &p.ModelA, &p.ModelB, &p.Winner, &p.Reason,
		&p.CuratorID, &final, &p.CreatedAt)
	p.Final = final == 1
	return p, err
}

// pairCountColumn is the column of curation_pair_counts that a winner
// counts in, for a pair stored as (modelA, modelB).
func pairCountColumn(winner, modelA, modelB string) string {
	switch winner {
	case PreferA:
		if modelA < modelB {
			return "wins_lo"
		}
		return "wins_hi"
	case PreferB:
		if modelB < modelA {
			return "wins_lo"
		}
		return "wins_hi"
	case PreferTie:
		return "ties"
	default:
		return "both_bad"
	}
}

// PreferenceSave stores a curator's verdict on two outputs of a task (p's
// TaskID, OutputA, OutputB, Winner, Reason, CuratorID, Final): the task's
// project and type and the outputs' models are filled in, and the pair is
// put in order. A verdict of the same curator on the same pair is
// replaced. An output that is not the task's is ErrNotFound. It returns
// the verdict as stored.
func (s *Store) PreferenceSave(ctx context.Context, p Preference) (Preference, error) {
	if p.OutputA == p.OutputB {
		return Preference{}, fmt.Errorf("store: preference: an output compared with itself: %w", ErrConflict)
	}
	if p.OutputA > p.OutputB {
		p.flip()
	}
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if err := q.queryRow(ctx, `SELECT project_id, conquest_type FROM curation_tasks WHERE id = $1`, p.TaskID).
			Scan(&p.ProjectID, &p.ConquestType); err != nil {
			return err
		}
		models := map[string]string{}
		rs, err := q.query(ctx, `SELECT id, model FROM curation_outputs WHERE task_id = $1 AND id IN ($2, $3)`, p.TaskID, p.OutputA, p.OutputB)
		if err != nil {
			return err
		}
		for rs.Next() {
			var id, m string
			if err := rs.Scan(&id, &m); err != nil {
				rs.Close()
				return err
			}
			models[id] = m
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		if len(models) != 2 {
			return fmt.Errorf("outputs %s and %s of task %s: %w", p.OutputA, p.OutputB, p.TaskID, ErrNotFound)
		}
		p.ModelA, p.ModelB = models[p.OutputA], models[p.OutputB]
		p.CreatedAt = now()
		old, err := scanPreference(q.queryRow(ctx, `SELECT `+preferenceColumns+` FROM curation_preferences
			WHERE task_id = $1 AND output_a = $2 AND output_b = $3 AND curator_id = $4`+s.d.forUpdate(), p.TaskID, p.OutputA, p.OutputB, p.CuratorID))
		final := 0
		if p.Final {
			final = 1
		}
		switch {
		case err == nil:
			p.ID = old.ID
			if err := countPair(ctx, q, old, -1); err != nil {
				return err
			}
			if _, err := q.exec(ctx, `UPDATE curation_preferences SET winner = $2, reason = $3, final = $4, created_at = $5 WHERE id = $1`,
				p.ID, p.Winner, p.Reason, final, p.CreatedAt); err != nil {
				return err
			}
		case isNotFound(err):
			p.ID = ids.New(preferencePrefix)
			if _, err := q.exec(ctx, `INSERT INTO curation_preferences (`+preferenceColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				p.ID, p.ProjectID, p.TaskID, p.ConquestType, p.OutputA, p.OutputB, p.ModelA, p.ModelB, p.Winner, p.Reason, p.CuratorID,
				final, p.CreatedAt); err != nil {
				return err
			}
		default:
			return err
		}
		return countPair(ctx, q, p, 1)
	})
	if err != nil {
		return Preference{}, fmt.Errorf("store: save preference on task %s: %w", p.TaskID, err)
	}
	return p, nil
}

// countPair adds delta to the count of p's verdict for its pair of models;
// two outputs of one model count for nothing.
func countPair(ctx context.Context, q querier, p Preference, delta int) error {
	if p.ModelA == p.ModelB {
		return nil
	}
	lo, hi := min(p.ModelA, p.ModelB), max(p.ModelA, p.ModelB)
	col := pairCountColumn(p.Winner, p.ModelA, p.ModelB)
	_, err := q.exec(ctx, `INSERT INTO curation_pair_counts (project_id, conquest_type, model_lo, model_hi, `+col+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (project_id, conquest_type, model_lo, model_hi) DO UPDATE SET `+col+` = curation_pair_counts.`+col+` + $5`,
		p.ProjectID, p.ConquestType, lo, hi, delta)
	return err
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// PreferenceFilter selects preferences of one project; "" selects all.
type PreferenceFilter struct {
	// Project is the preferences' project. Default: DefaultProject.
	Project   string
	Type      string
	TaskID    string
	CuratorID string
}

// PreferenceList lists preferences matching f, newest first, after the
// cursor (an ID), up to limit, and whether more follow.
func (s *Store) PreferenceList(ctx context.Context, f PreferenceFilter, after string, limit int) ([]Preference, bool, error) {
	out, more, err := newestPage(ctx, s.d.db(), scanPreference, `SELECT `+preferenceColumns+` FROM curation_preferences`, nil,
		[][2]string{{"project_id", cmp.Or(f.Project, DefaultProject)}, {"conquest_type", f.Type}, {"task_id", f.TaskID}, {"curator_id", f.CuratorID}},
		after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("store: list preferences: %w", err)
	}
	return out, more, nil
}

// PairCount is the verdicts on one pair of models of one type: ModelLo <
// ModelHi.
type PairCount struct {
	Type             string
	ModelLo, ModelHi string
	WinsLo, WinsHi   int64
	Ties, BothBad    int64
}

// Total is how many verdicts the pair has.
func (c PairCount) Total() int64 { return c.WinsLo + c.WinsHi + c.Ties + c.BothBad }

// PreferencePairCounts returns the verdicts of a project ("" the default
// project's) per type ("" every type) and pair of models, every verdict
// counted (finals and the verdicts they settle alike): cheap, kept with
// each verdict, for choosing the next pair.
func (s *Store) PreferencePairCounts(ctx context.Context, project, typ string) ([]PairCount, error) {
	args := []any{cmp.Or(project, DefaultProject)}
	where := "project_id = $1"
	if typ != "" {
		args = append(args, typ)
		where += " AND conquest_type = $2"
	}
	out, err := collect(ctx, s.d.db(), func(r row) (PairCount, error) {
		var c PairCount
		err := r.Scan(&c.Type, &c.ModelLo, &c.ModelHi, &c.WinsLo, &c.WinsHi, &c.Ties, &c.BothBad)
		return c, err
	}, `SELECT conquest_type, model_lo, model_hi, wins_lo, wins_hi, ties, both_bad FROM curation_pair_counts WHERE `+where+`
		ORDER BY conquest_type, model_lo, model_hi`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: pair counts: %w", err)
	}
	return out, nil
}

// settled is the condition that keeps a verdict of p: a final one, or one
// on a pair that has no final verdict.
const settled = `(p.final = 1 OR NOT EXISTS (SELECT 1 FROM curation_preferences f
	WHERE f.task_id = p.task_id AND f.output_a = p.output_a AND f.output_b = p.output_b AND f.final = 1))`

// PreferenceTallies counts a project's verdicts ("" the default project's)
// per type ("" every type) and pair of models, as the leaderboard counts
// them: where an admin settled a pair, their verdict alone.
func (s *Store) PreferenceTallies(ctx context.Context, project, typ string) ([]PairCount, error) {
	args := []any{cmp.Or(project, DefaultProject)}
	where := "p.project_id = $1 AND p.model_a <> p.model_b AND " + settled
	if typ != "" {
		args = append(args, typ)
		where += " AND p.conquest_type = $2"
	}
	type tally struct {
		typ, a, b, winner string
		n                 int64
	}
	rows, err := collect(ctx, s.d.db(), func(r row) (tally, error) {
		var t tally
		err := r.Scan(&t.typ, &t.a, &t.b, &t.winner, &t.n)
		return t, err
	}, `SELECT p.conquest_type, p.model_a, p.model_b, p.winner, COUNT(*) FROM curation_preferences p WHERE `+where+`
		GROUP BY p.conquest_type, p.model_a, p.model_b, p.winner`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: preference tallies: %w", err)
	}
	byPair := map[[3]string]*PairCount{}
	var order [][3]string
	for _, t := range rows {
		k := [3]string{t.typ, min(t.a, t.b), max(t.a, t.b)}
		c, ok := byPair[k]
		if !ok {
			c = &PairCount{Type: k[0], ModelLo: k[1], ModelHi: k[2]}
			byPair[k] = c
			order = append(order, k)
		}
		switch pairCountColumn(t.winner, t.a, t.b) {
		case "wins_lo":
			c.WinsLo += t.n
		case "wins_hi":
			c.WinsHi += t.n
		case "ties":
			c.Ties += t.n
		default:
			c.BothBad += t.n
		}
	}
	out := make([]PairCount, 0, len(order))
	for _, k := range order {
		out = append(out, *byPair[k])
	}
	sortPairCounts(out)
	return out, nil
}

func sortPairCounts(out []PairCount) {
	key := func(c PairCount) string { return c.Type + "\x00" + c.ModelLo + "\x00" + c.ModelHi }
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && key(out[j]) < key(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
}

// PreferenceVerdict is the verdicts on one pair of outputs of a task, as
// the exports read them: where an admin settled the pair, their verdict
// alone.
type PreferenceVerdict struct {
	TaskID           string
	OutputA, OutputB string
	A, B             int64 // verdicts for each
	Ties, BothBad    int64
}

// PreferenceVerdicts returns, for a project's tasks ("" the default
// project's) of a type ("" every type), the verdicts per pair of outputs,
// by task.
func (s *Store) PreferenceVerdicts(ctx context.Context, project, typ string) ([]PreferenceVerdict, error) {
	args := []any{cmp.Or(project, DefaultProject)}
	where := "p.project_id = $1 AND " + settled
	if typ != "" {
		args = append(args, typ)
		where += " AND p.conquest_type = $2"
	}
	out, err := collect(ctx, s.d.db(), func(r row) (PreferenceVerdict, error) {
		var v PreferenceVerdict
		err := r.Scan(&v.TaskID, &v.OutputA, &v.OutputB, &v.A, &v.B, &v.Ties, &v.BothBad)
		return v, err
	}, `SELECT p.task_id, p.output_a, p.output_b, SUM(CASE WHEN p.winner = 'a' THEN 1 ELSE 0 END), SUM(CASE WHEN p.winner = 'b' THEN 1 ELSE 0 END),
		SUM(CASE WHEN p.winner = 'tie' THEN 1 ELSE 0 END), SUM(CASE WHEN p.winner = 'both_bad' THEN 1 ELSE 0 END)
		FROM curation_preferences p WHERE `+where+` GROUP BY p.task_id, p.output_a, p.output_b ORDER BY p.task_id, p.output_a, p.output_b`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: preference verdicts: %w", err)
	}
	return out, nil
}

// PairCandidate is a task with an output of each of two models.
type PairCandidate struct {
	TaskID string
	// OutputLo is the output of the first model named, OutputHi of the
	// second.
	OutputLo, OutputHi string
}

// PairCandidates lists tasks matching f (by ID, after the cursor, up to
// limit) with an output of each of two models that the curator has not
// judged together yet.
func (s *Store) PairCandidates(ctx context.Context, f TaskFilter, modelLo, modelHi, curatorID, after string, limit int) ([]PairCandidate, error) {
	var args []any
	where := f.where(s.d.name(), &args)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if after != "" {
		where += " AND t.id > " + arg(after)
	}
	lo, hi, cur := arg(modelLo), arg(modelHi), arg(curatorID)
	sql := `SELECT t.id, ol.id, oh.id FROM curation_tasks t
		JOIN curation_outputs ol ON ol.task_id = t.id AND ol.model = ` + lo + `
		JOIN curation_outputs oh ON oh.task_id = t.id AND oh.model = ` + hi + `
		WHERE ` + where + ` AND NOT EXISTS (SELECT 1 FROM curation_preferences p WHERE p.task_id = t.id AND p.curator_id = ` + cur + `
			AND ((p.output_a = ol.id AND p.output_b = oh.id) OR (p.output_a = oh.id AND p.output_b = ol.id)))
		ORDER BY t.id, ol.id, oh.id LIMIT ` + arg(limit)
	out, err := collect(ctx, s.d.db(), func(r row) (PairCandidate, error) {
		var c PairCandidate
		err := r.Scan(&c.TaskID, &c.OutputLo, &c.OutputHi)
		return c, err
	}, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: pair candidates: %w", err)
	}
	return out, nil
}

// PreferenceLastTask is the last task (by ID) on which a curator judged
// outputs of two models in a project, "" for none: where the search for
// their next pair of these models resumes.
func (s *Store) PreferenceLastTask(ctx context.Context, project, curatorID, modelLo, modelHi string) (string, error) {
	var id *string
	err := s.d.db().queryRow(ctx, `SELECT MAX(task_id) FROM curation_preferences WHERE curator_id = $1 AND project_id = $2
		AND ((model_a = $3 AND model_b = $4) OR (model_a = $4 AND model_b = $3))`, curatorID, cmp.Or(project, DefaultProject), modelLo, modelHi).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("store: last judged task: %w", err)
	}
	if id == nil {
		return "", nil
	}
	return *id, nil
}

// Judgement kinds: what curators gave a unit.
const (
	// JudgePreference: a unit is a pair of outputs of a task, a value a
	// winner.
	JudgePreference = "preference"
	// JudgeRating: a unit is an output, a value its rating.
	JudgeRating = "rating"
)

// Vote is one curator's value for a unit.
type Vote struct {
	CuratorID string
	Value     string
	// Final: an admin's verdict that settles the unit (preferences).
	Final bool
}

// JudgementUnit is what several curators judged: a pair of outputs of a
// task (Unit "output_a output_b") or an output (Unit its ID).
type JudgementUnit struct {
	Type   string
	TaskID string
	Unit   string
	Votes  []Vote
}

// JudgementFilter selects the units CurationJudgements reads.
type JudgementFilter struct {
	// Project: default DefaultProject.
	Project string
	// Type: "" for every type.
	Type string
	// Kind is JudgePreference or JudgeRating.
	Kind string
	// Judges counts the judges' pre-labels as votes, each judge a coder
	// of its own.
	Judges bool
}

// CurationJudgements calls fn for every unit of f's kind that two curators
// or more judged, in order of unit, with their votes by curator; it reads
// a few thousand votes at a time. An error from fn stops it.
func (s *Store) CurationJudgements(ctx context.Context, f JudgementFilter, fn func(JudgementUnit) error) error {
	var table, unit, value, final, keyset string
	switch f.Kind {
	case JudgePreference:
		table, unit, value, final = "curation_preferences", "p.output_a || ' ' || p.output_b", "p.winner", "p.final"
		keyset = "p.task_id, p.output_a, p.output_b, p.curator_id"
	case JudgeRating:
		table, unit, value, final = "curation_ratings", "p.output_id", "CAST(p.rating AS TEXT)", "0"
		keyset = "p.task_id, p.output_id, p.curator_id"
	default:
		return fmt.Errorf("store: judgements of kind %q", f.Kind)
	}
	if f.Judges {
		table = map[string]string{JudgePreference: judgedPreferences, JudgeRating: judgedRatings}[f.Kind]
	}
	// Every vote is read in the order of an index (no correlated check
	// for another curator's, which made each page cost the whole table):
	// the units one curator alone judged are dropped here.
	emit := func(u JudgementUnit) error {
		if len(u.Votes) < 2 {
			return nil
		}
		return fn(u)
	}
	const pageSize = 5000
	var cursor []any
	var cur *JudgementUnit
	for {
		args := []any{cmp.Or(f.Project, DefaultProject)}
		where := "p.project_id = $1"
		if f.Type != "" {
			args = append(args, f.Type)
			where += fmt.Sprintf(" AND p.conquest_type = $%d", len(args))
		}
		if cursor != nil {
			ph := make([]string, len(cursor))
			for i, v := range cursor {
				args = append(args, v)
				ph[i] = fmt.Sprintf("$%d", len(args))
			}
			where += " AND (" + keyset + ") > (" + strings.Join(ph, ", ") + ")"
		}
		args = append(args, pageSize)
		sql := `SELECT p.conquest_type, p.task_id, ` + unit + `, p.curator_id, ` + value + `, ` + final + `, ` + keyset + `
			FROM ` + table + ` p WHERE ` + where + `
			ORDER BY ` + keyset + fmt.Sprintf(` LIMIT $%d`, len(args))
		rs, err := s.d.db().query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("store: judgements: %w", err)
		}
		n := 0
		for rs.Next() {
			n++
			var typ, task, u string
			var v Vote
			var fin int64
			keys := make([]any, strings.Count(keyset, ",")+1)
			strs := make([]string, len(keys))
			dest := []any{&typ, &task, &u, &v.CuratorID, &v.Value, &fin}
			for i := range strs {
				dest = append(dest, &strs[i])
			}
			if err := rs.Scan(dest...); err != nil {
				rs.Close()
				return fmt.Errorf("store: judgements: %w", err)
			}
			for i := range strs {
				keys[i] = strs[i]
			}
			cursor = keys
			v.Final = fin == 1
			if cur != nil && (cur.TaskID != task || cur.Unit != u) {
				if err := emit(*cur); err != nil {
					rs.Close()
					return err
				}
				cur = nil
			}
			if cur == nil {
				cur = &JudgementUnit{Type: typ, TaskID: task, Unit: u}
			}
			cur.Votes = append(cur.Votes, v)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("store: judgements: %w", err)
		}
		if n < pageSize {
			break
		}
	}
	if cur != nil {
		return emit(*cur)
	}
	return nil
}

// CurationTaskIDs lists the IDs of tasks matching f, in order, after the
// cursor, up to limit.
func (s *Store) CurationTaskIDs(ctx context.Context, f TaskFilter, after string, limit int) ([]string, error) {
	var args []any
	where := f.where(s.d.name(), &args)
	if after != "" {
		args = append(args, after)
		where += fmt.Sprintf(" AND t.id > $%d", len(args))
	}
	args = append(args, limit)
	out, err := collect(ctx, s.d.db(), func(r row) (string, error) {
		var id string
		err := r.Scan(&id)
		return id, err
	}, `SELECT t.id FROM curation_tasks t WHERE `+where+fmt.Sprintf(` ORDER BY t.id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("store: task IDs: %w", err)
	}
	return out, nil
}

// CuratorTasksDone lists, in order, after the cursor and up to limit, the
// project's tasks ("" the default project's) that a curator judged: a
// preference or a rating of theirs.
func (s *Store) CuratorTasksDone(ctx context.Context, project, curatorID, after string, limit int) ([]string, error) {
	out, err := collect(ctx, s.d.db(), func(r row) (string, error) {
		var id string
		err := r.Scan(&id)
		return id, err
	}, `SELECT task_id FROM (
			SELECT task_id FROM curation_preferences WHERE curator_id = $1 AND project_id = $2 AND task_id > $3
			UNION
			SELECT task_id FROM curation_ratings WHERE curator_id = $1 AND project_id = $2 AND task_id > $3
		) done ORDER BY task_id LIMIT $4`, curatorID, cmp.Or(project, DefaultProject), after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: tasks done by %s: %w", curatorID, err)
	}
	return out, nil
}

// Queue is a curator's share of a project's tasks: those of a type, with
// an output of a model, whose prompt holds a text ("" for any).
type Queue struct {
	CuratorID string
	Type      string
	Model     string
	Query     string
}

// Filter is the tasks of a project that the queue holds.
func (q Queue) Filter(project string) TaskFilter {
	return TaskFilter{Project: project, Type: q.Type, Model: q.Model, Text: q.Query}
}

// Assignment is how a project's tasks are shared among curators.
type Assignment struct {
	// Overlap is the share of tasks (0 to 1) that Reviewers curators
	// review, rather than one.
	Overlap   float64
	Reviewers int64
	// Queues, by curator ID.
	Queues []Queue
}

// AssignmentDefaultReviewers is how many curators review a task of the
// overlap, unless set.
const AssignmentDefaultReviewers = 2

// AssignmentGet returns a project's assignment ("" the default
// project's): no queue and no overlap until one is set.
func (s *Store) AssignmentGet(ctx context.Context, project string) (Assignment, error) {
	project = cmp.Or(project, DefaultProject)
	a := Assignment{Reviewers: AssignmentDefaultReviewers}
	err := s.d.db().queryRow(ctx, `SELECT overlap, reviewers FROM curation_assignment WHERE project_id = $1`, project).Scan(&a.Overlap, &a.Reviewers)
	if err != nil && !isNotFound(err) {
		return Assignment{}, fmt.Errorf("store: assignment: %w", err)
	}
	a.Queues, err = collect(ctx, s.d.db(), func(r row) (Queue, error) {
		var q Queue
		err := r.Scan(&q.CuratorID, &q.Type, &q.Model, &q.Query)
		return q, err
	}, `SELECT curator_id, conquest_type, model, query FROM curation_queues WHERE project_id = $1 ORDER BY curator_id`, project)
	if err != nil {
		return Assignment{}, fmt.Errorf("store: queues: %w", err)
	}
	return a, nil
}

// AssignmentSet replaces a project's assignment ("" the default
// project's), its queues with it, in one transaction.
func (s *Store) AssignmentSet(ctx context.Context, project string, a Assignment) error {
	project = cmp.Or(project, DefaultProject)
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `INSERT INTO curation_assignment (project_id, overlap, reviewers) VALUES ($1, $2, $3)
			ON CONFLICT (project_id) DO UPDATE SET overlap = excluded.overlap, reviewers = excluded.reviewers`,
			project, a.Overlap, cmp.Or(a.Reviewers, AssignmentDefaultReviewers)); err != nil {
			return err
		}
		if _, err := q.exec(ctx, `DELETE FROM curation_queues WHERE project_id = $1`, project); err != nil {
			return err
		}
		for _, qu := range a.Queues {
			if _, err := q.exec(ctx, `INSERT INTO curation_queues (project_id, curator_id, conquest_type, model, query) VALUES ($1, $2, $3, $4, $5)`,
				project, qu.CuratorID, qu.Type, qu.Model, qu.Query); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: set assignment: %w", err)
	}
	return nil
}

// keepRating keeps an output's rating, or its clearing, as the curator's
// own, in the annotation's transaction.
func keepRating(ctx context.Context, q querier, curatorID, project, typ, taskID string, o OutputAnnotation, at int64) error {
	switch {
	case curatorID == "":
		return nil
	case o.ClearRating:
		_, err := q.exec(ctx, `DELETE FROM curation_ratings WHERE output_id = $1 AND curator_id = $2`, o.ID, curatorID)
		return err
	case o.Rating != nil:
		_, err := q.exec(ctx, `INSERT INTO curation_ratings (output_id, curator_id, task_id, project_id, conquest_type, rating, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (output_id, curator_id) DO UPDATE SET rating = excluded.rating, at = excluded.at`,
			o.ID, curatorID, taskID, project, typ, *o.Rating, at)
		return err
	}
	return nil
}

// insertTypeModels records the models that answered a type.
var insertTypeModels = bulkInsert{table: "curation_type_models", columns: []string{"project_id", "conquest_type", "model"},
	suffix: "ON CONFLICT (project_id, conquest_type, model) DO NOTHING"}

// keepTypeModels records, with an import's chunk, the models of its
// outputs per project and type.
func keepTypeModels(ctx context.Context, q querier, dialect string, chunk []ImportItem) error {
	seen := map[[3]string]bool{}
	var args []any
	for _, it := range chunk {
		if it.Output.BatchID == "" {
			continue
		}
		k := [3]string{cmp.Or(it.ProjectID, DefaultProject), it.ConquestType, it.Output.Model}
		if !seen[k] {
			seen[k] = true
			args = append(args, k[0], k[1], k[2])
		}
	}
	_, err := insertTypeModels.exec(ctx, q, dialect, 500, args)
	return err
}

// TypeModel is a model that answered tasks of a type.
type TypeModel struct {
	Type, Model string
}

// CurationTypeModels lists the models that answered a project's tasks ("" the
// default project's) per type ("" every type), by type and model.
func (s *Store) CurationTypeModels(ctx context.Context, project, typ string) ([]TypeModel, error) {
	args := []any{cmp.Or(project, DefaultProject)}
	where := "project_id = $1"
	if typ != "" {
		args = append(args, typ)
		where += " AND conquest_type = $2"
	}
	out, err := collect(ctx, s.d.db(), func(r row) (TypeModel, error) {
		var m TypeModel
		err := r.Scan(&m.Type, &m.Model)
		return m, err
	}, `SELECT conquest_type, model FROM curation_type_models WHERE `+where+` ORDER BY conquest_type, model`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: models of types: %w", err)
	}
	return out, nil
}
