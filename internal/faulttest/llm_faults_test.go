package faulttest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/llmsim/faultproxy"
)

// TestLLMFaults runs batches against a simulator behind a fault proxy
// that resets connections, cuts bodies short, crawls, and answers 200
// with bodies that are not JSON or not a chat completion, some requests on
// every attempt (sticky). Every batch completes with every request exactly
// once; a fault the agent retries past leaves a chat completion in the
// output file, and a request that never got a chat completion, as a
// sticky one, ends as an error line, never as a broken success or a stuck
// batch.
//
// KILN_FAULT_SEED=N replays a seed the log names.
func TestLLMFaults(t *testing.T) {
	t.Parallel()
	seed := faultSeed(t)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testLLMFaults(t, backend, seed)
		})
	}
}

func testLLMFaults(t *testing.T, backend string, seed uint64) {
	const n, batches = 300, 2
	sim, err := llmsim.New(llmsim.Config{Models: []string{model}, MaxNumSeqs: 32, TTFT: 5 * time.Millisecond, TPOT: time.Millisecond, OutputTokens: 10})
	require.NoError(t, err)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	proxy, err := faultproxy.Start(srv.URL, faultproxy.Options{
		Seed: seed, Sticky: 0.04,
		// Slow answers outlast the agent's request timeout.
		SlowFor: 1500 * time.Millisecond,
		Rates: map[faultproxy.Fault]float64{
			faultproxy.Reset: 0.04, faultproxy.Truncated: 0.04, faultproxy.Slow: 0.02,
			faultproxy.InvalidJSON: 0.02, faultproxy.WrongJSON: 0.02,
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	env := kilntest.Start(t, backend, kilntest.Options{Configure: func(cfg *config.Config) {
		cfg.LLMURL = proxy.URL()
		cfg.ShardSize = 100
		cfg.AgentConcurrency = agentConcurrency
		cfg.RequestTimeout = time.Second
	}})
	c := client(env)
	ids := make([]string, batches)
	for i := range ids {
		ids[i] = createBatch(t, c, n)
	}
	ctx := context.Background()
	codes := map[string]int{}
	for _, id := range ids {
		b := waitBatch(t, c, id)
		require.Equal(t, openai.BatchStatusCompleted, b.Status)
		f, problems := checkBatchFiles(ctx, c, *b, n, checkOpts{chat: true})
		require.Empty(t, problems)
		for code, k := range f.codes {
			codes[code] += k
		}
		failed := map[string]bool{} // custom_ids in the error file
		if b.ErrorFileID != "" {
			require.NoError(t, eachLine(ctx, c, b.ErrorFileID, func(line []byte) { failed[customID(t, line)] = true }))
		}
		// A sticky fault is permanent: its request is an error line.
		// (The batches have the same requests.)
		for body, f := range proxy.Sticky() {
			line, ok := lineOf([]byte(body))
			require.True(t, ok, body)
			require.True(t, failed[fmt.Sprintf("req-%d", line-1)], "req-%d got %s on every attempt, and is no error line", line-1, f)
		}
	}
	for code := range codes {
		require.Contains(t, []string{"request_failed", "request_timeout", "invalid_response"}, code)
	}
	counts, total := proxy.Stats()
	t.Logf("seed %d: %d requests to the engine, faults %v, %d sticky; error lines %v", seed, total, counts, len(proxy.Sticky()), codes)
	require.Zero(t, requireObjects(t, env, env.App.Bucket), "objects without their row, before the sweep")
}
