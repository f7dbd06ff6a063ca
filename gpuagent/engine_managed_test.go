package gpuagent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/gpuagent"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// managedWait bounds what tests wait for: engine starts, restarts, stops.
const managedWait = 30 * time.Second

type managedBundle struct {
	engine *gpuagent.ManagedEngine
	pidDir string
}

// setupManaged returns a managed engine whose engines are the test binary
// standing in for vLLM (see TestMain), with env as extra knobs. At cleanup
// it closes the engine and checks that none of the processes it started
// survives.
func setupManaged(t *testing.T, models []string, env []string, configure func(*gpuagent.ManagedConfig)) *managedBundle {
	t.Helper()
	pidDir := t.TempDir()
	cfg := gpuagent.ManagedConfig{
		Command: os.Args[0] + " serve '{{.Model}}' --host {{.Host}} --port {{.Port}} --max-num-seqs {{.MaxNumSeqs}}",
		Env:     append([]string{"KILN_FAKE_VLLM=1", "KILN_FAKE_VLLM_PID_DIR=" + pidDir}, env...),
		Models:  models,
		// Spread the tests' ports so parallel test binaries rarely meet, below
		// Linux's ephemeral ports.
		BasePort:       10000 + rand.IntN(20000),
		MaxNumSeqs:     8,
		StartTimeout:   managedWait,
		StopTimeout:    managedWait,
		HealthInterval: 50 * time.Millisecond,
		HealthFailures: 2,
		RestartBackoff: 10 * time.Millisecond,
		Log:            slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if configure != nil {
		configure(&cfg)
	}
	e, err := gpuagent.NewManagedEngine(cfg)
	require.NoError(t, err)
	b := &managedBundle{engine: e, pidDir: pidDir}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), managedWait)
		defer cancel()
		require.NoError(t, e.Close(ctx))
		b.requireAllDead(t)
	})
	return b
}

// pids are the processes of the fake engine started so far.
func (b *managedBundle) pids(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir(b.pidDir)
	require.NoError(t, err)
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	return pids
}

func (b *managedBundle) requireAllDead(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, pid := range b.pids(t) {
			if processAlive(pid) {
				return false
			}
		}
		return true
	}, managedWait, 10*time.Millisecond, "a process of the engine survives: %v", b.pids(t))
}

// processAlive reports whether pid runs; a zombie does not.
func processAlive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	rest := string(data[bytes.LastIndexByte(data, ')')+1:])
	state := strings.Fields(rest)[0]
	return state != "Z" && state != "X"
}

func mustLoad(t *testing.T, e *gpuagent.ManagedEngine, model string) *gpuagent.HTTPBackend {
	t.Helper()
	backend, err := e.Load(t.Context(), model)
	require.NoError(t, err)
	hb, ok := backend.(*gpuagent.HTTPBackend)
	require.True(t, ok, "Load returns an *HTTPBackend, got %T", backend)
	return hb
}

// chatVia sends a chat completion and returns the status and the model that
// answered, or the error if no answer came.
func chatVia(t *testing.T, b gpuagent.Backend, model string) (int, string, error) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"model":    model,
		"messages": []any{map[string]any{"role": "user", "content": "Hello there."}},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), managedWait)
	defer cancel()
	status, resp, err := b.Do(ctx, "/v1/chat/completions", body)
	if err != nil {
		return 0, "", err
	}
	var out struct {
		Model string `json:"model"`
	}
	if status == http.StatusOK {
		require.NoError(t, json.Unmarshal(resp, &out), "body: %s", resp)
	}
	return status, out.Model, nil
}

func requireChat(t *testing.T, b gpuagent.Backend, model string) {
	t.Helper()
	status, answered, err := chatVia(t, b, model)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, model, answered)
}

// fakeGet GETs path from the fake engine behind b, outside /v1.
func fakeGet(t *testing.T, b *gpuagent.HTTPBackend, path string) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimSuffix(b.BaseURL, "/v1")+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func enginePID(t *testing.T, b *gpuagent.HTTPBackend) int {
	t.Helper()
	status, data, err := fakeGet(t, b, "/fake/pid")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	pid, err := strconv.Atoi(string(data))
	require.NoError(t, err)
	return pid
}

func engineStats(t *testing.T, b *gpuagent.HTTPBackend) llmsim.Stats {
	t.Helper()
	status, data, err := fakeGet(t, b, "/fake/stats")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	var st llmsim.Stats
	require.NoError(t, json.Unmarshal(data, &st))
	return st
}

func isSleeping(t *testing.T, b *gpuagent.HTTPBackend) bool {
	t.Helper()
	status, data, err := fakeGet(t, b, "/is_sleeping")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "body: %s", data)
	var out struct {
		IsSleeping bool `json:"is_sleeping"`
	}
	require.NoError(t, json.Unmarshal(data, &out))
	return out.IsSleeping
}

// requireNewGeneration waits until Ready reports a generation after gen,
// and returns it.
func requireNewGeneration(t *testing.T, e *gpuagent.ManagedEngine, gen int) int {
	t.Helper()
	var got int
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), managedWait)
		defer cancel()
		g, err := e.Ready(ctx)
		require.NoError(t, err)
		got = g
		return g > gen
	}, managedWait, 10*time.Millisecond)
	return got
}

func TestManagedEngine(t *testing.T) {
	t.Parallel()

	t.Run("LoadAndSwitch", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a", "model-b"}, nil, nil)
		e := b.engine

		models, err := e.Models(t.Context())
		require.NoError(t, err)
		require.Equal(t, []gpuagent.Model{{ID: "model-a", OwnedBy: "vllm"}, {ID: "model-b", OwnedBy: "vllm"}}, models)

		_, err = e.Ready(t.Context())
		require.ErrorIs(t, err, gpuagent.ErrNoModelLoaded)
		_, err = e.Load(t.Context(), "model-c")
		require.ErrorContains(t, err, `"model-c" is not one of`)

		a := mustLoad(t, e, "model-a")
		requireChat(t, a, "model-a")
		pidA := enginePID(t, a)
		gen, err := e.Ready(t.Context())
		require.NoError(t, err)
		require.Equal(t, 1, gen)

		again := mustLoad(t, e, "model-a")
		require.Same(t, a, again, "loading the loaded model returns its backend")
		require.Equal(t, pidA, enginePID(t, a), "loading the loaded model keeps its engine")

		bb := mustLoad(t, e, "model-b")
		require.NotEqual(t, a.BaseURL, bb.BaseURL)
		require.False(t, processAlive(pidA), "model-a's engine is stopped once model-b is loaded")
		_, _, err = chatVia(t, a, "model-a")
		require.Error(t, err, "model-a's engine no longer answers")
		requireChat(t, bb, "model-b")
		gen, err = e.Ready(t.Context())
		require.NoError(t, err)
		require.Equal(t, 2, gen)

		// Back to model-a: a new engine, on model-a's port, so its backend
		// works again.
		a2 := mustLoad(t, e, "model-a")
		require.Same(t, a, a2)
		requireChat(t, a, "model-a")
		require.NotEqual(t, pidA, enginePID(t, a))
		require.Len(t, b.pids(t), 3)
	})

	t.Run("QuotedModelName", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"org/my model"}, nil, nil)
		requireChat(t, mustLoad(t, b.engine, "org/my model"), "org/my model")
	})

	t.Run("RestartAfterKill", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewPedanticRegistry()
		b := setupManaged(t, []string{"model-a"}, nil, func(c *gpuagent.ManagedConfig) { c.Metrics = gpuagent.NewMetrics(reg) })
		e := b.engine
		a := mustLoad(t, e, "model-a")
		gen, err := e.Ready(t.Context())
		require.NoError(t, err)
		pid := enginePID(t, a)

		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		gen2 := requireNewGeneration(t, e, gen)
		require.Equal(t, gen+1, gen2)
		require.Equal(t, 1.0, counterValue(t, reg, "kiln_engine_restarts_total"), "the restart is counted")
		requireChat(t, a, "model-a")
		require.NotEqual(t, pid, enginePID(t, a))
		require.False(t, processAlive(pid))
	})

	t.Run("RestartWhenUnhealthy", func(t *testing.T) {
		t.Parallel()
		sick := filepath.Join(t.TempDir(), "sick")
		b := setupManaged(t, []string{"model-a"}, []string{"KILN_FAKE_VLLM_SICK_FILE=" + sick}, nil)
		e := b.engine
		a := mustLoad(t, e, "model-a")
		gen, err := e.Ready(t.Context())
		require.NoError(t, err)
		pid := enginePID(t, a)

		// The engine answers requests, but /health says it is dead.
		require.NoError(t, os.WriteFile(sick, []byte(strconv.Itoa(pid)), 0o644))
		requireNewGeneration(t, e, gen)
		requireChat(t, a, "model-a")
		require.NotEqual(t, pid, enginePID(t, a))
		require.False(t, processAlive(pid), "the unhealthy engine is killed")
	})

	t.Run("RestartAfterExit", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a"}, []string{"KILN_FAKE_VLLM_EXIT_AFTER=2"}, nil)
		e := b.engine
		a := mustLoad(t, e, "model-a")
		gen, err := e.Ready(t.Context())
		require.NoError(t, err)

		requireChat(t, a, "model-a")
		requireChat(t, a, "model-a")
		_, _, err = chatVia(t, a, "model-a")
		require.Error(t, err, "the engine exits on the third request")

		requireNewGeneration(t, e, gen)
		requireChat(t, a, "model-a")
	})

	t.Run("StartFailure", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a"}, []string{"KILN_FAKE_VLLM_FAIL_START=torch.OutOfMemoryError: CUDA out of memory (fake)"}, nil)
		e := b.engine

		_, err := e.Load(t.Context(), "model-a")
		require.Error(t, err)
		require.ErrorContains(t, err, "exited during start-up")
		require.ErrorContains(t, err, "exit status 3")
		require.ErrorContains(t, err, "torch.OutOfMemoryError: CUDA out of memory (fake)", "the error quotes the engine's stderr")
		require.ErrorContains(t, err, "INFO fake vllm: loading model-a", "and its stdout")

		_, err = e.Ready(t.Context())
		require.ErrorIs(t, err, gpuagent.ErrNoModelLoaded)
		require.ErrorContains(t, err, "CUDA out of memory")
	})

	t.Run("StartTimeout", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a"}, []string{"KILN_FAKE_VLLM_NEVER_READY=1"}, func(c *gpuagent.ManagedConfig) {
			// Long enough for the fake to be listening on a busy machine,
			// so that the last error is its 503.
			c.StartTimeout = 4 * time.Second
		})

		_, err := b.engine.Load(t.Context(), "model-a")
		require.ErrorContains(t, err, "did not answer /health within 4s")
		require.ErrorContains(t, err, "/health answered 503")
		require.ErrorContains(t, err, "INFO fake vllm: serving model-a")
		require.Len(t, b.pids(t), 1)
		require.False(t, processAlive(b.pids(t)[0]), "the engine that never got ready is killed")
	})

	t.Run("LoadCanceled", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a"}, []string{"KILN_FAKE_VLLM_NEVER_READY=1"}, nil)

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			// Cancel once the engine runs, so that Load waits for /health.
			require.Eventually(t, func() bool { return len(b.pids(t)) == 1 }, managedWait, 10*time.Millisecond)
			cancel()
		}()
		_, err := b.engine.Load(ctx, "model-a")
		require.ErrorIs(t, err, context.Canceled)
		require.Len(t, b.pids(t), 1)
		require.False(t, processAlive(b.pids(t)[0]), "the engine of a canceled load is killed")
	})

	t.Run("SleepMode", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a", "model-b"}, nil, func(c *gpuagent.ManagedConfig) {
			c.SleepMode = true
			c.Command += " --enable-sleep-mode"
		})
		e := b.engine

		a := mustLoad(t, e, "model-a")
		requireChat(t, a, "model-a")
		pidA := enginePID(t, a)
		require.False(t, isSleeping(t, a))

		bb := mustLoad(t, e, "model-b")
		requireChat(t, bb, "model-b")
		require.True(t, processAlive(pidA), "model-a's engine sleeps rather than stops")
		require.True(t, isSleeping(t, a))
		require.False(t, isSleeping(t, bb))
		status, _, err := chatVia(t, a, "model-a")
		require.NoError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, status, "a sleeping engine rejects requests")

		a2 := mustLoad(t, e, "model-a")
		require.Same(t, a, a2)
		requireChat(t, a, "model-a")
		require.Equal(t, pidA, enginePID(t, a), "model-a's engine is woken, not restarted")
		require.False(t, isSleeping(t, a))
		require.True(t, isSleeping(t, bb))
		st := engineStats(t, a)
		require.Equal(t, int64(1), st.Sleeps)
		require.Equal(t, int64(1), st.WakeUps)
		require.Len(t, b.pids(t), 2, "two engines in all")

		gen, err := e.Ready(t.Context())
		require.NoError(t, err)
		require.Equal(t, 3, gen, "a start, a start and a wake-up")

		// An engine that died in its sleep is started again.
		pidB := enginePID(t, bb)
		require.NoError(t, syscall.Kill(pidB, syscall.SIGKILL))
		require.Eventually(t, func() bool { return !processAlive(pidB) }, managedWait, 10*time.Millisecond)
		mustLoad(t, e, "model-b")
		requireChat(t, bb, "model-b")
		require.NotEqual(t, pidB, enginePID(t, bb))
	})

	t.Run("SleepModeWithoutDevMode", func(t *testing.T) {
		t.Parallel()
		// An engine whose /sleep is not served (vLLM without
		// VLLM_SERVER_DEV_MODE=1) is stopped instead.
		b := setupManaged(t, []string{"model-a", "model-b"}, []string{"VLLM_SERVER_DEV_MODE=0"}, func(c *gpuagent.ManagedConfig) {
			c.SleepMode = true
			c.Command += " --enable-sleep-mode"
		})
		a := mustLoad(t, b.engine, "model-a")
		pidA := enginePID(t, a)
		requireChat(t, mustLoad(t, b.engine, "model-b"), "model-b")
		require.False(t, processAlive(pidA))
	})

	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a", "model-b"}, []string{"KILN_FAKE_VLLM_CHILD=1"}, nil)
		e := b.engine

		a := mustLoad(t, e, "model-a")
		requireChat(t, a, "model-a")
		// The leader and its child, which ignores SIGTERM.
		require.Eventually(t, func() bool { return len(b.pids(t)) == 2 }, managedWait, 10*time.Millisecond)

		bb := mustLoad(t, e, "model-b")
		require.Eventually(t, func() bool { return len(b.pids(t)) == 4 }, managedWait, 10*time.Millisecond)
		requireChat(t, bb, "model-b")
		// model-a's child was killed with its process group.
		require.Eventually(t, func() bool {
			alive := 0
			for _, pid := range b.pids(t) {
				if processAlive(pid) {
					alive++
				}
			}
			return alive == 2
		}, managedWait, 10*time.Millisecond)

		ctx, cancel := context.WithTimeout(t.Context(), managedWait)
		defer cancel()
		require.NoError(t, e.Close(ctx))
		b.requireAllDead(t)
		require.NoError(t, e.Close(ctx), "Close twice is fine")

		_, err := e.Load(t.Context(), "model-a")
		require.ErrorIs(t, err, gpuagent.ErrEngineClosed)
		_, err = e.Ready(t.Context())
		require.ErrorIs(t, err, gpuagent.ErrEngineClosed)
	})

	t.Run("KillAfterStopTimeout", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a", "model-b"}, []string{"KILN_FAKE_VLLM_IGNORE_TERM=1"}, func(c *gpuagent.ManagedConfig) {
			c.StopTimeout = 100 * time.Millisecond
		})
		a := mustLoad(t, b.engine, "model-a")
		pidA := enginePID(t, a)
		requireChat(t, mustLoad(t, b.engine, "model-b"), "model-b")
		require.False(t, processAlive(pidA), "an engine that ignores SIGTERM is killed")
	})

	t.Run("CloseDuringRestart", func(t *testing.T) {
		t.Parallel()
		b := setupManaged(t, []string{"model-a"}, nil, func(c *gpuagent.ManagedConfig) {
			c.RestartBackoff = time.Hour
		})
		e := b.engine
		a := mustLoad(t, e, "model-a")
		gen, err := e.Ready(t.Context())
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(enginePID(t, a), syscall.SIGKILL))

		// Ready blocks while the engine waits to restart, until ctx ends.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		for {
			g, err := e.Ready(ctx)
			if err != nil {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.ErrorContains(t, err, "the process exited")
				break
			}
			require.Equal(t, gen, g, "the generation does not change before a restart")
		}

		closed := make(chan error, 1)
		go func() { closed <- e.Close(context.Background()) }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(managedWait):
			t.Fatal("Close waits for the restart backoff")
		}
		_, err = e.Ready(t.Context())
		require.ErrorIs(t, err, gpuagent.ErrEngineClosed)
	})
}

func TestManagedConfig(t *testing.T) {
	t.Parallel()

	t.Run("DefaultCommand", func(t *testing.T) {
		t.Parallel()
		cfg := gpuagent.ManagedConfig{}.WithDefaults()
		require.Equal(t, gpuagent.ManagedCommandDefault, cfg.Command)
		require.NotContains(t, cfg.Command, "sleep")
		cfg = gpuagent.ManagedConfig{SleepMode: true}.WithDefaults()
		require.Equal(t, gpuagent.ManagedCommandDefault+" --enable-sleep-mode", cfg.Command)
		require.Equal(t, 256, cfg.MaxNumSeqs)
		require.Equal(t, "127.0.0.1", cfg.Host)
		require.Equal(t, 8100, cfg.BasePort)
		require.Equal(t, 10*time.Minute, cfg.StartTimeout)
		require.Equal(t, 30*time.Second, cfg.StopTimeout)
		require.Equal(t, 2*time.Second, cfg.HealthInterval)
		require.Equal(t, 3, cfg.HealthFailures)
		require.Equal(t, time.Second, cfg.RestartBackoff)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			cfg  gpuagent.ManagedConfig
			want string
		}{
			{"NoModels", gpuagent.ManagedConfig{}, "ManagedConfig.Models"},
			{"DuplicateModel", gpuagent.ManagedConfig{Models: []string{"m", "m"}}, "ManagedConfig.Models"},
			{"UnterminatedQuote", gpuagent.ManagedConfig{Models: []string{"m"}, Command: "vllm serve '{{.Model}}"}, "unterminated ' quote"},
			{"UnknownField", gpuagent.ManagedConfig{Models: []string{"m"}, Command: "vllm serve {{.Nope}}"}, "Nope"},
			{"BadTemplate", gpuagent.ManagedConfig{Models: []string{"m"}, Command: "vllm serve {{.Model"}, "ManagedConfig.Command"},
			{"EmptyCommand", gpuagent.ManagedConfig{Models: []string{"m"}, Command: "  "}, "the command is empty"},
			{"BadEnv", gpuagent.ManagedConfig{Models: []string{"m"}, Env: []string{"NOEQUALS"}}, "ManagedConfig.Env"},
			{"BadPort", gpuagent.ManagedConfig{Models: []string{"m"}, BasePort: 70000}, "ManagedConfig.BasePort"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := gpuagent.NewManagedEngine(tc.cfg)
				require.ErrorContains(t, err, tc.want)
			})
		}
	})

	t.Run("MissingExecutable", func(t *testing.T) {
		t.Parallel()
		e, err := gpuagent.NewManagedEngine(gpuagent.ManagedConfig{
			Models:   []string{"m"},
			Command:  "/nonexistent/vllm serve {{.Model}}",
			BasePort: 10000 + rand.IntN(20000),
		})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		_, err = e.Load(t.Context(), "m")
		require.ErrorContains(t, err, "/nonexistent/vllm")
		require.True(t, errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "no such file"), "%v", err)
	})
}

// counterValue is the value of the counter name in reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1)
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
