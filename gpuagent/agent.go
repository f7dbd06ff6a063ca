// Package gpuagent is kiln's GPU agent: a long-lived worker that pulls
// validated batches from the queue, drives the LLM engine (vLLM, or the
// simulator) with bounded concurrency, and streams results to the object
// store in durable chunks.
package gpuagent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Config configures an agent.
type Config struct {
	// ID names the agent in leases and GET /v1/models. Default: host-pid-random.
	ID string
	// Concurrency is the most requests in flight against the engine.
	// Default: 256 (vLLM's max_num_seqs default).
	Concurrency int
	// RequestTimeout bounds one request. Default: 10m.
	RequestTimeout time.Duration
	// Retries is how often a request that failed transiently (no answer,
	// 429 or 5xx) is tried again. Default: 3.
	Retries int
	// ChunkLines flushes a chunk after this many results. Default: 256.
	ChunkLines int
	// ChunkInterval flushes a chunk at least this often; it is also how
	// often the agent renews its lease and notices a cancel. Default: 1s.
	ChunkInterval time.Duration
	// LeaseTTL is how long a batch's lease lasts without renewal: the time
	// after which another agent may take over a dead agent's batch.
	// Default: 30s.
	LeaseTTL time.Duration
	// HeartbeatInterval is how often the agent reports itself. Default: 5s.
	HeartbeatInterval time.Duration
	// MaxLineBytes is the longest input line. Default: 10 MiB.
	MaxLineBytes int
	// Synthetic says the engine is the simulator, so outputs are synthetic.
	// Default: false.
	Synthetic bool
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%04x", cmp.Or(host, "agent"), os.Getpid(), rand.IntN(1<<16))
	}
	c.Concurrency = cmp.Or(c.Concurrency, 256)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, 10*time.Minute)
	c.Retries = cmp.Or(c.Retries, 3)
	c.ChunkLines = cmp.Or(c.ChunkLines, 256)
	c.ChunkInterval = cmp.Or(c.ChunkInterval, time.Second)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, 30*time.Second)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, 5*time.Second)
	c.MaxLineBytes = cmp.Or(c.MaxLineBytes, 10<<20)
	return c
}

// Agent runs batches against one engine.
type Agent struct {
	cfg     Config
	store   *store.Store
	bucket  objectstore.Bucket
	backend Backend
	log     *slog.Logger
	started int64

	inFlight  atomic.Int64
	mu        sync.Mutex
	models    []string
	synthetic bool // the engine says it is kiln's simulator

	stop chan struct{}
	done chan struct{}
	// draining is cancelled when the agent stops taking work: running
	// batches flush what finished and hand the rest back.
	draining context.Context
	drain    context.CancelFunc
}

// New returns an agent. Register its worker, then Start it.
func New(cfg Config, st *store.Store, bucket objectstore.Bucket, backend Backend, log *slog.Logger) *Agent {
	cfg = cfg.WithDefaults()
	draining, drain := context.WithCancel(context.Background())
	return &Agent{
		draining: draining, drain: drain,
		cfg: cfg, store: st, bucket: bucket, backend: backend,
		log:     log.With("agent", cfg.ID),
		started: time.Now().Unix(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// ID is the agent's name.
func (a *Agent) ID() string { return a.cfg.ID }

// Concurrency is how many run jobs' requests may be in flight at once.
func (a *Agent) Concurrency() int { return a.cfg.Concurrency }

// Register adds the agent's worker (batch_run) to workers.
func (a *Agent) Register(workers *river.Workers) {
	river.AddWorker(workers, &runWorker{a: a})
}

// Start begins heartbeats: the agent's models and load, for GET /v1/models.
func (a *Agent) Start(ctx context.Context) error {
	a.refreshModels(ctx)
	if err := a.heartbeat(ctx); err != nil {
		return err
	}
	go a.loop(context.WithoutCancel(ctx))
	a.log.InfoContext(ctx, "agent started", "models", a.Models(), "concurrency", a.cfg.Concurrency, "synthetic", a.Synthetic())
	return nil
}

// Drain makes running batches flush their finished results, give back their
// leases and return to the queue, so a shutdown does not wait for them to
// end. The job workers should stop right after.
func (a *Agent) Drain() { a.drain() }

// Stop ends heartbeats and removes the agent from the registry.
func (a *Agent) Stop(ctx context.Context) {
	a.drain()
	select {
	case <-a.stop:
		return
	default:
		close(a.stop)
	}
	<-a.done
	_ = a.store.AgentRemove(ctx, a.cfg.ID)
}

// Synthetic reports whether the engine is kiln's simulator: configured so,
// or every model it lists is owned by the simulator.
func (a *Agent) Synthetic() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.Synthetic || a.synthetic
}

// Models are the engine's models as last listed.
func (a *Agent) Models() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.models
}

func (a *Agent) refreshModels(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	models, err := a.backend.Models(ctx)
	if err != nil {
		a.log.WarnContext(ctx, "cannot list the engine's models", "err", err)
		return
	}
	ids := make([]string, len(models))
	synthetic := len(models) > 0
	for i, m := range models {
		ids[i] = m.ID
		synthetic = synthetic && m.OwnedBy == SimOwner
	}
	a.mu.Lock()
	a.models = ids
	a.synthetic = synthetic
	a.mu.Unlock()
}

func (a *Agent) heartbeat(ctx context.Context) error {
	return a.store.AgentHeartbeat(ctx, store.Agent{
		ID:        a.cfg.ID,
		Hostname:  hostname(),
		Models:    a.Models(),
		Synthetic: a.Synthetic(),
		InFlight:  a.inFlight.Load(),
		StartedAt: a.started,
	})
}

func (a *Agent) loop(ctx context.Context) {
	defer close(a.done)
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	beats := 0
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			beats++
			if beats%12 == 0 || len(a.Models()) == 0 {
				a.refreshModels(ctx)
			}
			if err := a.heartbeat(ctx); err != nil {
				a.log.WarnContext(ctx, "heartbeat failed", "err", err)
			}
		}
	}
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
