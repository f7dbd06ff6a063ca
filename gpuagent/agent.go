// Package gpuagent is kiln's GPU agent: a long-lived worker beside vLLM. It
// claims shards of validated batches under leases, keeps the engine's
// capacity in flight with adaptive concurrency, stays on the loaded model
// while it has work, and streams results to the object store in durable
// chunks, so that a crash costs only the requests in flight.
package gpuagent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Config configures an agent. Every field's default is what WithDefaults
// sets.
type Config struct {
	// ID names the agent in leases and GET /v1/agents. Default: host-pid-random.
	ID string
	// MaxInFlight is the most requests in flight against the engine: its
	// capacity. Default: 256 (vLLM's max_num_seqs default).
	MaxInFlight int
	// MinInFlight is the floor adaptive concurrency never goes below.
	// Default: 4.
	MinInFlight int
	// RequestTimeout bounds one request. Default: 10m.
	RequestTimeout time.Duration
	// Retries is how often a request that failed transiently (no answer,
	// 429, 5xx, a timeout) is tried again; the last status then goes to the
	// error file. Default: 3.
	Retries int
	// ChunkLines flushes a chunk after this many results. Default: 256.
	ChunkLines int
	// ChunkInterval flushes a chunk at least this often; it is also how
	// often the agent renews its leases and notices a cancel. Default: 1s.
	ChunkInterval time.Duration
	// LeaseTTL is how long a shard's lease lasts without renewal: after it,
	// a dead agent's shard returns to the queue. Default: 30s.
	LeaseTTL time.Duration
	// StarvationBound is how long work for another model may wait while
	// the loaded model still has work. Default: 10m.
	StarvationBound time.Duration
	// PollInterval is how often an idle agent looks for work. Default: 100ms.
	PollInterval time.Duration
	// HeartbeatInterval is how often the agent reports itself. Default: 2s.
	HeartbeatInterval time.Duration
	// MaxLineBytes is the longest input line. Default: 10 MiB.
	MaxLineBytes int
	// Synthetic says the engine is the simulator, so outputs are synthetic.
	// Default: false (the engine's /v1/models tells).
	Synthetic bool
	// TracerProvider traces shards and chunks, each in its batch's trace.
	// Default: none (no-op).
	TracerProvider trace.TracerProvider
}

// Defaults of Config's fields that kiln's configuration does not set; the
// others are config's: MaxInFlight's is config.AgentConcurrencyDefault, and
// the rest share their field's name there.
const (
	MinInFlightDefault       = 4
	RetriesDefault           = 3
	PollIntervalDefault      = 100 * time.Millisecond
	HeartbeatIntervalDefault = 2 * time.Second
)

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%04x", cmp.Or(host, "agent"), os.Getpid(), rand.IntN(1<<16))
	}
	c.MaxInFlight = cmp.Or(c.MaxInFlight, config.AgentConcurrencyDefault)
	c.MinInFlight = min(cmp.Or(c.MinInFlight, MinInFlightDefault), c.MaxInFlight)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, config.RequestTimeoutDefault)
	c.Retries = cmp.Or(c.Retries, RetriesDefault)
	c.ChunkLines = cmp.Or(c.ChunkLines, config.ChunkLinesDefault)
	c.ChunkInterval = cmp.Or(c.ChunkInterval, config.ChunkIntervalDefault)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, config.LeaseTTLDefault)
	c.StarvationBound = cmp.Or(c.StarvationBound, config.StarvationBoundDefault)
	c.PollInterval = cmp.Or(c.PollInterval, PollIntervalDefault)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, HeartbeatIntervalDefault)
	c.MaxLineBytes = cmp.Or(c.MaxLineBytes, config.MaxLineBytesDefault)
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	return c
}

// Agent states, as GET /v1/agents shows them.
const (
	StateIdle     = "idle"
	StateLoading  = "loading"
	StateRunning  = "running"
	StateDraining = "draining"
)

// Agent runs shards against one engine.
type Agent struct {
	cfg     Config
	store   Store
	batches Lifecycle
	bucket  objectstore.Bucket
	engine  Engine
	log     *slog.Logger
	metrics *Metrics
	started int64
	limit   *limiter
	// held has a place for each line the agent may hold between starting
	// its request and its chunk's commit (heldLines of them): one is taken
	// before a request starts, and given back when the line is durable or
	// dropped.
	held chan struct{}
	// pace keeps each project within its requests a minute.
	pace *pacer

	mu        sync.Mutex
	models    []Model
	loaded    string
	backend   Backend
	state     string
	switches  int64
	active    []*shardRun       // claimed shards whose lines are still being fed
	runs      map[shardKey]bool // shards with a run that has not finished
	running   sync.WaitGroup
	completed atomic.Int64 // requests answered, for the rate
	tokens    atomic.Int64
	lastBeat  time.Time
	lastDone  int64
	lastToks  int64

	runCtx  context.Context // ends on hard stop: in-flight requests abort
	abort   context.CancelFunc
	feeding context.Context // ends on drain: no new shard or request starts
	drain   context.CancelFunc
	loopEnd chan struct{}
	beatEnd chan struct{}
}

// New returns an agent; Start runs it.
func New(cfg Config, st Store, batches Lifecycle, bucket objectstore.Bucket, engine Engine, metrics *Metrics, log *slog.Logger) *Agent {
	cfg = cfg.WithDefaults()
	runCtx, abort := context.WithCancel(context.Background())
	feeding, drain := context.WithCancel(runCtx)
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Agent{
		cfg: cfg, store: st, batches: batches, bucket: bucket, engine: engine, metrics: metrics,
		log:     log.With("agent", cfg.ID),
		started: time.Now().Unix(),
		limit:   newLimiter(cfg.MaxInFlight, cfg.MinInFlight, time.Second),
		held:    make(chan struct{}, heldLines(cfg)),
		pace:    newPacer(),
		state:   StateIdle,
		runs:    map[shardKey]bool{},
		runCtx:  runCtx, abort: abort, feeding: feeding, drain: drain,
		loopEnd: make(chan struct{}), beatEnd: make(chan struct{}),
	}
}

// heldLines is how many lines the agent may hold from the start of their
// requests to their chunks' commits: those in flight, and for each, room
// for a chunk being written and the next one filling. Without a bound
// across shards, a stall in chunk writes (a database busy with a large
// upload) left every shard fed meanwhile holding its answers, and the
// agent's memory grew with how fast the engine answered.
func heldLines(cfg Config) int { return 2 * (cfg.MaxInFlight + cfg.ChunkLines) }

// releaseHeld gives back the places of n lines made durable or dropped.
func (a *Agent) releaseHeld(n int) {
	for range n {
		<-a.held
	}
	a.metrics.linesHeld.Sub(float64(n))
}

// ID is the agent's name.
func (a *Agent) ID() string { return a.cfg.ID }

// Start lists the engine's models, reports the agent, and starts claiming
// work.
func (a *Agent) Start(ctx context.Context) error {
	a.refreshModels(ctx)
	if err := a.heartbeat(ctx); err != nil {
		// Nothing runs: Drain and Stop have nothing to wait for, and the
		// process exits (for its supervisor to start it again) instead
		// of hanging in its shutdown.
		close(a.loopEnd)
		close(a.beatEnd)
		return err
	}
	go a.beat()
	go a.loop()
	a.log.InfoContext(ctx, "agent started", "models", a.modelIDs(), "max_in_flight", a.cfg.MaxInFlight, "synthetic", a.Synthetic())
	return nil
}

// Drain stops claiming work and starting requests, and waits until the
// requests in flight finish or ctx ends; then it aborts the rest. Every
// shard flushes its finished results and goes back to the queue, so another
// agent (or this one, restarted) takes it over at once.
func (a *Agent) Drain(ctx context.Context) {
	a.setState(StateDraining)
	a.drain()
	<-a.loopEnd
	done := make(chan struct{})
	go func() { a.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.log.WarnContext(ctx, "grace period over: abandoning requests in flight")
		a.abort()
		<-done
	}
}

// Stop drains within ctx, stops the heartbeats and removes the agent from
// the registry. The engine is the caller's to close.
func (a *Agent) Stop(ctx context.Context) {
	a.Drain(ctx)
	a.abort()
	<-a.beatEnd
	_ = a.store.AgentRemove(context.WithoutCancel(ctx), a.cfg.ID)
}

// Synthetic reports whether the engine is kiln's simulator: configured so,
// or every model it lists is owned by the simulator.
func (a *Agent) Synthetic() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.Synthetic {
		return true
	}
	for _, m := range a.models {
		if m.OwnedBy != SimOwner {
			return false
		}
	}
	return len(a.models) > 0
}

// Loaded is the model on the engine now.
func (a *Agent) Loaded() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loaded
}

// Switches counts model switches: loads after the first.
func (a *Agent) Switches() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.switches
}

func (a *Agent) modelIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, len(a.models))
	for i, m := range a.models {
		ids[i] = m.ID
	}
	return ids
}

func (a *Agent) setState(s string) {
	a.mu.Lock()
	if a.state != StateDraining {
		a.state = s
	}
	a.mu.Unlock()
}

func (a *Agent) refreshModels(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	models, err := a.engine.Models(ctx)
	if err != nil {
		a.log.WarnContext(ctx, "cannot list the engine's models", "err", err)
		return
	}
	a.mu.Lock()
	a.models = models
	a.mu.Unlock()
}

func (a *Agent) heartbeat(ctx context.Context) error {
	now := time.Now()
	done, toks := a.completed.Load(), a.tokens.Load()
	inFlight, limit := a.limit.stats()
	a.mu.Lock()
	var rps, tps float64
	if el := now.Sub(a.lastBeat).Seconds(); !a.lastBeat.IsZero() && el > 0 {
		rps = float64(done-a.lastDone) / el
		tps = float64(toks-a.lastToks) / el
	}
	a.lastBeat, a.lastDone, a.lastToks = now, done, toks
	ag := store.Agent{
		ID: a.cfg.ID, Hostname: hostname(), LoadedModel: a.loaded, State: a.state,
		InFlight: int64(inFlight), Concurrency: int64(limit), RequestsPerSec: rps, TokensPerSec: tps,
		ModelSwitches: a.switches, StartedAt: a.started, HeartbeatAt: now.Unix(),
	}
	for _, m := range a.models {
		ag.Models = append(ag.Models, m.ID)
	}
	a.mu.Unlock()
	ag.Synthetic = a.Synthetic()
	a.metrics.concurrency.Set(float64(limit))
	return a.store.AgentHeartbeat(ctx, ag)
}

func (a *Agent) beat() {
	defer close(a.beatEnd)
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	beats := 0
	for {
		select {
		case <-a.runCtx.Done():
			return
		case <-t.C:
			beats++
			if beats%30 == 0 || len(a.modelIDs()) == 0 {
				a.refreshModels(a.runCtx)
			}
			if err := a.heartbeat(a.runCtx); err != nil && a.runCtx.Err() == nil {
				a.log.Warn("heartbeat failed", "err", err)
			}
		}
	}
}

// loop feeds requests to the engine: from the shards it holds, and when
// they run dry, from a newly claimed shard, switching models only as
// chooseModel allows.
func (a *Agent) loop() {
	defer close(a.loopEnd)
	defer func() {
		// Draining: the shards held start nothing more.
		a.mu.Lock()
		for _, sr := range a.active {
			sr.closeFeed()
		}
		a.active = nil
		a.mu.Unlock()
	}()
	ctx := a.feeding
	for ctx.Err() == nil {
		select {
		case a.held <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if err := a.limit.acquire(ctx); err != nil {
			<-a.held
			return
		}
		req, ok := a.nextRequest(ctx)
		if !ok {
			a.limit.release()
			<-a.held
			if a.idle(ctx) != nil {
				return
			}
			continue
		}
		a.metrics.inFlight.Inc()
		a.metrics.linesHeld.Inc()
		go req.run()
	}
}

// idle waits for work to appear.
func (a *Agent) idle(ctx context.Context) error {
	a.mu.Lock()
	if len(a.active) == 0 && a.state == StateRunning {
		a.state = StateIdle
	}
	a.mu.Unlock()
	a.store.WaitShards(ctx, a.cfg.PollInterval)
	return ctx.Err()
}

// maxPacedShards bounds the shards the agent holds while every one it
// holds waits for its project's pace: it claims no more then, and waits.
const maxPacedShards = 8

// nextRequest returns the next line to run, claiming a shard when the ones
// held have no line left to start. The shards held take turns, so that the
// projects they belong to share the engine; a shard whose project is at its
// rate limit (pace) is passed over until it may go. The caller holds a
// limiter slot.
func (a *Agent) nextRequest(ctx context.Context) (*request, bool) {
	for {
		var wait time.Duration // the shortest wait of a paced shard
		a.mu.Lock()
		for i := 0; i < len(a.active); {
			sr := a.active[i]
			if d := a.pace.delay(sr.b.ProjectID, sr.sh.Model); d > 0 {
				if wait == 0 || d < wait {
					wait = d
				}
				i++
				continue
			}
			req, ok := sr.next()
			a.active = append(a.active[:i:i], a.active[i+1:]...)
			if ok {
				a.pace.take(sr.b.ProjectID, sr.sh.Model)
				a.active = append(a.active, sr) // its next turn comes after the others'
				a.mu.Unlock()
				return req, true
			}
			// Fed: its last requests finish on their own.
		}
		held := len(a.active)
		a.mu.Unlock()
		if wait > 0 && held >= maxPacedShards {
			if sleep(ctx, wait) != nil {
				return nil, false
			}
			continue
		}
		sr, err := a.claim(ctx)
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
			a.log.Warn("cannot claim work", "err", err)
		}
		if sr == nil {
			if wait == 0 || sleep(ctx, wait) != nil {
				return nil, false
			}
			continue
		}
		a.mu.Lock()
		a.active = append(a.active, sr)
		a.mu.Unlock()
	}
}

// claim picks the model to serve, loads it if needed, and claims one of its
// shards. It returns nil, nil when no work waits.
func (a *Agent) claim(ctx context.Context) (*shardRun, error) {
	backlog, err := a.store.ShardWaiting(ctx)
	if err != nil {
		return nil, err
	}
	servable := map[string]bool{}
	a.mu.Lock()
	for _, m := range a.models {
		servable[m.ID] = true
	}
	loaded := a.loaded
	a.mu.Unlock()
	model := chooseModel(loaded, backlog, servable, time.Now(), a.cfg.StarvationBound)
	if model == "" {
		return nil, nil
	}
	if model != loaded {
		if err := a.switchTo(ctx, loaded, model, backlog); err != nil {
			return nil, err
		}
	}
	sh, b, err := a.store.ShardClaim(ctx, model, a.cfg.ID, a.cfg.LeaseTTL, time.Now().Add(-a.cfg.StarvationBound).UnixMilli())
	if err != nil {
		return nil, err
	}
	if a.pace.stale(b.ProjectID, sh.Model) {
		// Without it, the project runs unpaced until the next claim
		// reads it: a store hiccup never stops work.
		if rl, err := a.store.RateLimitFor(ctx, b.ProjectID, sh.Model); err == nil {
			a.pace.set(b.ProjectID, sh.Model, rl.MaxRequestsPer1Minute)
		}
	}
	a.mu.Lock()
	backend := a.backend
	a.state = StateRunning
	again := a.runs[shardKey{sh.BatchID, sh.Idx}]
	a.mu.Unlock()
	if again {
		// Our lease ran out while the store was out of reach, and we
		// claimed a shard we still run: the claim renewed the lease. A
		// second run would race the first.
		return nil, nil
	}
	return a.openShard(ctx, sh, b, backend)
}

// switchTo waits for the old model's requests to finish, then loads the new
// one: the engine serves one model at a time.
func (a *Agent) switchTo(ctx context.Context, from, to string, backlog []store.Backlog) error {
	a.setState(StateLoading)
	// The caller holds one limiter slot; the others drain.
	a.limit.release()
	defer func() { _ = a.limit.acquire(context.WithoutCancel(ctx)) }()
	if err := a.limit.waitIdle(ctx); err != nil {
		return err
	}
	a.running.Wait()
	start := time.Now()
	backend, err := a.engine.Load(ctx, to)
	if err != nil {
		a.setState(StateIdle)
		return fmt.Errorf("load model %s: %w", to, err)
	}
	reason := "no work left for " + from
	for _, b := range backlog {
		if b.Model == from {
			reason = "work for " + to + " waited past the starvation bound"
		}
	}
	a.mu.Lock()
	a.loaded, a.backend = to, backend
	if from != "" {
		a.switches++
	}
	a.mu.Unlock()
	if from == "" {
		a.log.Info("model loaded", "model", to, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	a.metrics.switches.WithLabelValues(from, to).Inc()
	a.log.Info("model switched", "from", from, "to", to, "reason", reason, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
