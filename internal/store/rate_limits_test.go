package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testRateLimits(t *testing.T, setup setupFunc) {
	t.Run("PutForList", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		p := store.DefaultProject
		none, err := tb.st.RateLimitFor(tb.ctx, p, "m1")
		require.NoError(t, err)
		require.Zero(t, none.MaxRequestsPer1Minute, "no row: no limit")

		all, err := tb.st.RateLimitPut(tb.ctx, store.RateLimit{ID: "rl_all", ProjectID: p, Model: "", MaxRequestsPer1Minute: 60})
		require.NoError(t, err)
		require.Equal(t, "rl_all", all.ID)
		m1, err := tb.st.RateLimitPut(tb.ctx, store.RateLimit{ID: "rl_m1", ProjectID: p, Model: "m1", Batch1DayMaxInputTokens: 1000})
		require.NoError(t, err)
		require.EqualValues(t, 1000, m1.Batch1DayMaxInputTokens)

		got, err := tb.st.RateLimitFor(tb.ctx, p, "m1")
		require.NoError(t, err)
		require.Equal(t, "rl_m1", got.ID, "the model's own row wins")
		got, err = tb.st.RateLimitFor(tb.ctx, p, "m2")
		require.NoError(t, err)
		require.Equal(t, "rl_all", got.ID, "else the row for every model")
		require.EqualValues(t, 60, got.MaxRequestsPer1Minute)

		// A second put of the same model updates the row, keeping its ID.
		again, err := tb.st.RateLimitPut(tb.ctx, store.RateLimit{ID: "rl_other", ProjectID: p, Model: "m1", Batch1DayMaxInputTokens: 5})
		require.NoError(t, err)
		require.Equal(t, "rl_m1", again.ID)
		require.EqualValues(t, 5, again.Batch1DayMaxInputTokens)

		list, err := tb.st.RateLimitList(tb.ctx, p)
		require.NoError(t, err)
		require.Len(t, list, 2)
		one, err := tb.st.RateLimitGet(tb.ctx, p, "rl_m1")
		require.NoError(t, err)
		require.Equal(t, "m1", one.Model)
		_, err = tb.st.RateLimitGet(tb.ctx, "proj_other", "rl_m1")
		require.ErrorIs(t, err, store.ErrNotFound, "another project's limit is not found")
	})
}
