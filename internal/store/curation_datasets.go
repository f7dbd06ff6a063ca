package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Versioned datasets (immutable snapshots of exports) and the near-duplicate
// fingerprints of tasks. The curation package builds the files, the
// manifests and the clusters; these persist them.

// DatasetVersion is one saved version of a named dataset.
type DatasetVersion struct {
	ProjectID string
	Name      string
	// Version counts from 1 per project and name; DatasetVersionCreate
	// assigns it.
	Version int64
	// Format is the export format (openai_sft, ...); FileFormat jsonl or
	// parquet.
	Format, FileFormat string
	// Manifest is the version's manifest as JSON.
	Manifest    json.RawMessage
	ContentHash string
	Rows, Tasks int64
	// Prefix is where its files are in the object store.
	Prefix    string
	Curator   string
	CreatedAt int64
}

// DatasetItem is one task of a dataset version: how many examples it gave
// and the hash of them.
type DatasetItem struct {
	TaskID string
	Rows   int64
	Hash   string
}

const datasetColumns = `project_id, name, version, format, file_format, manifest, content_hash, rows, tasks, prefix, curator, created_at`

func scanDataset(r row) (DatasetVersion, error) {
	var v DatasetVersion
	var manifest string
	err := r.Scan(&v.ProjectID, &v.Name, &v.Version, &v.Format, &v.FileFormat, &manifest, &v.ContentHash, &v.Rows, &v.Tasks, &v.Prefix,
		&v.Curator, &v.CreatedAt)
	v.Manifest = json.RawMessage(manifest)
	return v, err
}

var insertDatasetItems = bulkInsert{table: "curation_dataset_items",
	columns: []string{"project_id", "name", "version", "task_id", "rows", "hash"}}

// DatasetVersionCreate records v as the next version of its dataset, with
// its items, in one transaction, and returns it with its Version. Versions
// are never changed afterwards.
func (s *Store) DatasetVersionCreate(ctx context.Context, v DatasetVersion, items []DatasetItem) (DatasetVersion, error) {
	v.ProjectID = cmp.Or(v.ProjectID, DefaultProject)
	dialect := s.d.name()
	var err error
	// Two saves of one name at once may pick the same number: the second
	// tries the next.
	for range 5 {
		var inserted int64
		err = s.d.tx(ctx, func(q querier, _ enqueue) error {
			if err := q.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM curation_datasets WHERE project_id = $1 AND name = $2`,
				v.ProjectID, v.Name).Scan(&v.Version); err != nil {
				return err
			}
			n, err := q.exec(ctx, `INSERT INTO curation_datasets (`+datasetColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
				ON CONFLICT (project_id, name, version) DO NOTHING`, v.ProjectID, v.Name, v.Version, v.Format, v.FileFormat, string(v.Manifest),
				v.ContentHash, v.Rows, v.Tasks, v.Prefix, v.Curator, v.CreatedAt)
			if err != nil || n == 0 {
				return err
			}
			inserted = n
			values := make([]any, 0, len(items)*6)
			for _, it := range items {
				values = append(values, v.ProjectID, v.Name, v.Version, it.TaskID, it.Rows, it.Hash)
			}
			_, err = insertDatasetItems.exec(ctx, q, dialect, 500, values)
			return err
		})
		if err != nil || inserted > 0 {
			break
		}
	}
	if err != nil {
		return DatasetVersion{}, fmt.Errorf("store: save dataset %s: %w", v.Name, err)
	}
	return v, nil
}

// DatasetVersionGet returns a version of a project's dataset.
func (s *Store) DatasetVersionGet(ctx context.Context, project, name string, version int64) (DatasetVersion, error) {
	v, err := scanDataset(s.d.db().queryRow(ctx, `SELECT `+datasetColumns+` FROM curation_datasets WHERE project_id = $1 AND name = $2 AND version = $3`,
		cmp.Or(project, DefaultProject), name, version))
	if err != nil {
		return DatasetVersion{}, fmt.Errorf("store: dataset %s version %d: %w", name, version, err)
	}
	return v, nil
}

// DatasetVersionList lists a project's dataset versions, of one name or
// of all ("" name), by name, newest version first.
func (s *Store) DatasetVersionList(ctx context.Context, project, name string) ([]DatasetVersion, error) {
	args := []any{cmp.Or(project, DefaultProject)}
	where := "project_id = $1"
	if name != "" {
		args = append(args, name)
		where += " AND name = $2"
	}
	out, err := collect(ctx, s.d.db(), scanDataset, `SELECT `+datasetColumns+` FROM curation_datasets WHERE `+where+
		` ORDER BY name, version DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list datasets: %w", err)
	}
	return out, nil
}

// DatasetItems lists the tasks of a dataset version, by task ID.
func (s *Store) DatasetItems(ctx context.Context, project, name string, version int64) ([]DatasetItem, error) {
	out, err := collect(ctx, s.d.db(), func(r row) (DatasetItem, error) {
		var it DatasetItem
		err := r.Scan(&it.TaskID, &it.Rows, &it.Hash)
		return it, err
	}, `SELECT task_id, rows, hash FROM curation_dataset_items WHERE project_id = $1 AND name = $2 AND version = $3 ORDER BY task_id`,
		cmp.Or(project, DefaultProject), name, version)
	if err != nil {
		return nil, fmt.Errorf("store: dataset %s version %d items: %w", name, version, err)
	}
	return out, nil
}

// NearDup is a task's fingerprint and near-duplicate cluster.
type NearDup struct {
	TaskID       string
	ProjectID    string
	ConquestType string
	SimHash      uint64
	// ClusterID is the first task of its cluster: TaskID itself when no
	// near duplicate came before it.
	ClusterID string
}

var insertNearDups = bulkInsert{table: "curation_neardups",
	columns: []string{"task_id", "project_id", "conquest_type", "simhash", "cluster_id"},
	suffix:  "ON CONFLICT (task_id) DO NOTHING"}

// NearDupUnscanned returns up to limit tasks of a project and type ("" any
// type) that have no fingerprint yet, oldest first, after the task ID after
// ("" from the first): a caller that pages on with the last ID it got reads
// the project's tasks once, however many it has fingerprinted already.
func (s *Store) NearDupUnscanned(ctx context.Context, project, typ, after string, limit int) ([]CurationTask, error) {
	args := []any{cmp.Or(project, DefaultProject)}
	where := "t.project_id = $1"
	if typ != "" {
		args = append(args, typ)
		where += fmt.Sprintf(" AND t.conquest_type = $%d", len(args))
	}
	if after != "" {
		args = append(args, after)
		where += fmt.Sprintf(" AND t.id > $%d", len(args))
	}
	args = append(args, limit)
	out, err := collect(ctx, s.d.db(), func(r row) (CurationTask, error) { return scanTask(r) }, `SELECT `+taskColumns+`
		FROM curation_tasks t WHERE `+where+` AND NOT EXISTS (SELECT 1 FROM curation_neardups n WHERE n.task_id = t.id)
		ORDER BY t.id`+fmt.Sprintf(` LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("store: unscanned tasks: %w", err)
	}
	return out, nil
}

// NearDupPut records fingerprints; a task that has one keeps it.
func (s *Store) NearDupPut(ctx context.Context, rows []NearDup) error {
	values := make([]any, 0, len(rows)*5)
	for _, n := range rows {
		values = append(values, n.TaskID, cmp.Or(n.ProjectID, DefaultProject), n.ConquestType, int64(n.SimHash), n.ClusterID)
	}
	if _, err := insertNearDups.exec(ctx, s.d.db(), s.d.name(), 500, values); err != nil {
		return fmt.Errorf("store: near duplicates: %w", err)
	}
	return nil
}

// NearDupList lists a project's fingerprints, of one type ("" any), and
// of the tasks ids only when ids is not empty, by task ID.
func (s *Store) NearDupList(ctx context.Context, project, typ string, ids []string) ([]NearDup, error) {
	args := []any{cmp.Or(project, DefaultProject)}
	conds := []string{"project_id = $1"}
	if typ != "" {
		args = append(args, typ)
		conds = append(conds, fmt.Sprintf("conquest_type = $%d", len(args)))
	}
	if len(ids) > 0 {
		// The IDs pick the rows by the primary key: the project's condition
		// on an expression keeps SQLite from walking the project's every
		// fingerprint by curation_neardups_type instead (its choice when
		// ANALYZE last saw the table small), seconds at a million tasks.
		conds[0] = "project_id || '' = $1"
		ph := make([]string, len(ids))
		for i, id := range ids {
			args = append(args, id)
			ph[i] = fmt.Sprintf("$%d", len(args))
		}
		conds = append(conds, "task_id IN ("+strings.Join(ph, ", ")+")")
	}
	out, err := collect(ctx, s.d.db(), func(r row) (NearDup, error) {
		var n NearDup
		var h int64
		err := r.Scan(&n.TaskID, &n.ProjectID, &n.ConquestType, &h, &n.ClusterID)
		n.SimHash = uint64(h)
		return n, err
	}, `SELECT task_id, project_id, conquest_type, simhash, cluster_id FROM curation_neardups WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY task_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list near duplicates: %w", err)
	}
	return out, nil
}
