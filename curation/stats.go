package curation

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/store"
)

// The stats route: counts per conquest type and model, for the
// workbench's overview.

func registerStats(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "curationStats", Method: http.MethodGet, Path: "/v1/curation/stats",
		Summary: "Counts per conquest type and model", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.stats)
}

// stat is the outputs of one type and model.
type stat struct {
	Type         string   `json:"type"`
	Model        string   `json:"model"`
	Outputs      int64    `json:"outputs"`
	Valid        int64    `json:"valid"`
	ValidityRate float64  `json:"validity_rate"`
	Rated        int64    `json:"rated"`
	MeanRating   *float64 `json:"mean_rating"`
	Gold         int64    `json:"gold"`
	Corrected    int64    `json:"corrected"`
}

// taskCount is the tasks of one type, by status.
type taskCount struct {
	Type     string `json:"type"`
	Total    int64  `json:"total"`
	Pending  int64  `json:"pending"`
	Reviewed int64  `json:"reviewed"`
	Skipped  int64  `json:"skipped"`
}

type statsBody struct {
	Data  []stat      `json:"data" doc:"Outputs per type and model."`
	Tasks []taskCount `json:"tasks" doc:"Tasks per type, by status."`
}

type statsOutput struct {
	Body statsBody
}

func (d Deps) stats(ctx context.Context, _ *struct{}) (*statsOutput, error) {
	st, err := d.Store.CurationStats(ctx, projectOf(ctx))
	if err != nil {
		return nil, err
	}
	counts, err := d.Store.CurationStatusCounts(ctx, projectOf(ctx))
	if err != nil {
		return nil, err
	}
	out := &statsOutput{}
	out.Body.Data, out.Body.Tasks = []stat{}, []taskCount{}
	for _, c := range counts { // ordered by type
		if n := len(out.Body.Tasks); n == 0 || out.Body.Tasks[n-1].Type != c.Type {
			out.Body.Tasks = append(out.Body.Tasks, taskCount{Type: c.Type})
		}
		tc := &out.Body.Tasks[len(out.Body.Tasks)-1]
		switch c.Status {
		case store.TaskPending:
			tc.Pending = c.Tasks
		case store.TaskReviewed:
			tc.Reviewed = c.Tasks
		case store.TaskSkipped:
			tc.Skipped = c.Tasks
		}
		tc.Total += c.Tasks
	}
	for _, s := range st {
		x := stat{Type: s.Type, Model: s.Model, Outputs: s.Outputs, Valid: s.Valid, Rated: s.Rated, MeanRating: s.MeanRating, Gold: s.Gold, Corrected: s.Corrected}
		if s.Outputs > 0 {
			x.ValidityRate = float64(s.Valid) / float64(s.Outputs)
		}
		out.Body.Data = append(out.Body.Data, x)
	}
	return out, nil
}
