// Package app wires kiln together: the store, the object store, the API,
// the job workers, the GPU agent and, when no LLM URL is configured, the
// built-in simulator. cmd/kiln only parses flags and calls it; tests call it
// directly.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/gpuagent"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/jobs"
)

// SimModels are the models the built-in simulator serves: the models kiln is
// built for, so that batches written for them run unchanged.
var SimModels = []string{"google/gemma-3-4b-it", "Qwen/Qwen2.5-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "sim-model"}

// Options choose what one process runs.
type Options struct {
	// Serve runs the API and the default job queue (kiln serve).
	Serve bool
	// Agent runs the GPU agent (kiln agent, or kiln serve --agent).
	Agent bool
	// Version is kiln's version.
	Version string
	// FirstKeyOut receives the first API key, made on first start when the
	// store has none and no KILN_API_KEY is set. Default: discarded.
	FirstKeyOut io.Writer
	// Sim overrides the built-in simulator's settings. Default: the
	// simulator's own defaults with SimModels.
	Sim *llmsim.Config
}

// App is a running kiln process.
type App struct {
	Cfg    config.Config
	Log    *slog.Logger
	Store  *store.Store
	Bucket objectstore.Bucket
	// Handler is the HTTP API (nil without Serve).
	Handler http.Handler
	// API is the Huma API, for the OpenAPI document (nil without Serve).
	API   huma.API
	Agent *gpuagent.Agent
	// Sim is the built-in simulator, when it runs.
	Sim *llmsim.Server

	opts    Options
	http    *http.Server
	ln      net.Listener
	simSrv  *http.Server
	llmURL  string
	stopped chan struct{}
}

// New opens the store and object store and builds the process's parts.
// Start runs them.
func New(ctx context.Context, cfg config.Config, opts Options, log *slog.Logger) (*App, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{Cfg: cfg, Log: log, opts: opts, stopped: make(chan struct{})}
	var err error
	if a.Store, err = store.Open(ctx, cfg.DatabaseURL, log); err != nil {
		return nil, err
	}
	if a.Bucket, err = objectstore.Open(ctx, cfg.ObjectStore); err != nil {
		a.Store.Close()
		return nil, fmt.Errorf("object store: %w", err)
	}
	if opts.Serve {
		a.Handler, a.API = api.New(api.Deps{
			Store: a.Store, Bucket: a.Bucket, Log: log, Version: opts.Version,
			Keys:         apikey.NewChecker(a.Store, cfg.APIKey),
			MaxFileBytes: cfg.MaxFileBytes, MaxLineBytes: cfg.MaxLineBytes,
		})
	}
	return a, nil
}

// Start runs the process's parts: the simulator if needed, the agent, the
// job workers and the HTTP server.
func (a *App) Start(ctx context.Context) error {
	if a.opts.Serve {
		if err := a.firstKey(ctx); err != nil {
			return err
		}
	}
	workers := river.NewWorkers()
	queues := map[string]int{}
	if a.opts.Serve {
		jobs.Register(workers, jobs.Deps{Store: a.Store, Bucket: a.Bucket, Log: a.Log,
			MaxLineBytes: a.Cfg.MaxLineBytes, MaxRequests: a.Cfg.MaxRequests})
		queues[jobs.QueueDefault] = 10
	}
	if a.opts.Agent {
		if err := a.startAgent(ctx, workers); err != nil {
			return err
		}
		queues[jobs.QueueAgent] = 8
	}
	if err := a.Store.StartWorkers(ctx, store.WorkerOpts{Workers: workers, Queues: queues, PollInterval: a.Cfg.PollInterval}); err != nil {
		return err
	}
	if a.opts.Serve {
		ln, err := net.Listen("tcp", a.Cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", a.Cfg.Addr, err)
		}
		a.ln = ln
		a.http = &http.Server{Handler: a.Handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() {
			if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.Log.Error("http server stopped", "err", err)
			}
		}()
		a.Log.Info("kiln serving", "addr", ln.Addr().String(), "database", a.Store.Dialect(), "docs", "http://"+displayAddr(ln.Addr())+"/docs")
	}
	return nil
}

func (a *App) startAgent(ctx context.Context, workers *river.Workers) error {
	a.llmURL = a.Cfg.LLMURL
	synthetic := false
	if a.llmURL == "" {
		simCfg := llmsim.Config{Models: SimModels}
		if a.opts.Sim != nil {
			simCfg = *a.opts.Sim
		}
		sim, err := llmsim.New(simCfg.WithDefaults())
		if err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
		a.Sim = sim
		a.simSrv = &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = a.simSrv.Serve(ln) }()
		a.llmURL = "http://" + ln.Addr().String() + "/v1"
		synthetic = true
		a.Log.Warn("KILN_LLM_URL is not set: running the built-in LLM simulator; outputs are SYNTHETIC", "url", a.llmURL)
	}
	a.Agent = gpuagent.New(gpuagent.Config{
		Concurrency:    a.Cfg.AgentConcurrency,
		RequestTimeout: a.Cfg.RequestTimeout,
		ChunkLines:     a.Cfg.ChunkLines,
		ChunkInterval:  a.Cfg.ChunkInterval,
		MaxLineBytes:   a.Cfg.MaxLineBytes,
		Synthetic:      synthetic,
	}, a.Store, a.Bucket, gpuagent.NewHTTPBackend(a.llmURL, a.Cfg.AgentConcurrency), a.Log)
	a.Agent.Register(workers)
	return a.Agent.Start(ctx)
}

// LLMURL is the engine the agent drives.
func (a *App) LLMURL() string { return a.llmURL }

// Addr is the API's listen address once started.
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

func displayAddr(addr net.Addr) string {
	s := addr.String()
	if strings.HasPrefix(s, "[::]:") {
		return "localhost:" + strings.TrimPrefix(s, "[::]:")
	}
	if strings.HasPrefix(s, "0.0.0.0:") {
		return "localhost:" + strings.TrimPrefix(s, "0.0.0.0:")
	}
	return s
}

func (a *App) firstKey(ctx context.Context) error {
	if a.Cfg.APIKey != "" {
		return nil
	}
	n, err := a.Store.KeyCount(ctx)
	if err != nil || n > 0 {
		return err
	}
	_, secret, err := apikey.Create(ctx, a.Store, "first key")
	if err != nil {
		return err
	}
	if a.opts.FirstKeyOut != nil {
		fmt.Fprintf(a.opts.FirstKeyOut, "\nkiln made its first API key. It is shown only this once; keep it:\n\n    %s\n\nMore keys: kiln keys create --name NAME\n\n", secret)
	}
	a.Log.Info("first API key created", "prefix", secret[:len(apikey.Prefix)+4])
	return nil
}

// Stop shuts down gracefully: the HTTP server stops taking requests, the
// workers finish (or hand back) their jobs, the agent leaves, within ctx.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	if a.http != nil {
		errs = append(errs, a.http.Shutdown(ctx))
	}
	if a.Agent != nil {
		a.Agent.Drain()
	}
	errs = append(errs, a.Store.StopWorkers(ctx))
	if a.Agent != nil {
		a.Agent.Stop(ctx)
	}
	if a.simSrv != nil {
		errs = append(errs, a.simSrv.Shutdown(ctx))
	}
	errs = append(errs, a.Bucket.Close())
	a.Store.Close()
	return errors.Join(errs...)
}
