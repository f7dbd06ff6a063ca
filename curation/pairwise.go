package curation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// Pairwise preferences: two outputs of one task, A and B in a random
// order (and, blind, without their models), and the curator says which is
// better, a tie, or both bad.
//
// The next pair follows an active rule: among the pairs of models that
// answered a type, the pair with the fewest verdicts so far goes first, so
// that every two models are compared about as often; among pairs with as
// many verdicts, the one the leaderboard is least sure of (the largest sum
// of the two models' standard errors) goes first; then by name. Within
// that pair of models, the first task (by ID) of the curator's queue with
// an output of each that the curator has not judged yet.

func registerPairwise(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "nextCurationPair", Method: http.MethodGet, Path: "/v1/curation/pairs/next",
		Summary: "The next pair of outputs to compare", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Two outputs of one task, as A and B in a random order; blind (the default) leaves their models out. " +
			"The pair of models with the fewest verdicts goes first, ties broken by the leaderboard's uncertainty, then the " +
			"first task of the caller's queue the caller has not judged for them. `done: true` when none is left.",
	}), d.nextPair)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "createCurationPreference", Method: http.MethodPost, Path: "/v1/curation/preferences",
		Summary: "Record a pairwise verdict", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "winner: a, b, tie or both_bad, of the outputs as sent (output_a, output_b). A curator has one verdict per " +
			"pair: judging it again replaces it. final: true (admins only) settles a disagreement: that verdict alone counts " +
			"for the pair.",
	}), d.createPreference)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurationPreferences", Method: http.MethodGet, Path: "/v1/curation/preferences",
		Summary: "List pairwise verdicts", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Newest first, keyset pagination (after = the last ID). A curator sees their own; an admin everyone's.",
	}), d.listPreferences)
}

// winners are a verdict's values, listed once: the schemas' enums come
// from here.
var winners = []string{store.PreferA, store.PreferB, store.PreferTie, store.PreferBothBad}

// winner is a verdict.
type winner string

// TransformSchema lists winners as the schema's enum.
func (winner) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, winners...)
}

// PairOutput is one side of a pair.
type PairOutput struct {
	ID      string  `json:"id"`
	Model   *string `json:"model" doc:"null in blind mode."`
	Content string  `json:"content"`
	Parsed  any     `json:"parsed" doc:"The answer as JSON; null when it is not JSON."`
	Valid   bool    `json:"valid"`
}

// Pair is two outputs of one task to compare.
type Pair struct {
	Done    bool            `json:"done" doc:"No pair is left for the caller; the rest is null."`
	TaskID  string          `json:"task_id,omitempty"`
	Type    string          `json:"type,omitempty"`
	Key     string          `json:"key,omitempty"`
	Preview string          `json:"preview,omitempty"`
	Input   json.RawMessage `json:"input,omitempty"`
	A       *PairOutput     `json:"a"`
	B       *PairOutput     `json:"b"`
	Blind   bool            `json:"blind"`
	// Compared is how many verdicts the pair of models had so far.
	Compared int64 `json:"compared" doc:"Verdicts the two models had so far (every curator's)."`
	// Prelabels are the judges' verdicts on the pair, as A and B read.
	Prelabels []Prelabel `json:"prelabels" doc:"The model judges' verdicts on this pair, winner as A and B read; empty in blind mode, where the verdict's answer carries them."`
}

type nextPairInput struct {
	Type  string `query:"type" doc:"One conquest type; default any."`
	Blind bool   `query:"blind" default:"true" doc:"Leave the models out."`
}

type pairOutput struct {
	Body Pair
}

// modelPair is a pair of models of a type and what the rule orders them
// by.
type modelPair struct {
	typ, lo, hi string
	total       int64
	uncertainty float64
}

// pairOrder is the rule's order of every pair of models of a project's
// types (one type, or every type for ""): fewest verdicts first, then the
// largest uncertainty, then by name.
func pairOrder(models []store.TypeModel, counts []store.PairCount) []modelPair {
	byType := map[string][]string{}
	for _, m := range models {
		byType[m.Type] = append(byType[m.Type], m.Model)
	}
	total := map[[3]string]int64{}
	for _, c := range counts {
		total[[3]string{c.Type, c.ModelLo, c.ModelHi}] = c.Total()
	}
	// The leaderboard's uncertainty: the standard errors of a fit to the
	// counts, every model of the type in it.
	se := map[[2]string]float64{}
	for typ, ms := range byType {
		var cs []store.PairCount
		for _, c := range counts {
			if c.Type == typ {
				cs = append(cs, c)
			}
		}
		for i, a := range ms {
			for _, b := range ms[i+1:] {
				cs = append(cs, store.PairCount{Type: typ, ModelLo: min(a, b), ModelHi: max(a, b)}) // every model on the board
			}
		}
		for _, st := range leaderboardOf(typ, cs, LeaderboardPseudoTies).Standings {
			se[[2]string{typ, st.Model}] = st.SE
		}
	}
	var out []modelPair
	for typ, ms := range byType {
		for i, a := range ms {
			for _, b := range ms[i+1:] {
				lo, hi := min(a, b), max(a, b)
				out = append(out, modelPair{typ: typ, lo: lo, hi: hi, total: total[[3]string{typ, lo, hi}],
					uncertainty: se[[2]string{typ, lo}] + se[[2]string{typ, hi}]})
			}
		}
	}
	slices.SortFunc(out, func(x, y modelPair) int {
		if c := cmp.Compare(x.total, y.total); c != 0 {
			return c
		}
		if math.Abs(x.uncertainty-y.uncertainty) > 1e-9 {
			return -cmp.Compare(x.uncertainty, y.uncertainty)
		}
		return strings.Compare(x.typ+"\x00"+x.lo+"\x00"+x.hi, y.typ+"\x00"+y.lo+"\x00"+y.hi)
	})
	return out
}

// candidatePages is how many pages of candidates the search reads for one
// pair of models before it tries the next pair: with several curators,
// a page holds about 1/n tasks of the caller's.
const candidatePages = 20

// NextPair is the next pair of outputs for a curator to compare in a
// project's type ("" any), by the rule above; nil when none is left.
func NextPair(ctx context.Context, st *store.Store, project, curatorID, typ string) (*store.PairCandidate, modelPair, error) {
	models, err := st.CurationTypeModels(ctx, project, typ)
	if err != nil {
		return nil, modelPair{}, err
	}
	counts, err := st.PreferencePairCounts(ctx, project, typ)
	if err != nil {
		return nil, modelPair{}, err
	}
	as, err := newAssigner(ctx, st, project)
	if err != nil {
		return nil, modelPair{}, err
	}
	for _, mp := range pairOrder(models, counts) {
		f, _ := as.filterOf(curatorID, mp.typ)
		// Resume after the last task judged for these models, then from
		// the start for any left behind (a queue changed meanwhile).
		last, err := st.PreferenceLastTask(ctx, project, curatorID, mp.lo, mp.hi)
		if err != nil {
			return nil, mp, err
		}
		starts := []string{last}
		if last != "" {
			starts = append(starts, "")
		}
		for _, after := range starts {
			for range candidatePages {
				cands, err := st.PairCandidates(ctx, f, mp.lo, mp.hi, curatorID, after, 100)
				if err != nil {
					return nil, mp, err
				}
				if len(cands) == 0 {
					break
				}
				ids := make([]string, 0, len(cands))
				for _, c := range cands {
					if len(ids) == 0 || ids[len(ids)-1] != c.TaskID {
						ids = append(ids, c.TaskID)
					}
				}
				mine, err := as.keep(ctx, curatorID, ids)
				if err != nil {
					return nil, mp, err
				}
				for _, c := range cands {
					if slices.Contains(mine, c.TaskID) {
						return &c, mp, nil
					}
				}
				after = cands[len(cands)-1].TaskID
				if len(cands) < 100 {
					break
				}
			}
		}
	}
	return nil, modelPair{}, nil
}

func (d Deps) nextPair(ctx context.Context, in *nextPairInput) (*pairOutput, error) {
	c, mp, err := NextPair(ctx, d.Store, projectOf(ctx), curatorOf(ctx).ID, in.Type)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return &pairOutput{Pair{Done: true, Blind: in.Blind}}, nil
	}
	t, outs, _, err := d.taskGet(ctx, c.TaskID)
	if err != nil {
		return nil, err
	}
	view := d.taskOf(t, outs, nil)
	view = d.withData(ctx, view)
	side := func(id string) *PairOutput {
		for _, o := range view.Outputs {
			if o.ID == id {
				p := &PairOutput{ID: o.ID, Content: o.Content, Parsed: o.Parsed, Valid: o.Valid}
				if !in.Blind {
					m := o.Model
					p.Model = &m
				}
				return p
			}
		}
		return nil
	}
	a, b := side(c.OutputLo), side(c.OutputHi)
	if rand.IntN(2) == 1 {
		a, b = b, a
	}
	pre := []Prelabel{}
	if !in.Blind {
		if pre, err = d.pairPrelabels(ctx, t.ID, a.ID, b.ID); err != nil {
			return nil, err
		}
	}
	return &pairOutput{Pair{TaskID: t.ID, Type: t.ConquestType, Key: t.Key, Preview: view.Preview, Input: t.Input, A: a, B: b,
		Blind: in.Blind, Compared: mp.total, Prelabels: pre}}, nil
}

// PreferenceView is a verdict as the API shows it.
type PreferenceView struct {
	ID        string `json:"id"`
	Object    string `json:"object" enum:"curation.preference"`
	TaskID    string `json:"task_id"`
	Type      string `json:"type"`
	OutputA   string `json:"output_a"`
	OutputB   string `json:"output_b"`
	ModelA    string `json:"model_a"`
	ModelB    string `json:"model_b"`
	Winner    winner `json:"winner"`
	Reason    string `json:"reason"`
	CuratorID string `json:"curator_id"`
	Final     bool   `json:"final"`
	CreatedAt int64  `json:"created_at"`
	// Prelabels: in the answer to a verdict, the judges' verdicts on the
	// pair, now that the curator has decided.
	Prelabels []Prelabel `json:"prelabels,omitempty" doc:"In the answer to a verdict: the model judges' verdicts on the pair, winner as output_a and output_b read."`
}

// viewOf shows a stored verdict with the sides as asked: a stored pair is
// in order of ID, and is flipped back when the curator sent it the other
// way round.
func viewOf(p store.Preference, outputA string) PreferenceView {
	v := PreferenceView{ID: p.ID, Object: "curation.preference", TaskID: p.TaskID, Type: p.ConquestType, OutputA: p.OutputA, OutputB: p.OutputB,
		ModelA: p.ModelA, ModelB: p.ModelB, Winner: winner(p.Winner), Reason: p.Reason, CuratorID: p.CuratorID, Final: p.Final, CreatedAt: p.CreatedAt}
	if outputA != "" && outputA == p.OutputB {
		v.OutputA, v.OutputB, v.ModelA, v.ModelB = v.OutputB, v.OutputA, v.ModelB, v.ModelA
		switch v.Winner {
		case store.PreferA:
			v.Winner = store.PreferB
		case store.PreferB:
			v.Winner = store.PreferA
		}
	}
	return v
}

// createCurationPreferenceRequest is named after its operation, as Huma
// names an anonymous body in the OpenAPI document.
type createCurationPreferenceRequest struct {
	TaskID  string `json:"task_id" minLength:"1"`
	OutputA string `json:"output_a" minLength:"1"`
	OutputB string `json:"output_b" minLength:"1"`
	Winner  winner `json:"winner"`
	Reason  string `json:"reason,omitempty" maxLength:"2000"`
	Final   bool   `json:"final,omitempty" doc:"Admins only: settle the pair; this verdict alone counts for it."`
}

type createPreferenceInput struct {
	Body createCurationPreferenceRequest
}

type preferenceOutput struct {
	Body PreferenceView
}

func (d Deps) createPreference(ctx context.Context, in *createPreferenceInput) (*preferenceOutput, error) {
	me := curatorOf(ctx)
	if in.Body.Final && me.Role != RoleAdmin {
		return nil, apierror.InvalidCode("final", "admins_only", "Only a curation admin settles a pair (final: true).")
	}
	if in.Body.OutputA == in.Body.OutputB {
		return nil, apierror.InvalidCode("output_b", "same_output", "Compare two different outputs.")
	}
	if _, _, _, err := d.taskGet(ctx, in.Body.TaskID); err != nil {
		return nil, err
	}
	p, err := d.Store.PreferenceSave(ctx, store.Preference{TaskID: in.Body.TaskID, OutputA: in.Body.OutputA, OutputB: in.Body.OutputB,
		Winner: string(in.Body.Winner), Reason: strings.TrimSpace(in.Body.Reason), CuratorID: me.ID, Final: in.Body.Final})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, apierror.InvalidCode("", "unknown_output", "An output named is not one of this task's.")
	case err != nil:
		return nil, err
	}
	v := viewOf(p, in.Body.OutputA)
	if v.Prelabels, err = d.pairPrelabels(ctx, p.TaskID, v.OutputA, v.OutputB); err != nil {
		return nil, err
	}
	return &preferenceOutput{v}, nil
}

type preferenceListInput struct {
	Type      string `query:"type"`
	TaskID    string `query:"task_id"`
	CuratorID string `query:"curator_id" doc:"Admins: one curator's verdicts."`
	After     string `query:"after"`
	Limit     int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type preferenceList struct {
	Object  string           `json:"object" enum:"list"`
	Data    []PreferenceView `json:"data"`
	HasMore bool             `json:"has_more"`
	LastID  *string          `json:"last_id"`
}

type preferenceListOutput struct {
	Body preferenceList
}

func (d Deps) listPreferences(ctx context.Context, in *preferenceListInput) (*preferenceListOutput, error) {
	f := store.PreferenceFilter{Project: projectOf(ctx), Type: in.Type, TaskID: in.TaskID, CuratorID: in.CuratorID}
	if me := curatorOf(ctx); me.Role != RoleAdmin {
		f.CuratorID = me.ID
	}
	list, more, err := d.Store.PreferenceList(ctx, f, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := preferenceList{Object: "list", Data: make([]PreferenceView, len(list)), HasMore: more}
	for i, p := range list {
		out.Data[i] = viewOf(p, "")
	}
	if len(list) > 0 {
		out.LastID = &list[len(list)-1].ID
	}
	return &preferenceListOutput{out}, nil
}
