package gpuagent_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// The engine each agent of the scaling benchmark drives: 16 sequences,
// 50ms to the first token, 5ms per token, 30 tokens, so at best 16 /
// (50ms + 30 × 5ms) = 80 requests/s. Slow enough that 16 of them fit on a
// small machine beside kiln: what limits them is then kiln and Postgres.
const (
	scaleSeqs       = 16
	scaleTTFT       = 50 * time.Millisecond
	scaleTPOT       = 5 * time.Millisecond
	scaleTokens     = 30
	scalePerAgent   = 1_200 // requests per agent: 15 s at the ideal pace
	scaleShardSize  = 100
	scaleAgentsList = "1,2,4,8,16"
)

// BenchmarkAgentScaling runs one batch through N agents (each `kiln agent`
// as its own process, with an engine of its own: 16 sequences, 50ms to the
// first token, 5ms a token, 30 tokens, 80 requests/s at best) on one
// Postgres kiln, with N × 1,200 requests (KILN_BENCH_PER_AGENT: a longer
// run shows how much of the shortfall is the last shards' tail) in shards
// of 100, for N in KILN_BENCH_AGENTS (default 1,2,4,8,16; one N at a time,
// each on a fresh kiln), and reports each N's requests/s from creation to completed
// (req/s-N), its speed-up over one agent measured in the same run (xN:
// ideally N), the share of the N engines' ideal it reached (of-ideal-N),
// and the shards per second the agents claimed and finished (shards/s-N).
func BenchmarkAgentScaling(b *testing.B) {
	requireProc(b)
	counts := strings.Split(scaleAgentsList, ",")
	if v := os.Getenv("KILN_BENCH_AGENTS"); v != "" {
		counts = strings.Split(v, ",")
	}
	perAgent := scalePerAgent
	if v := os.Getenv("KILN_BENCH_PER_AGENT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < scaleShardSize {
			b.Fatalf("KILN_BENCH_PER_AGENT: %q is not a number of requests of at least a shard (%d)", v, scaleShardSize)
		}
		perAgent = n
	}
	perEngine := float64(scaleSeqs) / (scaleTTFT + scaleTokens*scaleTPOT).Seconds()
	engine := llmsim.Config{Models: []string{benchModel}, MaxNumSeqs: scaleSeqs, TTFT: scaleTTFT, TPOT: scaleTPOT, OutputTokens: scaleTokens}
	rate := func(b *testing.B, agents int) float64 {
		env := kilntest.Start(b, "postgres", kilntest.Options{NoAgent: true, Configure: func(c *config.Config) {
			c.PollInterval = config.PollIntervalDefault
			c.ChunkInterval = config.ChunkIntervalDefault
			c.ShardSize = scaleShardSize
		}})
		var procs []*agentProcess
		for range agents {
			srv, _ := startBenchSim(b, engine)
			defer srv.Close()
			procs = append(procs, startAgentProcess(b, env, srv.URL+"/v1", "KILN_AGENT_CONCURRENCY="+strconv.Itoa(scaleSeqs)))
		}
		// Each N runs alone: its agents and kiln stop before the next.
		defer func() {
			for _, ap := range procs {
				ap.p.Stop(b)
			}
			if err := env.Stop(); err != nil {
				b.Fatal(err)
			}
		}()
		deadline := time.Now().Add(time.Minute)
		for {
			list, err := env.App.Store.AgentList(context.Background(), 0)
			if err == nil && len(list) >= agents {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d agents did not register within a minute", agents)
			}
			<-time.After(20 * time.Millisecond)
		}
		n := perAgent * agents
		c := benchClient(env)
		fileID := benchUpload(b, c, batchInput(chatBodies(n, benchModel)))
		start := time.Now()
		benchWait(b, c, benchCreate(b, c, fileID), n)
		elapsed := time.Since(start).Seconds()
		b.ReportMetric(float64(n/scaleShardSize)/elapsed, fmt.Sprintf("shards/s-%d", agents))
		return float64(n) / elapsed
	}
	b.ResetTimer()
	for range b.N {
		var one float64
		for _, s := range counts {
			agents, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || agents < 1 {
				b.Fatalf("KILN_BENCH_AGENTS: %q is no number of agents", s)
			}
			r := rate(b, agents)
			b.ReportMetric(r, fmt.Sprintf("req/s-%d", agents))
			b.ReportMetric(r/(perEngine*float64(agents)), fmt.Sprintf("of-ideal-%d", agents))
			if agents == 1 {
				one = r
			} else if one > 0 {
				b.ReportMetric(r/one, fmt.Sprintf("x%d", agents))
			}
		}
	}
	b.ReportMetric(0, "ns/op")
}
