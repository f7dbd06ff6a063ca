package faulttest_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/testenv"
)

// agentConcurrency is the agents' KILN_AGENT_CONCURRENCY: twice the
// simulator's sequences, so that some requests queue in it, as in vLLM.
const agentConcurrency = 32

// TestAgentKill runs batches with `kiln agent` processes that it kills with
// SIGKILL at random points, several times per batch, starting a new agent
// after each. Every batch completes with every request exactly once, and no
// request whose result was durable when an agent died is sent again.
//
// KILN_FAULT_SEED=N replays the runs of a seed the log names.
func TestAgentKill(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KILN_FAULT_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (KILN_FAULT_SEED=%d replays it)", seed, seed)
	bin := kilntest.KilnBinary(t)
	for run := range 5 {
		backend := "sqlite"
		if run%2 == 1 {
			backend = "postgres"
		}
		t.Run(fmt.Sprintf("%d-%s", run, backend), func(t *testing.T) {
			t.Parallel()
			testAgentKill(t, bin, backend, rand.New(rand.NewPCG(seed, uint64(run))))
		})
	}
}

func testAgentKill(t *testing.T, bin, backend string, rng *rand.Rand) {
	const n = 400
	env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true, Configure: func(cfg *config.Config) {
		cfg.ShardSize = 100
	}})
	sim := startSim(t)
	c := client(env)
	id := createBatch(t, c, n)

	startAgent := agentStarter(t, env, bin, sim.url)

	kills := 2 + rng.IntN(2)
	var durableAt []batchline.Bitmap // durableAt[k]: the lines durable when agent k died
	for k := range kills {
		agent := startAgent()
		// Kill after a random number of answers, from a handful up to a
		// third of what is left: the batch is far from done.
		left := n
		if k > 0 {
			left -= lines(durableAt[k-1])
		}
		target := sim.completed() + int64(5+rng.IntN(max(1, left/3)))
		ended := false
		poll(t, "the agent's answers", func() (bool, error) {
			b, err := env.App.Store.BatchGet(context.Background(), id)
			if err != nil {
				return false, err
			}
			ended = b.Status != store.BatchValidating && b.Status != store.BatchInProgress
			return ended || sim.completed() >= target, nil
		})
		if ended {
			t.Logf("kill %d: the batch ended first", k+1)
			break
		}
		agent.Kill(t)
		// Wait until the simulator has seen the last of the dead agent:
		// then no request it sent can arrive in the next agent's epoch.
		poll(t, "the dead agent's connections close", func() (bool, error) { return sim.conns.Load() == 0, nil })
		durableAt = append(durableAt, durableLines(t, env, id))
		sim.epoch.Add(1)
		t.Logf("kill %d after %d answers: %d lines durable, %d received", k+1, sim.completed(), lines(durableAt[k]), sim.received())
	}
	startAgent()
	b := waitBatch(t, c, id)
	requireCompleted(t, c, b, n)

	// No line that was durable when an agent died was sent again, and so
	// the simulator got at most every request once plus, for each agent
	// killed, the requests it had sent without a durable result.
	sim.mu.Lock()
	defer sim.mu.Unlock()
	received, bound := 0, n
	for line, epochs := range sim.receipts {
		received += len(epochs)
		for _, e := range epochs {
			for k := int64(0); k < e && int(k) < len(durableAt); k++ {
				require.False(t, durableAt[k].Has(line), "line %d was durable when agent %d died, and agent %d sent it again", line, k+1, e+1)
			}
			if int(e) < len(durableAt) && !durableAt[e].Has(line) {
				bound++ // lost when agent e died
			}
		}
	}
	require.Equal(t, sim.Stats().Requests, int64(received))
	require.LessOrEqual(t, received, bound)
	t.Logf("%d agents killed; the simulator got %d requests for %d lines (at most %d)", len(durableAt), received, n, bound)
}

// TestAgentPause stops a `kiln agent` process with SIGSTOP, results in
// hand, until another agent has taken over its shards and committed
// chunks of them, and then lets it go on, as after a long GC pause or a
// network partition: the stale agent must not destroy what the new owner
// committed. The batch completes with every request exactly once.
func TestAgentPause(t *testing.T) {
	t.Parallel()
	const n = 400
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true, Configure: func(cfg *config.Config) {
		cfg.ShardSize = 100
	}})
	sim := startSim(t)
	c := client(env)
	id := createBatch(t, c, n)
	startAgent := agentStarter(t, env, kilntest.KilnBinary(t), sim.url)
	ctx := context.Background()

	stale := startAgent()
	waitProgress(t, c, id, 50)
	pauseOutsideWrite(t, env, stale, sim)
	shards, err := env.App.Store.ShardList(ctx, id)
	require.NoError(t, err)
	held := map[int64]int{} // the paused agent's shards, and their chunks
	for _, sh := range shards {
		if sh.Status == store.ShardRunning {
			chunks, err := env.App.Store.ChunkList(ctx, id, sh.Idx)
			require.NoError(t, err)
			held[sh.Idx] = len(chunks)
		}
	}
	require.NotEmpty(t, held)

	startAgent()
	poll(t, "the new agent commits chunks of every shard the paused one held", func() (bool, error) {
		shards, err := env.App.Store.ShardList(ctx, id)
		if err != nil {
			return false, err
		}
		for _, sh := range shards {
			before, ok := held[sh.Idx]
			if !ok || sh.Status == store.ShardDone {
				continue // nothing of it was left to write
			}
			chunks, err := env.App.Store.ChunkList(ctx, id, sh.Idx)
			if err != nil || len(chunks) <= before {
				return false, err
			}
		}
		return true, nil
	})
	require.NoError(t, stale.Signal(syscall.SIGCONT))

	requireCompleted(t, c, waitBatch(t, c, id), n)
}

// pauseOutsideWrite stops p with SIGSTOP at a moment it holds no write
// transaction on env's SQLite database: one paused inside a transaction
// keeps SQLite's one write lock, and no process writes until it goes on,
// the new agent not even its migration. That is SQLite's, not the pause
// this test is about; so if the database is not writable at once, p goes
// on for a few more answers and is paused again.
func pauseOutsideWrite(t *testing.T, env *kilntest.Env, p *testenv.Process, sim *recordingSim) {
	t.Helper()
	path := strings.TrimPrefix(env.App.Cfg.DatabaseURL, "sqlite://")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(500)&_txlock=immediate")
	require.NoError(t, err)
	defer db.Close()
	for range 20 {
		require.NoError(t, p.Signal(syscall.SIGSTOP))
		tx, err := db.Begin()
		if err == nil {
			require.NoError(t, tx.Rollback())
			return
		}
		t.Logf("the paused agent may hold the write lock (%v); letting it go on", err)
		require.NoError(t, p.Signal(syscall.SIGCONT))
		target := sim.completed() + 5
		poll(t, "a few more answers", func() (bool, error) { return sim.completed() >= target, nil })
	}
	t.Fatal("found no moment the agent held no write transaction")
}

// lines returns how many lines m holds.
func lines(m batchline.Bitmap) int {
	c := 0
	for i := range len(m) * 64 {
		if m.Has(i) {
			c++
		}
	}
	return c
}

// agentStarter returns a function that starts a `kiln agent` process for
// env's database and object store, against the engine at llmURL, with a
// short lease. Its log is in the test log if the test fails.
func agentStarter(t *testing.T, env *kilntest.Env, bin, llmURL string) func() *testenv.Process {
	agents := 0
	return func() *testenv.Process {
		agents++
		i := agents
		logPath := filepath.Join(t.TempDir(), fmt.Sprintf("agent-%d.log", i))
		logFile, err := os.Create(logPath)
		require.NoError(t, err)
		t.Cleanup(func() {
			logFile.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("agent %d's log:\n%s", i, out)
			}
		})
		cmd := exec.Command(bin, "agent")
		cmd.Env = append(testenv.EnvironWithout("KILN_"),
			"KILN_DATABASE_URL="+env.App.Cfg.DatabaseURL,
			"KILN_OBJECT_STORE="+env.App.Cfg.ObjectStore,
			"KILN_LLM_URL="+llmURL,
			"KILN_AGENT_CONCURRENCY="+strconv.Itoa(agentConcurrency),
			"KILN_LEASE_TTL=2s",
			"KILN_SHARD_SIZE=100",
			"KILN_CHUNK_INTERVAL=200ms",
			"KILN_METRICS_ADDR=127.0.0.1:0",
			"KILN_LOG_LEVEL=debug",
		)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		return testenv.StartProcess(t, cmd)
	}
}

// recordingSim is a simulator that records, per input line, the epoch of
// each request it got for it: the number of agents killed before the
// connection that carried it was opened.
type recordingSim struct {
	*llmsim.Server
	url   string
	epoch atomic.Int64
	conns atomic.Int64 // open connections

	mu       sync.Mutex
	receipts map[int][]int64
}

type epochKey struct{}

func startSim(t *testing.T) *recordingSim {
	t.Helper()
	s, err := llmsim.New(*slowSim())
	require.NoError(t, err)
	sim := &recordingSim{Server: s, receipts: map[int][]int64{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return // the agent died while sending it
			}
			if line, ok := lineOf(body); ok {
				sim.mu.Lock()
				sim.receipts[line] = append(sim.receipts[line], r.Context().Value(epochKey{}).(int64))
				sim.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		s.Handler().ServeHTTP(w, r)
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, epochKey{}, sim.epoch.Load())
	}
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			sim.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			sim.conns.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	sim.url = srv.URL + "/v1"
	return sim
}

func (s *recordingSim) completed() int64 { return s.Stats().Completed }

func (s *recordingSim) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.receipts {
		n += len(e)
	}
	return n
}
