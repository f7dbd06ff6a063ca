package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// startProbedKiln runs kiln against a simulator behind a probe.
func startProbedKiln(b *testing.B, backend string, sim llmsim.Config) (*kilntest.Env, *kilntest.Probe) {
	s, err := llmsim.New(sim.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	p := kilntest.NewProbe(s.Handler())
	srv := httptest.NewServer(p)
	b.Cleanup(srv.Close)
	env := kilntest.Start(b, backend, kilntest.Options{Configure: func(c *config.Config) {
		c.LLMURL = srv.URL + "/v1"
		c.PollInterval = config.PollIntervalDefault
		c.ChunkInterval = config.ChunkIntervalDefault
	}})
	return env, p
}

func requests(n, maxTokens int) []byte {
	var buf bytes.Buffer
	for i := range n {
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("r%d", i), "method": "POST", "url": "/v1/chat/completions",
			"body": map[string]any{"model": "sim-model", "messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("Question %d", i)}}, "max_tokens": maxTokens}})
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func submit(b *testing.B, c openai.Client, input []byte) (string, time.Time) {
	ctx := context.Background()
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(input), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	batch, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		b.Fatal(err)
	}
	return batch.ID, start
}

func waitCompleted(b *testing.B, c openai.Client, id string) *openai.Batch {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		batch, err := c.Batches.Get(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if batch.Status == openai.BatchStatusCompleted {
			return batch
		}
		if batch.Status == openai.BatchStatusFailed || batch.Status == openai.BatchStatusCancelled || batch.Status == openai.BatchStatusExpired {
			b.Fatalf("batch ended %s", batch.Status)
		}
		<-time.After(10 * time.Millisecond)
	}
	b.Fatal("batch did not complete in 5 minutes")
	return nil
}

// BenchmarkFirstRequestLatency measures the time from POST /v1/batches
// until the batch's first request reaches the LLM backend, one batch per
// iteration (run with -benchtime=20x for the median of 20), with the
// default poll and chunk intervals.
func BenchmarkFirstRequestLatency(b *testing.B) {
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			env, p := startProbedKiln(b, backend, llmsim.Config{Models: []string{"sim-model"}, TTFT: time.Millisecond, TPOT: time.Nanosecond})
			c := openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(env.Key))
			input := requests(1, 4)
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				id, start := submit(b, c, input)
				arrived := <-p.Arrivals
				lat = append(lat, arrived.Sub(start))
				waitCompleted(b, c, id)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-p90")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkAgentThroughput runs a 2,000-request batch against a simulator
// with 64 sequences, 20ms to first token, 5ms per token and 50 output
// tokens, and reports the agent's requests/s against the simulator's ideal
// (64 / (20ms + 50 × 5ms) = 237 requests/s), measured at the simulator from
// the first request's arrival to the last answer; and end to end, from
// creation to completed.
func BenchmarkAgentThroughput(b *testing.B) {
	const (
		n      = 2000
		seqs   = 64
		ttft   = 20 * time.Millisecond
		tpot   = 5 * time.Millisecond
		tokens = 50
	)
	ideal := float64(seqs) / (ttft + tokens*tpot).Seconds()
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			env, p := startProbedKiln(b, backend, llmsim.Config{Models: []string{"sim-model"}, MaxNumSeqs: seqs, TTFT: ttft, TPOT: tpot, OutputTokens: tokens})
			c := openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(env.Key))
			input := requests(n, tokens)
			var agentRatio, e2eRatio float64
			b.ResetTimer()
			for range b.N {
				p.Reset()
				id, start := submit(b, c, input)
				batch := waitCompleted(b, c, id)
				end := time.Now()
				if batch.RequestCounts.Completed != n {
					b.Fatalf("completed %d of %d", batch.RequestCounts.Completed, n)
				}
				agent := p.Rate()
				agentRatio += agent / ideal
				e2eRatio += float64(n) / end.Sub(start).Seconds() / ideal
			}
			b.StopTimer()
			b.ReportMetric(agentRatio/float64(b.N), "agent/ideal")
			b.ReportMetric(e2eRatio/float64(b.N), "e2e/ideal")
			b.ReportMetric(ideal, "ideal-req/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkCancelLatency measures how long a cancel takes to reach running
// shards: from POST /v1/batches/{id}/cancel until the batch is cancelled
// (every shard stopped, flushed and handed back, and the files built),
// with the default chunk interval (the lease renewal that carries the stop).
func BenchmarkCancelLatency(b *testing.B) {
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			env, _ := startProbedKiln(b, backend, llmsim.Config{Models: []string{"sim-model"}, MaxNumSeqs: 8, TTFT: 50 * time.Millisecond, TPOT: 5 * time.Millisecond, OutputTokens: 20})
			c := openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(env.Key))
			input := requests(2000, 20)
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				id, _ := submit(b, c, input)
				for {
					batch, err := c.Batches.Get(context.Background(), id)
					if err != nil {
						b.Fatal(err)
					}
					if batch.RequestCounts.Completed > 20 {
						break
					}
					<-time.After(10 * time.Millisecond)
				}
				start := time.Now()
				if _, err := c.Batches.Cancel(context.Background(), id); err != nil {
					b.Fatal(err)
				}
				for {
					batch, err := c.Batches.Get(context.Background(), id)
					if err != nil {
						b.Fatal(err)
					}
					if batch.Status == openai.BatchStatusCancelled {
						break
					}
					<-time.After(10 * time.Millisecond)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "ms-median")
			b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-max")
			b.ReportMetric(0, "ns/op")
		})
	}
}
