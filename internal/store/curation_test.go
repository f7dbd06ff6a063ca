package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// item is an output of batch by model to the task key of type typ; search
// "" makes an item whose task exists already.
func item(typ, key, search, batch, model string, valid bool) store.ImportItem {
	it := store.ImportItem{ConquestType: typ, ConquestVersion: 1, Key: key, SearchText: search,
		Output: store.CurationOutput{BatchID: batch, Model: model, Content: `{"answer":"` + key + `"}`, Valid: valid}}
	if search != "" {
		it.Input = json.RawMessage(`{"messages":[{"role":"user","content":"` + search + `"}]}`)
	}
	if !valid {
		it.Output.Reason, it.Output.Message = "schema", "missing answer"
	}
	return it
}

// curationFixture imports three tasks: email/k1, answered by m1 and m2;
// email/k2, answered by m1, invalid; and other/k1, answered by m1.
type curationFixture struct {
	emailK1, emailK2, otherK1 string
	k1m1, k1m2, k2m1          string // output IDs
}

func importFixture(t *testing.T, tb *testBundle) curationFixture {
	t.Helper()
	res, err := tb.st.CurationImport(tb.ctx, "batch_1", []store.ImportItem{
		item("email", "k1", "hello world 50%", "batch_1", "m1", true),
		item("email", "k2", "goodbye 500", "batch_1", "m1", false),
	})
	require.NoError(t, err)
	require.Equal(t, store.ImportResult{Tasks: 2, Outputs: 2}, res)
	m2 := item("email", "k1", "", "batch_2", "m2", true)
	latency := int64(120)
	m2.Output.LatencyMS, m2.Output.InputTokens, m2.Output.OutputTokens = &latency, 11, 22
	res, err = tb.st.CurationImport(tb.ctx, "batch_2", []store.ImportItem{m2, item("other", "k1", "other text", "batch_2", "m1", true)})
	require.NoError(t, err)
	require.Equal(t, store.ImportResult{Tasks: 1, Outputs: 2}, res)

	var f curationFixture
	for _, k := range []struct {
		typ, key string
		id       *string
	}{{"email", "k1", &f.emailK1}, {"email", "k2", &f.emailK2}, {"other", "k1", &f.otherK1}} {
		*k.id, err = tb.st.CurationTaskIDByKey(tb.ctx, "", k.typ, k.key)
		require.NoError(t, err)
	}
	_, outs, _, err := tb.st.CurationTaskGet(tb.ctx, f.emailK1)
	require.NoError(t, err)
	require.Len(t, outs, 2)
	f.k1m1, f.k1m2 = outs[0].ID, outs[1].ID
	_, outs, _, err = tb.st.CurationTaskGet(tb.ctx, f.emailK2)
	require.NoError(t, err)
	f.k2m1 = outs[0].ID
	return f
}

func testCuration(t *testing.T, setup setupFunc) {
	t.Run("Import", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		for batch, want := range map[string]bool{"batch_1": true, "batch_2": true, "batch_3": false} {
			done, err := tb.st.CurationImported(tb.ctx, batch)
			require.NoError(t, err)
			require.Equal(t, want, done, batch)
		}

		task, outs, hist, err := tb.st.CurationTaskGet(tb.ctx, f.emailK1)
		require.NoError(t, err)
		require.Equal(t, "email", task.ConquestType)
		require.EqualValues(t, 1, task.ConquestVersion)
		require.Equal(t, "k1", task.Key)
		require.JSONEq(t, `{"messages":[{"role":"user","content":"hello world 50%"}]}`, string(task.Input))
		require.Equal(t, store.TaskPending, task.Status)
		require.EqualValues(t, 1, task.Version)
		require.Nil(t, task.GoldOutputID)
		require.EqualValues(t, 2, task.Outputs)
		require.Equal(t, task.CreatedAt, task.UpdatedAt)
		require.Empty(t, hist)
		require.Equal(t, "m1", outs[0].Model, "outputs by model")
		require.Equal(t, "batch_1", outs[0].BatchID)
		require.True(t, outs[0].Valid)
		require.Nil(t, outs[0].LatencyMS)
		require.Equal(t, store.CurationOutput{ID: f.k1m2, TaskID: f.emailK1, BatchID: "batch_2", Model: "m2", Content: `{"answer":"k1"}`,
			Valid: true, InputTokens: 11, OutputTokens: 22, LatencyMS: outs[1].LatencyMS, CreatedAt: outs[1].CreatedAt, UpdatedAt: outs[1].CreatedAt}, outs[1])
		require.EqualValues(t, 120, *outs[1].LatencyMS)
		_, outs, _, err = tb.st.CurationTaskGet(tb.ctx, f.emailK2)
		require.NoError(t, err)
		require.False(t, outs[0].Valid)
		require.Equal(t, "schema", outs[0].Reason)
		require.Equal(t, "missing answer", outs[0].Message)

		// A batch imported before is not imported again.
		res, err := tb.st.CurationImport(tb.ctx, "batch_1", []store.ImportItem{item("email", "k9", "new", "batch_1", "m1", true)})
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Already: true}, res)
		_, err = tb.st.CurationTaskIDByKey(tb.ctx, "", "email", "k9")
		require.ErrorIs(t, err, store.ErrNotFound)

		// An existing task named with its input again stays as it was.
		res, err = tb.st.CurationImport(tb.ctx, "batch_3", []store.ImportItem{item("email", "k1", "changed", "batch_3", "m3", true)})
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Tasks: 0, Outputs: 1}, res)
		task, outs, _, err = tb.st.CurationTaskGet(tb.ctx, f.emailK1)
		require.NoError(t, err)
		require.Contains(t, string(task.Input), "hello world")
		require.Len(t, outs, 3)

		// An output of a task that does not exist fails the import, which
		// is not recorded.
		_, err = tb.st.CurationImport(tb.ctx, "batch_4", []store.ImportItem{item("email", "k404", "", "batch_4", "m1", true)})
		require.ErrorIs(t, err, store.ErrNotFound)
		done, err := tb.st.CurationImported(tb.ctx, "batch_4")
		require.NoError(t, err)
		require.False(t, done)

		// Tasks without outputs, from elsewhere: nothing is recorded.
		alone := item("email", "k5", "alone", "", "", true)
		res, err = tb.st.CurationImport(tb.ctx, "", []store.ImportItem{alone, alone})
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Tasks: 1}, res)
		id, err := tb.st.CurationTaskIDByKey(tb.ctx, "", "email", "k5")
		require.NoError(t, err)
		_, outs, _, err = tb.st.CurationTaskGet(tb.ctx, id)
		require.NoError(t, err)
		require.Empty(t, outs)
		done, err = tb.st.CurationImported(tb.ctx, "")
		require.NoError(t, err)
		require.False(t, done)

		// An empty batch is recorded as imported.
		res, err = tb.st.CurationImport(tb.ctx, "batch_empty", nil)
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{}, res)
		done, err = tb.st.CurationImported(tb.ctx, "batch_empty")
		require.NoError(t, err)
		require.True(t, done)

		_, _, _, err = tb.st.CurationTaskGet(tb.ctx, "task_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.CurationTaskIDByKey(tb.ctx, "", "other", "k2")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("ImportInChunks", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// More items than one import transaction holds on either backend,
		// with every task named twice: 12,000 tasks from 24,000 items.
		const tasks = 12_000
		var items []store.ImportItem
		for i := range 2 * tasks {
			key := fmt.Sprintf("k%05d", i%tasks)
			items = append(items, item("email", key, "text "+key, "batch_big", "m1", i%2 == 0))
		}
		res, err := tb.st.CurationImport(tb.ctx, "batch_big", items)
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Tasks: tasks, Outputs: tasks}, res, "one output per task and batch")
		done, err := tb.st.CurationImported(tb.ctx, "batch_big")
		require.NoError(t, err)
		require.True(t, done)

		// Every task, oldest first, in pages, with its outputs.
		var keys []string
		require.NoError(t, tb.st.CurationEach(tb.ctx, store.TaskFilter{Type: "email"}, func(task store.CurationTask, outs []store.CurationOutput) error {
			keys = append(keys, task.Key)
			require.Len(t, outs, 1)
			require.Equal(t, task.ID, outs[0].TaskID)
			return nil
		}))
		require.Len(t, keys, tasks)
		for i, k := range keys {
			require.Equal(t, fmt.Sprintf("k%05d", i), k)
		}
		n, err := tb.st.CurationCount(tb.ctx, store.TaskFilter{Invalid: new(true)})
		require.NoError(t, err)
		require.EqualValues(t, tasks/2, n, "the first output of each task counts")

		// Text search, of a text in every task (the FTS5 table is left
		// aside on SQLite) and of one in a few.
		page, more, err := tb.st.CurationTaskList(tb.ctx, store.TaskFilter{Text: "TEXT k"}, "", 5)
		require.NoError(t, err)
		require.True(t, more)
		all, _, err := tb.st.CurationTaskList(tb.ctx, store.TaskFilter{}, "", 5)
		require.NoError(t, err)
		require.Equal(t, taskIDs(all), taskIDs(page))
		page, _, err = tb.st.CurationTaskList(tb.ctx, store.TaskFilter{Text: "k1100"}, "", 50)
		require.NoError(t, err)
		require.Len(t, page, 10, "k11000 to k11009")
		n, err = tb.st.CurationCount(tb.ctx, store.TaskFilter{Text: "text k0"})
		require.NoError(t, err)
		require.EqualValues(t, 10_000, n)

		// Outputs of another batch to the same tasks, in chunks again.
		for i := range items {
			items[i].Input, items[i].Output.BatchID = nil, "batch_big2"
		}
		res, err = tb.st.CurationImport(tb.ctx, "batch_big2", items)
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Outputs: tasks}, res)
	})

	t.Run("Annotate", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		reviewed, notes, corrected := store.TaskReviewed, "checked", `{"answer":"fixed"}`
		four := int64(4)
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, 1, "alice", store.Annotation{Status: &reviewed, Notes: &notes, Gold: &f.k1m2,
			Outputs: []store.OutputAnnotation{{ID: f.k1m1, Rating: &four, Corrected: &corrected, CorrectedValid: true, CorrectedMessage: "ok"}}}))
		task, outs, hist, err := tb.st.CurationTaskGet(tb.ctx, f.emailK1)
		require.NoError(t, err)
		require.EqualValues(t, 2, task.Version)
		require.Equal(t, store.TaskReviewed, task.Status)
		require.Equal(t, "checked", task.Notes)
		require.Equal(t, "alice", task.Curator)
		require.Equal(t, f.k1m2, *task.GoldOutputID)
		require.EqualValues(t, 4, *outs[0].Rating)
		require.Equal(t, corrected, *outs[0].Corrected)
		require.True(t, *outs[0].CorrectedValid)
		require.Equal(t, "ok", outs[0].CorrectedMessage)
		require.Nil(t, outs[1].Rating)
		require.Len(t, hist, 1)
		require.Equal(t, f.emailK1, hist[0].TaskID)
		require.Equal(t, "alice", hist[0].Curator)
		require.Equal(t, "annotate", hist[0].Action)
		var detail store.Annotation
		require.NoError(t, json.Unmarshal(hist[0].Detail, &detail))
		require.Equal(t, store.TaskReviewed, *detail.Status)
		require.Equal(t, f.k1m1, detail.Outputs[0].ID)

		// A write that names an old version changes nothing.
		err = tb.st.CurationAnnotate(tb.ctx, f.emailK1, 1, "bob", store.Annotation{Notes: &notes})
		require.ErrorIs(t, err, store.ErrStale)
		require.ErrorIs(t, err, store.ErrConflict)
		// Nor does one that names an output of another task, or none.
		one := int64(1)
		for _, a := range []store.Annotation{
			{Notes: &notes, Outputs: []store.OutputAnnotation{{ID: f.k2m1, Rating: &one}}},
			{Notes: &notes, Outputs: []store.OutputAnnotation{{ID: "out_nope", Rating: &one}}},
			{Notes: &notes, Gold: &f.k2m1},
		} {
			require.ErrorIs(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, 2, "bob", a), store.ErrNotFound)
		}
		task, _, hist, err = tb.st.CurationTaskGet(tb.ctx, f.emailK1)
		require.NoError(t, err)
		require.EqualValues(t, 2, task.Version)
		require.Len(t, hist, 1)
		_, outs, _, err = tb.st.CurationTaskGet(tb.ctx, f.emailK2)
		require.NoError(t, err)
		require.Nil(t, outs[0].Rating)
		require.ErrorIs(t, tb.st.CurationAnnotate(tb.ctx, "task_nope", 1, "bob", store.Annotation{}), store.ErrNotFound)

		// Clearing.
		empty := ""
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, 2, "bob", store.Annotation{Gold: &empty,
			Outputs: []store.OutputAnnotation{{ID: f.k1m1, ClearRating: true, ClearCorrection: true}}}))
		task, outs, hist, err = tb.st.CurationTaskGet(tb.ctx, f.emailK1)
		require.NoError(t, err)
		require.EqualValues(t, 3, task.Version)
		require.Equal(t, "bob", task.Curator)
		require.Equal(t, store.TaskReviewed, task.Status, "fields not named stay")
		require.Nil(t, task.GoldOutputID)
		require.Nil(t, outs[0].Rating)
		require.Nil(t, outs[0].Corrected)
		require.Nil(t, outs[0].CorrectedValid)
		require.Empty(t, outs[0].CorrectedMessage)
		require.Len(t, hist, 2)
		require.Equal(t, []string{"alice", "bob"}, []string{hist[0].Curator, hist[1].Curator}, "history oldest first")
	})

	t.Run("ListAndCount", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		reviewed, four := store.TaskReviewed, int64(4)
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, 1, "alice", store.Annotation{Status: &reviewed, Gold: &f.k1m2,
			Outputs: []store.OutputAnnotation{{ID: f.k1m1, Rating: &four}}}))

		page, more, err := tb.st.CurationTaskList(tb.ctx, store.TaskFilter{}, "", 2)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{f.otherK1, f.emailK2}, taskIDs(page), "newest first")
		require.EqualValues(t, 1, page[1].Outputs)
		page, more, err = tb.st.CurationTaskList(tb.ctx, store.TaskFilter{}, f.emailK2, 2)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{f.emailK1}, taskIDs(page))
		require.EqualValues(t, 2, page[0].Outputs)

		for name, c := range map[string]struct {
			filter store.TaskFilter
			want   []string
		}{
			"type":          {store.TaskFilter{Type: "email"}, []string{f.emailK2, f.emailK1}},
			"model":         {store.TaskFilter{Model: "m2"}, []string{f.emailK1}},
			"gold":          {store.TaskFilter{Gold: new(true)}, []string{f.emailK1}},
			"not gold":      {store.TaskFilter{Gold: new(false)}, []string{f.otherK1, f.emailK2}},
			"rated":         {store.TaskFilter{Rated: new(true)}, []string{f.emailK1}},
			"not rated":     {store.TaskFilter{Rated: new(false)}, []string{f.otherK1, f.emailK2}},
			"invalid":       {store.TaskFilter{Invalid: new(true)}, []string{f.emailK2}},
			"not invalid":   {store.TaskFilter{Invalid: new(false)}, []string{f.otherK1, f.emailK1}},
			"status":        {store.TaskFilter{Status: store.TaskPending}, []string{f.otherK1, f.emailK2}},
			"text":          {store.TaskFilter{Text: "HELLO"}, []string{f.emailK1}},
			"literal %":     {store.TaskFilter{Text: "50%"}, []string{f.emailK1}},
			"literal _":     {store.TaskFilter{Text: "5_0"}, nil},
			"substring":     {store.TaskFilter{Text: "LO WOR"}, []string{f.emailK1}},
			"short":         {store.TaskFilter{Text: "od"}, []string{f.emailK2}},
			"one letter":    {store.TaskFilter{Text: "x"}, []string{f.otherK1}},
			"in two":        {store.TaskFilter{Text: "500"}, []string{f.emailK2}},
			"quote":         {store.TaskFilter{Text: `"hello`}, nil},
			"no such text":  {store.TaskFilter{Text: "hello world 50%!"}, nil},
			"ids":           {store.TaskFilter{IDs: []string{f.emailK2, f.otherK1}}, []string{f.otherK1, f.emailK2}},
			"all of them":   {store.TaskFilter{Type: "email", Invalid: new(false), Status: store.TaskReviewed}, []string{f.emailK1}},
			"none of them":  {store.TaskFilter{Type: "other", Model: "m2"}, nil},
			"no such model": {store.TaskFilter{Model: "m9"}, nil},
		} {
			page, _, err := tb.st.CurationTaskList(tb.ctx, c.filter, "", 10)
			require.NoError(t, err, name)
			require.Equal(t, c.want, taskIDs(page), name)
			n, err := tb.st.CurationCount(tb.ctx, c.filter)
			require.NoError(t, err, name)
			require.EqualValues(t, len(c.want), n, name)
		}
	})

	t.Run("TextOfTasksWrittenOutOfOrder", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// Tasks written in another order than their IDs', and one whose ID
		// changes: on SQLite the search reads its page in the order they
		// were written, and must still list them by ID.
		writeTasksOutOfOrder(t, tb.ctx, tb.st)
		require.NoError(t, tb.st.Exec(tb.ctx, `UPDATE curation_tasks SET id = 'task_0' WHERE id = 'task_h'`))
		checkSearchOrder(t, tb.ctx, tb.st, []string{"task_f", "task_e", "task_d", "task_c", "task_b", "task_a"}, "task_0")
	})

	t.Run("TextOfCommonAndRareWords", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// "resume" and "engineer" are in every task, each number in one:
		// on Postgres the index looks for the rare words alone, and the
		// whole text must still match, in order.
		items := make([]store.ImportItem, 30)
		for i := range items {
			items[i] = item("cv", fmt.Sprintf("k%d", 100+i), fmt.Sprintf("resume %d: engineer", 100+i), "batch_1", "m1", true)
		}
		_, err := tb.st.CurationImport(tb.ctx, "batch_1", items)
		require.NoError(t, err)
		for text, want := range map[string][]string{
			"resume 117":           {"k117"},
			"RESUME 117: ENGINEER": {"k117"},
			"117: engineer":        {"k117"},
			"resume 11":            {"k119", "k118", "k117", "k116", "k115", "k114", "k113", "k112", "k111", "k110"},
			"117 engineer":         nil,
			"resume 117 resume":    nil,
			"engineer resume":      nil,
			"resume engineer":      nil,
		} {
			page, _, err := tb.st.CurationTaskList(tb.ctx, store.TaskFilter{Text: text}, "", 50)
			require.NoError(t, err, text)
			keys := make([]string, len(page))
			for i, p := range page {
				keys[i] = p.Key
			}
			require.ElementsMatch(t, want, keys, text)
		}
	})

	t.Run("Each", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		type seen struct {
			task   string
			models []string
		}
		var got []seen
		require.NoError(t, tb.st.CurationEach(tb.ctx, store.TaskFilter{Type: "email"}, func(task store.CurationTask, outs []store.CurationOutput) error {
			s := seen{task: task.ID}
			for _, o := range outs {
				s.models = append(s.models, o.Model)
			}
			got = append(got, s)
			return nil
		}))
		require.Equal(t, []seen{{f.emailK1, []string{"m1", "m2"}}, {f.emailK2, []string{"m1"}}}, got, "oldest first, outputs by model")

		errStop := errors.New("stop")
		calls := 0
		err := tb.st.CurationEach(tb.ctx, store.TaskFilter{}, func(store.CurationTask, []store.CurationOutput) error {
			calls++
			return errStop
		})
		require.ErrorIs(t, err, errStop)
		require.Equal(t, 1, calls)
		require.NoError(t, tb.st.CurationEach(tb.ctx, store.TaskFilter{Type: "none"}, func(store.CurationTask, []store.CurationOutput) error {
			t.Fatal("no task matches")
			return nil
		}))
	})

	t.Run("Stats", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		stats, err := tb.st.CurationStats(tb.ctx, "")
		require.NoError(t, err)
		require.Empty(t, stats)
		f := importFixture(t, tb)
		reviewed, corrected := store.TaskReviewed, `{}`
		four, two := int64(4), int64(2)
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, 1, "alice", store.Annotation{Status: &reviewed, Gold: &f.k1m2,
			Outputs: []store.OutputAnnotation{{ID: f.k1m1, Rating: &four, Corrected: &corrected}}}))
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK2, 1, "alice", store.Annotation{
			Outputs: []store.OutputAnnotation{{ID: f.k2m1, Rating: &two}}}))

		stats, err = tb.st.CurationStats(tb.ctx, "")
		require.NoError(t, err)
		mean := 3.0
		require.Equal(t, []store.CurationStat{
			{Type: "email", Model: "m1", Outputs: 2, Valid: 1, Rated: 2, MeanRating: &mean, Gold: 0, Corrected: 1},
			{Type: "email", Model: "m2", Outputs: 1, Valid: 1, Rated: 0, Gold: 1},
			{Type: "other", Model: "m1", Outputs: 1, Valid: 1},
		}, stats)

		counts, err := tb.st.CurationStatusCounts(tb.ctx, "")
		require.NoError(t, err)
		require.Equal(t, []store.TaskStatusCount{
			{Type: "email", Status: store.TaskPending, Tasks: 1},
			{Type: "email", Status: store.TaskReviewed, Tasks: 1},
			{Type: "other", Status: store.TaskPending, Tasks: 1},
		}, counts)
	})
}

func testCurationProjects(t *testing.T, setup setupFunc) {
	t.Run("SameRequestTwoProjects", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newProject(t, tb, "B").ID
		// The same request, answered in each project: a task in each.
		inDefault := item("email", "k1", "hello", "batch_a", "m1", true)
		inB := item("email", "k1", "hello", "batch_b", "m1", false)
		inB.ProjectID = b
		res, err := tb.st.CurationImport(tb.ctx, "batch_a", []store.ImportItem{inDefault})
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Tasks: 1, Outputs: 1}, res)
		res, err = tb.st.CurationImport(tb.ctx, "batch_b", []store.ImportItem{inB})
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Tasks: 1, Outputs: 1}, res, "a task of its own in B")

		idA, err := tb.st.CurationTaskIDByKey(tb.ctx, "", "email", "k1")
		require.NoError(t, err)
		idB, err := tb.st.CurationTaskIDByKey(tb.ctx, b, "email", "k1")
		require.NoError(t, err)
		require.NotEqual(t, idA, idB)
		_, err = tb.st.CurationTaskIDByKey(tb.ctx, newProject(t, tb, "C").ID, "email", "k1")
		require.ErrorIs(t, err, store.ErrNotFound)
		task, outs, _, err := tb.st.CurationTaskGet(tb.ctx, idB)
		require.NoError(t, err)
		require.Equal(t, b, task.ProjectID)
		require.Len(t, outs, 1)
		require.Equal(t, "batch_b", outs[0].BatchID)
		task, _, _, err = tb.st.CurationTaskGet(tb.ctx, idA)
		require.NoError(t, err)
		require.Equal(t, store.DefaultProject, task.ProjectID, "the default")

		// Both projects in one import, in one chunk: each output finds its
		// project's task.
		more := item("email", "k1", "", "batch_c", "m2", true)
		moreB := more
		moreB.ProjectID = b
		res, err = tb.st.CurationImport(tb.ctx, "batch_c", []store.ImportItem{more, moreB})
		require.NoError(t, err)
		require.Equal(t, store.ImportResult{Outputs: 2}, res)

		// Lists, counts, walks and stats see one project each.
		for _, c := range []struct {
			project, id string
			valid       int64
		}{{"", idA, 2}, {store.DefaultProject, idA, 2}, {b, idB, 1}} {
			page, _, err := tb.st.CurationTaskList(tb.ctx, store.TaskFilter{Project: c.project}, "", 10)
			require.NoError(t, err)
			require.Equal(t, []string{c.id}, taskIDs(page), c.project)
			require.EqualValues(t, 2, page[0].Outputs)
			n, err := tb.st.CurationCount(tb.ctx, store.TaskFilter{Project: c.project, Invalid: new(true)})
			require.NoError(t, err)
			require.EqualValues(t, 2-c.valid, n, c.project)
			var walked []string
			require.NoError(t, tb.st.CurationEach(tb.ctx, store.TaskFilter{Project: c.project}, func(task store.CurationTask, outs []store.CurationOutput) error {
				walked = append(walked, task.ID)
				require.Len(t, outs, 2)
				return nil
			}))
			require.Equal(t, []string{c.id}, walked, c.project)
			stats, err := tb.st.CurationStats(tb.ctx, c.project)
			require.NoError(t, err)
			require.Len(t, stats, 2, c.project)
			require.Equal(t, c.valid-1, stats[0].Valid, "m1 of %s", c.project)
			counts, err := tb.st.CurationStatusCounts(tb.ctx, c.project)
			require.NoError(t, err)
			require.Equal(t, []store.TaskStatusCount{{Type: "email", Status: store.TaskPending, Tasks: 1}}, counts, c.project)
		}
		stats, err := tb.st.CurationStats(tb.ctx, store.AllProjects)
		require.NoError(t, err)
		require.EqualValues(t, []int64{2, 2}, []int64{stats[0].Outputs, stats[1].Outputs}, "every project's")
		counts, err := tb.st.CurationStatusCounts(tb.ctx, store.AllProjects)
		require.NoError(t, err)
		require.Equal(t, []store.TaskStatusCount{{Type: "email", Status: store.TaskPending, Tasks: 2}}, counts)
		empty := newProject(t, tb, "empty").ID
		page, _, err := tb.st.CurationTaskList(tb.ctx, store.TaskFilter{Project: empty}, "", 10)
		require.NoError(t, err)
		require.Empty(t, page)
		stats, err = tb.st.CurationStats(tb.ctx, empty)
		require.NoError(t, err)
		require.Empty(t, stats)
	})

	t.Run("Records", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newProject(t, tb, "B").ID
		require.NoError(t, tb.st.ConquestRecordsPut(tb.ctx, "", "email", map[string]json.RawMessage{"req-1": json.RawMessage(`{"n":"default"}`)}))
		require.NoError(t, tb.st.ConquestRecordsPut(tb.ctx, b, "email", map[string]json.RawMessage{"req-1": json.RawMessage(`{"n":"b"}`)}))
		got, err := tb.st.ConquestRecordGet(tb.ctx, store.DefaultProject, "email", "req-1")
		require.NoError(t, err)
		require.JSONEq(t, `{"n":"default"}`, string(got))
		got, err = tb.st.ConquestRecordGet(tb.ctx, b, "email", "req-1")
		require.NoError(t, err)
		require.JSONEq(t, `{"n":"b"}`, string(got), "each project keeps its own")
		_, err = tb.st.ConquestRecordGet(tb.ctx, newProject(t, tb, "C").ID, "email", "req-1")
		require.ErrorIs(t, err, store.ErrNotFound)

		// A page's records in one query: of the project and type only,
		// and those that exist.
		require.NoError(t, tb.st.ConquestRecordsPut(tb.ctx, "", "email", map[string]json.RawMessage{"req-2": json.RawMessage(`{"n":2}`)}))
		require.NoError(t, tb.st.ConquestRecordsPut(tb.ctx, "", "other", map[string]json.RawMessage{"req-3": json.RawMessage(`{"n":3}`)}))
		list, err := tb.st.ConquestRecordList(tb.ctx, "", "email", []string{"req-1", "req-2", "req-3", "req-nope"})
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.JSONEq(t, `{"n":"default"}`, string(list["req-1"]))
		require.JSONEq(t, `{"n":2}`, string(list["req-2"]))
		list, err = tb.st.ConquestRecordList(tb.ctx, b, "email", nil)
		require.NoError(t, err)
		require.Empty(t, list)
	})

	t.Run("Exports", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newProject(t, tb, "B").ID
		inB := store.CurationExport{ID: ids.New(ids.Export), ProjectID: b, Format: "openai_sft", Options: json.RawMessage(`{}`), CreatedAt: 1}
		inDefault := store.CurationExport{ID: ids.New(ids.Export), Format: "openai_sft", Options: json.RawMessage(`{}`), CreatedAt: 2}
		require.NoError(t, tb.st.ExportCreate(tb.ctx, inB, noopJob(inB.ID)))
		require.NoError(t, tb.st.ExportCreate(tb.ctx, inDefault, noopJob(inDefault.ID)))
		got, err := tb.st.ExportGet(tb.ctx, inB.ID)
		require.NoError(t, err)
		require.Equal(t, b, got.ProjectID)
		got, err = tb.st.ExportGet(tb.ctx, inDefault.ID)
		require.NoError(t, err)
		require.Equal(t, store.DefaultProject, got.ProjectID)
		for project, want := range map[string][]string{"": {inDefault.ID}, b: {inB.ID}, newProject(t, tb, "C").ID: nil} {
			list, err := tb.st.ExportList(tb.ctx, project, 10)
			require.NoError(t, err)
			var got []string
			for _, e := range list {
				got = append(got, e.ID)
			}
			require.Equal(t, want, got, project)
		}
		// The file is curation's, in the export's project.
		f := &store.File{ID: ids.New(ids.File), Purpose: "fine-tune", Filename: "x.jsonl", Bytes: 1, ObjectKey: "files/x",
			Status: store.FileProcessed, CreatedAt: 1, Owner: store.FileOwnerCuration, ProjectID: b}
		require.NoError(t, tb.st.ExportFinish(tb.ctx, inB.ID, 1, f, ""))
		file, err := tb.st.FileGet(tb.ctx, f.ID)
		require.NoError(t, err)
		require.Equal(t, b, file.ProjectID)
		require.Equal(t, store.FileOwnerCuration, file.Owner)
	})

	t.Run("Curators", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		a, b := newProject(t, tb, "Alpha").ID, newProject(t, tb, "Beta").ID
		names := func(ps []store.Project) []string {
			var out []string
			for _, p := range ps {
				out = append(out, p.Name)
			}
			return out
		}
		projectsOf := func(id string) []string {
			t.Helper()
			ps, err := tb.st.CuratorProjects(tb.ctx, id)
			require.NoError(t, err)
			return names(ps)
		}
		plain := store.Curator{ID: ids.New(ids.Curator), Name: "plain", Role: "curator", Prefix: "ck-1", Hash: "h-plain", CreatedAt: 1}
		require.NoError(t, tb.st.CuratorCreate(tb.ctx, plain))
		require.Equal(t, []string{"Default Project"}, projectsOf(plain.ID), "the default project by default")
		got, err := tb.st.CuratorGet(tb.ctx, plain.ID)
		require.NoError(t, err)
		require.Equal(t, plain, got)
		_, err = tb.st.CuratorGet(tb.ctx, "cur_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		admin := store.Curator{ID: ids.New(ids.Curator), Name: "admin", Role: "admin", Prefix: "ck-2", Hash: "h-admin", CreatedAt: 2}
		require.NoError(t, tb.st.CuratorCreate(tb.ctx, admin, b, a))
		require.Equal(t, []string{"Alpha", "Beta"}, projectsOf(admin.ID), "by name")
		require.Empty(t, projectsOf("cur_nope"))

		// A project that does not exist, or is archived, adds no curator.
		ghost := store.Curator{ID: ids.New(ids.Curator), Name: "ghost", Role: "curator", Prefix: "ck-3", Hash: "h-ghost", CreatedAt: 3}
		require.ErrorIs(t, tb.st.CuratorCreate(tb.ctx, ghost, a, "proj_nope"), store.ErrNotFound)
		_, err = tb.st.CuratorByHash(tb.ctx, "h-ghost")
		require.ErrorIs(t, err, store.ErrNotFound, "nothing stored")

		// Lists per project.
		for project, want := range map[string][]string{store.DefaultProject: {plain.ID}, a: {admin.ID}, b: {admin.ID}} {
			list, err := tb.st.CuratorListByProject(tb.ctx, project)
			require.NoError(t, err)
			var got []string
			for _, c := range list {
				got = append(got, c.ID)
			}
			require.Equal(t, want, got, project)
		}

		// Adding: twice is once; an unknown curator or project is not found.
		require.NoError(t, tb.st.CuratorProjectAdd(tb.ctx, plain.ID, a))
		require.NoError(t, tb.st.CuratorProjectAdd(tb.ctx, plain.ID, a))
		require.Equal(t, []string{"Alpha", "Default Project"}, projectsOf(plain.ID))
		require.ErrorIs(t, tb.st.CuratorProjectAdd(tb.ctx, "cur_nope", a), store.ErrNotFound)
		require.ErrorIs(t, tb.st.CuratorProjectAdd(tb.ctx, plain.ID, "proj_nope"), store.ErrNotFound)

		// Removing ends the project's sessions' choice; the last project stays.
		require.NoError(t, tb.st.SessionCreate(tb.ctx, "s-plain", plain.ID, time.Now().Add(time.Hour)))
		s, err := tb.st.SessionGet(tb.ctx, "s-plain")
		require.NoError(t, err)
		require.Empty(t, s.ProjectID, "none chosen yet")
		require.NoError(t, tb.st.SessionSetProject(tb.ctx, "s-plain", a))
		s, err = tb.st.SessionGet(tb.ctx, "s-plain")
		require.NoError(t, err)
		require.Equal(t, a, s.ProjectID)
		require.Equal(t, plain.ID, s.Curator.ID)
		require.ErrorIs(t, tb.st.SessionSetProject(tb.ctx, "s-nope", a), store.ErrNotFound)
		require.NoError(t, tb.st.CuratorProjectRemove(tb.ctx, plain.ID, a))
		require.Equal(t, []string{"Default Project"}, projectsOf(plain.ID))
		s, err = tb.st.SessionGet(tb.ctx, "s-plain")
		require.NoError(t, err)
		require.Empty(t, s.ProjectID, "the session forgets a project taken away")
		require.ErrorIs(t, tb.st.CuratorProjectRemove(tb.ctx, plain.ID, a), store.ErrNotFound, "not theirs any more")
		require.ErrorIs(t, tb.st.CuratorProjectRemove(tb.ctx, "cur_nope", a), store.ErrNotFound)
		require.ErrorIs(t, tb.st.CuratorProjectRemove(tb.ctx, plain.ID, store.DefaultProject), store.ErrConflict, "the last one")
		require.Equal(t, []string{"Default Project"}, projectsOf(plain.ID))

		// An archived project is no one's to work in, nor to give, and does
		// not count as a project kept.
		_, err = tb.st.ProjectArchive(tb.ctx, b)
		require.NoError(t, err)
		require.Equal(t, []string{"Alpha"}, projectsOf(admin.ID))
		require.ErrorIs(t, tb.st.CuratorProjectAdd(tb.ctx, plain.ID, b), store.ErrNotFound)
		require.ErrorIs(t, tb.st.CuratorProjectRemove(tb.ctx, admin.ID, a), store.ErrConflict)
	})
}

func testCurationExports(t *testing.T, setup setupFunc) {
	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := startWorkers(t, tb)
		e := store.CurationExport{ID: ids.New(ids.Export), Format: "openai_chat", Options: json.RawMessage(`{"gold":true}`),
			Curator: "alice", CreatedAt: 100}
		require.NoError(t, tb.st.ExportCreate(tb.ctx, e, noopJob(e.ID)))
		require.Equal(t, []string{e.ID}, w.wait(t, 1))
		got, err := tb.st.ExportGet(tb.ctx, e.ID)
		require.NoError(t, err)
		e.Status, e.ProjectID = store.ExportQueued, store.DefaultProject
		require.Equal(t, e, got)

		require.NoError(t, tb.st.ExportProgress(tb.ctx, e.ID, store.ExportRunning, 5, 10, 4))
		got, err = tb.st.ExportGet(tb.ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, store.ExportRunning, got.Status)
		require.EqualValues(t, []int64{5, 10, 4}, []int64{got.Done, got.Total, got.Rows})

		f := &store.File{ID: ids.New(ids.File), Purpose: "fine-tune", Filename: "export.jsonl", Bytes: 9, ObjectKey: "files/export",
			Status: store.FileProcessed, CreatedAt: 1}
		require.NoError(t, tb.st.ExportFinish(tb.ctx, e.ID, 9, f, ""))
		got, err = tb.st.ExportGet(tb.ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, store.ExportCompleted, got.Status)
		require.Equal(t, f.ID, *got.FileID)
		require.EqualValues(t, []int64{10, 10, 9}, []int64{got.Done, got.Total, got.Rows}, "done is the total")
		require.NotNil(t, got.CompletedAt)
		_, err = tb.st.FileGet(tb.ctx, f.ID)
		require.NoError(t, err)

		failed := store.CurationExport{ID: ids.New(ids.Export), Format: "jsonl", Options: json.RawMessage(`{}`), CreatedAt: 200}
		require.NoError(t, tb.st.ExportCreate(tb.ctx, failed, noopJob(failed.ID)))
		require.NoError(t, tb.st.ExportFinish(tb.ctx, failed.ID, 0, nil, "disk full"))
		got, err = tb.st.ExportGet(tb.ctx, failed.ID)
		require.NoError(t, err)
		require.Equal(t, store.ExportFailed, got.Status)
		require.Equal(t, "disk full", got.Error)
		require.Nil(t, got.FileID)

		list, err := tb.st.ExportList(tb.ctx, "", 10)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, []string{failed.ID, e.ID}, []string{list[0].ID, list[1].ID}, "newest first")
		list, err = tb.st.ExportList(tb.ctx, "", 1)
		require.NoError(t, err)
		require.Len(t, list, 1)
		_, err = tb.st.ExportGet(tb.ctx, "export_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func testCurators(t *testing.T, setup setupFunc) {
	t.Run("KeysAndSessions", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		alice := store.Curator{ID: ids.New(ids.Curator), Name: "alice", Role: "admin", Prefix: "cur-ab", Hash: "h-alice", CreatedAt: 100}
		bob := store.Curator{ID: ids.New(ids.Curator), Name: "bob", Role: "curator", Prefix: "cur-cd", Hash: "h-bob", CreatedAt: 200}
		require.NoError(t, tb.st.CuratorCreate(tb.ctx, alice))
		require.NoError(t, tb.st.CuratorCreate(tb.ctx, bob))
		require.Error(t, tb.st.CuratorCreate(tb.ctx, store.Curator{ID: ids.New(ids.Curator), Name: "eve", Role: "curator", Hash: "h-bob"}),
			"two curators never share a key")
		got, err := tb.st.CuratorByHash(tb.ctx, "h-alice")
		require.NoError(t, err)
		require.Equal(t, alice, got)
		_, err = tb.st.CuratorByHash(tb.ctx, "h-nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := tb.st.CuratorList(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, []store.Curator{alice, bob}, list)

		require.NoError(t, tb.st.SessionCreate(tb.ctx, "s-live", alice.ID, time.Now().Add(time.Hour)))
		require.NoError(t, tb.st.SessionCreate(tb.ctx, "s-old", alice.ID, time.Now().Add(-time.Second)))
		got, err = sessionCurator(tb, "s-live")
		require.NoError(t, err)
		require.Equal(t, alice, got)
		_, err = sessionCurator(tb, "s-old")
		require.ErrorIs(t, err, store.ErrNotFound, "an expired session")
		require.NoError(t, tb.st.SessionDelete(tb.ctx, "s-live"))
		_, err = sessionCurator(tb, "s-live")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, tb.st.SessionDelete(tb.ctx, "s-live"), "ending an ended session does nothing")

		// A revoked curator's key and sessions stop working.
		require.NoError(t, tb.st.SessionCreate(tb.ctx, "s-bob", bob.ID, time.Now().Add(time.Hour)))
		require.NoError(t, tb.st.ExecForTest(tb.ctx, `UPDATE curators SET revoked_at = 300 WHERE id = '`+bob.ID+`'`))
		_, err = tb.st.CuratorByHash(tb.ctx, "h-bob")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = sessionCurator(tb, "s-bob")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err = tb.st.CuratorList(tb.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 300, *list[1].RevokedAt, "revoked curators are still listed")
	})

	t.Run("Revoke", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		alice := store.Curator{ID: ids.New(ids.Curator), Name: "alice", Role: "admin", Prefix: "cur-ab", Hash: "h-alice", CreatedAt: 100}
		bob := store.Curator{ID: ids.New(ids.Curator), Name: "bob", Role: "curator", Prefix: "cur-cd", Hash: "h-bob", CreatedAt: 200}
		require.NoError(t, tb.st.CuratorCreate(tb.ctx, alice))
		require.NoError(t, tb.st.CuratorCreate(tb.ctx, bob))
		require.NoError(t, tb.st.SessionCreate(tb.ctx, "s-bob-1", bob.ID, time.Now().Add(time.Hour)))
		require.NoError(t, tb.st.SessionCreate(tb.ctx, "s-bob-2", bob.ID, time.Now().Add(time.Hour)))
		require.NoError(t, tb.st.SessionCreate(tb.ctx, "s-alice", alice.ID, time.Now().Add(time.Hour)))

		revoked, err := tb.st.CuratorRevoke(tb.ctx, bob.ID)
		require.NoError(t, err)
		got := revoked
		require.Equal(t, bob.ID, got.ID)
		require.Equal(t, "bob", got.Name)
		require.NotNil(t, got.RevokedAt)
		require.InDelta(t, time.Now().Unix(), *got.RevokedAt, 5)
		_, err = tb.st.CuratorByHash(tb.ctx, "h-bob")
		require.ErrorIs(t, err, store.ErrNotFound, "the key stops working at once")
		for _, s := range []string{"s-bob-1", "s-bob-2"} {
			_, err = sessionCurator(tb, s)
			require.ErrorIs(t, err, store.ErrNotFound, "and every session")
		}
		// Un-revoked by hand, the key works again but the sessions are gone:
		// they were deleted, not only refused.
		require.NoError(t, tb.st.ExecForTest(tb.ctx, `UPDATE curators SET revoked_at = NULL WHERE id = '`+bob.ID+`'`))
		_, err = tb.st.CuratorByHash(tb.ctx, "h-bob")
		require.NoError(t, err)
		_, err = sessionCurator(tb, "s-bob-1")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, tb.st.ExecForTest(tb.ctx, fmt.Sprintf(`UPDATE curators SET revoked_at = %d WHERE id = '%s'`, *revoked.RevokedAt, bob.ID)))
		got, err = sessionCurator(tb, "s-alice")
		require.NoError(t, err, "other curators keep theirs")
		require.Equal(t, alice.ID, got.ID)

		_, err = tb.st.CuratorRevoke(tb.ctx, bob.ID)
		require.ErrorIs(t, err, store.ErrConflict, "revoked already")
		_, err = tb.st.CuratorRevoke(tb.ctx, "cur_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := tb.st.CuratorList(tb.ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Nil(t, list[0].RevokedAt)
		require.Equal(t, *revoked.RevokedAt, *list[1].RevokedAt)
	})
}

// TestMigrateTaskSearchOrder writes tasks out of ID order into a database
// from before migration 21, which keeps the order of the search's FTS5
// table (SQLite): the tasks it holds out of order are found, and the
// search lists every task by ID.
func TestMigrateTaskSearchOrder(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := storetest.URL(t, backend)
			old, err := store.OpenAt(ctx, url, testLog(), 20)
			require.NoError(t, err)
			writeTasksOutOfOrder(t, ctx, old)
			old.Close()

			st, err := store.Open(ctx, url, testLog())
			require.NoError(t, err)
			t.Cleanup(st.Close)
			checkSearchOrder(t, ctx, st, []string{"task_h", "task_f", "task_e", "task_d", "task_c", "task_b", "task_a"})
		})
	}
}

// writeTasksOutOfOrder writes 1,000 tasks in ID order, task_1000001 to
// task_1001000, enough for the search to read its page from the FTS5
// table in the table's order (SQLite), then tasks task_c, task_a, task_e,
// task_b, task_f, task_d and task_h, in that order, each with "needle" in
// its text, and task_g without.
func writeTasksOutOfOrder(t *testing.T, ctx context.Context, st *store.Store) {
	t.Helper()
	require.NoError(t, st.Exec(ctx, `WITH RECURSIVE s(g) AS (SELECT 1000001 UNION ALL SELECT g + 1 FROM s WHERE g < 1001000)
		INSERT INTO curation_tasks (id, conquest_type, conquest_version, task_key, input, search_text, created_at, updated_at)
		SELECT 'task_' || g, 'hay', 1, 'key-' || g, '{}', 'a needle ' || g, 1, 1 FROM s ORDER BY g`))
	for _, id := range []string{"task_c", "task_a", "task_e", "task_g", "task_b", "task_f", "task_d", "task_h"} {
		text := "a needle in " + id
		if id == "task_g" {
			text = "hay in " + id
		}
		require.NoError(t, st.Exec(ctx, `INSERT INTO curation_tasks (id, conquest_type, conquest_version, task_key, input, search_text, created_at, updated_at)
			VALUES ($1, 'hay', 1, $1, '{}', $2, 1, 1)`, id, text))
	}
}

// checkSearchOrder lists the tasks with "needle" in their text, in pages
// of a few sizes and in one page with another filter, and requires want
// and then the 1,000 tasks of writeTasksOutOfOrder, newest first, then
// last.
func checkSearchOrder(t *testing.T, ctx context.Context, st *store.Store, want []string, last ...string) {
	t.Helper()
	for i := 1001000; i > 1000000; i-- {
		want = append(want, fmt.Sprintf("task_%d", i))
	}
	want = append(want, last...)
	for _, limit := range []int{1, 2, 3, 50, len(want), len(want) + 1} {
		var got []string
		after := ""
		for {
			page, more, err := st.CurationTaskList(ctx, store.TaskFilter{Text: "NEEDLE"}, after, limit)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), limit)
			got = append(got, taskIDs(page)...)
			if !more {
				break
			}
			after = page[len(page)-1].ID
		}
		require.Equal(t, want, got, "pages of %d", limit)
	}
	page, more, err := st.CurationTaskList(ctx, store.TaskFilter{Text: "needle", Type: "hay"}, "task_e", 3)
	require.NoError(t, err)
	require.True(t, more)
	e := slices.Index(want, "task_e")
	require.Equal(t, want[e+1:e+4], taskIDs(page), "after task_e")
}

func taskIDs(ts []store.CurationTask) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

// BenchmarkCurationImport imports 20,000 outputs of new tasks, in the
// store's multi-row inserts, and reports tasks/s.
//
//	go test -run '^$' -bench CurationImport -benchtime 3x ./internal/store/
func BenchmarkCurationImport(b *testing.B) {
	const n = 20_000
	for _, backend := range storetest.Backends {
		b.Run(backend, func(b *testing.B) {
			var rate float64
			for i := range b.N {
				st := storetest.New(b, backend)
				items := make([]store.ImportItem, n)
				for j := range items {
					key := fmt.Sprintf("k%07d", j)
					items[j] = item("email", key, "text of "+key, "batch_bench", "m", j%5 != 0)
				}
				start := time.Now()
				res, err := st.CurationImport(b.Context(), fmt.Sprintf("batch_bench%d", i), items)
				if err != nil || res.Tasks != n || res.Outputs != n {
					b.Fatal(res, err)
				}
				rate = n / time.Since(start).Seconds()
			}
			b.ReportMetric(rate, "tasks/s")
		})
	}
}

// sessionCurator is the curator of a live session.
func sessionCurator(tb *testBundle, hash string) (store.Curator, error) {
	s, err := tb.st.SessionGet(tb.ctx, hash)
	return s.Curator, err
}
