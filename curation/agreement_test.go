package curation

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCohenKappaWikipedia is the worked example of Wikipedia's "Cohen's
// kappa" (section Examples): two readers of 50 grant proposals, yes or no.
// Both said yes to 20 and no to 15; A yes and B no to 5; A no and B yes
// to 10. p_o = 0.7, p_e = 0.5 · 0.6 + 0.5 · 0.4 = 0.5, κ = 0.4.
func TestCohenKappaWikipedia(t *testing.T) {
	t.Parallel()
	var a, b []string
	add := func(n int, x, y string) {
		for range n {
			a, b = append(a, x), append(b, y)
		}
	}
	add(20, "yes", "yes")
	add(5, "yes", "no")
	add(10, "no", "yes")
	add(15, "no", "no")
	k, ok := CohenKappa(a, b)
	require.True(t, ok)
	require.InDelta(t, 0.4, k, 1e-12)

	// Undefined: one label throughout, or nothing.
	_, ok = CohenKappa([]string{"a", "a"}, []string{"a", "a"})
	require.False(t, ok)
	_, ok = CohenKappa(nil, nil)
	require.False(t, ok)
	k, ok = CohenKappa([]string{"a", "b"}, []string{"a", "b"})
	require.True(t, ok)
	require.InDelta(t, 1, k, 1e-12)
}

// krippendorff2011 is the worked example of Krippendorff (2011),
// "Computing Krippendorff's Alpha-Reliability" (Departmental Papers
// (ASC) 43, University of Pennsylvania), section C: four observers A–D,
// twelve units, values 1–5, "" missing.
var krippendorff2011 = [4][12]string{
	{"1", "2", "3", "3", "2", "1", "4", "1", "2", "", "", ""},
	{"1", "2", "3", "3", "2", "2", "4", "1", "2", "5", "", "3"},
	{"", "3", "3", "3", "2", "3", "4", "2", "2", "5", "1", ""},
	{"1", "2", "3", "3", "2", "4", "4", "1", "2", "5", "1", ""},
}

// TestKrippendorffAlpha2011 checks α against the paper's results for its
// example: nominal α = 0.743, ordinal α = 0.815, interval α = 0.849. Unit
// 12 has one value and is not pairable.
func TestKrippendorffAlpha2011(t *testing.T) {
	t.Parallel()
	var units [][]string
	for u := range 12 {
		var vals []string
		for _, obs := range krippendorff2011 {
			if obs[u] != "" {
				vals = append(vals, obs[u])
			}
		}
		units = append(units, vals)
	}
	for metric, want := range map[string]float64{MetricNominal: 0.743, MetricOrdinal: 0.815, MetricInterval: 0.849} {
		got, ok := KrippendorffAlpha(units, metric)
		require.True(t, ok, metric)
		require.InDelta(t, want, got, 5e-4, "%s α = %.4f", metric, got)
	}
	// Undefined: one value throughout.
	_, ok := KrippendorffAlpha([][]string{{"1", "1"}, {"1", "1"}}, MetricNominal)
	require.False(t, ok)
	// Perfect agreement.
	a, ok := KrippendorffAlpha([][]string{{"1", "1"}, {"2", "2"}}, MetricNominal)
	require.True(t, ok)
	require.InDelta(t, 1, a, 1e-12)
}

// TestAssignees: a task goes to one of its curators by its hash, the same
// one every time; the overlap's share goes to several; each curator gets
// about as many.
func TestAssignees(t *testing.T) {
	t.Parallel()
	cur := []string{"cur_a", "cur_b", "cur_c"}
	require.Equal(t, Assignees("task_1", cur, 0.3, 2), Assignees("task_1", cur, 0.3, 2), "deterministic")
	require.Nil(t, Assignees("task_1", nil, 1, 2))
	require.Equal(t, []string{"cur_a"}, Assignees("task_1", cur[:1], 1, 2), "one curator: one")
	per := map[string]int{}
	two := 0
	const n = 30000
	for i := range n {
		as := Assignees(fmt.Sprintf("task_%06d", i), cur, 0.3, 2)
		if len(as) == 2 {
			two++
			require.NotEqual(t, as[0], as[1])
		}
		for _, c := range as {
			per[c]++
		}
	}
	require.InDelta(t, 0.3, float64(two)/n, 0.02, "the overlap's share")
	for _, c := range cur {
		require.InDelta(t, 1.3/3, float64(per[c])/n, 0.02, c)
	}
	all := Assignees("task_9", cur, 1, 5)
	require.ElementsMatch(t, cur, all, "reviewers beyond the curators: all of them")
}
