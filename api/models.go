package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Model is OpenAI's Model object, with kiln's extension fields.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object" enum:"model"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Synthetic is a kiln extension: true when the model is served by kiln's
	// simulator, whose outputs are synthetic.
	Synthetic bool `json:"synthetic" doc:"kiln extension: the model is served by kiln's built-in simulator, so its outputs are synthetic."`
	// Agents is a kiln extension: how many live GPU agents serve the model.
	Agents int `json:"agents" doc:"kiln extension: live GPU agents serving the model."`
}

// ModelList is OpenAI's ListModelsResponse.
type ModelList struct {
	Object string  `json:"object" enum:"list"`
	Data   []Model `json:"data"`
}

// agentLiveness is how recent an agent's heartbeat must be for its models
// to be listed.
const agentLiveness = 60 * time.Second

func registerModels(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listModels", Method: http.MethodGet, Path: "/v1/models",
		Summary: "List models", Tags: []string{"Models"},
		Description: "The models that live GPU agents serve. Models served by the built-in simulator have owned_by `kiln-sim` and synthetic true.",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body ModelList }, error) {
		agents, err := d.Store.AgentList(ctx, time.Now().Add(-agentLiveness).Unix())
		if err != nil {
			return nil, err
		}
		byID := map[string]*Model{}
		for _, a := range agents {
			for _, m := range a.Models {
				cur, ok := byID[m]
				if !ok {
					owner := "kiln"
					if a.Synthetic {
						owner = "kiln-sim"
					}
					cur = &Model{ID: m, Object: "model", Created: a.StartedAt, OwnedBy: owner, Synthetic: a.Synthetic}
					byID[m] = cur
				}
				cur.Agents++
				cur.Created = min(cur.Created, a.StartedAt)
			}
		}
		out := ModelList{Object: "list", Data: []Model{}}
		for _, m := range byID {
			out.Data = append(out.Data, *m)
		}
		slices.SortFunc(out.Data, func(a, b Model) int {
			if a.ID < b.ID {
				return -1
			}
			if a.ID > b.ID {
				return 1
			}
			return 0
		})
		return &struct{ Body ModelList }{out}, nil
	})
}
