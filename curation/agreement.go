package curation

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/store"
)

// Agreement between curators who judged the same things: Cohen's κ for
// each two curators, Krippendorff's α for all of them, per conquest type,
// on pairwise verdicts (nominal) and on ratings (ordinal and interval: a
// 1–5 scale is ordered, and its steps are near enough equal to read as
// interval too). And the units they disagree on, for an admin to settle.

func registerAgreement(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "curationAgreement", Method: http.MethodGet, Path: "/v1/curation/agreement",
		Summary: "Agreement between curators", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Per conquest type and kind (preference: pairwise verdicts, nominal; rating: ratings of outputs, ordinal and " +
			"interval), over the units two curators or more judged: Krippendorff's α for all curators, and Cohen's κ and the " +
			"share of equal answers for each two curators over the units both judged. α and κ are null where they are undefined " +
			"(every answer the same category).",
	}), d.agreement)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurationDisagreements", Method: http.MethodGet, Path: "/v1/curation/disagreements",
		Summary: "What curators disagree on", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Units (a pair of outputs, or an output's rating) that curators answered differently, with each answer, in " +
			"order of task. A pair an admin settled (POST /v1/curation/preferences with final: true) is left out.",
	}), d.disagreements)
}

// Metrics of Krippendorff's α.
const (
	MetricNominal  = "nominal"
	MetricOrdinal  = "ordinal"
	MetricInterval = "interval"
)

// confusion counts two raters' labels of the same items.
type confusion struct {
	n     map[[2]string]float64
	total float64
}

func (c *confusion) add(a, b string) {
	if c.n == nil {
		c.n = map[[2]string]float64{}
	}
	c.n[[2]string{a, b}]++
	c.total++
}

// kappa is Cohen's κ = (p_o − p_e) / (1 − p_e), and p_o; ok is false
// when κ is undefined (no item, or p_e = 1: both raters always gave one
// and the same label).
func (c *confusion) kappa() (k, po float64, ok bool) {
	if c.total == 0 {
		return 0, 0, false
	}
	rowM, colM := map[string]float64{}, map[string]float64{}
	agree := 0.0
	for k, v := range c.n {
		rowM[k[0]] += v
		colM[k[1]] += v
		if k[0] == k[1] {
			agree += v
		}
	}
	po = agree / c.total
	pe := 0.0
	for l, r := range rowM {
		pe += (r / c.total) * (colM[l] / c.total)
	}
	if pe >= 1 {
		return 0, po, false
	}
	return (po - pe) / (1 - pe), po, true
}

// CohenKappa is Cohen's κ of two raters who labelled the same items: a[i]
// and b[i] are their labels of item i. ok is false when it is undefined.
func CohenKappa(a, b []string) (float64, bool) {
	var c confusion
	for i := range min(len(a), len(b)) {
		c.add(a[i], b[i])
	}
	k, _, ok := c.kappa()
	return k, ok
}

// coincidences is Krippendorff's coincidence matrix: o_ck sums, over
// units, the ordered pairs of values (c, k) of two different coders,
// each unit weighted 1 / (m_u − 1) for its m_u values. Units with one
// value are not pairable and count for nothing.
type coincidences struct {
	o map[[2]string]float64
}

func (c *coincidences) add(values []string) {
	m := len(values)
	if m < 2 {
		return
	}
	if c.o == nil {
		c.o = map[[2]string]float64{}
	}
	w := 1 / float64(m-1)
	for i, a := range values {
		for j, b := range values {
			if i != j {
				c.o[[2]string{a, b}] += w
			}
		}
	}
}

// alpha is Krippendorff's α = 1 − D_o / D_e with the metric's δ², as in
// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability":
//
//	α = 1 − (n − 1) Σ_ck o_ck δ²_ck / Σ_ck n_c n_k δ²_ck
//
// Values are numbers for the ordinal and interval metrics. ok is false
// when α is undefined (fewer than two pairable values, or only one value
// used: D_e = 0).
func (c *coincidences) alpha(metric string) (float64, bool) {
	nc := map[string]float64{}
	n := 0.0
	for k, v := range c.o {
		nc[k[0]] += v
		n += v
	}
	if n < 2 || len(nc) < 2 {
		return 0, false
	}
	values := make([]string, 0, len(nc))
	for v := range nc {
		values = append(values, v)
	}
	num := func(s string) float64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return math.NaN()
		}
		return f
	}
	slices.SortFunc(values, func(a, b string) int {
		if metric == MetricNominal {
			return strings.Compare(a, b)
		}
		fa, fb := num(a), num(b)
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return strings.Compare(a, b)
	})
	pos := map[string]int{}
	for i, v := range values {
		pos[v] = i
	}
	delta := func(a, b string) float64 {
		if a == b {
			return 0
		}
		switch metric {
		case MetricInterval:
			d := num(a) - num(b)
			return d * d
		case MetricOrdinal:
			i, j := pos[a], pos[b]
			if i > j {
				i, j = j, i
			}
			s := 0.0
			for g := i; g <= j; g++ {
				s += nc[values[g]]
			}
			s -= (nc[a] + nc[b]) / 2
			return s * s
		default:
			return 1
		}
	}
	do, de := 0.0, 0.0
	for _, a := range values {
		for _, b := range values {
			d := delta(a, b)
			do += c.o[[2]string{a, b}] * d
			de += nc[a] * nc[b] * d
		}
	}
	if de == 0 || math.IsNaN(de) {
		return 0, false
	}
	return 1 - (n-1)*do/de, true
}

// KrippendorffAlpha is Krippendorff's α of units, each the values coders
// gave it (a missing value left out), with the metric (MetricNominal,
// MetricOrdinal or MetricInterval). ok is false when it is undefined.
func KrippendorffAlpha(units [][]string, metric string) (float64, bool) {
	var c coincidences
	for _, u := range units {
		c.add(u)
	}
	return c.alpha(metric)
}

// ---- The routes ------------------------------------------------------

// kinds of judgement, listed once: the schemas' enums come from here.
var judgementKinds = []string{store.JudgePreference, store.JudgeRating}

// judgementKind is a kind of judgement.
type judgementKind string

// TransformSchema lists judgementKinds as the schema's enum.
func (judgementKind) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, judgementKinds...)
}

// PairAgreement is how two curators agree over the units both judged.
type PairAgreement struct {
	CuratorA     string   `json:"curator_a"`
	CuratorAName string   `json:"curator_a_name"`
	CuratorB     string   `json:"curator_b"`
	CuratorBName string   `json:"curator_b_name"`
	Units        int64    `json:"units" doc:"Units both judged."`
	Agreement    float64  `json:"agreement" doc:"Share of those units both answered alike."`
	Kappa        *float64 `json:"kappa" doc:"Cohen's κ; null where undefined."`
}

// Agreement is one type and kind's agreement.
type Agreement struct {
	Type  string        `json:"type"`
	Kind  judgementKind `json:"kind"`
	Units int64         `json:"units" doc:"Units two curators or more judged."`
	// Alpha by metric: nominal for preferences; ordinal and interval for
	// ratings.
	Alpha map[string]*float64 `json:"alpha" doc:"Krippendorff's α by metric (nominal for preferences, ordinal and interval for ratings); null where undefined."`
	Pairs []PairAgreement     `json:"pairs"`
}

type agreementInput struct {
	Type string `query:"type" doc:"One conquest type; default every type."`
}

type agreementOutput struct {
	Body listOf[Agreement]
}

// agreementAcc gathers one type and kind's agreement from its units.
type agreementAcc struct {
	units int64
	co    coincidences
	pairs map[[2]string]*confusion
}

// curatorNames are the names of a project's curators, by ID.
func (d Deps) curatorNames(ctx context.Context) (map[string]string, error) {
	list, err := d.Store.CuratorListByProject(ctx, projectOf(ctx))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range list {
		out[c.ID] = c.Name
	}
	return out, nil
}

// ComputeAgreement reads every unit of a project's type ("" every type)
// that two curators or more judged, and returns the agreement per type
// and kind.
func ComputeAgreement(ctx context.Context, st *store.Store, project, typ string) ([]Agreement, error) {
	judges, err := st.JudgeList(ctx, project, 1)
	if err != nil {
		return nil, err
	}
	var out []Agreement
	for _, kind := range judgementKinds {
		accs := map[string]*agreementAcc{}
		f := store.JudgementFilter{Project: project, Type: typ, Kind: kind, Judges: len(judges) > 0}
		err := st.CurationJudgements(ctx, f, func(u store.JudgementUnit) error {
			votes := u.Votes
			// A settled pair is the admin's: the others' votes still say how
			// well they agreed, the admin's is no coder's.
			votes = slices.DeleteFunc(slices.Clone(votes), func(v store.Vote) bool { return v.Final })
			if len(votes) < 2 {
				return nil
			}
			a := accs[u.Type]
			if a == nil {
				a = &agreementAcc{pairs: map[[2]string]*confusion{}}
				accs[u.Type] = a
			}
			a.units++
			values := make([]string, len(votes))
			for i, v := range votes {
				values[i] = v.Value
			}
			a.co.add(values)
			for i := range votes {
				for j := i + 1; j < len(votes); j++ {
					x, y := votes[i], votes[j]
					if x.CuratorID > y.CuratorID {
						x, y = y, x
					}
					k := [2]string{x.CuratorID, y.CuratorID}
					if a.pairs[k] == nil {
						a.pairs[k] = &confusion{}
					}
					a.pairs[k].add(x.Value, y.Value)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		types := make([]string, 0, len(accs))
		for t := range accs {
			types = append(types, t)
		}
		slices.Sort(types)
		for _, t := range types {
			a := accs[t]
			ag := Agreement{Type: t, Kind: judgementKind(kind), Units: a.units, Alpha: map[string]*float64{}, Pairs: []PairAgreement{}}
			metrics := []string{MetricNominal}
			if kind == store.JudgeRating {
				metrics = []string{MetricOrdinal, MetricInterval}
			}
			for _, m := range metrics {
				if v, ok := a.co.alpha(m); ok {
					ag.Alpha[m] = &v
				} else {
					ag.Alpha[m] = nil
				}
			}
			keys := make([][2]string, 0, len(a.pairs))
			for k := range a.pairs {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(x, y [2]string) int { return strings.Compare(x[0]+" "+x[1], y[0]+" "+y[1]) })
			for _, k := range keys {
				c := a.pairs[k]
				kappa, po, ok := c.kappa()
				pa := PairAgreement{CuratorA: k[0], CuratorB: k[1], Units: int64(c.total), Agreement: po}
				if ok {
					pa.Kappa = &kappa
				}
				ag.Pairs = append(ag.Pairs, pa)
			}
			out = append(out, ag)
		}
	}
	return out, nil
}

func (d Deps) agreement(ctx context.Context, in *agreementInput) (*agreementOutput, error) {
	list, err := ComputeAgreement(ctx, d.Store, projectOf(ctx), in.Type)
	if err != nil {
		return nil, err
	}
	names, err := d.curatorNames(ctx)
	if err != nil {
		return nil, err
	}
	judges, err := d.judgeNames(ctx)
	if err != nil {
		return nil, err
	}
	maps.Copy(names, judges)
	for i := range list {
		for j := range list[i].Pairs {
			p := &list[i].Pairs[j]
			p.CuratorAName, p.CuratorBName = names[p.CuratorA], names[p.CuratorB]
		}
	}
	if list == nil {
		list = []Agreement{}
	}
	return &agreementOutput{listOf[Agreement]{Data: list}}, nil
}

// DisagreementVote is one curator's answer on a unit.
type DisagreementVote struct {
	CuratorID string `json:"curator_id"`
	Curator   string `json:"curator"`
	Value     string `json:"value" doc:"A winner (a, b, tie, both_bad) or a rating."`
}

// Disagreement is a unit curators answered differently.
type Disagreement struct {
	Type   string        `json:"type"`
	Kind   judgementKind `json:"kind"`
	TaskID string        `json:"task_id"`
	// OutputIDs: the pair (a, then b) of a preference; the output of a
	// rating.
	OutputIDs []string           `json:"output_ids" doc:"The pair (a, then b) of a preference; the output rated."`
	Votes     []DisagreementVote `json:"votes"`
}

type disagreementsInput struct {
	Type  string        `query:"type"`
	Kind  judgementKind `query:"kind" default:"preference"`
	Limit int           `query:"limit" minimum:"1" maximum:"500" default:"100"`
}

type disagreementsOutput struct {
	Body listOf[Disagreement]
}

// errEnough stops a stream once a page is full.
var errEnough = errors.New("enough")

func (d Deps) disagreements(ctx context.Context, in *disagreementsInput) (*disagreementsOutput, error) {
	names, err := d.curatorNames(ctx)
	if err != nil {
		return nil, err
	}
	out := []Disagreement{}
	err = d.Store.CurationJudgements(ctx, store.JudgementFilter{Project: projectOf(ctx), Type: in.Type, Kind: string(in.Kind)},
		func(u store.JudgementUnit) error {
			if slices.ContainsFunc(u.Votes, func(v store.Vote) bool { return v.Final }) {
				return nil // settled
			}
			if !slices.ContainsFunc(u.Votes, func(v store.Vote) bool { return v.Value != u.Votes[0].Value }) {
				return nil
			}
			x := Disagreement{Type: u.Type, Kind: in.Kind, TaskID: u.TaskID, OutputIDs: strings.Fields(u.Unit)}
			for _, v := range u.Votes {
				x.Votes = append(x.Votes, DisagreementVote{CuratorID: v.CuratorID, Curator: names[v.CuratorID], Value: v.Value})
			}
			out = append(out, x)
			if len(out) >= in.Limit {
				return errEnough
			}
			return nil
		})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return &disagreementsOutput{listOf[Disagreement]{Data: out}}, nil
}
