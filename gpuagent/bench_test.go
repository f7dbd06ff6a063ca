package gpuagent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/testenv"
)

// The engine the throughput benchmark stands in for: 256 sequences, 20ms to
// the first token, 2ms per token, 100 tokens per answer. At best it answers
// 256 / (20ms + 100 × 2ms) ≈ 1164 requests/s.
const (
	benchSeqs   = 256
	benchTTFT   = 20 * time.Millisecond
	benchTPOT   = 2 * time.Millisecond
	benchTokens = 100
	benchModel  = "sim-model"
)

// startBenchSim serves a fresh simulator behind a probe until b ends.
func startBenchSim(b *testing.B, cfg llmsim.Config) (*httptest.Server, *kilntest.Probe) {
	b.Helper()
	sim, err := llmsim.New(cfg.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	p := kilntest.NewProbe(sim.Handler())
	srv := httptest.NewServer(p)
	b.Cleanup(srv.Close)
	return srv, p
}

func benchSimConfig(models ...string) llmsim.Config {
	return llmsim.Config{Models: models, MaxNumSeqs: benchSeqs, TTFT: benchTTFT, TPOT: benchTPOT, OutputTokens: benchTokens}
}

// throughputSetting is the engine and batch BenchmarkThroughput runs: by
// default benchSeqs sequences and 10,000 requests; KILN_BENCH_SEQS and
// KILN_BENCH_REQUESTS change them, so that the vLLM-like engine of 64
// sequences runs as KILN_BENCH_SEQS=64.
type throughputSetting struct {
	seqs, requests int
}

func benchThroughputSetting(b *testing.B) throughputSetting {
	b.Helper()
	s := throughputSetting{seqs: benchSeqs, requests: 10_000}
	for _, v := range []struct {
		env string
		to  *int
	}{{"KILN_BENCH_SEQS", &s.seqs}, {"KILN_BENCH_REQUESTS", &s.requests}} {
		raw := os.Getenv(v.env)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive integer", v.env, raw)
		}
		*v.to = n
	}
	return s
}

// chatBodies returns n distinct chat completion bodies for model.
func chatBodies(n int, model string) [][]byte {
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i], _ = json.Marshal(map[string]any{"model": model, "max_tokens": benchTokens,
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("Question %d", i)}}})
	}
	return bodies
}

// batchInput is the batch input file of bodies.
func batchInput(bodies [][]byte) []byte {
	var buf bytes.Buffer
	for i, body := range bodies {
		fmt.Fprintf(&buf, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":%s}`+"\n", i, body)
	}
	return buf.Bytes()
}

// directRate posts bodies to the simulator at baseURL from workers
// goroutines, as the simplest client that keeps the engine full would, and
// returns the requests per second it reached.
func directRate(b *testing.B, baseURL string, bodies [][]byte, workers int) float64 {
	b.Helper()
	start := time.Now()
	failures := directPost(baseURL, bodies, workers)
	elapsed := time.Since(start)
	if failures > 0 {
		b.Fatalf("direct client: %d of %d requests failed", failures, len(bodies))
	}
	return float64(len(bodies)) / elapsed.Seconds()
}

func benchClient(env *kilntest.Env) openai.Client {
	return openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(env.Key))
}

// benchUpload uploads a batch input file and returns its id.
func benchUpload(b *testing.B, c openai.Client, input []byte) string {
	b.Helper()
	f, err := c.Files.New(context.Background(), openai.FileNewParams{File: openai.File(bytes.NewReader(input), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		b.Fatal(err)
	}
	return f.ID
}

// benchCreate creates a batch of an uploaded file and returns its id.
func benchCreate(b *testing.B, c openai.Client, fileID string) string {
	b.Helper()
	batch, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		b.Fatal(err)
	}
	return batch.ID
}

// benchWait polls the batch until it completes, and checks that every
// request succeeded.
func benchWait(b *testing.B, c openai.Client, id string, n int) {
	b.Helper()
	benchWaitFinalizing(b, c, id, n)
}

// benchWaitFinalizing is benchWait that also returns when it first saw the
// batch finalizing (its last shard done), or completed if it never did.
func benchWaitFinalizing(b *testing.B, c openai.Client, id string, n int) (finalizing time.Time) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		batch, err := c.Batches.Get(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if finalizing.IsZero() && (batch.Status == openai.BatchStatusFinalizing || batch.Status == openai.BatchStatusCompleted) {
			finalizing = time.Now()
		}
		switch batch.Status {
		case openai.BatchStatusCompleted:
			if batch.RequestCounts.Completed != int64(n) {
				b.Fatalf("batch %s: completed %d of %d (failed %d)", id, batch.RequestCounts.Completed, n, batch.RequestCounts.Failed)
			}
			return finalizing
		case openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
			b.Fatalf("batch %s ended %s", id, batch.Status)
		}
		<-time.After(10 * time.Millisecond)
	}
	b.Fatalf("batch %s did not complete in 30 minutes", id)
	return finalizing
}

// agentProcess is a `kiln agent` run as its own process, so that its CPU
// time and memory are its own.
type agentProcess struct {
	p   *testenv.Process
	log string
	// peakAnon is the most anonymous memory (heap, stacks: not the
	// binary's pages) the agent was seen to hold, in bytes, sampled every
	// 10ms.
	peakAnon atomic.Int64
	// phase is the part of a batch's run the benchmark says it is in, and
	// phasePeaks the most anonymous memory seen in each (see memPhase).
	phase      atomic.Int32
	phasePeaks [memPhases]atomic.Int64
}

// The parts of a batch's run that BenchmarkServeRSS tells apart.
const (
	memStart    = iota // until a tenth of the requests are answered
	memEarly           // then until half are
	memLate            // then until all are
	memFinalize        // then until the batch is completed
	memPhases
)

// startAgentProcess runs `kiln agent` on env's database and object store
// against the engine at llmURL until b ends, and waits until it has
// registered, so that its start is not timed. env adds variables (NAME=value)
// or overrides the defaults.
func startAgentProcess(b *testing.B, env *kilntest.Env, llmURL string, extraEnv ...string) *agentProcess {
	b.Helper()
	logPath := filepath.Join(b.TempDir(), "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(kilntest.KilnBinary(b), "agent")
	cmd.Env = append(os.Environ(),
		"KILN_DATABASE_URL="+env.App.Cfg.DatabaseURL,
		"KILN_OBJECT_STORE="+env.App.Cfg.ObjectStore,
		"KILN_LLM_URL="+llmURL,
		"KILN_AGENT_CONCURRENCY="+strconv.Itoa(benchSeqs),
		"KILN_METRICS_ADDR=127.0.0.1:0",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	ap := &agentProcess{p: testenv.StartProcess(b, cmd), log: logPath}
	b.Cleanup(func() { ap.p.Stop(b) }) // before StartProcess's kill: graceful
	go ap.sampleAnon()
	deadline := time.Now().Add(time.Minute)
	for {
		agents, err := env.App.Store.AgentList(context.Background(), 0)
		if err == nil && len(agents) > 0 && len(agents[0].Models) > 0 {
			return ap
		}
		select {
		case <-ap.p.Done():
			b.Fatalf("kiln agent exited: %v\n%s", ap.p.Err(), ap.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("kiln agent did not register within a minute\n%s", ap.logTail())
		}
	}
}

func (ap *agentProcess) sampleAnon() {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ap.p.Done():
			return
		case <-tick.C:
		}
		kb, err := procStatusKB(ap.p.Pid(), "RssAnon")
		if err != nil {
			continue
		}
		if kb<<10 > ap.peakAnon.Load() {
			ap.peakAnon.Store(kb << 10)
		}
		if p := &ap.phasePeaks[ap.phase.Load()]; kb<<10 > p.Load() {
			p.Store(kb << 10)
		}
	}
}

// procStatusKB reads a field in kB from /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

func (ap *agentProcess) logTail() string {
	data, _ := os.ReadFile(ap.log)
	return string(data[max(0, len(data)-4096):])
}

// cpu is the CPU time the agent has used so far, user and system.
func (ap *agentProcess) cpu(b *testing.B) time.Duration {
	b.Helper()
	return kilntest.ProcCPU(b, ap.p.Pid())
}

// peakRSS is the agent's resident set high-water mark, in bytes: the
// binary's pages included.
func (ap *agentProcess) peakRSS(b *testing.B) int64 {
	b.Helper()
	kb, err := procStatusKB(ap.p.Pid(), "VmHWM")
	if err != nil {
		b.Fatal(err)
	}
	return kb << 10
}

func requireProc(b *testing.B) {
	b.Helper()
	if runtime.GOOS != "linux" {
		b.Skip("measures the agent process through /proc")
	}
}

// startBenchKiln runs kiln's API and job workers, with no agent, with the
// default poll and chunk intervals.
func startBenchKiln(b *testing.B, backend string) *kilntest.Env {
	b.Helper()
	return kilntest.Start(b, backend, kilntest.Options{NoAgent: true, Configure: func(c *config.Config) {
		c.PollInterval = config.PollIntervalDefault
		c.ChunkInterval = config.ChunkIntervalDefault
	}})
}

// BenchmarkThroughput runs 10,000 requests through kiln to a simulator with
// 256 sequences, 20ms to the first token, 2ms per token and 100 tokens
// (ideally 1164 requests/s), and reports efficiency: kiln's end-to-end
// requests/s, from POST /v1/batches to completed, over the requests/s a
// minimal client reaches driving a fresh simulator directly with 256
// goroutines, measured just before. KILN_BENCH_SEQS and KILN_BENCH_REQUESTS
// change the sequences (the simulator's, the agent's concurrency and the
// direct client's goroutines) and the requests: KILN_BENCH_SEQS=64 is a
// vLLM-like engine of 64 sequences (ideally 291 requests/s). agent/direct is the agent's own pace at
// the simulator, first arrival to last answer, over the direct one; what
// efficiency loses beyond it is kiln's latency before the first request and
// after the last answer, which it reports in ms; ms-last-answer-to-finalizing
// is the agent's share of the latter (its last chunk and shard recorded),
// the rest the finalizer's.
//
// The agent runs as its own process (kiln agent), so that its CPU time per
// 1,000 requests and its peak RSS are its own. The embedded sub-benchmark
// runs the embedded default instead: one kiln serve with the agent inside.
func BenchmarkThroughput(b *testing.B) {
	requireProc(b)
	set := benchThroughputSetting(b)
	n := set.requests
	bodies := chatBodies(n, benchModel)
	input := batchInput(bodies)
	ideal := float64(set.seqs) / (benchTTFT + benchTokens*benchTPOT).Seconds()
	sim := benchSimConfig(benchModel)
	sim.MaxNumSeqs = set.seqs

	run := func(b *testing.B, backend string, inProcess bool) {
		var (
			env   *kilntest.Env
			agent *agentProcess
		)
		srv, probe := startBenchSim(b, sim)
		if inProcess {
			env = kilntest.Start(b, backend, kilntest.Options{Configure: func(c *config.Config) {
				c.LLMURL = srv.URL + "/v1"
				c.AgentConcurrency = set.seqs
				c.PollInterval = config.PollIntervalDefault
				c.ChunkInterval = config.ChunkIntervalDefault
			}})
		} else {
			env = startBenchKiln(b, backend)
			agent = startAgentProcess(b, env, srv.URL+"/v1", "KILN_AGENT_CONCURRENCY="+strconv.Itoa(set.seqs))
		}
		c := benchClient(env)
		var direct, kiln, atSim, cpu, toFirst, afterLast, toFinalizing float64
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			srv, _ := startBenchSim(b, sim)
			direct += directRate(b, srv.URL, bodies, set.seqs)
			srv.Close()
			fileID := benchUpload(b, c, input)
			b.StartTimer()

			probe.Reset()
			var cpu0 time.Duration
			if agent != nil {
				cpu0 = agent.cpu(b)
			}
			start := time.Now()
			finalizing := benchWaitFinalizing(b, c, benchCreate(b, c, fileID), n)
			end := time.Now()
			kiln += float64(n) / end.Sub(start).Seconds()
			atSim += probe.Rate()
			first, last := probe.Span()
			toFirst += first.Sub(start).Seconds()
			afterLast += end.Sub(last).Seconds()
			toFinalizing += finalizing.Sub(last).Seconds()
			if agent != nil {
				cpu += (agent.cpu(b) - cpu0).Seconds()
			}
		}
		b.StopTimer()
		runs := float64(b.N)
		n := float64(n)
		b.ReportMetric(kiln/direct, "efficiency")
		b.ReportMetric(atSim/direct, "agent/direct")
		b.ReportMetric(kiln/runs, "kiln-req/s")
		b.ReportMetric(direct/runs, "direct-req/s")
		b.ReportMetric(ideal, "ideal-req/s")
		b.ReportMetric(toFirst/runs*1000, "ms-to-first-request")
		b.ReportMetric(afterLast/runs*1000, "ms-last-answer-to-completed")
		b.ReportMetric(toFinalizing/runs*1000, "ms-last-answer-to-finalizing")
		if agent != nil {
			b.ReportMetric(cpu/runs/(n/1000), "agent-cpu-s/1k-req")
			b.ReportMetric(float64(agent.peakRSS(b))/(1<<20), "agent-peak-MB")
			b.ReportMetric(float64(agent.peakAnon.Load())/(1<<20), "agent-peak-anon-MB")
		}
		b.ReportMetric(0, "ns/op")
	}
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) { run(b, backend, false) })
	}
	b.Run("embedded", func(b *testing.B) { run(b, "sqlite", true) })
}

// BenchmarkAgentRSS reports the agent process's peak RSS after a batch of
// 10,000 and one of 100,000 requests, each on a fresh kiln and agent,
// against a fast simulator (1ms to first token, no time per token), and
// their ratio: results stream to the object store in chunks, so the agent's
// memory must not grow with the batch. Peak RSS counts the binary's pages
// too; anon-MB is the anonymous memory alone (heap and stacks), the part a
// batch could grow.
func BenchmarkAgentRSS(b *testing.B) {
	requireProc(b)
	fast := llmsim.Config{Models: []string{benchModel}, MaxNumSeqs: benchSeqs, TTFT: time.Millisecond, TPOT: -1, OutputTokens: benchTokens}
	peak := func(b *testing.B, n int) (rss, anon int64, cpuPer1k float64) {
		srv, _ := startBenchSim(b, fast)
		env := startBenchKiln(b, "sqlite")
		agent := startAgentProcess(b, env, srv.URL+"/v1")
		c := benchClient(env)
		fileID := benchUpload(b, c, batchInput(chatBodies(n, benchModel)))
		cpu0 := agent.cpu(b)
		benchWait(b, c, benchCreate(b, c, fileID), n)
		cpuPer1k = (agent.cpu(b) - cpu0).Seconds() / float64(n/1000)
		rss, anon = agent.peakRSS(b), agent.peakAnon.Load()
		agent.p.Stop(b)
		if err := env.Stop(); err != nil {
			b.Fatal(err)
		}
		srv.Close()
		return rss, anon, cpuPer1k
	}
	var small, large, anonSmall, anonLarge, cpuSmall, cpuLarge float64
	for range b.N {
		rss, anon, cpu := peak(b, 10_000)
		small += float64(rss)
		anonSmall += float64(anon)
		cpuSmall += cpu
		rss, anon, cpu = peak(b, 100_000)
		large += float64(rss)
		anonLarge += float64(anon)
		cpuLarge += cpu
	}
	runs := float64(b.N)
	b.ReportMetric(small/runs/(1<<20), "MB-10k")
	b.ReportMetric(large/runs/(1<<20), "MB-100k")
	b.ReportMetric(large/small, "100k/10k")
	b.ReportMetric(anonSmall/runs/(1<<20), "anon-MB-10k")
	b.ReportMetric(anonLarge/runs/(1<<20), "anon-MB-100k")
	b.ReportMetric(anonLarge/anonSmall, "anon-100k/10k")
	b.ReportMetric(cpuSmall/runs, "cpu-s/1k-req-10k")
	b.ReportMetric(cpuLarge/runs, "cpu-s/1k-req-100k")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTwoModels submits three batches for model A and three for model
// B, interleaved (A, B, A, B, A, B) as fast as the API takes them, to one
// agent whose engine serves both, and reports the model switches it made
// until all six completed: 1 is the least, A's work then B's. Each run
// starts with the model already loaded, so that 1 stays the least.
func BenchmarkTwoModels(b *testing.B) {
	const (
		n      = 1000
		modelA = "model-a"
		modelB = "model-b"
	)
	sim := benchSimConfig(modelA, modelB)
	env := kilntest.Start(b, "sqlite", kilntest.Options{Sim: &sim})
	c := benchClient(env)
	inputs := map[string][]byte{modelA: batchInput(chatBodies(n, modelA)), modelB: batchInput(chatBodies(n, modelB))}
	var total int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		first, second := modelA, modelB
		if env.App.Agent.Loaded() == modelB {
			first, second = modelB, modelA
		}
		var files []string
		for range 3 {
			files = append(files, benchUpload(b, c, inputs[first]), benchUpload(b, c, inputs[second]))
		}
		before := env.App.Agent.Switches()
		b.StartTimer()
		var batches []string
		for _, f := range files {
			batches = append(batches, benchCreate(b, c, f))
		}
		for _, id := range batches {
			benchWait(b, c, id, n)
		}
		switches := env.App.Agent.Switches() - before
		total += switches
		if b.N > 1 {
			b.Logf("run %d: %d switches", i+1, switches)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/float64(b.N), "switches/run")
	b.ReportMetric(0, "ns/op")
}
