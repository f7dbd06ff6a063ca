package curation

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/store"
)

// The leaderboard: models ranked per conquest type by the Bradley–Terry
// model fitted to the curators' pairwise verdicts, with confidence
// intervals from the Fisher information.

func registerLeaderboard(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "curationLeaderboard", Method: http.MethodGet, Path: "/v1/curation/leaderboard",
		Summary: "Models ranked by pairwise verdicts", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Per conquest type, each model's Bradley–Terry strength (log scale, centred on 0) fitted by Hunter's MM " +
			"algorithm to the project's verdicts, with a 95% confidence interval from the Fisher information. A tie counts " +
			"half a win each, and so does both_bad; where an admin settled a pair, their verdict alone counts. " +
			"Every two models of a type play one pseudo-tie (LeaderboardPseudoTies) so that a model that never won keeps a finite score.",
	}), d.leaderboard)
}

// LeaderboardPseudoTies is how many tied games every two models of a type
// are given before the verdicts: it keeps a model that never won (or a
// set of models never compared with the rest) at a finite score, and
// moves scores little once there are tens of verdicts.
const LeaderboardPseudoTies = 1.0

// z95 is the normal quantile of a two-sided 95% interval.
const z95 = 1.959963984540054

// errNoComparisons is a fit without any game between two models.
var errNoComparisons = errors.New("curation: no comparisons")

// BradleyTerry fits the Bradley–Terry model to wins, where wins[i][j] is
// how often i beat j (fractional: a tie is half a win each), with the MM
// algorithm of Hunter (2004), "MM algorithms for generalized
// Bradley–Terry models", Annals of Statistics 32(1), eq. (3):
//
//	p_i ← W_i / Σ_j n_ij / (p_i + p_j)
//
// It returns the log-strengths θ_i = log p_i, centred on 0. The maximum
// likelihood exists when every model wins and loses somewhere in one
// strongly connected comparison graph (Hunter's Assumption 1); otherwise
// the scores drift apart and stop at the iteration limit.
func BradleyTerry(wins [][]float64) ([]float64, error) {
	n := len(wins)
	if n == 0 {
		return nil, errNoComparisons
	}
	w := make([]float64, n)
	played := false
	for i := range n {
		for j := range n {
			if i != j {
				w[i] += wins[i][j]
				if wins[i][j] > 0 {
					played = true
				}
			}
		}
	}
	if !played {
		return nil, errNoComparisons
	}
	p := make([]float64, n)
	for i := range p {
		p[i] = 1
	}
	next := make([]float64, n)
	for range 10000 {
		for i := range n {
			den := 0.0
			for j := range n {
				if nij := wins[i][j] + wins[j][i]; i != j && nij > 0 {
					den += nij / (p[i] + p[j])
				}
			}
			if den == 0 {
				next[i] = p[i]
				continue
			}
			next[i] = w[i] / den
		}
		// Scale so that the geometric mean is 1; a model without a win
		// stays at 0 (−∞ on the log scale).
		logSum, k := 0.0, 0
		for _, v := range next {
			if v > 0 {
				logSum += math.Log(v)
				k++
			}
		}
		scale := math.Exp(-logSum / float64(max(k, 1)))
		change := 0.0
		for i := range next {
			next[i] *= scale
			change = max(change, math.Abs(next[i]-p[i])/max(p[i], 1e-300))
		}
		p, next = next, p
		if change < 1e-12 {
			break
		}
	}
	theta := make([]float64, n)
	for i, v := range p {
		theta[i] = math.Log(v)
	}
	return theta, nil
}

// btCovariance is the covariance of the log-strengths θ (centred: they sum
// to 0) at the fit: the Moore–Penrose inverse of the Fisher information
//
//	I_ii = Σ_j n_ij π_ij (1 − π_ij),  I_ij = −n_ij π_ij (1 − π_ij),
//
// with π_ij = p_i / (p_i + p_j). I is a weighted graph Laplacian with null
// space 1, so that its pseudo-inverse is (I + J/n)⁻¹ − J/n. A variance of
// a difference θ_i − θ_j is C_ii + C_jj − 2 C_ij, whichever model is the
// reference. Nil when the comparisons do not connect every model.
func btCovariance(theta []float64, wins [][]float64) [][]float64 {
	n := len(theta)
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n)
	}
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			nij := wins[i][j] + wins[j][i]
			if nij == 0 {
				continue
			}
			pi := 1 / (1 + math.Exp(theta[j]-theta[i]))
			v := nij * pi * (1 - pi)
			m[i][j] -= v
			m[i][i] += v
		}
	}
	for i := range n {
		for j := range n {
			m[i][j] += 1 / float64(n)
		}
	}
	inv := invert(m)
	if inv == nil {
		return nil
	}
	for i := range n {
		for j := range n {
			inv[i][j] -= 1 / float64(n)
		}
	}
	return inv
}

// invert inverts a small square matrix by Gauss–Jordan elimination with
// partial pivoting; nil when it is singular.
func invert(a [][]float64) [][]float64 {
	n := len(a)
	m := make([][]float64, n)
	for i := range a {
		m[i] = make([]float64, 2*n)
		copy(m[i], a[i])
		m[i][n+i] = 1
	}
	for c := range n {
		piv := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[piv][c]) {
				piv = r
			}
		}
		if math.Abs(m[piv][c]) < 1e-12 {
			return nil
		}
		m[c], m[piv] = m[piv], m[c]
		d := m[c][c]
		for k := range m[c] {
			m[c][k] /= d
		}
		for r := range n {
			if r == c || m[r][c] == 0 {
				continue
			}
			f := m[r][c]
			for k := range m[r] {
				m[r][k] -= f * m[c][k]
			}
		}
	}
	out := make([][]float64, n)
	for i := range m {
		out[i] = m[i][n:]
	}
	return out
}

// Standing is one model's place on a type's leaderboard.
type Standing struct {
	Model string `json:"model"`
	Rank  int    `json:"rank" doc:"1 is the strongest."`
	// Score is the Bradley–Terry log-strength, centred on 0 over the
	// type's models: the chance that a beats b is 1 / (1 + e^(score_b − score_a)).
	Score float64 `json:"score" doc:"Bradley–Terry log-strength, centred on 0: P(a beats b) = 1 / (1 + exp(score_b - score_a))."`
	SE    float64 `json:"se" doc:"Standard error of the score (Fisher information)."`
	Low   float64 `json:"low" doc:"Lower end of the score's 95% confidence interval."`
	High  float64 `json:"high" doc:"Upper end of the score's 95% confidence interval."`
	// Games counts verdicts with the model on one side; Wins, Losses and
	// Ties split them (both_bad among the ties).
	Games   int64 `json:"games"`
	Wins    int64 `json:"wins"`
	Losses  int64 `json:"losses"`
	Ties    int64 `json:"ties" doc:"Ties and both_bad verdicts."`
	BothBad int64 `json:"both_bad"`
}

// TypeLeaderboard is one conquest type's standings, strongest first.
type TypeLeaderboard struct {
	Type      string     `json:"type"`
	Verdicts  int64      `json:"verdicts"`
	Standings []Standing `json:"standings"`
}

// Leaderboards ranks models per type from counts of verdicts, with
// pseudoTies tied games between every two models of a type.
func Leaderboards(counts []store.PairCount, pseudoTies float64) []TypeLeaderboard {
	byType := map[string][]store.PairCount{}
	var types []string
	for _, c := range counts {
		if _, ok := byType[c.Type]; !ok {
			types = append(types, c.Type)
		}
		byType[c.Type] = append(byType[c.Type], c)
	}
	slices.Sort(types)
	out := make([]TypeLeaderboard, 0, len(types))
	for _, typ := range types {
		out = append(out, leaderboardOf(typ, byType[typ], pseudoTies))
	}
	return out
}

// leaderboardOf ranks the models of one type.
func leaderboardOf(typ string, counts []store.PairCount, pseudoTies float64) TypeLeaderboard {
	idx := map[string]int{}
	var models []string
	for _, c := range counts {
		for _, m := range []string{c.ModelLo, c.ModelHi} {
			if _, ok := idx[m]; !ok {
				idx[m] = len(models)
				models = append(models, m)
			}
		}
	}
	n := len(models)
	wins := make([][]float64, n)
	for i := range wins {
		wins[i] = make([]float64, n)
		for j := range wins[i] {
			if i != j {
				wins[i][j] = pseudoTies / 2
			}
		}
	}
	lb := TypeLeaderboard{Type: typ, Standings: make([]Standing, n)}
	for i, m := range models {
		lb.Standings[i].Model = m
	}
	for _, c := range counts {
		lo, hi := idx[c.ModelLo], idx[c.ModelHi]
		half := float64(c.Ties+c.BothBad) / 2
		wins[lo][hi] += float64(c.WinsLo) + half
		wins[hi][lo] += float64(c.WinsHi) + half
		lb.Verdicts += c.Total()
		for _, s := range []struct {
			i       int
			won, by int64
		}{{lo, c.WinsLo, c.WinsHi}, {hi, c.WinsHi, c.WinsLo}} {
			st := &lb.Standings[s.i]
			st.Games += c.Total()
			st.Wins += s.won
			st.Losses += s.by
			st.Ties += c.Ties + c.BothBad
			st.BothBad += c.BothBad
		}
	}
	theta, err := BradleyTerry(wins)
	if err != nil {
		for i := range lb.Standings {
			lb.Standings[i].SE = math.Inf(1)
		}
		return finishStandings(lb)
	}
	cov := btCovariance(theta, wins)
	for i := range lb.Standings {
		st := &lb.Standings[i]
		st.Score = theta[i]
		st.SE = math.Inf(1)
		if cov != nil && cov[i][i] >= 0 {
			st.SE = math.Sqrt(cov[i][i])
		}
	}
	return finishStandings(lb)
}

// finishStandings sorts standings strongest first, ranks them and sets
// their intervals; an infinite SE (no fit) becomes a wide interval.
func finishStandings(lb TypeLeaderboard) TypeLeaderboard {
	slices.SortStableFunc(lb.Standings, func(a, b Standing) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	for i := range lb.Standings {
		st := &lb.Standings[i]
		st.Rank = i + 1
		if math.IsInf(st.SE, 1) {
			st.SE = 99 // JSON has no infinity: "no idea"
		}
		st.Low, st.High = st.Score-z95*st.SE, st.Score+z95*st.SE
	}
	return lb
}

type leaderboardInput struct {
	Type string `query:"type" doc:"One conquest type; default every type."`
}

type leaderboardOutput struct {
	Body listOf[TypeLeaderboard]
}

func (d Deps) leaderboard(ctx context.Context, in *leaderboardInput) (*leaderboardOutput, error) {
	counts, err := d.Store.PreferenceTallies(ctx, projectOf(ctx), in.Type)
	if err != nil {
		return nil, err
	}
	return &leaderboardOutput{listOf[TypeLeaderboard]{Data: Leaderboards(counts, LeaderboardPseudoTies)}}, nil
}
