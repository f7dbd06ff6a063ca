package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/kilnhq/kiln/internal/kilntest"
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
