package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/store"
)

// Agent is a GPU agent as GET /v1/agents shows it (a kiln extension).
type Agent struct {
	ID              string   `json:"id"`
	Object          string   `json:"object" enum:"agent"`
	Hostname        string   `json:"hostname"`
	Models          []string `json:"models" doc:"The models the agent's engine can serve."`
	LoadedModel     *string  `json:"loaded_model" doc:"The model on the GPU now; null before the first load."`
	State           string   `json:"state" enum:"idle,loading,running,draining"`
	Synthetic       bool     `json:"synthetic" doc:"The engine is kiln's simulator: outputs are synthetic."`
	InFlight        int64    `json:"requests_in_flight"`
	Concurrency     int64    `json:"concurrency_limit" doc:"The adaptive limit on requests in flight."`
	RequestsPerSec  float64  `json:"requests_per_second"`
	TokensPerSec    float64  `json:"tokens_per_second"`
	ModelSwitches   int64    `json:"model_switches"`
	StartedAt       int64    `json:"started_at"`
	LastHeartbeatAt int64    `json:"last_heartbeat_at"`
}

// QueuedModel is the work waiting for one model.
type QueuedModel struct {
	Model    string  `json:"model"`
	Shards   int64   `json:"shards"`
	Requests int64   `json:"requests"`
	OldestS  float64 `json:"oldest_waiting_seconds"`
	Served   bool    `json:"served" doc:"Whether a live agent can serve the model; if not, its batches wait and expire at the end of their window."`
}

// AgentList is GET /v1/agents's answer.
type AgentList struct {
	Object string        `json:"object" enum:"list"`
	Data   []Agent       `json:"data"`
	Queue  []QueuedModel `json:"queue" doc:"Work waiting for an agent, per model."`
}

type agentListOutput struct{ Body AgentList }

func registerAgents(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listAgents", Method: http.MethodGet, Path: "/v1/agents",
		Summary: "List GPU agents (kiln extension)", Tags: []string{"Agents"},
		Description: "Live GPU agents (a heartbeat in the last minute) with their loaded model, load and throughput, " +
			"and the work waiting per model, with whether any live agent serves it.",
	}, d.listAgents)
}

func (d Deps) listAgents(ctx context.Context, _ *struct{}) (*agentListOutput, error) {
	agents, err := d.Store.AgentList(ctx, time.Now().Add(-agentLiveness).Unix())
	if err != nil {
		return nil, err
	}
	backlog, err := d.Store.ShardBacklog(ctx)
	if err != nil {
		return nil, err
	}
	out := AgentList{Object: "list", Data: []Agent{}, Queue: []QueuedModel{}}
	served := servedModels(agents)
	for _, a := range agents {
		out.Data = append(out.Data, agentOf(a))
	}
	now := time.Now().UnixMilli()
	for _, b := range backlog {
		out.Queue = append(out.Queue, QueuedModel{Model: b.Model, Shards: b.Shards, Requests: b.Requests,
			OldestS: float64(now-b.OldestReadyAt) / 1000, Served: served[b.Model]})
	}
	return &agentListOutput{Body: out}, nil
}

func agentOf(a store.Agent) Agent {
	out := Agent{ID: a.ID, Object: "agent", Hostname: a.Hostname, Models: a.Models, State: a.State,
		Synthetic: a.Synthetic, InFlight: a.InFlight, Concurrency: a.Concurrency,
		RequestsPerSec: a.RequestsPerSec, TokensPerSec: a.TokensPerSec, ModelSwitches: a.ModelSwitches,
		StartedAt: a.StartedAt, LastHeartbeatAt: a.HeartbeatAt}
	if out.Models == nil {
		out.Models = []string{}
	}
	if a.LoadedModel != "" {
		out.LoadedModel = &a.LoadedModel
	}
	return out
}

func servedModels(agents []store.Agent) map[string]bool {
	served := map[string]bool{}
	for _, a := range agents {
		for _, m := range a.Models {
			served[m] = true
		}
	}
	return served
}
