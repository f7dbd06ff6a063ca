package api

import (
	"context"
	"fmt"
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

func registerAgents(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listAgents", Method: http.MethodGet, Path: "/v1/agents",
		Summary: "List GPU agents (kiln extension)", Tags: []string{"Agents"},
		Description: "Live GPU agents (a heartbeat in the last minute) with their loaded model, load and throughput, " +
			"and the work waiting per model, with whether any live agent serves it.",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body AgentList }, error) {
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
			ag := Agent{ID: a.ID, Object: "agent", Hostname: a.Hostname, Models: a.Models, State: a.State,
				Synthetic: a.Synthetic, InFlight: a.InFlight, Concurrency: a.Concurrency,
				RequestsPerSec: a.RequestsPerSec, TokensPerSec: a.TokensPerSec, ModelSwitches: a.ModelSwitches,
				StartedAt: a.StartedAt, LastHeartbeatAt: a.HeartbeatAt}
			if ag.Models == nil {
				ag.Models = []string{}
			}
			if a.LoadedModel != "" {
				ag.LoadedModel = &a.LoadedModel
			}
			out.Data = append(out.Data, ag)
		}
		now := time.Now().UnixMilli()
		for _, b := range backlog {
			out.Queue = append(out.Queue, QueuedModel{Model: b.Model, Shards: b.Shards, Requests: b.Requests,
				OldestS: float64(now-b.OldestReadyAt) / 1000, Served: served[b.Model]})
		}
		return &struct{ Body AgentList }{out}, nil
	})
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

// withStatusMessages explains why batches in progress wait: no live agent
// serves their model.
func withStatusMessages(ctx context.Context, d Deps, batches []Batch) error {
	waiting := false
	for _, b := range batches {
		waiting = waiting || (b.Status == "in_progress" && b.Model != nil)
	}
	if !waiting {
		return nil
	}
	agents, err := d.Store.AgentList(ctx, time.Now().Add(-agentLiveness).Unix())
	if err != nil {
		return err
	}
	served := servedModels(agents)
	for i, b := range batches {
		if b.Status != "in_progress" || b.Model == nil || served[*b.Model] {
			continue
		}
		msg := fmt.Sprintf("Waiting: no live agent serves model %q. The batch runs when one does, or expires at the end of its window.", *b.Model)
		batches[i].StatusMessage = &msg
	}
	return nil
}
