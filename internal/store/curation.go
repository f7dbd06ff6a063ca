package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kilnhq/kiln/internal/ids"
)

// Curation task statuses.
const (
	TaskPending  = "pending"
	TaskReviewed = "reviewed"
	TaskSkipped  = "skipped"
)

// CurationTask is one conquest input that models answered.
type CurationTask struct {
	ID string
	// ProjectID is the task's project: its batch's, or the project an
	// import from elsewhere was made in.
	ProjectID       string
	ConquestType    string
	ConquestVersion int64
	Key             string
	Input           json.RawMessage
	Status          string
	GoldOutputID    *string
	Notes           string
	Version         int64
	Curator         string
	CreatedAt       int64
	UpdatedAt       int64
	// Outputs counts the task's outputs (in lists).
	Outputs int64
}

// CurationOutput is one model's answer to a task, and its annotations.
type CurationOutput struct {
	ID               string
	TaskID           string
	BatchID          string
	Model            string
	Content          string
	Valid            bool
	Reason           string
	Message          string
	InputTokens      int64
	OutputTokens     int64
	LatencyMS        *int64
	Rating           *int64
	Corrected        *string
	CorrectedValid   *bool
	CorrectedMessage string
	CreatedAt        int64
	UpdatedAt        int64
}

// HistoryEntry is one change of a task.
type HistoryEntry struct {
	ID      string
	TaskID  string
	Curator string
	Action  string
	Detail  json.RawMessage
	At      int64
}

// ImportItem is one output to import, with its task; an item whose
// Output has no BatchID adds the task alone, and one with a nil Input
// adds an output to a task that exists.
type ImportItem struct {
	// ProjectID is the task's project: a task is one per project, conquest
	// type and key. Default: DefaultProject.
	ProjectID       string
	ConquestType    string
	ConquestVersion int64
	Key             string
	Input           json.RawMessage
	SearchText      string
	Output          CurationOutput
}

// ImportResult is what an import added.
type ImportResult struct {
	Tasks, Outputs int64
	// Already: the batch was imported before; nothing was added.
	Already bool
}

// importChunk is how many rows one multi-row insert of kept records
// holds: fewer on SQLite, where a statement with numbered parameters costs
// the square of their number (placeholders leaves the inserts' parameters
// unnumbered there).
func (s *Store) importChunk() int {
	if s.d.name() == "sqlite" {
		return 100
	}
	return 500
}

// importStmtRows is how many rows one multi-row insert of an import holds
// on SQLite, whose unnumbered parameters cost no more than their number:
// few statements, as each one's savepoint makes the FTS5 table of task
// search (migration 15) flush what it holds to disk.
const importStmtRows = 1000

// importTxItems is how many items one import transaction writes: on
// Postgres they are copied (COPY) into a staging table and inserted from
// it in a few statements; on SQLite, whose one writer a transaction holds
// while it runs, they go in multi-row inserts of importStmtRows rows.
func (s *Store) importTxItems() int {
	if s.d.name() == "sqlite" {
		return 2000
	}
	return 10000
}

// The multi-row inserts of an import and of kept data records.
var (
	insertTasks = bulkInsert{table: "curation_tasks",
		columns: []string{"id", "project_id", "conquest_type", "conquest_version", "task_key", "input", "search_text", "created_at", "updated_at"},
		suffix:  "ON CONFLICT (project_id, conquest_type, task_key) DO NOTHING"}
	insertOutputs = bulkInsert{table: "curation_outputs",
		columns: []string{"id", "task_id", "batch_id", "model", "content", "valid", "reason", "message", "input_tokens", "output_tokens",
			"latency_ms", "created_at", "updated_at"},
		suffix: "ON CONFLICT (task_id, batch_id) DO NOTHING"}
	insertRecords = bulkInsert{table: "conquest_records",
		columns: []string{"project_id", "conquest_type", "custom_id", "data", "created_at"},
		suffix:  "ON CONFLICT (project_id, conquest_type, custom_id) DO NOTHING"}
)

// CurationImported reports whether a batch was imported.
func (s *Store) CurationImported(ctx context.Context, batchID string) (bool, error) {
	var n int
	if err := s.d.db().queryRow(ctx, `SELECT COUNT(*) FROM curation_imports WHERE batch_id = $1`, batchID).Scan(&n); err != nil {
		return false, fmt.Errorf("store: curation import of %s: %w", batchID, err)
	}
	return n > 0, nil
}

// CurationImport adds items as tasks (one per project, conquest type and
// key) and outputs (one per task and batch), in transactions of a few
// thousand items; the last records the batch as imported. Items already
// there are skipped, and of two items of one task and batch the first
// counts, so a run cut short can run again. batchID "" records nothing (an
// import from elsewhere).
func (s *Store) CurationImport(ctx context.Context, batchID string, items []ImportItem) (ImportResult, error) {
	var res ImportResult
	if batchID != "" {
		done, err := s.CurationImported(ctx, batchID)
		if err != nil || done {
			return ImportResult{Already: done}, err
		}
	}
	size := s.importTxItems()
	for start := 0; start < len(items) || start == 0; start += size {
		chunk := items[start:min(start+size, len(items))]
		last := start+size >= len(items)
		err := s.d.tx(ctx, func(q querier, _ enqueue) error {
			t := now()
			if len(chunk) > 0 {
				importRows := s.importRows
				if s.d.name() == "postgres" {
					importRows = importCopy
				}
				tasks, outputs, err := importRows(ctx, q, chunk, t)
				if err != nil {
					return err
				}
				res.Tasks += tasks
				res.Outputs += outputs
				if err := keepTypeModels(ctx, q, s.d.name(), chunk); err != nil {
					return err
				}
			}
			return s.markImported(ctx, q, batchID, last, res, t)
		})
		if err != nil {
			return res, fmt.Errorf("store: curation import: %w", err)
		}
		if len(items) == 0 {
			break
		}
	}
	if res.Tasks > 0 {
		s.analyzeTasksOnce(ctx)
	}
	return res, nil
}

// analyzeTasksOnce analyzes curation_tasks on Postgres when it has no
// statistics yet (a new database, before autovacuum's first ANALYZE), as
// after any bulk load: without them, a look-up of one task by its key
// (CurationTaskIDByKey) was planned on the index of the type's tasks and
// read all of them. Its own short transaction takes only the lock that
// ANALYZE takes; a role that does not own the table is only warned.
func (s *Store) analyzeTasksOnce(ctx context.Context) {
	if s.d.name() != "postgres" || s.tasksAnalyzed.Load() {
		return
	}
	var known bool
	err := s.d.db().queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema()
		AND tablename = 'curation_tasks' AND attname = 'task_key')`).Scan(&known)
	if err == nil && !known {
		_, err = s.d.db().exec(ctx, `ANALYZE curation_tasks`)
		known = err == nil
	}
	if err != nil {
		s.log.WarnContext(ctx, "analyzing the curation tasks after an import failed; autovacuum will", "err", err)
		return
	}
	s.tasksAnalyzed.Store(known)
}

// importStage is the temporary table an import's items are copied into on
// Postgres, one row an item, ord their order; it is emptied at commit.
const importStage = "curation_import_stage"

var importStageColumns = []string{"ord", "task_id", "project_id", "conquest_type", "conquest_version", "task_key", "has_input", "input",
	"search_text", "output_id", "batch_id", "model", "content", "valid", "reason", "message", "input_tokens", "output_tokens", "latency_ms"}

// importCopy imports a chunk on Postgres: the items are copied into
// importStage, and the tasks and outputs inserted from it, each in one
// statement; the first item of a task (or of a task and batch) counts, as
// in a multi-row insert.
func importCopy(ctx context.Context, q querier, chunk []ImportItem, t int64) (tasks, outputs int64, err error) {
	if _, err := q.exec(ctx, `CREATE TEMPORARY TABLE IF NOT EXISTS `+importStage+` (
		ord BIGINT NOT NULL, task_id TEXT NOT NULL, project_id TEXT NOT NULL, conquest_type TEXT NOT NULL, conquest_version BIGINT NOT NULL,
		task_key TEXT NOT NULL, has_input BOOLEAN NOT NULL, input TEXT NOT NULL, search_text TEXT NOT NULL, output_id TEXT NOT NULL,
		batch_id TEXT NOT NULL, model TEXT NOT NULL, content TEXT NOT NULL, valid BIGINT NOT NULL, reason TEXT NOT NULL,
		message TEXT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, latency_ms BIGINT) ON COMMIT DELETE ROWS`); err != nil {
		return 0, 0, err
	}
	row := make([]any, len(importStageColumns))
	i := 0
	hasTasks, hasOutputs := false, false
	src := func() ([]any, error) {
		it := &chunk[i]
		o := &it.Output
		var valid int64
		if o.Valid {
			valid = 1
		}
		taskID, outID := "", ""
		if it.Input != nil {
			taskID, hasTasks = ids.New(ids.Task), true
		}
		if o.BatchID != "" {
			outID, hasOutputs = ids.New(ids.Output), true
		}
		row[0], row[1], row[2], row[3], row[4] = int64(i), taskID, cmp.Or(it.ProjectID, DefaultProject), it.ConquestType, it.ConquestVersion
		row[5], row[6], row[7], row[8], row[9] = it.Key, it.Input != nil, string(it.Input), it.SearchText, outID
		row[10], row[11], row[12], row[13], row[14] = o.BatchID, o.Model, o.Content, valid, o.Reason
		row[15], row[16], row[17], row[18] = o.Message, o.InputTokens, o.OutputTokens, o.LatencyMS
		i++
		return row, nil
	}
	if _, err := copyFrom(ctx, q, importStage, importStageColumns, len(chunk), src); err != nil {
		return 0, 0, fmt.Errorf("copy into %s: %w", importStage, err)
	}
	if hasTasks {
		if tasks, err = q.exec(ctx, `INSERT INTO curation_tasks (id, project_id, conquest_type, conquest_version, task_key, input, search_text,
			created_at, updated_at)
			SELECT task_id, project_id, conquest_type, conquest_version, task_key, input, search_text, $1, $1 FROM `+importStage+`
			WHERE has_input ORDER BY ord ON CONFLICT (project_id, conquest_type, task_key) DO NOTHING`, t); err != nil {
			return 0, 0, err
		}
	}
	if !hasOutputs {
		return tasks, 0, nil
	}
	// One statement finds each output's task and inserts the outputs, and
	// names the first output whose task is missing (then the transaction
	// rolls back). The tasks are found by a join, planned on statistics of
	// the staging table taken here: without them, a join read every task,
	// once to check and once to insert; and a subquery per row, planned
	// without statistics of curation_tasks (a new table, before its first
	// ANALYZE), scanned an index of the project's tasks of the type for
	// each output, so that an import took time quadratic in its size.
	// The keys' statistics are what the plan needs, and a small sample
	// gives them: 2 ms for a chunk of 10,000, where the default sample of
	// three columns took 17 to 24.
	if _, err := q.exec(ctx, `SET LOCAL default_statistics_target = 10; ANALYZE `+importStage+` (task_key)`); err != nil {
		return 0, 0, err
	}
	var typ, key *string
	if err = q.queryRow(ctx, `WITH s AS MATERIALIZED (
			SELECT s.*, t.id AS found FROM `+importStage+` s LEFT JOIN curation_tasks t ON t.project_id = s.project_id
				AND t.conquest_type = s.conquest_type AND t.task_key = s.task_key
			WHERE s.batch_id <> ''),
		ins AS (INSERT INTO curation_outputs (id, task_id, batch_id, model, content, valid, reason, message,
			input_tokens, output_tokens, latency_ms, created_at, updated_at)
			SELECT output_id, found, batch_id, model, content, valid, reason, message, input_tokens, output_tokens, latency_ms, $1, $1
			FROM s WHERE found IS NOT NULL ORDER BY ord ON CONFLICT (task_id, batch_id) DO NOTHING RETURNING 1)
		SELECT (SELECT COUNT(*) FROM ins), m.conquest_type, m.task_key
		FROM (SELECT 1) one LEFT JOIN (SELECT conquest_type, task_key FROM s WHERE found IS NULL ORDER BY ord LIMIT 1) m ON true`,
		t).Scan(&outputs, &typ, &key); err != nil {
		return 0, 0, err
	}
	if typ != nil {
		return 0, 0, fmt.Errorf("output of task %s/%s, which does not exist: %w", *typ, *key, ErrNotFound)
	}
	return tasks, outputs, nil
}

// importRows imports a chunk in multi-row inserts (SQLite): the tasks, a
// look-up of their IDs, then the outputs.
func (s *Store) importRows(ctx context.Context, q querier, chunk []ImportItem, t int64) (tasks, outputs int64, err error) {
	dialect := s.d.name()
	// Tasks; those that exist are kept.
	args := make([]any, 0, len(chunk)*len(insertTasks.columns))
	for _, it := range chunk {
		if it.Input == nil {
			continue // the task exists: only its output is new
		}
		args = append(args, ids.New(ids.Task), cmp.Or(it.ProjectID, DefaultProject), it.ConquestType, it.ConquestVersion, it.Key,
			string(it.Input), it.SearchText, t, t)
	}
	if tasks, err = insertTasks.exec(ctx, q, dialect, importStmtRows, args); err != nil {
		return 0, 0, err
	}
	// The IDs of the outputs' tasks, per project and type.
	keys := map[[2]string][]string{}
	for _, it := range chunk {
		if it.Output.BatchID == "" {
			continue
		}
		pt := [2]string{cmp.Or(it.ProjectID, DefaultProject), it.ConquestType}
		keys[pt] = append(keys[pt], it.Key)
	}
	idOf := make(map[[3]string]string, len(chunk))
	for pt, ks := range keys {
		for start := 0; start < len(ks); start += maxParams(dialect) - 2 {
			part := ks[start:min(start+maxParams(dialect)-2, len(ks))]
			args := make([]any, 0, len(part)+2)
			args = append(args, pt[0], pt[1])
			for _, k := range part {
				args = append(args, k)
			}
			rs, err := q.query(ctx, `SELECT id, task_key FROM curation_tasks WHERE project_id = `+placeholders(dialect, 1, 1)+
				` AND conquest_type = `+placeholders(dialect, 2, 1)+` AND task_key IN (`+placeholders(dialect, 3, len(part))+`)`, args...)
			if err != nil {
				return 0, 0, err
			}
			for rs.Next() {
				var id, key string
				if err := rs.Scan(&id, &key); err != nil {
					rs.Close()
					return 0, 0, err
				}
				idOf[[3]string{pt[0], pt[1], key}] = id
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return 0, 0, err
			}
		}
	}
	// Outputs; one per task and batch.
	args = args[:0]
	seen := make(map[[2]string]bool, len(chunk))
	for _, it := range chunk {
		o := it.Output
		if o.BatchID == "" {
			continue // a task without an output (yet)
		}
		taskID, ok := idOf[[3]string{cmp.Or(it.ProjectID, DefaultProject), it.ConquestType, it.Key}]
		if !ok {
			return 0, 0, fmt.Errorf("output of task %s/%s, which does not exist: %w", it.ConquestType, it.Key, ErrNotFound)
		}
		if seen[[2]string{taskID, o.BatchID}] {
			continue // twice in one chunk: the first counts
		}
		seen[[2]string{taskID, o.BatchID}] = true
		valid := 0
		if o.Valid {
			valid = 1
		}
		args = append(args, ids.New(ids.Output), taskID, o.BatchID, o.Model, o.Content, valid, o.Reason, o.Message, o.InputTokens, o.OutputTokens, o.LatencyMS, t, t)
	}
	if outputs, err = insertOutputs.exec(ctx, q, dialect, importStmtRows, args); err != nil {
		return 0, 0, err
	}
	return tasks, outputs, nil
}

// markImported records, with the last chunk, that a batch was imported.
func (s *Store) markImported(ctx context.Context, q querier, batchID string, last bool, res ImportResult, t int64) error {
	if !last || batchID == "" {
		return nil
	}
	_, err := q.exec(ctx, `INSERT INTO curation_imports (batch_id, tasks, outputs, imported_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (batch_id) DO NOTHING`, batchID, res.Tasks, res.Outputs, t)
	return err
}

// TaskFilter selects tasks of one project. Nil pointers and empty strings
// select all.
type TaskFilter struct {
	// Project is the tasks' project. Default: DefaultProject.
	Project string
	Type    string
	Model   string
	Gold    *bool
	Rated   *bool
	Invalid *bool
	Status  string
	// Text is searched for in the task's input, case-insensitively.
	Text string
	// IDs, when set, selects these tasks only.
	IDs []string
	// scanText matches Text by LIKE alone, without the FTS5 table (SQLite):
	// a text in so many tasks that a page's walk in ID order finds its
	// tasks sooner than the table lists them all.
	scanText bool
	// rareWords, when set, are the words of Text that are rare among the
	// project's newest tasks (Postgres): the trigram index looks for them
	// alone, and LIKE on the whole text confirms.
	rareWords []string
}

func (f TaskFilter) where(dialect string, args *[]any) string {
	var conds []string
	arg := func(v any) string {
		*args = append(*args, v)
		return fmt.Sprintf("$%d", len(*args))
	}
	conds = append(conds, "t.project_id = "+arg(cmp.Or(f.Project, DefaultProject)))
	if f.Type != "" {
		conds = append(conds, "t.conquest_type = "+arg(f.Type))
	}
	if f.Status != "" {
		conds = append(conds, "t.status = "+arg(f.Status))
	}
	if f.Model != "" {
		conds = append(conds, "EXISTS (SELECT 1 FROM curation_outputs o WHERE o.task_id = t.id AND o.model = "+arg(f.Model)+")")
	}
	if f.Gold != nil {
		if *f.Gold {
			conds = append(conds, "t.gold_output_id IS NOT NULL")
		} else {
			conds = append(conds, "t.gold_output_id IS NULL")
		}
	}
	exists := func(b *bool, cond string) {
		if b == nil {
			return
		}
		e := "EXISTS (SELECT 1 FROM curation_outputs o WHERE o.task_id = t.id AND " + cond + ")"
		if !*b {
			e = "NOT " + e
		}
		conds = append(conds, e)
	}
	exists(f.Rated, "o.rating IS NOT NULL")
	exists(f.Invalid, "o.valid = 0")
	if f.Text != "" {
		conds = append(conds, textCond(dialect, strings.ToLower(f.Text), f.scanText, f.rareWords, arg))
	}
	if len(f.IDs) > 0 {
		ph := make([]string, len(f.IDs))
		for i, id := range f.IDs {
			ph[i] = arg(id)
		}
		conds = append(conds, "t.id IN ("+strings.Join(ph, ", ")+")")
	}
	return strings.Join(conds, " AND ")
}

// textCond is the condition that t.search_text holds text, as LIKE
// '%text%' finds it, served by migration 15's index: on Postgres, the
// trigram GIN index serves LIKE itself (backslash is its default escape);
// on SQLite, the FTS5 trigram table narrows the tasks to those whose text
// holds text's trigrams in a row (text of three characters or more), and
// LIKE confirms.
//
// With rareWords (Postgres), the index looks for those words only and the
// whole text's LIKE is on an expression the index does not serve: GIN
// checks each candidate of a search's rarest trigram against every other
// trigram, and the trigrams of a word in every task ("resume" in "resume
// 12345") cost a read of their long posting lists for each.
func textCond(dialect, text string, scan bool, rareWords []string, arg func(any) string) string {
	like := "%" + escapeLike(text) + "%"
	if dialect != "sqlite" {
		if len(rareWords) == 0 {
			return "t.search_text LIKE " + arg(like)
		}
		conds := make([]string, 0, len(rareWords)+1)
		for _, w := range rareWords {
			conds = append(conds, "t.search_text LIKE "+arg("%"+escapeLike(w)+"%"))
		}
		return strings.Join(append(conds, "(t.search_text || '') LIKE "+arg(like)), " AND ")
	}
	cond := "t.search_text LIKE " + arg(like) + " ESCAPE '\\'"
	if scan || utf8.RuneCountInString(text) < 3 {
		return cond
	}
	return "t.id IN (SELECT task_id FROM curation_tasks_fts WHERE curation_tasks_fts MATCH " + arg(ftsPhrase(text)) + ") AND " + cond
}

// rareSample is how many of a project's newest tasks rareWords reads, and
// rareShare the share of them (1/rareShare) a word must be in to be common.
const (
	rareSample = 200
	rareShare  = 10
)

// rareWords returns the words (three characters or more) of f's text that
// are in fewer than 1 in rareShare of the project's rareSample newest
// tasks, when some of its words are common and some are not (Postgres
// only; nil elsewhere, and for a text of one word): one query over a
// page-sized sample by the primary key.
func (s *Store) rareWords(ctx context.Context, f TaskFilter) ([]string, error) {
	if s.d.name() == "sqlite" {
		return nil, nil
	}
	var words []string
	for _, w := range strings.Fields(strings.ToLower(f.Text)) {
		if utf8.RuneCountInString(w) >= 3 && !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	if len(words) < 2 {
		return nil, nil
	}
	args := []any{cmp.Or(f.Project, DefaultProject), rareSample}
	counts := make([]string, len(words))
	for i, w := range words {
		args = append(args, "%"+escapeLike(w)+"%")
		counts[i] = fmt.Sprintf("COUNT(*) FILTER (WHERE s LIKE $%d)", len(args))
	}
	n := make([]int64, len(words)+1)
	dest := make([]any, len(n))
	for i := range n {
		dest[i] = &n[i]
	}
	err := s.d.db().queryRow(ctx, `SELECT COUNT(*), `+strings.Join(counts, ", ")+` FROM (SELECT search_text AS s FROM curation_tasks
		WHERE project_id = $1 ORDER BY id DESC LIMIT $2) sample`, args...).Scan(dest...)
	if err != nil {
		return nil, err
	}
	var rare []string
	for i, w := range words {
		if n[i+1]*rareShare < n[0] {
			rare = append(rare, w)
		}
	}
	if len(rare) == len(words) {
		return nil, nil // no common word to leave out
	}
	return rare, nil
}

// ftsPhrase is an FTS5 query of text as one phrase in search_text: with
// the trigram tokenizer, its trigrams in a row.
func ftsPhrase(text string) string {
	return `search_text : "` + strings.ReplaceAll(text, `"`, `""`) + `"`
}

// ftsCommon is how many tasks holding a text make it common (SQLite): a
// page's walk in ID order then reads some hundred tasks for each it keeps,
// sooner done than listing every match from the FTS5 table and sorting them.
const ftsCommon = 5000

// ftsWalkMin is how many tasks holding a text (SQLite, under ftsCommon)
// make a list read its page from the FTS5 table in the table's order,
// newest first (ftsWalkFrom), rather than list every match and sort them:
// sorting costs a read of each match's task ID, walking the table
// backwards a read of the whole of the text's trigrams' lists of rows
// (a few milliseconds for a trigram in every task), whatever the matches.
// Measured at 1,000,000 tasks, the walk is the faster from about a
// thousand matches, and 4 times faster at 3,700.
const ftsWalkMin = 1000

// textMatches counts the tasks, of any project, that f's text is in, by
// the FTS5 table, up to ftsCommon (SQLite only; 0 elsewhere, and for a
// text under three characters).
func (s *Store) textMatches(ctx context.Context, f TaskFilter) (int, error) {
	text := strings.ToLower(f.Text)
	if s.d.name() != "sqlite" || utf8.RuneCountInString(text) < 3 {
		return 0, nil
	}
	var n int
	err := s.d.db().queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM curation_tasks_fts WHERE curation_tasks_fts MATCH $1 LIMIT $2)`,
		ftsPhrase(text), ftsCommon).Scan(&n)
	return n, err
}

// ftsWalkFrom is the FROM clause (with its WHERE) of a page of tasks t
// matching where, whose text is the FTS5 query $match: the first $limit
// of them in the FTS5 table's order, newest first, and those the table
// holds out of order. The rows of curation_tasks_fts, less those in
// curation_tasks_fts_unordered, are in task ID order, so the first $limit
// of them that match are the newest of them that match; those out of
// order are few (kiln writes a task with an ID greater than any before),
// and are read apart. The caller orders by t.id and keeps $limit: the walk
// stops at a page rather than finding every match and sorting it, as
// "t.id IN (matches)" does. Where's conditions are on t, and its
// parameters serve both of the places it is in; walkAfter is the page's
// cursor on the FTS5 table's row, checked before its task is read. CROSS
// JOIN keeps the FTS5 table, and the short list, the outer loops.
func ftsWalkFrom(where, walkAfter string, limit, match int) string {
	return fmt.Sprintf(`curation_tasks t WHERE t.id IN (
			SELECT id FROM (SELECT t.id FROM curation_tasks_fts f CROSS JOIN curation_tasks t ON t.id = f.task_id
				WHERE curation_tasks_fts MATCH $%[4]d%[2]s AND f.task_id NOT IN (SELECT task_id FROM curation_tasks_fts_unordered) AND %[1]s
				ORDER BY f.rowid DESC LIMIT $%[3]d)
			UNION ALL
			SELECT t.id FROM curation_tasks_fts_unordered u CROSS JOIN curation_tasks t ON t.id = u.task_id WHERE %[1]s)`, where, walkAfter, limit, match)
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

const taskColumns = `t.id, t.project_id, t.conquest_type, t.conquest_version, t.task_key, t.input, t.status, t.gold_output_id, t.notes, t.version,
	t.curator, t.created_at, t.updated_at`

func scanTask(r row, extra ...any) (CurationTask, error) {
	var t CurationTask
	var input string
	err := r.Scan(append([]any{&t.ID, &t.ProjectID, &t.ConquestType, &t.ConquestVersion, &t.Key, &input, &t.Status, &t.GoldOutputID, &t.Notes,
		&t.Version, &t.Curator, &t.CreatedAt, &t.UpdatedAt}, extra...)...)
	t.Input = json.RawMessage(input)
	return t, err
}

// CurationTaskList lists tasks matching f, newest first, after the cursor
// (a task ID), up to limit, and whether more follow: keyset pagination.
func (s *Store) CurationTaskList(ctx context.Context, f TaskFilter, after string, limit int) ([]CurationTask, bool, error) {
	walk := false
	if f.Text != "" {
		n, err := s.textMatches(ctx, f)
		if err != nil {
			return nil, false, fmt.Errorf("store: list tasks: %w", err)
		}
		walk = n >= ftsWalkMin && n < ftsCommon
		// With the walk, the FTS5 table narrows the tasks and where's LIKE
		// confirms; a common text is found by LIKE alone.
		f.scanText = n >= ftsWalkMin
		if f.rareWords, err = s.rareWords(ctx, f); err != nil {
			return nil, false, fmt.Errorf("store: list tasks: %w", err)
		}
	}
	var args []any
	where := f.where(s.d.name(), &args)
	walkAfter := ""
	if after != "" {
		args = append(args, after)
		where += fmt.Sprintf(" AND t.id < $%d", len(args))
		walkAfter = fmt.Sprintf(" AND f.task_id < $%d", len(args))
	}
	args = append(args, limit+1)
	limitArg := len(args)
	from := `curation_tasks t WHERE ` + where
	if walk {
		args = append(args, ftsPhrase(strings.ToLower(f.Text)))
		from = ftsWalkFrom(where, walkAfter, limitArg, len(args))
	}
	sql := `SELECT ` + taskColumns + `, (SELECT COUNT(*) FROM curation_outputs o WHERE o.task_id = t.id)
		FROM ` + from + fmt.Sprintf(` ORDER BY t.id DESC LIMIT $%d`, limitArg)
	out, err := collect(ctx, s.d.db(), func(r row) (CurationTask, error) {
		var n int64
		t, err := scanTask(r, &n)
		t.Outputs = n
		return t, err
	}, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list tasks: %w", err)
	}
	return page(out, limit)
}

const outputColumns = `id, task_id, batch_id, model, content, valid, reason, message, input_tokens, output_tokens, latency_ms, rating, corrected,
	corrected_valid, corrected_message, created_at, updated_at`

func scanOutput(r row) (CurationOutput, error) {
	var o CurationOutput
	var valid int64
	var cv *int64
	err := r.Scan(&o.ID, &o.TaskID, &o.BatchID, &o.Model, &o.Content, &valid, &o.Reason, &o.Message, &o.InputTokens, &o.OutputTokens,
		&o.LatencyMS, &o.Rating, &o.Corrected, &cv, &o.CorrectedMessage, &o.CreatedAt, &o.UpdatedAt)
	o.Valid = valid == 1
	if cv != nil {
		b := *cv == 1
		o.CorrectedValid = &b
	}
	return o, err
}

// CurationTaskGet returns a task, of any project (the caller checks its
// ProjectID), with its outputs (by model) and history (oldest first).
func (s *Store) CurationTaskGet(ctx context.Context, id string) (CurationTask, []CurationOutput, []HistoryEntry, error) {
	t, err := scanTask(s.d.db().queryRow(ctx, `SELECT `+taskColumns+` FROM curation_tasks t WHERE t.id = $1`, id))
	if err != nil {
		return CurationTask{}, nil, nil, fmt.Errorf("store: get task %s: %w", id, err)
	}
	outs, err := collect(ctx, s.d.db(), scanOutput, `SELECT `+outputColumns+` FROM curation_outputs WHERE task_id = $1 ORDER BY model, id`, id)
	if err != nil {
		return CurationTask{}, nil, nil, fmt.Errorf("store: task %s outputs: %w", id, err)
	}
	hist, err := collect(ctx, s.d.db(), func(r row) (HistoryEntry, error) {
		var h HistoryEntry
		var detail string
		err := r.Scan(&h.ID, &h.TaskID, &h.Curator, &h.Action, &detail, &h.At)
		h.Detail = json.RawMessage(detail)
		return h, err
	}, `SELECT id, task_id, curator, action, detail, at FROM curation_history WHERE task_id = $1 ORDER BY id`, id)
	if err != nil {
		return CurationTask{}, nil, nil, fmt.Errorf("store: task %s history: %w", id, err)
	}
	t.Outputs = int64(len(outs))
	return t, outs, hist, nil
}

// OutputAnnotation changes one output: nil fields stay as they are.
type OutputAnnotation struct {
	ID     string `json:"id"`
	Rating *int64 `json:"rating,omitempty"`
	// ClearRating removes the rating.
	ClearRating bool `json:"clear_rating,omitempty"`
	// Corrected is the corrected output; CorrectedValid and
	// CorrectedMessage say whether it matched the schema.
	Corrected        *string `json:"corrected,omitempty"`
	CorrectedValid   bool    `json:"corrected_valid,omitempty"`
	CorrectedMessage string  `json:"corrected_message,omitempty"`
	// ClearCorrection removes the correction.
	ClearCorrection bool `json:"clear_correction,omitempty"`
}

// Annotation changes a task: nil fields stay as they are.
type Annotation struct {
	Status *string `json:"status,omitempty"`
	Notes  *string `json:"notes,omitempty"`
	// Gold names the gold-star output; "" clears it.
	Gold    *string            `json:"gold_output_id,omitempty"`
	Outputs []OutputAnnotation `json:"outputs,omitempty"`
	// CuratorID, when set, keeps the ratings as this curator's own too
	// (curation_ratings), for agreement between curators.
	CuratorID string `json:"-"`
}

// ErrStale is a write that names a version other than the task's: someone
// changed it meanwhile.
var ErrStale = fmt.Errorf("%w: the task changed since it was read", ErrConflict)

// CurationAnnotate applies a to the task if its version is still version,
// records the change in its history, and bumps the version, in one
// transaction.
func (s *Store) CurationAnnotate(ctx context.Context, taskID string, version int64, curator string, a Annotation) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		var cur int64
		var project, typ string
		if err := q.queryRow(ctx, `SELECT version, project_id, conquest_type FROM curation_tasks WHERE id = $1`+s.d.forUpdate(), taskID).
			Scan(&cur, &project, &typ); err != nil {
			return err
		}
		if cur != version {
			return ErrStale
		}
		t := now()
		for _, o := range a.Outputs {
			sets, args := []string{"updated_at = $2"}, []any{o.ID, t, taskID}
			set := func(col string, v any) {
				args = append(args, v)
				sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
			}
			switch {
			case o.ClearRating:
				sets = append(sets, "rating = NULL")
			case o.Rating != nil:
				set("rating", *o.Rating)
			}
			switch {
			case o.ClearCorrection:
				sets = append(sets, "corrected = NULL", "corrected_valid = NULL", "corrected_message = ''")
			case o.Corrected != nil:
				v := 0
				if o.CorrectedValid {
					v = 1
				}
				set("corrected", *o.Corrected)
				set("corrected_valid", v)
				set("corrected_message", o.CorrectedMessage)
			}
			n, err := q.exec(ctx, `UPDATE curation_outputs SET `+strings.Join(sets, ", ")+` WHERE id = $1 AND task_id = $3`, args...)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("output %s of task %s: %w", o.ID, taskID, ErrNotFound)
			}
			if err := keepRating(ctx, q, a.CuratorID, project, typ, taskID, o, t); err != nil {
				return err
			}
		}
		sets, args := []string{"version = version + 1", "updated_at = $2", "curator = $3"}, []any{taskID, t, curator}
		set := func(col string, v any) {
			args = append(args, v)
			sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
		}
		if a.Status != nil {
			set("status", *a.Status)
		}
		if a.Notes != nil {
			set("notes", *a.Notes)
		}
		if a.Gold != nil {
			if *a.Gold == "" {
				sets = append(sets, "gold_output_id = NULL")
			} else {
				var n int
				if err := q.queryRow(ctx, `SELECT COUNT(*) FROM curation_outputs WHERE id = $1 AND task_id = $2`, *a.Gold, taskID).Scan(&n); err != nil {
					return err
				}
				if n == 0 {
					return fmt.Errorf("gold output %s of task %s: %w", *a.Gold, taskID, ErrNotFound)
				}
				set("gold_output_id", *a.Gold)
			}
		}
		if _, err := q.exec(ctx, `UPDATE curation_tasks SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...); err != nil {
			return err
		}
		detail, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = q.exec(ctx, `INSERT INTO curation_history (id, task_id, curator, action, detail, at) VALUES ($1, $2, $3, $4, $5, $6)`,
			ids.New(ids.History), taskID, curator, "annotate", string(detail), t)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: annotate task %s: %w", taskID, err)
	}
	return nil
}

// CurationStat is one conquest type and model's numbers.
type CurationStat struct {
	Type, Model string
	Outputs     int64
	Valid       int64
	Rated       int64
	MeanRating  *float64
	Gold        int64
	Corrected   int64
}

// AllProjects, where a curation count takes a project, counts every
// project's (the metrics do).
const AllProjects = "*"

// projectCond is the condition on col that selects project: "" is
// DefaultProject, AllProjects is any. It is appended to args.
func projectCond(col, project string, args *[]any) string {
	if project == AllProjects {
		return "1 = 1"
	}
	*args = append(*args, cmp.Or(project, DefaultProject))
	return fmt.Sprintf("%s = $%d", col, len(*args))
}

// CurationStats counts a project's outputs ("" the default project's,
// AllProjects every project's) per conquest type and model.
func (s *Store) CurationStats(ctx context.Context, project string) ([]CurationStat, error) {
	var args []any
	where := projectCond("t.project_id", project, &args)
	out, err := collect(ctx, s.d.db(), func(r row) (CurationStat, error) {
		var st CurationStat
		err := r.Scan(&st.Type, &st.Model, &st.Outputs, &st.Valid, &st.Rated, &st.MeanRating, &st.Gold, &st.Corrected)
		return st, err
	}, `SELECT t.conquest_type, o.model, COUNT(*), SUM(o.valid), COUNT(o.rating), AVG(CAST(o.rating AS DOUBLE PRECISION)),
		SUM(CASE WHEN t.gold_output_id = o.id THEN 1 ELSE 0 END), COUNT(o.corrected)
		FROM curation_outputs o JOIN curation_tasks t ON t.id = o.task_id WHERE `+where+`
		GROUP BY t.conquest_type, o.model ORDER BY t.conquest_type, o.model`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: curation stats: %w", err)
	}
	return out, nil
}

// CurationEach calls fn for every task matching f, with its outputs, in
// pages of 500, oldest first; an error from fn stops it.
func (s *Store) CurationEach(ctx context.Context, f TaskFilter, fn func(CurationTask, []CurationOutput) error) error {
	after := ""
	for {
		var args []any
		where := f.where(s.d.name(), &args)
		if after != "" {
			args = append(args, after)
			where += fmt.Sprintf(" AND t.id > $%d", len(args))
		}
		tasks, err := collect(ctx, s.d.db(), func(r row) (CurationTask, error) { return scanTask(r) },
			`SELECT `+taskColumns+` FROM curation_tasks t WHERE `+where+` ORDER BY t.id LIMIT 500`, args...)
		if err != nil {
			return fmt.Errorf("store: curation tasks: %w", err)
		}
		if len(tasks) == 0 {
			return nil
		}
		idArgs := make([]any, len(tasks))
		ph := make([]string, len(tasks))
		for i, t := range tasks {
			idArgs[i], ph[i] = t.ID, fmt.Sprintf("$%d", i+1)
		}
		outs, err := collect(ctx, s.d.db(), scanOutput, `SELECT `+outputColumns+` FROM curation_outputs WHERE task_id IN (`+
			strings.Join(ph, ", ")+`) ORDER BY task_id, model, id`, idArgs...)
		if err != nil {
			return fmt.Errorf("store: curation outputs: %w", err)
		}
		byTask := map[string][]CurationOutput{}
		for _, o := range outs {
			byTask[o.TaskID] = append(byTask[o.TaskID], o)
		}
		for _, t := range tasks {
			if err := fn(t, byTask[t.ID]); err != nil {
				return err
			}
		}
		after = tasks[len(tasks)-1].ID
	}
}

// CurationCount counts the tasks matching f.
func (s *Store) CurationCount(ctx context.Context, f TaskFilter) (int64, error) {
	var args []any
	where := f.where(s.d.name(), &args)
	var n int64
	if err := s.d.db().queryRow(ctx, `SELECT COUNT(*) FROM curation_tasks t WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count tasks: %w", err)
	}
	return n, nil
}

// Export statuses.
const (
	ExportQueued    = "queued"
	ExportRunning   = "running"
	ExportCompleted = "completed"
	ExportFailed    = "failed"
)

// CurationExport is an export job and its outcome.
type CurationExport struct {
	ID string
	// ProjectID is the project whose tasks it exports; its file belongs to
	// it too. Default: DefaultProject.
	ProjectID   string
	Format      string
	Options     json.RawMessage
	Status      string
	Done, Total int64
	Rows        int64
	FileID      *string
	Error       string
	Curator     string
	CreatedAt   int64
	CompletedAt *int64
}

const exportColumns = `id, project_id, format, options, status, done, total, rows, file_id, error, curator, created_at, completed_at`

func scanExport(r row) (CurationExport, error) {
	var e CurationExport
	var opts string
	err := r.Scan(&e.ID, &e.ProjectID, &e.Format, &opts, &e.Status, &e.Done, &e.Total, &e.Rows, &e.FileID, &e.Error, &e.Curator, &e.CreatedAt, &e.CompletedAt)
	e.Options = json.RawMessage(opts)
	return e, err
}

// ExportCreate records a queued export and enqueues its job.
func (s *Store) ExportCreate(ctx context.Context, e CurationExport, job Job) error {
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		if _, err := q.exec(ctx, `INSERT INTO curation_exports (id, project_id, format, options, status, curator, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			e.ID, cmp.Or(e.ProjectID, DefaultProject), e.Format, string(e.Options), ExportQueued, e.Curator, e.CreatedAt); err != nil {
			return err
		}
		return enq(ctx, job)
	})
	if err != nil {
		return fmt.Errorf("store: create export: %w", err)
	}
	return nil
}

// ExportGet returns an export, of any project (the caller checks its
// ProjectID).
func (s *Store) ExportGet(ctx context.Context, id string) (CurationExport, error) {
	e, err := scanExport(s.d.db().queryRow(ctx, `SELECT `+exportColumns+` FROM curation_exports WHERE id = $1`, id))
	if err != nil {
		return CurationExport{}, fmt.Errorf("store: get export %s: %w", id, err)
	}
	return e, nil
}

// ExportList lists a project's exports ("" the default project's), newest
// first, up to limit.
func (s *Store) ExportList(ctx context.Context, project string, limit int) ([]CurationExport, error) {
	out, err := collect(ctx, s.d.db(), scanExport, `SELECT `+exportColumns+` FROM curation_exports WHERE project_id = $1 ORDER BY id DESC LIMIT $2`,
		cmp.Or(project, DefaultProject), limit)
	if err != nil {
		return nil, fmt.Errorf("store: list exports: %w", err)
	}
	return out, nil
}

// ExportProgress records an export's progress.
func (s *Store) ExportProgress(ctx context.Context, id, status string, done, total, rows int64) error {
	_, err := s.d.db().exec(ctx, `UPDATE curation_exports SET status = $2, done = $3, total = $4, rows = $5 WHERE id = $1`, id, status, done, total, rows)
	if err != nil {
		return fmt.Errorf("store: export %s progress: %w", id, err)
	}
	return nil
}

// ExportFinish records an export's end: its file, or its error, and its
// file's row in one transaction.
func (s *Store) ExportFinish(ctx context.Context, id string, rows int64, f *File, errMsg string) error {
	err := s.d.tx(ctx, func(q querier, enq enqueue) error {
		status := ExportCompleted
		var fileID *string
		if errMsg != "" {
			status = ExportFailed
		}
		if f != nil {
			if err := s.insertFile(ctx, q, enq, *f); err != nil {
				return err
			}
			fileID = &f.ID
		}
		t := time.Now().Unix()
		_, err := q.exec(ctx, `UPDATE curation_exports SET status = $2, rows = $3, file_id = $4, error = $5, completed_at = $6, done = total WHERE id = $1`,
			id, status, rows, fileID, errMsg, t)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: finish export %s: %w", id, err)
	}
	return nil
}

// Curator is a person who reviews outputs, with a key of their own.
type Curator struct {
	ID        string
	Name      string
	Role      string // curator or admin
	Prefix    string
	Hash      string
	CreatedAt int64
	RevokedAt *int64
}

// CuratorCreate stores a curator who works in projects (none: the default
// project), in one transaction. A project that does not exist or is
// archived is ErrNotFound.
func (s *Store) CuratorCreate(ctx context.Context, c Curator, projects ...string) error {
	if len(projects) == 0 {
		projects = []string{DefaultProject}
	}
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		if _, err := q.exec(ctx, `INSERT INTO curators (id, name, role, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.ID, c.Name, c.Role, c.Prefix, c.Hash, c.CreatedAt); err != nil {
			return err
		}
		for _, p := range projects {
			if err := liveProject(ctx, q, p); err != nil {
				return err
			}
			if _, err := q.exec(ctx, `INSERT INTO curator_projects (curator_id, project_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, c.ID, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: create curator: %w", err)
	}
	return nil
}

// CuratorProjects lists the projects a curator works in, archived ones
// left out, by name.
func (s *Store) CuratorProjects(ctx context.Context, curatorID string) ([]Project, error) {
	out, err := collect(ctx, s.d.db(), scanProject, `SELECT p.id, p.name, p.created_at, p.archived_at
		FROM curator_projects cp JOIN projects p ON p.id = cp.project_id
		WHERE cp.curator_id = $1 AND p.archived_at IS NULL ORDER BY p.name, p.id`, curatorID)
	if err != nil {
		return nil, fmt.Errorf("store: projects of curator %s: %w", curatorID, err)
	}
	return out, nil
}

// CuratorProjectAdd gives a curator a project to work in; giving it twice
// does nothing. An unknown curator, or a project that does not exist or is
// archived, is ErrNotFound.
func (s *Store) CuratorProjectAdd(ctx context.Context, curatorID, projectID string) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		var n int
		if err := q.queryRow(ctx, `SELECT COUNT(*) FROM curators WHERE id = $1`, curatorID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("curator %s: %w", curatorID, ErrNotFound)
		}
		if err := liveProject(ctx, q, projectID); err != nil {
			return err
		}
		_, err := q.exec(ctx, `INSERT INTO curator_projects (curator_id, project_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, curatorID, projectID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: give curator %s project %s: %w", curatorID, projectID, err)
	}
	return nil
}

// CuratorProjectRemove takes a project from a curator, and ends the
// sessions that work in it. A curator keeps one live project at least:
// taking their last is ErrConflict; one they do not work in is
// ErrNotFound.
func (s *Store) CuratorProjectRemove(ctx context.Context, curatorID, projectID string) error {
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		// Lock the curator, so that two removals cannot both leave the
		// other project.
		var id string
		if err := q.queryRow(ctx, `SELECT id FROM curators WHERE id = $1`+s.d.forUpdate(), curatorID).Scan(&id); err != nil {
			return err
		}
		var others int
		if err := q.queryRow(ctx, `SELECT COUNT(*) FROM curator_projects cp JOIN projects p ON p.id = cp.project_id
			WHERE cp.curator_id = $1 AND cp.project_id <> $2 AND p.archived_at IS NULL`, curatorID, projectID).Scan(&others); err != nil {
			return err
		}
		deleted, err := q.exec(ctx, `DELETE FROM curator_projects WHERE curator_id = $1 AND project_id = $2`, curatorID, projectID)
		switch {
		case err != nil:
			return err
		case deleted == 0:
			return fmt.Errorf("curator %s in project %s: %w", curatorID, projectID, ErrNotFound)
		case others == 0:
			return fmt.Errorf("curator %s keeps one project: %w", curatorID, ErrConflict)
		}
		_, err = q.exec(ctx, `UPDATE curator_sessions SET project_id = '' WHERE curator_id = $1 AND project_id = $2`, curatorID, projectID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: take project %s from curator %s: %w", projectID, curatorID, err)
	}
	return nil
}

// CuratorByHash finds an unrevoked curator by the hash of their key.
func (s *Store) CuratorByHash(ctx context.Context, hash string) (Curator, error) {
	var c Curator
	err := s.d.db().queryRow(ctx, `SELECT id, name, role, prefix, hash, created_at, revoked_at FROM curators WHERE hash = $1 AND revoked_at IS NULL`, hash).
		Scan(&c.ID, &c.Name, &c.Role, &c.Prefix, &c.Hash, &c.CreatedAt, &c.RevokedAt)
	if err != nil {
		return Curator{}, fmt.Errorf("store: curator: %w", err)
	}
	return c, nil
}

func scanCurator(r row) (Curator, error) {
	var c Curator
	err := r.Scan(&c.ID, &c.Name, &c.Role, &c.Prefix, &c.Hash, &c.CreatedAt, &c.RevokedAt)
	return c, err
}

// CuratorGet returns a curator, revoked or not.
func (s *Store) CuratorGet(ctx context.Context, id string) (Curator, error) {
	c, err := scanCurator(s.d.db().queryRow(ctx, `SELECT id, name, role, prefix, hash, created_at, revoked_at FROM curators WHERE id = $1`, id))
	if err != nil {
		return Curator{}, fmt.Errorf("store: curator %s: %w", id, err)
	}
	return c, nil
}

// CuratorList lists curators.
func (s *Store) CuratorList(ctx context.Context) ([]Curator, error) {
	return collect(ctx, s.d.db(), scanCurator, `SELECT id, name, role, prefix, hash, created_at, revoked_at FROM curators ORDER BY id`)
}

// CuratorListByProject lists the curators who work in a project, revoked
// ones too, oldest first.
func (s *Store) CuratorListByProject(ctx context.Context, projectID string) ([]Curator, error) {
	out, err := collect(ctx, s.d.db(), scanCurator, `SELECT c.id, c.name, c.role, c.prefix, c.hash, c.created_at, c.revoked_at
		FROM curators c JOIN curator_projects cp ON cp.curator_id = c.id WHERE cp.project_id = $1 ORDER BY c.id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("store: curators of project %s: %w", projectID, err)
	}
	return out, nil
}

// CuratorRevoke revokes a curator's key and ends their sessions, in one
// transaction: neither works from then on. An unknown curator is
// ErrNotFound, one revoked before ErrConflict. It returns the curator as
// revoked.
func (s *Store) CuratorRevoke(ctx context.Context, id string) (Curator, error) {
	var c Curator
	err := s.d.tx(ctx, func(q querier, _ enqueue) error {
		err := q.queryRow(ctx, `SELECT id, name, role, prefix, hash, created_at, revoked_at FROM curators WHERE id = $1`+s.d.forUpdate(), id).
			Scan(&c.ID, &c.Name, &c.Role, &c.Prefix, &c.Hash, &c.CreatedAt, &c.RevokedAt)
		if err != nil {
			return err
		}
		if c.RevokedAt != nil {
			return ErrConflict
		}
		t := now()
		if _, err := q.exec(ctx, `UPDATE curators SET revoked_at = $2 WHERE id = $1`, id, t); err != nil {
			return err
		}
		c.RevokedAt = &t
		_, err = q.exec(ctx, `DELETE FROM curator_sessions WHERE curator_id = $1`, id)
		return err
	})
	if err != nil {
		return Curator{}, fmt.Errorf("store: revoke curator %s: %w", id, err)
	}
	return c, nil
}

// SessionCreate stores a curator session by the hash of its token.
func (s *Store) SessionCreate(ctx context.Context, hash, curatorID string, expires time.Time) error {
	if _, err := s.d.db().exec(ctx, `INSERT INTO curator_sessions (hash, curator_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		hash, curatorID, now(), expires.Unix()); err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// CuratorSession is a live workbench session.
type CuratorSession struct {
	Curator Curator
	// ProjectID is the project chosen in the session, "" until one is.
	ProjectID string
}

// SessionGet returns a live session, with its curator.
func (s *Store) SessionGet(ctx context.Context, hash string) (CuratorSession, error) {
	var cs CuratorSession
	c := &cs.Curator
	err := s.d.db().queryRow(ctx, `SELECT c.id, c.name, c.role, c.prefix, c.hash, c.created_at, c.revoked_at, s.project_id
		FROM curator_sessions s JOIN curators c ON c.id = s.curator_id
		WHERE s.hash = $1 AND s.expires_at > $2 AND c.revoked_at IS NULL`, hash, now()).
		Scan(&c.ID, &c.Name, &c.Role, &c.Prefix, &c.Hash, &c.CreatedAt, &c.RevokedAt, &cs.ProjectID)
	if err != nil {
		return CuratorSession{}, fmt.Errorf("store: session: %w", err)
	}
	return cs, nil
}

// SessionSetProject records the project a session works in; a session that
// ended is ErrNotFound.
func (s *Store) SessionSetProject(ctx context.Context, hash, projectID string) error {
	n, err := s.d.db().exec(ctx, `UPDATE curator_sessions SET project_id = $2 WHERE hash = $1 AND expires_at > $3`, hash, projectID, now())
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: session project: %w", err)
	}
	return nil
}

// SessionDelete ends a session.
func (s *Store) SessionDelete(ctx context.Context, hash string) error {
	if _, err := s.d.db().exec(ctx, `DELETE FROM curator_sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// CurationTaskIDByKey finds a task by its project ("" the default
// project), conquest type and key.
func (s *Store) CurationTaskIDByKey(ctx context.Context, project, typ, key string) (string, error) {
	var id string
	if err := s.d.db().queryRow(ctx, `SELECT id FROM curation_tasks WHERE project_id = $1 AND conquest_type = $2 AND task_key = $3`,
		cmp.Or(project, DefaultProject), typ, key).Scan(&id); err != nil {
		return "", fmt.Errorf("store: task %s/%s: %w", typ, key, err)
	}
	return id, nil
}

// TaskStatusCount is how many tasks of a type have a status.
type TaskStatusCount struct {
	Type, Status string
	Tasks        int64
}

// CurationStatusCounts counts a project's tasks ("" the default
// project's, AllProjects every project's) per conquest type and status.
func (s *Store) CurationStatusCounts(ctx context.Context, project string) ([]TaskStatusCount, error) {
	var args []any
	where := projectCond("project_id", project, &args)
	out, err := collect(ctx, s.d.db(), func(r row) (TaskStatusCount, error) {
		var c TaskStatusCount
		err := r.Scan(&c.Type, &c.Status, &c.Tasks)
		return c, err
	}, `SELECT conquest_type, status, COUNT(*) FROM curation_tasks WHERE `+where+`
		GROUP BY conquest_type, status ORDER BY conquest_type, status`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: task counts: %w", err)
	}
	return out, nil
}

// ConquestRecordsPut keeps data records by project ("" the default
// project), conquest type and custom_id; a record kept before stays as it
// is (the custom_id names its content).
func (s *Store) ConquestRecordsPut(ctx context.Context, project, typ string, records map[string]json.RawMessage) error {
	project = cmp.Or(project, DefaultProject)
	ids := make([]string, 0, len(records))
	for id := range records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var args []any
	size := s.importChunk()
	for start := 0; start < len(ids); start += size {
		args = args[:0]
		t := now()
		for _, id := range ids[start:min(start+size, len(ids))] {
			args = append(args, project, typ, id, string(records[id]), t)
		}
		if _, err := insertRecords.exec(ctx, s.d.db(), s.d.name(), size, args); err != nil {
			return fmt.Errorf("store: keep conquest records: %w", err)
		}
	}
	return nil
}

// ConquestRecordGet returns a data record kept in a project ("" the
// default project); none is ErrNotFound.
func (s *Store) ConquestRecordGet(ctx context.Context, project, typ, customID string) (json.RawMessage, error) {
	var data string
	if err := s.d.db().queryRow(ctx, `SELECT data FROM conquest_records WHERE project_id = $1 AND conquest_type = $2 AND custom_id = $3`,
		cmp.Or(project, DefaultProject), typ, customID).Scan(&data); err != nil {
		return nil, fmt.Errorf("store: conquest record %s/%s: %w", typ, customID, err)
	}
	return json.RawMessage(data), nil
}

// ConquestRecordList returns the data records of customIDs of a type kept
// in a project ("" the default project), by custom ID, in one query; an ID
// without one is left out.
func (s *Store) ConquestRecordList(ctx context.Context, project, typ string, customIDs []string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	if len(customIDs) == 0 {
		return out, nil
	}
	args := []any{cmp.Or(project, DefaultProject), typ}
	ph := make([]string, len(customIDs))
	for i, id := range customIDs {
		args = append(args, id)
		ph[i] = fmt.Sprintf("$%d", len(args))
	}
	rows, err := collect(ctx, s.d.db(), func(r row) ([2]string, error) {
		var kv [2]string
		err := r.Scan(&kv[0], &kv[1])
		return kv, err
	}, `SELECT custom_id, data FROM conquest_records WHERE project_id = $1 AND conquest_type = $2 AND custom_id IN (`+strings.Join(ph, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: conquest records %s: %w", typ, err)
	}
	for _, kv := range rows {
		out[kv[0]] = json.RawMessage(kv[1])
	}
	return out, nil
}
