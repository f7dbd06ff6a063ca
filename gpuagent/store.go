package gpuagent

import (
	"context"
	"time"

	"github.com/kilnhq/kiln/internal/store"
)

// Store is what the agent needs of kiln's state: its own heartbeat, the
// backlog, shard leases, result chunks and a batch's input file.
// *store.Store has it.
type Store interface {
	AgentHeartbeat(ctx context.Context, a store.Agent) error
	AgentRemove(ctx context.Context, id string) error
	WaitShards(ctx context.Context, timeout time.Duration)
	ShardWaiting(ctx context.Context) ([]store.Backlog, error)
	ShardClaim(ctx context.Context, model, owner string, ttl time.Duration, starvedBefore int64) (store.Shard, store.Batch, error)
	ShardRenew(ctx context.Context, batchID string, idx int64, owner string, ttl time.Duration) (store.Batch, error)
	ShardRelease(ctx context.Context, batchID string, idx int64, owner string) error
	ChunkList(ctx context.Context, batchID string, shard int64) ([]store.Chunk, error)
	ChunkCommit(ctx context.Context, owner string, c store.Chunk) error
	FileGet(ctx context.Context, id string) (store.File, error)
	RateLimitFor(ctx context.Context, project, model string) (store.RateLimit, error)
}

// Lifecycle is the batch transition the agent causes: a shard's every line
// has a durable result, and the batch's last shard moves it to
// finalizing. *batch.Service has it.
type Lifecycle interface {
	FinishShard(ctx context.Context, batchID string, shard int64, agent string) (store.Batch, error)
}
