package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
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
	Agents int `json:"agents" doc:"kiln extension: live GPU agents serving the model. A model with none is known (an agent declared it, or KILN_MODELS names it): its batches wait for an agent."`
	// Source is a kiln extension: why kiln knows the model.
	Source string `json:"source" enum:"agent,config" doc:"kiln extension: agent when an agent has declared the model (created is when one first did), config when only KILN_MODELS names it (created is 0)."`
}

// ModelList is OpenAI's ListModelsResponse.
type ModelList struct {
	Object string  `json:"object" enum:"list"`
	Data   []Model `json:"data"`
}

type modelListOutput struct{ Body ModelList }

type modelOutput struct{ Body Model }

type modelInput struct {
	Model string `path:"model" doc:"The model's ID, as batch lines name it (URL-escape its slash: google%2Fgemma-3-4b-it)."`
}

// agentLiveness is how recent an agent's heartbeat must be for it to count
// as serving its models.
const agentLiveness = 60 * time.Second

func registerModels(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listModels", Method: http.MethodGet, Path: "/v1/models",
		Summary: "List models", Tags: []string{"Models"},
		Description: "The catalogue of models kiln knows: those agents have declared (kept after the agents go offline) and those KILN_MODELS names, " +
			"each with its live agents. A batch naming a model not listed fails validation with model_not_found. Models served by the built-in " +
			"simulator have owned_by `kiln-sim` and synthetic true.",
	}, d.listModels)
	huma.Register(api, huma.Operation{
		OperationID: "retrieveModel", Method: http.MethodGet, Path: "/v1/models/{model}",
		Summary: "Retrieve model", Tags: []string{"Models"},
		Description: "A model of the catalogue, or 404 model_not_found.",
	}, d.retrieveModel)
}

func (d Deps) listModels(ctx context.Context, _ *struct{}) (*modelListOutput, error) {
	models, err := d.catalogue(ctx)
	if err != nil {
		return nil, err
	}
	return &modelListOutput{Body: ModelList{Object: "list", Data: models}}, nil
}

func (d Deps) retrieveModel(ctx context.Context, in *modelInput) (*modelOutput, error) {
	models, err := d.catalogue(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(models, func(m Model) bool { return m.ID == in.Model })
	if i < 0 {
		return nil, apierror.New(http.StatusNotFound, "model_not_found", "model",
			fmt.Sprintf("The model '%s' does not exist: no agent has declared it and KILN_MODELS does not name it.", in.Model))
	}
	return &modelOutput{Body: models[i]}, nil
}

// catalogue is every model kiln knows, with its live agents.
func (d Deps) catalogue(ctx context.Context) ([]Model, error) {
	known, err := d.Store.ModelList(ctx)
	if err != nil {
		return nil, err
	}
	agents, err := d.Store.AgentList(ctx, time.Now().Add(-agentLiveness).Unix())
	if err != nil {
		return nil, err
	}
	return modelsOf(known, d.Batches.Limits().Models, agents), nil
}

// modelsOf lists the catalogue's models and the configured ones, by ID,
// each with the live agents that serve it. The agents' own lists count too,
// should a heartbeat and the catalogue disagree for a moment.
func modelsOf(known []store.CatalogModel, configured []string, agents []store.Agent) []Model {
	byID := map[string]*Model{}
	add := func(id string) *Model {
		m, ok := byID[id]
		if !ok {
			m = &Model{ID: id, Object: "model", OwnedBy: "kiln", Source: "config"}
			byID[id] = m
		}
		return m
	}
	for _, id := range configured {
		add(id)
	}
	for _, k := range known {
		m := add(k.ID)
		m.Source, m.Created, m.Synthetic = "agent", k.FirstSeenAt, k.Synthetic
	}
	for _, a := range agents {
		for _, id := range a.Models {
			m := add(id)
			if m.Source == "config" {
				m.Source, m.Created, m.Synthetic = "agent", a.StartedAt, a.Synthetic
			}
			m.Agents++
		}
	}
	out := make([]Model, 0, len(byID))
	for _, m := range byID {
		if m.Synthetic {
			m.OwnedBy = "kiln-sim"
		}
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Model) int { return strings.Compare(a.ID, b.ID) })
	return out
}
