package gpuagent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/kilnhq/kiln/internal/kilntest"
)

// benchModelsDefault is how many models, each on an engine and an agent of
// its own, BenchmarkThroughputModels runs unless KILN_BENCH_MODELS says.
const benchModelsDefault = 8

// BenchmarkThroughputModels runs BenchmarkThroughput's batch with several
// models mixed over as many endpoints: KILN_BENCH_MODELS models (default 8),
// each served by a simulator of its own (the engine of BenchmarkThroughput,
// KILN_BENCH_SEQS sequences) driven by a `kiln agent` process of its own, on
// one kiln; KILN_BENCH_REQUESTS requests in all (default 10,000), split into
// one batch per model, the batches created at once. It reports efficiency:
// kiln's end-to-end requests/s, from the first POST /v1/batches until the
// last batch completed, over the requests/s of as many minimal clients
// driving as many fresh simulators at once, each with KILN_BENCH_SEQS
// goroutines, measured just before. agent/direct is the agents' pace at the
// simulators, first arrival at any to last answer from any, over the direct
// one; ms-to-first-request is the earliest first arrival after creation and
// ms-to-last-first-request the latest (the model that started last);
// ms-last-answer-to-completed is the tail after the last answer;
// ms-last-answer-to-finalizing and ms-finalizing-to-completed split each
// batch's own tail, from its model's last answer, into the agent's share (its
// last chunk and shard recorded) and the finalizer's, averaged over the
// batches; ms-completed-spread is the time from the first batch completed to
// the last.
// busy-direct and busy-kiln are the share of the machine's CPUs in use (all
// processes, from /proc/stat) during each; agent-cpu-s/1k-req is the agents'
// CPU time together, and bench-cpu-s/1k-req-direct and -kiln the benchmark
// process's own: the simulators and the direct clients, then the
// simulators, kiln serve's API and jobs, and the poller.
func BenchmarkThroughputModels(b *testing.B) {
	requireProc(b)
	set := benchThroughputSetting(b)
	models := benchModelsDefault
	if raw := os.Getenv("KILN_BENCH_MODELS"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			b.Fatalf("KILN_BENCH_MODELS=%q: want a positive integer", raw)
		}
		models = n
	}
	if set.requests < models {
		b.Fatalf("KILN_BENCH_REQUESTS=%d: want at least one request per model (%d)", set.requests, models)
	}
	perModel := set.requests / models
	n := perModel * models
	names := make([]string, models)
	bodies := make([][][]byte, models)
	inputs := make([][]byte, models)
	for i := range models {
		names[i] = fmt.Sprintf("sim-model-%d", i)
		bodies[i] = chatBodies(perModel, names[i])
		inputs[i] = batchInput(bodies[i])
	}
	ideal := float64(models*set.seqs) / (benchTTFT + benchTokens*benchTPOT).Seconds()

	run := func(b *testing.B, backend string) {
		env := startBenchKiln(b, backend)
		probes := make([]*kilntest.Probe, models)
		agents := make([]*agentProcess, models)
		for i, name := range names {
			sim := benchSimConfig(name)
			sim.MaxNumSeqs = set.seqs
			srv, probe := startBenchSim(b, sim)
			probes[i] = probe
			agents[i] = startAgentProcess(b, env, srv.URL+"/v1", "KILN_AGENT_CONCURRENCY="+strconv.Itoa(set.seqs))
		}
		waitModelsServed(b, env, names)
		c := benchClient(env)
		var direct, kiln, atSim, cpu, selfDirect, selfKiln, toFirst, toLastFirst, afterLast, toFinalizing, finalizingToCompleted, spread, busyDirect, busyKiln float64
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			urls := make([]string, models)
			srvs := make([]*httptest.Server, models)
			for i, name := range names {
				sim := benchSimConfig(name)
				sim.MaxNumSeqs = set.seqs
				srvs[i], _ = startBenchSim(b, sim)
				urls[i] = srvs[i].URL
			}
			cpuStart, self0 := kilntest.MachineCPU(b), kilntest.ProcCPU(b, os.Getpid())
			direct += directRates(b, urls, bodies, set.seqs)
			busyDirect += kilntest.MachineCPU(b).BusySince(cpuStart)
			selfDirect += (kilntest.ProcCPU(b, os.Getpid()) - self0).Seconds()
			for _, srv := range srvs {
				srv.Close()
			}
			fileIDs := make([]string, models)
			for i := range models {
				fileIDs[i] = benchUpload(b, c, inputs[i])
			}
			b.StartTimer()

			for _, p := range probes {
				p.Reset()
			}
			var cpu0 time.Duration
			for _, ap := range agents {
				cpu0 += ap.cpu(b)
			}
			cpuStart, self0 = kilntest.MachineCPU(b), kilntest.ProcCPU(b, os.Getpid())
			start := time.Now()
			ids := createAll(b, c, fileIDs)
			finalizing, completed := benchWaitAll(b, c, ids, perModel)
			end := slices.MaxFunc(completed, time.Time.Compare)
			busyKiln += kilntest.MachineCPU(b).BusySince(cpuStart)
			selfKiln += (kilntest.ProcCPU(b, os.Getpid()) - self0).Seconds()
			kiln += float64(n) / end.Sub(start).Seconds()
			spread += end.Sub(slices.MinFunc(completed, time.Time.Compare)).Seconds()

			var first, lastFirst, last time.Time
			for i, p := range probes {
				f, l := p.Span()
				toFinalizing += finalizing[i].Sub(l).Seconds() / float64(models)
				finalizingToCompleted += completed[i].Sub(finalizing[i]).Seconds() / float64(models)
				if first.IsZero() || f.Before(first) {
					first = f
				}
				if f.After(lastFirst) {
					lastFirst = f
				}
				if l.After(last) {
					last = l
				}
			}
			atSim += float64(n) / last.Sub(first).Seconds()
			toFirst += first.Sub(start).Seconds()
			toLastFirst += lastFirst.Sub(start).Seconds()
			afterLast += end.Sub(last).Seconds()
			for _, ap := range agents {
				cpu += ap.cpu(b).Seconds()
			}
			cpu -= cpu0.Seconds()
		}
		b.StopTimer()
		runs := float64(b.N)
		b.ReportMetric(kiln/direct, "efficiency")
		b.ReportMetric(atSim/direct, "agent/direct")
		b.ReportMetric(kiln/runs, "kiln-req/s")
		b.ReportMetric(direct/runs, "direct-req/s")
		b.ReportMetric(ideal, "ideal-req/s")
		b.ReportMetric(toFirst/runs*1000, "ms-to-first-request")
		b.ReportMetric(toLastFirst/runs*1000, "ms-to-last-first-request")
		b.ReportMetric(afterLast/runs*1000, "ms-last-answer-to-completed")
		b.ReportMetric(toFinalizing/runs*1000, "ms-last-answer-to-finalizing")
		b.ReportMetric(finalizingToCompleted/runs*1000, "ms-finalizing-to-completed")
		b.ReportMetric(spread/runs*1000, "ms-completed-spread")
		b.ReportMetric(busyDirect/runs, "busy-direct")
		b.ReportMetric(busyKiln/runs, "busy-kiln")
		b.ReportMetric(cpu/runs/(float64(n)/1000), "agent-cpu-s/1k-req")
		b.ReportMetric(selfDirect/runs/(float64(n)/1000), "bench-cpu-s/1k-req-direct")
		b.ReportMetric(selfKiln/runs/(float64(n)/1000), "bench-cpu-s/1k-req-kiln")
		var peak int64
		for _, ap := range agents {
			peak = max(peak, ap.peakRSS(b))
		}
		b.ReportMetric(float64(peak)/(1<<20), "agent-peak-MB")
		b.ReportMetric(0, "ns/op")
	}
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) { run(b, backend) })
	}
}

// waitModelsServed waits until registered agents serve every one of names.
func waitModelsServed(b *testing.B, env *kilntest.Env, names []string) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		served := map[string]bool{}
		agents, err := env.App.Store.AgentList(context.Background(), 0)
		if err == nil {
			for _, a := range agents {
				for _, m := range a.Models {
					served[m] = true
				}
			}
		}
		missing := slices.DeleteFunc(slices.Clone(names), func(m string) bool { return served[m] })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("no agent serves %v after a minute", missing)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// createAll creates a batch of each file at once and returns their ids.
func createAll(b *testing.B, c openai.Client, fileIDs []string) []string {
	b.Helper()
	ids := make([]string, len(fileIDs))
	errs := make([]error, len(fileIDs))
	var wg sync.WaitGroup
	for i, f := range fileIDs {
		wg.Go(func() {
			batch, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: f, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
			if err == nil {
				ids[i] = batch.ID
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// benchWaitAll polls the batches, all in one list request every 10ms (so
// that the poller costs no more than benchWait's), until all completed,
// checks that each completed its n requests, and returns when each was first
// seen finalizing (its last shard done; completed if never seen finalizing)
// and completed. The batches must be the project's newest.
func benchWaitAll(b *testing.B, c openai.Client, ids []string, n int) (finalizing, completed []time.Time) {
	b.Helper()
	finalizing, completed = make([]time.Time, len(ids)), make([]time.Time, len(ids))
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	left := len(ids)
	deadline := time.Now().Add(30 * time.Minute)
	for left > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d batches did not complete in 30 minutes", left, len(ids))
		}
		page, err := c.Batches.List(context.Background(), openai.BatchListParams{Limit: openai.Int(int64(len(ids)))})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		seen := 0
		for _, batch := range page.Data {
			i, ok := index[batch.ID]
			if !ok {
				continue
			}
			seen++
			if !completed[i].IsZero() {
				continue
			}
			if finalizing[i].IsZero() && (batch.Status == openai.BatchStatusFinalizing || batch.Status == openai.BatchStatusCompleted) {
				finalizing[i] = now
			}
			switch batch.Status {
			case openai.BatchStatusCompleted:
				if batch.RequestCounts.Completed != int64(n) {
					b.Fatalf("batch %s: completed %d of %d (failed %d)", batch.ID, batch.RequestCounts.Completed, n, batch.RequestCounts.Failed)
				}
				completed[i] = now
				left--
			case openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
				b.Fatalf("batch %s ended %s", batch.ID, batch.Status)
			}
		}
		if seen != len(ids) {
			b.Fatalf("the newest %d batches hold %d of the %d created", len(ids), seen, len(ids))
		}
		if left > 0 {
			<-time.After(10 * time.Millisecond)
		}
	}
	return finalizing, completed
}

// directRates runs directRate's client against each simulator of baseURLs at
// once, each with its bodies and workers goroutines, and returns the
// requests per second they reached together, from the start until the last
// finished.
func directRates(b *testing.B, baseURLs []string, bodies [][][]byte, workers int) float64 {
	b.Helper()
	var (
		failures atomic.Int64
		total    int
		wg       sync.WaitGroup
	)
	start := time.Now()
	for i, url := range baseURLs {
		total += len(bodies[i])
		wg.Go(func() { failures.Add(directPost(url, bodies[i], workers)) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failures.Load(); n > 0 {
		b.Fatalf("direct clients: %d of %d requests failed", n, total)
	}
	return float64(total) / elapsed.Seconds()
}

// directPost is directRate's client: it posts bodies to the simulator at
// baseURL from workers goroutines and returns how many failed.
func directPost(baseURL string, bodies [][]byte, workers int) int64 {
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var (
		next     atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(bodies)); i = next.Add(1) - 1 {
				resp, err := client.Post(baseURL+"/v1/chat/completions", "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return failures.Load()
}
