// Package app wires kiln together: the store, the object store, the API,
// the job workers, the GPU agent and, when no LLM URL is configured, the
// built-in simulator. cmd/kiln only parses flags and calls it; tests call it
// directly.
package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"
	"riverqueue.com/riverui"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/gpuagent"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/tracing"
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
	// WrapBucket, when set, wraps the object store once it is open, and
	// every part uses what it returns: tests put faults between kiln and
	// its storage this way. Default: none.
	WrapBucket func(objectstore.Bucket) objectstore.Bucket
	// TracerProvider traces the process: its HTTP requests, jobs, agent
	// shards and chunks. Default: one set up from the OTEL_* variables, off
	// unless they name an exporter (internal/tracing.FromEnv).
	TracerProvider trace.TracerProvider
}

// App is a running kiln process.
type App struct {
	Cfg    config.Config
	Log    *slog.Logger
	Store  *store.Store
	Bucket objectstore.Bucket
	// Batches is the lifecycle of batches, files and uploads.
	Batches *batch.Service
	// Handler is the HTTP API (nil without Serve).
	Handler http.Handler
	// API is the Huma API, for the OpenAPI document (nil without Serve).
	API   huma.API
	Agent *gpuagent.Agent
	// Engine is the agent's engine.
	Engine gpuagent.Engine
	// Sim is the built-in simulator, when it runs.
	Sim *llmsim.Server
	// Metrics is the process's Prometheus registry, served at /metrics.
	Metrics *prometheus.Registry
	// Conquests are the conquest type definitions.
	Conquests *conquest.Registry
	// Importer imports batch outputs for curation.
	Importer *curation.Importer
	// Functions routes events to functions; Webhooks and Inbox are two of
	// them.
	Functions *functions.Registry
	Webhooks  *functions.Webhooks
	Inbox     *functions.Inbox
	// InboxSQS feeds the inbox from KILN_INBOX_SQS_URL (nil without one).
	InboxSQS *functions.InboxSQS

	// Tracing is the process's tracer provider; a no-op one when tracing is
	// off.
	Tracing tracing.Provider

	opts      Options
	http      *http.Server
	ln        net.Listener
	metricsLn net.Listener
	pprof     *http.Server
	pprofLn   net.Listener
	simSrv    *http.Server
	llmURL    string
	stopInbox context.CancelFunc
	inboxDone chan struct{}
	// stopSender stops the webhook sender (functions.Webhooks.Start).
	stopSender func(context.Context)

	riverUI     *riverui.Handler
	stopRiverUI context.CancelFunc
}

// New opens the store and object store and builds the process's parts.
// Start runs them.
func New(ctx context.Context, cfg config.Config, opts Options, log *slog.Logger) (*App, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{Cfg: cfg, Log: log, opts: opts, Metrics: prometheus.NewRegistry()}
	var err error
	// A broken definition stops start-up, naming its file and the path in it.
	if a.Conquests, err = conquest.Load(); err != nil {
		return nil, fmt.Errorf("conquest schemas: %w", err)
	}
	a.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newGPUCollector())
	if err := a.setupTracing(ctx); err != nil {
		return nil, err
	}
	if a.Store, err = store.OpenWith(ctx, cfg.DatabaseURL, log, &store.OpenOpts{JobMiddleware: a.Tracing.JobMiddleware()}); err != nil {
		return nil, err
	}
	if opts.Serve {
		// Listen first: the folder store's presigned URLs need the port,
		// which Addr may leave to the system (":0").
		if a.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			a.Store.Close()
			return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
		if cfg.PublicURL == "" {
			cfg.PublicURL = "http://" + displayAddr(a.ln.Addr())
			a.Cfg.PublicURL = cfg.PublicURL
		}
	}
	storeOpts := objectstore.Options{PublicURL: cfg.PublicURL, CORSOrigins: cfg.CORSOrigins}
	if cfg.SigningKey != "" {
		storeOpts.SigningKey = []byte(cfg.SigningKey)
	}
	if a.Bucket, err = objectstore.OpenWith(ctx, cfg.ObjectStore, storeOpts); err != nil {
		if a.ln != nil {
			_ = a.ln.Close()
		}
		a.Store.Close()
		return nil, fmt.Errorf("object store: %w", err)
	}
	a.registerStoreMetrics(a.Bucket)
	if opts.Serve && len(cfg.CORSOrigins) > 0 {
		// Browsers on these origins PUT parts to presigned URLs; a bucket
		// that refuses them breaks web apps' uploads, but not kiln.
		corsCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := objectstore.SetCORS(corsCtx, a.Bucket, cfg.CORSOrigins); err != nil {
			log.Warn("object store: browsers on KILN_CORS_ORIGINS cannot use presigned URLs: set the bucket's CORS rules (or the server's CORS setting) for them", "origins", cfg.CORSOrigins, "err", err)
		}
		cancel()
	}
	if opts.WrapBucket != nil {
		a.Bucket = opts.WrapBucket(a.Bucket)
	}
	a.Batches = NewBatches(cfg, a.Store, a.Bucket, log)
	if err := a.newFunctions(); err != nil {
		_ = a.Bucket.Close()
		a.Store.Close()
		return nil, err
	}
	if opts.Serve {
		a.Metrics.MustRegister(newBacklogCollector(a.Store, log), newUploadsCollector(a.Store, log))
		a.registerServeMetrics()
		riverUI, err := a.newRiverUI()
		if err != nil {
			_ = a.Bucket.Close()
			a.Store.Close()
			return nil, fmt.Errorf("river ui: %w", err)
		}
		a.Handler, a.API = api.New(api.Deps{
			Webhooks: a.Webhooks, Inbox: a.Inbox, WebhookAllowPrivate: cfg.WebhookAllowPrivate, Conquests: a.Conquests,
			Batches: a.Batches, Store: a.Store, Bucket: a.Bucket, Log: log, Version: opts.Version,
			Keys:         apikey.NewChecker(a.Store, cfg.APIKey),
			MaxFileBytes: cfg.MaxFileBytes, MaxLineBytes: cfg.MaxLineBytes,
			MaxPartBytes: cfg.MaxPartBytes, UploadTTL: cfg.UploadTTL, DownloadRedirect: cfg.DownloadRedirect,
			BodyIdleTimeout: cfg.BodyIdleTimeout, BodyMinRate: cfg.BodyMinRate,
			RiverUI: riverUI, RiverUIPrefix: RiverUIPrefix,
			Admin: apikey.NewAdminChecker(a.Store, cfg.AdminKey), KeyRotationGrace: cfg.KeyRotationGrace,
			Extra: func(hapi huma.API, mux *http.ServeMux) {
				mux.Handle("GET /metrics", a.metricsHandler())
				curation.Register(hapi, curation.Deps{Store: a.Store, Bucket: a.Bucket, Schemas: a.Conquests, Importer: a.Importer, Batches: a.Batches, Log: log,
					SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://")})
				ui := curation.UIHandler()
				mux.Handle("/curation/", ui)
				mux.Handle("GET /curation", http.RedirectHandler("/curation/", http.StatusFound))
			},
		})
		a.Handler = a.Tracing.HTTPHandler(a.Handler)
	}
	return a, nil
}

// newFunctions builds the functions and routes the store's events to them.
// Every process routes events, so that an event committed anywhere gets its
// invocations; serving processes run them.
func (a *App) newFunctions() error {
	fns, err := NewFunctions(a.Cfg, a.Store, a.Bucket, a.Conquests, a.Log)
	if err != nil {
		return err
	}
	a.Functions, a.Webhooks, a.Inbox, a.Importer = fns.Registry, fns.Webhooks, fns.Inbox, fns.Importer
	a.Webhooks.Metrics = functions.NewMetrics(a.Metrics)
	a.Webhooks.Tracer = a.Tracing.TracerProvider
	a.Store.SetDispatcher(fns.Registry)
	return nil
}

// Start runs the process's parts: the simulator if needed, the agent, the
// job workers and the HTTP server.
func (a *App) Start(ctx context.Context) error {
	if a.opts.Serve {
		if err := a.firstKey(ctx); err != nil {
			return err
		}
		if a.opts.FirstKeyOut != nil {
			if err := a.firstCurator(ctx); err != nil {
				return err
			}
		}
	}
	if err := a.servePprof(); err != nil {
		return err
	}
	// An agent in this process starts first: its first heartbeat puts its
	// models in the catalogue before any batch is validated against it.
	if a.opts.Agent {
		if err := a.startAgent(ctx); err != nil {
			return err
		}
		if !a.opts.Serve {
			if err := a.serveMetrics(); err != nil {
				return err
			}
		}
	}
	if a.opts.Serve {
		workers := river.NewWorkers()
		jobs.Register(workers, jobs.Deps{Batches: a.Batches, Store: a.Store, Log: a.Log,
			EventRetention: a.Cfg.EventRetention, Functions: a.Functions, Webhooks: a.Webhooks, SweepMetrics: jobs.NewSweepMetrics(a.Metrics),
			Exporter: &curation.Exporter{Store: a.Store, Bucket: a.Bucket, Log: a.Log.With("component", "curation")}})
		if err := a.Store.StartWorkers(ctx, store.WorkerOpts{
			Workers:      workers,
			Queues:       jobs.Queues(),
			PollInterval: a.Cfg.PollInterval,
			RescueAfter:  a.Cfg.LeaseTTL,
			Periodic:     jobs.Periodic(),
		}); err != nil {
			return err
		}
		a.stopSender = a.Webhooks.Start()
		if err := a.startInboxSQS(ctx); err != nil {
			return err
		}
		if err := a.startRiverUI(ctx); err != nil {
			return err
		}
		if a.Cfg.InboxPrefix != "" && a.Cfg.InboxPollInterval > 0 {
			inboxCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
			a.stopInbox, a.inboxDone = stop, make(chan struct{})
			go func() {
				defer close(a.inboxDone)
				a.Inbox.Watch(inboxCtx, a.Cfg.InboxPollInterval)
			}()
		}
	}
	if a.opts.Serve {
		ln := a.ln
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

func (a *App) startAgent(ctx context.Context) error {
	a.llmURL = a.Cfg.LLMURL
	synthetic := false
	if a.llmURL == "" && len(a.Cfg.Endpoints) == 0 && a.Cfg.EngineCommand == "" {
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
	metrics := gpuagent.NewMetrics(a.Metrics)
	if a.Cfg.EngineCommand != "" {
		command := a.Cfg.EngineCommand
		if command == "vllm" {
			command = "" // the managed engine's default: vllm serve ...
		}
		eng, err := gpuagent.NewManagedEngine(gpuagent.ManagedConfig{
			Command: command, Models: a.Cfg.EngineModels, MaxNumSeqs: a.Cfg.AgentConcurrency,
			SleepMode: a.Cfg.EngineSleepMode, Log: a.Log.With("component", "engine"), Metrics: metrics,
		})
		if err != nil {
			return fmt.Errorf("engine: %w", err)
		}
		a.Engine = eng
	} else {
		endpoints, err := gpuagent.ParseEndpoints(a.Cfg.Endpoints)
		if err != nil {
			return err
		}
		a.Engine = gpuagent.NewAttachEngine(endpoints, a.llmURL, a.Cfg.AgentConcurrency, a.Cfg.MaxResponseBytes)
	}
	a.Agent = gpuagent.New(gpuagent.Config{
		MaxInFlight:     a.Cfg.AgentConcurrency,
		RequestTimeout:  a.Cfg.RequestTimeout,
		ChunkLines:      a.Cfg.ChunkLines,
		ChunkInterval:   a.Cfg.ChunkInterval,
		LeaseTTL:        a.Cfg.LeaseTTL,
		StarvationBound: a.Cfg.StarvationBound,
		MaxLineBytes:    a.Cfg.MaxLineBytes,
		Synthetic:       synthetic,
		TracerProvider:  a.Tracing,
	}, a.Store, a.Batches, a.Bucket, a.Engine, metrics, a.Log)
	return a.Agent.Start(ctx)
}

// serveMetrics serves /metrics and /healthz for a process without the API.
func (a *App) serveMetrics() error {
	ln, err := net.Listen("tcp", a.Cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", a.Cfg.MetricsAddr, err)
	}
	a.metricsLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metricsHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.http.Serve(ln) }()
	a.Log.Info("agent metrics", "addr", ln.Addr().String())
	return nil
}

// servePprof serves Go's profiles on KILN_PPROF_ADDR, when set.
func (a *App) servePprof() error {
	if a.Cfg.PprofAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.Cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof: listen on %s: %w", a.Cfg.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.pprofLn = ln
	a.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.pprof.Serve(ln) }()
	a.Log.Info("profiles", "addr", "http://"+displayAddr(ln.Addr())+"/debug/pprof/")
	return nil
}

// metricsHandler serves the registry, behind KILN_METRICS_TOKEN when set.
func (a *App) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(a.Metrics, promhttp.HandlerOpts{})
	token := a.Cfg.MetricsToken
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kiln metrics"`)
			http.Error(w, "/metrics needs the bearer token of KILN_METRICS_TOKEN", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// PprofAddr is the address of the profiles (KILN_PPROF_ADDR) once
// started; "" when off.
func (a *App) PprofAddr() string {
	if a.pprofLn == nil {
		return ""
	}
	return a.pprofLn.Addr().String()
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

// firstCurator makes the first curator key (an admin) beside the first API
// key, so that the workbench at /curation/ can be opened.
func (a *App) firstCurator(ctx context.Context) error {
	list, err := a.Store.CuratorList(ctx)
	if err != nil || len(list) > 0 {
		return err
	}
	_, secret, err := curation.CreateCurator(ctx, a.Store, "first curator", curation.RoleAdmin)
	if err != nil {
		return err
	}
	if a.opts.FirstKeyOut != nil {
		fmt.Fprintf(a.opts.FirstKeyOut, "kiln made its first curator key, for the curation workbench at /curation/. It is shown only this once; keep it:\n\n    %s\n\nMore: kiln curators create --name NAME\n\n", secret)
	}
	return nil
}

// Stop shuts down gracefully within ctx: the HTTP server stops taking
// requests, the agent stops claiming work and finishes or hands back what
// it has in flight, the job workers finish their jobs.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	if a.Agent != nil {
		// Requests in flight get two thirds of the grace period to finish;
		// the rest is for handing back and closing.
		grace := ctx
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			grace, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)*2/3))
			defer cancel()
		}
		a.Agent.Drain(grace)
		a.Agent.Stop(ctx)
	}
	if a.pprof != nil {
		_ = a.pprof.Close() // a profile in progress has nothing to keep
	}
	if a.http != nil {
		errs = append(errs, a.http.Shutdown(ctx))
	} else if a.ln != nil {
		_ = a.ln.Close() // made but never served
	}
	if a.InboxSQS != nil {
		a.InboxSQS.Stop()
	}
	if a.stopInbox != nil {
		a.stopInbox()
		<-a.inboxDone
	}
	if a.stopRiverUI != nil {
		a.stopRiverUI()
	}
	if a.stopSender != nil {
		a.stopSender(ctx)
	}
	errs = append(errs, a.Store.StopWorkers(ctx))
	if a.Engine != nil {
		errs = append(errs, a.Engine.Close(ctx))
	}
	if a.simSrv != nil {
		errs = append(errs, a.simSrv.Shutdown(ctx))
	}
	errs = append(errs, a.Bucket.Close())
	a.Store.Close()
	errs = append(errs, a.Tracing.Shutdown(ctx)) // the last spans, flushed
	return errors.Join(errs...)
}
