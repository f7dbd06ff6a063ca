package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// BenchmarkGetBatch measures GET /v1/batches/{id} over HTTP with a keep-alive
// client, on both backends: key check, the project's scope and the read.
// Run with -cpu to set the concurrency.
func BenchmarkGetBatch(b *testing.B) {
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			env := kilntest.Start(b, backend, kilntest.Options{NoAgent: true})
			ctx := context.Background()
			c := env.Client()
			f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(kilntest.ChatLines(4, 0)), "in.jsonl", "application/jsonl"),
				Purpose: openai.FilePurposeBatch})
			if err != nil {
				b.Fatal(err)
			}
			batch, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID,
				Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h"})
			if err != nil {
				b.Fatal(err)
			}
			url := env.Base() + "/v1/batches/" + batch.ID
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+env.Key)
					resp, err := client.Do(req)
					if err != nil {
						panic(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						panic(fmt.Sprint("status ", resp.StatusCode))
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkProjectsShareOneAgent runs 480 requests through one agent (a
// simulator with 8 sequences, 50ms to first token, 5ms a token, 10
// tokens), from one project or split equally over four, and reports the
// agent's throughput (req/s, creation to the last batch's end) and, for
// four, the smallest share over the largest when the first batch ended
// (1 is equal shares). The ratio of the two throughputs is the cost of
// sharing: run with -bench 'ProjectsShareOneAgent' and divide.
func BenchmarkProjectsShareOneAgent(b *testing.B) {
	const total = 480
	for _, projects := range []int{1, 4} {
		b.Run(fmt.Sprint("projects=", projects), func(b *testing.B) {
			var took time.Duration
			var shares []float64
			for range b.N {
				d, share := shareOneAgent(b, projects, total/projects)
				took += d
				shares = append(shares, share)
			}
			b.ReportMetric(float64(total*b.N)/took.Seconds(), "req/s")
			if projects > 1 {
				b.ReportMetric(slices.Min(shares), "min/max-share")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// shareOneAgent runs one batch of n requests per project and returns the
// time from the first creation to the last batch's end, and the smallest
// project's count of done requests over the largest's when the first batch
// ended.
func shareOneAgent(b *testing.B, projects, n int) (time.Duration, float64) {
	env := kilntest.Start(b, "sqlite", kilntest.Options{Sim: slowSim(), Configure: func(c *config.Config) {
		c.ShardSize = 10
		c.AgentConcurrency = 8
	}})
	ctx := context.Background()
	clients := make([]openai.Client, projects)
	files := make([]string, projects)
	for i := range clients {
		p := store.Project{ID: ids.New(ids.Project), Name: fmt.Sprint("p", i)}
		if err := env.App.Store.ProjectCreate(ctx, p); err != nil {
			b.Fatal(err)
		}
		_, secret, err := apikey.New(ctx, env.App.Store, store.APIKey{Name: p.Name, ProjectID: p.ID})
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(secret))
		f, err := clients[i].Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(chatLines(n, 0)), "in.jsonl", "application/jsonl"),
			Purpose: openai.FilePurposeBatch})
		if err != nil {
			b.Fatal(err)
		}
		files[i] = f.ID
	}
	start := time.Now()
	batches := make([]string, projects)
	for i, c := range clients {
		bt, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: files[i],
			Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h"})
		if err != nil {
			b.Fatal(err)
		}
		batches[i] = bt.ID
	}
	share := -1.0
	ended := make([]bool, projects)
	for left := projects; left > 0; {
		counts := make([]int64, projects)
		for i, c := range clients {
			bt, err := c.Batches.Get(ctx, batches[i])
			if err != nil {
				b.Fatal(err)
			}
			counts[i] = bt.RequestCounts.Completed + bt.RequestCounts.Failed
			if !ended[i] && (bt.Status == openai.BatchStatusCompleted || bt.Status == openai.BatchStatusFailed) {
				ended[i] = true
				left--
			}
		}
		if share < 0 && slices.Contains(ended, true) {
			share = float64(slices.Min(counts)) / float64(max(slices.Max(counts), 1))
		}
		if left > 0 {
			<-time.After(20 * time.Millisecond) // a poll's pace, as a client's
		}
	}
	return time.Since(start), share
}
