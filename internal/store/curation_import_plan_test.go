package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// tasksRead is how many rows of curation_tasks the transaction of q has
// read so far, by index and by scan, as Postgres counts them.
func tasksRead(t *testing.T, q querier) int64 {
	t.Helper()
	var fetched, read int64
	require.NoError(t, q.queryRow(context.Background(), `SELECT COALESCE(idx_tup_fetch, 0), COALESCE(seq_tup_read, 0)
		FROM pg_stat_xact_user_tables WHERE relname = 'curation_tasks'`).Scan(&fetched, &read))
	t.Logf("%d tasks read by index, %d by scan", fetched, read)
	return fetched + read
}

// TestImportFindsTasksByKey: on a new Postgres database, before
// curation_tasks has statistics, an import finds its outputs' tasks
// reading each task about once, whether the tasks came in an earlier
// chunk (as the import function writes them) or in the same one. A plan
// that scanned every task of the type for each output made an import of
// 100,000 items take minutes.
func TestImportFindsTasksByKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, "postgres")
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
			require.LessOrEqual(t, tasksRead(t, q), int64(4*n), c.name)
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
	s := openTestStore(t, "postgres")
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
		require.LessOrEqual(t, tasksRead(t, q), int64(1))
		return nil
	})
	require.NoError(t, err)
}
