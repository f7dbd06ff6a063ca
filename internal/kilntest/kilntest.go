// Package kilntest starts a whole kiln (API, workers, agent and simulator)
// for a test, on the embedded backends (SQLite + a folder) or the production
// ones (Postgres + a real S3 server).
package kilntest

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// Backends are the two deployments every end-to-end behaviour runs on.
var Backends = []string{"sqlite", "postgres"}

// Options shape a test's kiln.
type Options struct {
	// Sim configures the built-in simulator. Default: fast (1ms to first
	// token, no time per token) with app.SimModels.
	Sim *llmsim.Config
	// Configure edits the configuration before start.
	Configure func(*config.Config)
	// NoAgent runs no agent in the process: agents run elsewhere (kiln
	// agent processes), and no simulator starts.
	NoAgent bool
	// WrapBucket wraps the object store kiln opens, as a test that injects
	// faults into it does (see objectstore/faultbucket); env.App.Bucket is
	// then the wrapper. Default: none.
	WrapBucket func(objectstore.Bucket) objectstore.Bucket
	// TracerProvider traces the kiln (app.Options.TracerProvider). Default:
	// none, whatever the environment's OTEL_* variables say.
	TracerProvider trace.TracerProvider
}

// Env is a running kiln.
type Env struct {
	Backend string
	// URL is the API's base URL, with /v1.
	URL string
	// Key is a valid API key.
	Key string
	App *app.App

	stopOnce sync.Once
	stopErr  error
}

// Stop shuts kiln down gracefully, as on SIGTERM. It runs at most once, and
// at the end of the test if the test did not call it.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.stopErr = e.App.Stop(ctx)
	})
	return e.stopErr
}

// Key is the API key every test kiln accepts.
const Key = "sk-kiln-test-key"

// Start runs kiln on backend ("sqlite" or "postgres") until t ends.
func Start(t testing.TB, backend string, o Options) *Env {
	t.Helper()
	cfg := config.Config{
		Addr:          "127.0.0.1:0",
		DatabaseURL:   storetest.URL(t, backend),
		APIKey:        Key,
		Agent:         "on",
		ChunkInterval: 200 * time.Millisecond,
		PollInterval:  20 * time.Millisecond,
	}
	if backend == "postgres" {
		cfg.ObjectStore = testenv.S3URL(t)
	} else {
		cfg.ObjectStore = "file://" + filepath.Join(t.TempDir(), "objects")
	}
	if o.NoAgent {
		// The agents a test starts elsewhere serve the simulator's
		// models, and may declare them after the test's first batch.
		cfg.Models = app.SimModels
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	sim := o.Sim
	if sim == nil {
		sim = &llmsim.Config{Models: app.SimModels, TTFT: time.Millisecond, TPOT: -1}
	}
	ctx := context.Background()
	a, err := app.New(ctx, cfg, app.Options{Serve: true, Agent: !o.NoAgent, Version: "test", Sim: sim, WrapBucket: o.WrapBucket,
		TracerProvider: cmp.Or[trace.TracerProvider](o.TracerProvider, noop.NewTracerProvider())}, logger(t))
	if err != nil {
		t.Fatalf("kilntest: %v", err)
	}
	if err := a.Start(ctx); err != nil {
		_ = a.Stop(ctx)
		t.Fatalf("kilntest: start: %v", err)
	}
	env := &Env{Backend: backend, URL: "http://" + a.Addr() + "/v1", Key: Key, App: a}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("kilntest: stop: %v", err)
		}
	})
	return env
}

// logger writes kiln's logs to the test log when KILN_TEST_LOG is set, and
// drops them otherwise.
func logger(t testing.TB) *slog.Logger {
	if os.Getenv("KILN_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
