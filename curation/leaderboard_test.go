package curation

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

// baseball is Agresti's example of the Bradley–Terry model: the 1987
// games between the seven teams of the American League's Eastern
// Division, 13 between every two (Agresti, "Categorical Data Analysis",
// 2nd ed., 2002, Sec. 10.6, Table 10.10; the same data as
// BradleyTerry2's `baseball`, home and away games summed). baseball[i][j]
// is how often team i beat team j.
var baseballTeams = []string{"Milwaukee", "Detroit", "Toronto", "New York", "Boston", "Cleveland", "Baltimore"}

var baseball = [][]float64{
	{0, 7, 9, 7, 7, 9, 11}, // Milwaukee
	{6, 0, 7, 5, 11, 9, 9}, // Detroit
	{4, 6, 0, 7, 7, 8, 12}, // Toronto
	{6, 8, 6, 0, 6, 7, 10}, // New York
	{6, 2, 6, 7, 0, 7, 12}, // Boston
	{4, 4, 5, 6, 6, 0, 6},  // Cleveland
	{2, 4, 1, 3, 1, 7, 0},  // Baltimore
}

// TestBradleyTerryBaseball checks the fit against the published one: the
// log-abilities relative to Baltimore and their standard errors, as
// Agresti (2002, p. 437) reports them and BradleyTerry2 reproduces
// (tests/baseball.Rout.save, `BTm(cbind(home.wins, away.wins), ...)`):
// Milwaukee 1.5814 (0.3433), Detroit 1.4364 (0.3396), Toronto 1.2945
// (0.3367), New York 1.2476 (0.3359), Boston 1.1077 (0.3339), Cleveland
// 0.6839 (0.3319). The MM algorithm reaches the same maximum as
// Agresti's Fisher scoring; the errors come from the Fisher information.
func TestBradleyTerryBaseball(t *testing.T) {
	t.Parallel()
	theta, err := BradleyTerry(baseball)
	require.NoError(t, err)
	cov := btCovariance(theta, baseball)
	require.NotNil(t, cov)
	want := map[string][2]float64{
		"Milwaukee": {1.5814, 0.3433}, "Detroit": {1.4364, 0.3396}, "Toronto": {1.2945, 0.3367},
		"New York": {1.2476, 0.3359}, "Boston": {1.1077, 0.3339}, "Cleveland": {0.6839, 0.3319},
	}
	const bal = 6
	for i, team := range baseballTeams[:6] {
		est := theta[i] - theta[bal]
		se := math.Sqrt(cov[i][i] + cov[bal][bal] - 2*cov[i][bal])
		require.InDelta(t, want[team][0], est, 5e-4, team)
		require.InDelta(t, want[team][1], se, 5e-4, team)
	}
	sum := 0.0
	for _, v := range theta {
		sum += v
	}
	require.InDelta(t, 0, sum, 1e-9, "centred")
}

// TestBradleyTerryByHand: two models, where the MLE is the odds of the
// wins: 3 wins to 1 gives p_a/p_b = 3; a tie counts half a win each, so
// 2 wins, 1 tie and 1 loss give 2.5/1.5.
func TestBradleyTerryByHand(t *testing.T) {
	t.Parallel()
	theta, err := BradleyTerry([][]float64{{0, 3}, {1, 0}})
	require.NoError(t, err)
	require.InDelta(t, math.Log(3), theta[0]-theta[1], 1e-9)

	lb := Leaderboards([]store.PairCount{{Type: "t", ModelLo: "a", ModelHi: "b", WinsLo: 2, WinsHi: 1, Ties: 1}}, 0)
	require.Len(t, lb, 1)
	st := lb[0].Standings
	require.Equal(t, "a", st[0].Model)
	require.Equal(t, 1, st[0].Rank)
	require.InDelta(t, math.Log(2.5/1.5), st[0].Score-st[1].Score, 1e-9)
	require.EqualValues(t, 4, lb[0].Verdicts)
	require.Equal(t, Standing{Model: "b", Rank: 2, Score: st[1].Score, SE: st[1].SE, Low: st[1].Low, High: st[1].High,
		Games: 4, Wins: 1, Losses: 2, Ties: 1}, st[1])
	// Var(θ_a − θ_b) = 1 / (n π (1 − π)) with π = 2.5/4; centred, each
	// score carries a quarter of it.
	pi := 2.5 / 4
	require.InDelta(t, math.Sqrt(1/(4*pi*(1-pi)))/2, st[0].SE, 1e-9)
	require.InDelta(t, st[0].Score-z95*st[0].SE, st[0].Low, 1e-12)

	// A model that never won: the pseudo-ties keep it finite.
	lb = Leaderboards([]store.PairCount{{Type: "t", ModelLo: "a", ModelHi: "b", WinsLo: 5}}, LeaderboardPseudoTies)
	require.False(t, math.IsInf(lb[0].Standings[1].Score, 0))
	require.Less(t, lb[0].Standings[1].SE, 99.0)

	_, err = BradleyTerry(nil)
	require.Error(t, err)
	_, err = BradleyTerry([][]float64{{0, 0}, {0, 0}})
	require.Error(t, err)
}

// TestPairOrder: the least compared pair of models goes first; among
// pairs compared as often, the one the leaderboard is least sure of.
func TestPairOrder(t *testing.T) {
	t.Parallel()
	models := []store.TypeModel{{Type: "t", Model: "a"}, {Type: "t", Model: "b"}, {Type: "t", Model: "c"}}
	counts := []store.PairCount{{Type: "t", ModelLo: "a", ModelHi: "b", WinsLo: 5, WinsHi: 5}}
	order := pairOrder(models, counts)
	require.Len(t, order, 3)
	require.Equal(t, [2]string{"a", "b"}, [2]string{order[2].lo, order[2].hi}, "compared most: last")
	require.EqualValues(t, 0, order[0].total)

	// a–b and b–c compared 10 times each, a–c 10 times too but c has far
	// more games elsewhere? Equal totals: the pair with the larger errors
	// first.
	counts = []store.PairCount{
		{Type: "t", ModelLo: "a", ModelHi: "b", WinsLo: 5, WinsHi: 5},
		{Type: "t", ModelLo: "a", ModelHi: "c", WinsLo: 5, WinsHi: 5},
		{Type: "t", ModelLo: "b", ModelHi: "c", WinsLo: 5, WinsHi: 5},
	}
	models = append(models, store.TypeModel{Type: "t", Model: "d"})
	counts = append(counts, store.PairCount{Type: "t", ModelLo: "a", ModelHi: "d", WinsLo: 5, WinsHi: 5},
		store.PairCount{Type: "t", ModelLo: "b", ModelHi: "d", WinsLo: 5, WinsHi: 5},
		store.PairCount{Type: "t", ModelLo: "c", ModelHi: "d", WinsLo: 1})
	order = pairOrder(models, counts)
	require.Equal(t, [2]string{"c", "d"}, [2]string{order[0].lo, order[0].hi}, "the least compared")
	require.Greater(t, order[1].uncertainty, order[len(order)-1].uncertainty-1e-9)
	for i := 1; i < len(order); i++ {
		if order[i].total == order[i-1].total {
			require.GreaterOrEqual(t, order[i-1].uncertainty+1e-9, order[i].uncertainty, "ties broken by uncertainty")
		}
	}
}
