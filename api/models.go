package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/store"
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

type modelListOutput struct{ Body ModelList }

// agentLiveness is how recent an agent's heartbeat must be for its models
// to be listed.
const agentLiveness = 60 * time.Second

func registerModels(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listModels", Method: http.MethodGet, Path: "/v1/models",
		Summary: "List models", Tags: []string{"Models"},
		Description: "The models that live GPU agents serve. Models served by the built-in simulator have owned_by `kiln-sim` and synthetic true.",
	}, d.listModels)
}

func (d Deps) listModels(ctx context.Context, _ *struct{}) (*modelListOutput, error) {
	agents, err := d.Store.AgentList(ctx, time.Now().Add(-agentLiveness).Unix())
	if err != nil {
		return nil, err
	}
	return &modelListOutput{Body: ModelList{Object: "list", Data: modelsOf(agents)}}, nil
}

// modelsOf lists the models that agents serve, by ID, each with the
// earliest start of an agent serving it as its creation.
func modelsOf(agents []store.Agent) []Model {
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
	out := []Model{}
	for _, m := range byID {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Model) int { return strings.Compare(a.ID, b.ID) })
	return out
}
