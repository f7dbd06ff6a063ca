package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testCurationPrefs(t *testing.T, setup setupFunc) {
	t.Run("Preferences", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		require.Less(t, f.k1m1, f.k1m2, "IDs increase: m1's output is first")

		// Given as (m2, m1) with m2 the winner: stored as (m1, m2), b wins.
		p, err := tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m2, OutputB: f.k1m1, Winner: store.PreferA,
			Reason: "shorter", CuratorID: "cur_1"})
		require.NoError(t, err)
		require.Equal(t, f.k1m1, p.OutputA)
		require.Equal(t, f.k1m2, p.OutputB)
		require.Equal(t, "m1", p.ModelA)
		require.Equal(t, "m2", p.ModelB)
		require.Equal(t, store.PreferB, p.Winner)
		require.Equal(t, "email", p.ConquestType)
		require.Equal(t, store.DefaultProject, p.ProjectID)
		require.NotEmpty(t, p.ID)

		// Judged again by the same curator: replaced.
		again, err := tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m2, Winner: store.PreferTie,
			CuratorID: "cur_1"})
		require.NoError(t, err)
		require.Equal(t, p.ID, again.ID)
		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m2, Winner: store.PreferA,
			CuratorID: "cur_2"})
		require.NoError(t, err)

		list, more, err := tb.st.PreferenceList(tb.ctx, store.PreferenceFilter{}, "", 10)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, list, 2)
		require.Equal(t, "cur_2", list[0].CuratorID, "newest first")
		require.Equal(t, store.PreferTie, list[1].Winner)
		mine, _, err := tb.st.PreferenceList(tb.ctx, store.PreferenceFilter{CuratorID: "cur_1", Type: "email", TaskID: f.emailK1}, "", 10)
		require.NoError(t, err)
		require.Len(t, mine, 1)
		page, more, err := tb.st.PreferenceList(tb.ctx, store.PreferenceFilter{}, "", 1)
		require.NoError(t, err)
		require.True(t, more)
		rest, _, err := tb.st.PreferenceList(tb.ctx, store.PreferenceFilter{}, page[0].ID, 10)
		require.NoError(t, err)
		require.Len(t, rest, 1)

		// Counts: the replaced verdict is taken back.
		counts, err := tb.st.PreferencePairCounts(tb.ctx, "", "email")
		require.NoError(t, err)
		require.Equal(t, []store.PairCount{{Type: "email", ModelLo: "m1", ModelHi: "m2", WinsLo: 1, Ties: 1}}, counts)
		require.EqualValues(t, 2, counts[0].Total())
		tallies, err := tb.st.PreferenceTallies(tb.ctx, "", "")
		require.NoError(t, err)
		require.Equal(t, counts, tallies)

		// An admin settles the pair: their verdict alone counts in the
		// tallies and verdicts; the counts keep every verdict.
		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m2, Winner: store.PreferB,
			CuratorID: "cur_admin", Final: true})
		require.NoError(t, err)
		tallies, err = tb.st.PreferenceTallies(tb.ctx, "", "email")
		require.NoError(t, err)
		require.Equal(t, []store.PairCount{{Type: "email", ModelLo: "m1", ModelHi: "m2", WinsHi: 1}}, tallies)
		verdicts, err := tb.st.PreferenceVerdicts(tb.ctx, "", "")
		require.NoError(t, err)
		require.Equal(t, []store.PreferenceVerdict{{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m2, B: 1}}, verdicts)
		counts, err = tb.st.PreferencePairCounts(tb.ctx, "", "")
		require.NoError(t, err)
		require.EqualValues(t, 3, counts[0].Total())

		// The judgements of two curators or more, by unit.
		var units []store.JudgementUnit
		require.NoError(t, tb.st.CurationJudgements(tb.ctx, store.JudgementFilter{Kind: store.JudgePreference}, func(u store.JudgementUnit) error {
			units = append(units, u)
			return nil
		}))
		require.Len(t, units, 1)
		require.Equal(t, f.k1m1+" "+f.k1m2, units[0].Unit)
		require.Equal(t, f.emailK1, units[0].TaskID)
		require.Equal(t, []store.Vote{{CuratorID: "cur_1", Value: "tie"}, {CuratorID: "cur_2", Value: "a"}, {CuratorID: "cur_admin", Value: "b", Final: true}},
			units[0].Votes)
		require.Error(t, tb.st.CurationJudgements(tb.ctx, store.JudgementFilter{Kind: "nope"}, nil))

		// Bad pairs.
		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k2m1, Winner: store.PreferA, CuratorID: "cur_1"})
		require.ErrorIs(t, err, store.ErrNotFound, "an output of another task")
		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m1, Winner: store.PreferA, CuratorID: "cur_1"})
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: "task_nope", OutputA: f.k1m1, OutputB: f.k1m2, Winner: store.PreferA, CuratorID: "cur_1"})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("PairCandidates", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		models, err := tb.st.CurationTypeModels(tb.ctx, "", "")
		require.NoError(t, err)
		require.Equal(t, []store.TypeModel{{"email", "m1"}, {"email", "m2"}, {"other", "m1"}}, models)
		models, err = tb.st.CurationTypeModels(tb.ctx, "", "other")
		require.NoError(t, err)
		require.Len(t, models, 1)

		got, err := tb.st.PairCandidates(tb.ctx, store.TaskFilter{Type: "email"}, "m1", "m2", "cur_1", "", 10)
		require.NoError(t, err)
		require.Equal(t, []store.PairCandidate{{TaskID: f.emailK1, OutputLo: f.k1m1, OutputHi: f.k1m2}}, got)
		last, err := tb.st.PreferenceLastTask(tb.ctx, "", "cur_1", "m1", "m2")
		require.NoError(t, err)
		require.Empty(t, last)
		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m2, Winner: store.PreferBothBad, CuratorID: "cur_1"})
		require.NoError(t, err)
		got, err = tb.st.PairCandidates(tb.ctx, store.TaskFilter{}, "m1", "m2", "cur_1", "", 10)
		require.NoError(t, err)
		require.Empty(t, got, "judged already")
		got, err = tb.st.PairCandidates(tb.ctx, store.TaskFilter{}, "m1", "m2", "cur_2", "", 10)
		require.NoError(t, err)
		require.Len(t, got, 1, "another curator's turn")
		got, err = tb.st.PairCandidates(tb.ctx, store.TaskFilter{}, "m1", "m2", "cur_2", f.emailK1, 10)
		require.NoError(t, err)
		require.Empty(t, got, "after the cursor")
		last, err = tb.st.PreferenceLastTask(tb.ctx, "", "cur_1", "m2", "m1")
		require.NoError(t, err)
		require.Equal(t, f.emailK1, last)
		counts, err := tb.st.PreferencePairCounts(tb.ctx, "", "")
		require.NoError(t, err)
		require.Equal(t, []store.PairCount{{Type: "email", ModelLo: "m1", ModelHi: "m2", BothBad: 1}}, counts)
	})

	t.Run("RatingsAndProgress", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		four, two := int64(4), int64(2)
		task, _, _, err := tb.st.CurationTaskGet(tb.ctx, f.emailK1)
		require.NoError(t, err)
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, task.Version, "Ada", store.Annotation{CuratorID: "cur_ada",
			Outputs: []store.OutputAnnotation{{ID: f.k1m1, Rating: &four}, {ID: f.k1m2, Rating: &two}}}))
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, task.Version+1, "Bob", store.Annotation{CuratorID: "cur_bob",
			Outputs: []store.OutputAnnotation{{ID: f.k1m1, Rating: &four}, {ID: f.k1m2, Rating: &four}}}))
		// A rating cleared is no longer the curator's.
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK2, 1, "Bob", store.Annotation{CuratorID: "cur_bob",
			Outputs: []store.OutputAnnotation{{ID: f.k2m1, Rating: &two}}}))
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK2, 2, "Bob", store.Annotation{CuratorID: "cur_bob",
			Outputs: []store.OutputAnnotation{{ID: f.k2m1, ClearRating: true}}}))
		var units []store.JudgementUnit
		require.NoError(t, tb.st.CurationJudgements(tb.ctx, store.JudgementFilter{Type: "email", Kind: store.JudgeRating}, func(u store.JudgementUnit) error {
			units = append(units, u)
			return nil
		}))
		require.Equal(t, []store.JudgementUnit{
			{Type: "email", TaskID: f.emailK1, Unit: f.k1m1, Votes: []store.Vote{{CuratorID: "cur_ada", Value: "4"}, {CuratorID: "cur_bob", Value: "4"}}},
			{Type: "email", TaskID: f.emailK1, Unit: f.k1m2, Votes: []store.Vote{{CuratorID: "cur_ada", Value: "2"}, {CuratorID: "cur_bob", Value: "4"}}},
		}, units)

		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m2, Winner: store.PreferA, CuratorID: "cur_cy"})
		require.NoError(t, err)
		done, err := tb.st.CuratorTasksDone(tb.ctx, "", "cur_bob", "", 10)
		require.NoError(t, err)
		require.Equal(t, []string{f.emailK1}, done, "a rating cleared is not done")
		done, err = tb.st.CuratorTasksDone(tb.ctx, "", "cur_cy", "", 10)
		require.NoError(t, err)
		require.Equal(t, []string{f.emailK1}, done)
		done, err = tb.st.CuratorTasksDone(tb.ctx, "", "cur_cy", f.emailK1, 10)
		require.NoError(t, err)
		require.Empty(t, done)

		all, err := tb.st.CurationTaskIDs(tb.ctx, store.TaskFilter{}, "", 10)
		require.NoError(t, err)
		require.Len(t, all, 3)
		require.IsIncreasing(t, all)
		some, err := tb.st.CurationTaskIDs(tb.ctx, store.Queue{Type: "email", Model: "m2"}.Filter(""), "", 10)
		require.NoError(t, err)
		require.Equal(t, []string{f.emailK1}, some)
		some, err = tb.st.CurationTaskIDs(tb.ctx, store.TaskFilter{}, all[0], 1)
		require.NoError(t, err)
		require.Equal(t, all[1:2], some)
	})

	t.Run("Assignment", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newProject(t, tb, "B").ID
		a, err := tb.st.AssignmentGet(tb.ctx, "")
		require.NoError(t, err)
		require.Equal(t, store.Assignment{Reviewers: store.AssignmentDefaultReviewers}, a)
		want := store.Assignment{Overlap: 0.25, Reviewers: 3, Queues: []store.Queue{{CuratorID: "cur_a", Type: "email"}, {CuratorID: "cur_b", Model: "m1", Query: "hello"}}}
		require.NoError(t, tb.st.AssignmentSet(tb.ctx, "", want))
		a, err = tb.st.AssignmentGet(tb.ctx, "")
		require.NoError(t, err)
		require.Equal(t, want, a)
		// Replaced as a whole; another project's stays apart.
		require.NoError(t, tb.st.AssignmentSet(tb.ctx, "", store.Assignment{Overlap: 0.5, Queues: []store.Queue{{CuratorID: "cur_b"}}}))
		a, err = tb.st.AssignmentGet(tb.ctx, "")
		require.NoError(t, err)
		require.Equal(t, store.Assignment{Overlap: 0.5, Reviewers: store.AssignmentDefaultReviewers, Queues: []store.Queue{{CuratorID: "cur_b"}}}, a)
		a, err = tb.st.AssignmentGet(tb.ctx, b)
		require.NoError(t, err)
		require.Empty(t, a.Queues)
	})
}
