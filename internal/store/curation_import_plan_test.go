package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/testenv"
)

// TestImportFindsTasksByKey: on a new Postgres database, before
// curation_tasks has statistics, an import finds its outputs' tasks
// reading each task about once, whether the tasks came in an earlier
// chunk (as the import function writes them) or in the same one. A plan
// that scanned every task of the type for each output made an import of
// 100,000 items take minutes.
func TestImportFindsTasksByKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresURL(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	const n = 2000
	item := func(key int, task, batch bool) ImportItem {
		it := ImportItem{ConquestType: "email", ConquestVersion: 1, Key: fmt.Sprintf("k%05d", key)}
		if task {
			it.Input, it.SearchText = json.RawMessage(`{"messages":[]}`), "text"
		}
		if batch {
			it.Output = CurationOutput{BatchID: "batch_plan", Model: "m", Valid: true}
		}
		return it
	}
	var tasksFirst, outputsAfter, both []ImportItem
	for i := range n {
		tasksFirst = append(tasksFirst, item(i, true, false))
		outputsAfter = append(outputsAfter, item(i, false, true))
		both = append(both, item(n+i, true, true))
	}
	for _, c := range []struct {
		name           string
		chunk          []ImportItem
		tasks, outputs int64
	}{{"tasks", tasksFirst, n, 0}, {"outputs of tasks written before", outputsAfter, 0, n}, {"tasks and their outputs", both, n, n}} {
		err := s.d.tx(ctx, func(q querier, _ enqueue) error {
			tasks, outputs, err := importCopy(ctx, q, c.chunk, now())
			require.NoError(t, err)
			require.Equal(t, [2]int64{c.tasks, c.outputs}, [2]int64{tasks, outputs}, c.name)
			// This transaction's reads of curation_tasks so far.
			var fetched, read int64
			require.NoError(t, q.queryRow(ctx, `SELECT COALESCE(idx_tup_fetch, 0), COALESCE(seq_tup_read, 0)
				FROM pg_stat_xact_user_tables WHERE relname = 'curation_tasks'`).Scan(&fetched, &read))
			require.LessOrEqual(t, fetched+read, int64(4*n), "%s: %d tasks read by index, %d by scan", c.name, fetched, read)
			return nil
		})
		require.NoError(t, err)
	}
}

// TestImportAnalyzesNewTasks: an import into a new Postgres database
// leaves curation_tasks analyzed, so that a look-up of one task by its key
// reads that task, not every task of its type.
func TestImportAnalyzesNewTasks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresURL(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	const n = 2000
	items := make([]ImportItem, n)
	for i := range items {
		items[i] = ImportItem{ConquestType: "email", ConquestVersion: 1, Key: fmt.Sprintf("k%05d", i),
			Input: json.RawMessage(`{"messages":[]}`), SearchText: "text"}
	}
	res, err := s.CurationImport(ctx, "", items)
	require.NoError(t, err)
	require.EqualValues(t, n, res.Tasks)
	err = s.d.tx(ctx, func(q querier, _ enqueue) error {
		var id string
		require.NoError(t, q.queryRow(ctx, `SELECT id FROM curation_tasks WHERE project_id = $1 AND conquest_type = $2 AND task_key = $3`,
			DefaultProject, "email", "k01000").Scan(&id))
		var fetched, read int64
		require.NoError(t, q.queryRow(ctx, `SELECT COALESCE(idx_tup_fetch, 0), COALESCE(seq_tup_read, 0)
			FROM pg_stat_xact_user_tables WHERE relname = 'curation_tasks'`).Scan(&fetched, &read))
		require.LessOrEqual(t, fetched+read, int64(1), "%d tasks read by index, %d by scan", fetched, read)
		return nil
	})
	require.NoError(t, err)
}
