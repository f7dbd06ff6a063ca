package faulttest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/gpuagent"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestEngineDeath kills the engine of an agent that manages it (kiln sim
// standing in for vLLM) twice in the middle of a batch, with requests in
// flight: the agent starts it again each time, and the requests that lost
// their answer run on the new engine without spending retries, so the batch
// completes without an error line.
func TestEngineDeath(t *testing.T) {
	t.Parallel()
	const n = 600
	bin := kilntest.KilnBinary(t)
	env := kilntest.Start(t, "sqlite", kilntest.Options{Configure: func(cfg *config.Config) {
		cfg.EngineCommand = bin + " sim --addr {{.Host}}:{{.Port}} --models {{.Model}} --max-num-seqs {{.MaxNumSeqs}} --ttft 20ms --tpot 2ms --output-tokens 20 " + engineMark
		cfg.EngineModels = []string{model}
		cfg.AgentConcurrency = 16
		cfg.ShardSize = 100
	}})
	engine, ok := env.App.Engine.(*gpuagent.ManagedEngine)
	require.True(t, ok, "the engine is %T", env.App.Engine)
	c := client(env)
	id := createBatch(t, c, n)
	for _, done := range []int64{100, 300} {
		waitProgress(t, c, id, done)
		gen, err := engine.Ready(t.Context())
		require.NoError(t, err)
		pid := enginePID(t, bin)
		poll(t, "requests in flight", func() (bool, error) { return inFlight(t, env) > 0, nil })
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		poll(t, "the engine restarts", func() (bool, error) {
			g, err := engine.Ready(t.Context())
			return g > gen, err
		})
		require.NotEqual(t, pid, enginePID(t, bin))
	}

	requireCompleted(t, c, waitBatch(t, c, id), n)
}

// inFlight reads the agent's kiln_agent_requests_in_flight.
func inFlight(t *testing.T, env *kilntest.Env) float64 {
	t.Helper()
	families, err := env.App.Metrics.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "kiln_agent_requests_in_flight" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no kiln_agent_requests_in_flight")
	return 0
}

// engineMark is in the managed engine's command line, to tell it from the
// other `kiln sim` processes of this test process (the chaos suite's).
const engineMark = "--seed=424242"

// enginePID returns the pid of the one live `kiln sim` child of this
// process with engineMark: the managed engine.
func enginePID(t *testing.T, bin string) int {
	t.Helper()
	var found []int
	procs, err := filepath.Glob("/proc/[0-9]*")
	require.NoError(t, err)
	for _, dir := range procs {
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue // it exited
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[0] == "Z" || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 1 && args[0] == bin && args[1] == "sim" && slices.Contains(args, engineMark) {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			found = append(found, pid)
		}
	}
	require.Len(t, found, 1, "kiln sim children of this process")
	return found[0]
}
