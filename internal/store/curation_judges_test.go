package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testCurationJudges(t *testing.T, setup setupFunc) {
	t.Run("Judges", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		f := importFixture(t, tb)
		j := store.Judge{ID: "judge_1", Type: "email", Model: "jm", Kind: store.JudgePreference, BatchID: "batch_j1", Requests: 2,
			CuratorID: "cur_admin", CreatedAt: 100}
		require.NoError(t, tb.st.JudgeCreate(tb.ctx, j))
		r := j
		r.ID, r.Kind, r.BatchID, r.CreatedAt = "judge_2", store.JudgeRating, "batch_j2", 101
		require.NoError(t, tb.st.JudgeCreate(tb.ctx, r))

		got, err := tb.st.JudgeGet(tb.ctx, "", "judge_1")
		require.NoError(t, err)
		require.Equal(t, store.JudgeRunning, got.Status)
		require.Equal(t, store.DefaultProject, got.ProjectID)
		require.Nil(t, got.EndedAt)
		_, err = tb.st.JudgeGet(tb.ctx, "proj_other", "judge_1")
		require.ErrorIs(t, err, store.ErrNotFound, "another project's")
		byBatch, err := tb.st.JudgeByBatch(tb.ctx, "batch_j2")
		require.NoError(t, err)
		require.Equal(t, "judge_2", byBatch.ID)
		_, err = tb.st.JudgeByBatch(tb.ctx, "batch_none")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := tb.st.JudgeList(tb.ctx, "", 10)
		require.NoError(t, err)
		require.Equal(t, []string{"judge_2", "judge_1"}, []string{list[0].ID, list[1].ID}, "newest first")

		// Ended with its pre-labels, once.
		pref := store.Prelabel{Type: "email", TaskID: f.emailK1, Kind: store.JudgePreference, OutputA: f.k1m1, OutputB: f.k1m2, Value: store.PreferB, Reason: "clearer"}
		ended, err := tb.st.JudgeEnd(tb.ctx, "judge_1", store.JudgeImported, "", []store.Prelabel{pref}, 1, 200)
		require.NoError(t, err)
		require.True(t, ended)
		ended, err = tb.st.JudgeEnd(tb.ctx, "judge_1", store.JudgeFailed, "again", nil, 2, 300)
		require.NoError(t, err)
		require.False(t, ended, "an ended judge stays as it ended")
		got, err = tb.st.JudgeGet(tb.ctx, "", "judge_1")
		require.NoError(t, err)
		require.Equal(t, store.JudgeImported, got.Status)
		require.EqualValues(t, 1, got.Labels)
		require.EqualValues(t, 1, got.Unreadable)
		require.EqualValues(t, 200, *got.EndedAt)
		rating := store.Prelabel{Type: "email", TaskID: f.emailK1, Kind: store.JudgeRating, OutputA: f.k1m1, Value: "4"}
		_, err = tb.st.JudgeEnd(tb.ctx, "judge_2", store.JudgeImported, "", []store.Prelabel{rating}, 0, 210)
		require.NoError(t, err)

		labels, err := tb.st.PrelabelsOfTask(tb.ctx, "", f.emailK1)
		require.NoError(t, err)
		require.Len(t, labels, 2)
		require.Equal(t, "judge_1", labels[0].JudgeID, "oldest judge first")
		require.Equal(t, "jm", labels[0].Model)
		require.Equal(t, store.PreferB, labels[0].Value)
		require.Equal(t, "clearer", labels[0].Reason)
		require.Equal(t, "4", labels[1].Value)
		none, err := tb.st.PrelabelsOfTask(tb.ctx, "", f.emailK2)
		require.NoError(t, err)
		require.Empty(t, none)
		keys, err := tb.st.PrelabelKeys(tb.ctx, "", "jm", store.JudgePreference)
		require.NoError(t, err)
		require.Equal(t, []string{f.emailK1 + " " + f.k1m1 + " " + f.k1m2}, keys)
		keys, err = tb.st.PrelabelKeys(tb.ctx, "", "other-model", store.JudgeRating)
		require.NoError(t, err)
		require.Empty(t, keys)

		// A curator's rating and verdict beside the judges': the judges count
		// as coders with Judges, and not without.
		rate := int64(4)
		require.NoError(t, tb.st.CurationAnnotate(tb.ctx, f.emailK1, 1, "Ada", store.Annotation{CuratorID: "cur_ada",
			Outputs: []store.OutputAnnotation{{ID: f.k1m1, Rating: &rate}}}))
		rated, err := tb.st.RatedBy(tb.ctx, f.emailK1, "cur_ada")
		require.NoError(t, err)
		require.Equal(t, map[string]bool{f.k1m1: true}, rated)
		_, err = tb.st.PreferenceSave(tb.ctx, store.Preference{TaskID: f.emailK1, OutputA: f.k1m1, OutputB: f.k1m2, Winner: store.PreferA, CuratorID: "cur_ada"})
		require.NoError(t, err)
		for _, kind := range []string{store.JudgePreference, store.JudgeRating} {
			var withJudges, without []store.JudgementUnit
			require.NoError(t, tb.st.CurationJudgements(tb.ctx, store.JudgementFilter{Kind: kind, Judges: true}, func(u store.JudgementUnit) error {
				withJudges = append(withJudges, u)
				return nil
			}))
			require.NoError(t, tb.st.CurationJudgements(tb.ctx, store.JudgementFilter{Kind: kind}, func(u store.JudgementUnit) error {
				without = append(without, u)
				return nil
			}))
			require.Len(t, withJudges, 1, kind)
			require.Len(t, withJudges[0].Votes, 2, kind)
			require.Empty(t, without, "%s: one curator alone is no agreement", kind)
		}
		counts, err := tb.st.PreferencePairCounts(tb.ctx, "", "email")
		require.NoError(t, err)
		require.EqualValues(t, 1, counts[0].Total(), "the judge's verdict is not counted for the leaderboard")
	})
}
