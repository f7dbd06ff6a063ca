package jobs

import (
	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/store"
)

// BatchRunArgs asks a GPU agent to run a validated batch's requests. Its
// worker is the agent's (package gpuagent).
type BatchRunArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is stable; never rename it.
func (BatchRunArgs) Kind() string { return "batch_run" }

// RunJob is the run job of a batch, on the agent queue.
func RunJob(batchID string) store.Job {
	return store.Job{Args: BatchRunArgs{BatchID: batchID}, Opts: &river.InsertOpts{
		Queue:       QueueAgent,
		MaxAttempts: 25,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	}}
}
