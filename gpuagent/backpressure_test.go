package gpuagent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/objectstore"
)

// gatedChunks holds every chunk write until open is closed.
type gatedChunks struct {
	objectstore.Bucket
	open     chan struct{}
	openOnce sync.Once
}

func (g *gatedChunks) let() { g.openOnce.Do(func() { close(g.open) }) }

func (g *gatedChunks) Put(ctx context.Context, key string, r io.Reader, size int64) (objectstore.Info, error) {
	if strings.Contains(key, "/chunks/") {
		select {
		case <-g.open:
		case <-ctx.Done():
			return objectstore.Info{}, ctx.Err()
		}
	}
	return g.Bucket.Put(ctx, key, r, size)
}

// TestAgentStopsWhileChunksStall: while chunk writes stall, the agent holds
// a bounded number of lines and starts no more requests; once the writes go
// through, every line ends once. In one shard, the bound is its slots'
// answers and the shard's queue: before, each answer freed its slot at once
// and waited for the shard apart from it, so the agent went on asking the
// engine and held every answer until the store caught up. Across shards
// smaller than a chunk, each with its last chunk stalled, the bound is the
// agent's: before, it fed shard after shard and held all their lines.
func TestAgentStopsWhileChunksStall(t *testing.T) {
	t.Parallel()
	const (
		slots      = 8
		chunkLines = 4
		lines      = 60
	)
	for _, tc := range []struct {
		name      string
		shardSize int
		// metric reaches want once the agent can start no more requests,
		// and the engine then has arrived requests.
		metric        string
		want, arrived int
	}{
		// The shard's collector holds one chunk (its write stalled), its
		// queue another chunk's worth, and each slot one answer, waiting.
		{"one shard", lines, "kiln_agent_answers_waiting", slots, chunkLines + chunkLines + slots},
		// Shards of 3 lines: each holds its 3 answers in its last chunk.
		{"small shards", 3, "kiln_agent_lines_held", 2 * (slots + chunkLines), 2 * (slots + chunkLines)},
	} {
		for _, backend := range kilntest.Backends {
			t.Run(tc.name+"/"+backend, func(t *testing.T) {
				t.Parallel()
				// Every prompt is "hi": the engine answers each, and counts
				// how often it was asked.
				be := &faultyBackend{tries: map[string]int{}}
				engine := httptest.NewServer(be)
				t.Cleanup(engine.Close)
				gate := &gatedChunks{open: make(chan struct{})}
				env := kilntest.Start(t, backend, kilntest.Options{
					Configure: func(c *config.Config) {
						c.LLMURL = engine.URL + "/v1"
						c.AgentConcurrency = slots
						c.ChunkLines = chunkLines
						c.ChunkInterval = time.Hour // chunks flush only when full, or at a shard's end
						c.ShardSize = tc.shardSize
					},
					WrapBucket: func(b objectstore.Bucket) objectstore.Bucket { gate.Bucket = b; return gate },
				})
				t.Cleanup(gate.let) // before kiln stops, should the test fail
				c := env.Client()
				ctx := context.Background()
				var input bytes.Buffer
				for i := range lines {
					fmt.Fprintf(&input, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}`+"\n", i)
				}
				f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(&input, "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
				require.NoError(t, err)
				b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h"})
				require.NoError(t, err)

				// Wait until the agent can start nothing more, and the
				// requests it started have reached the engine.
				kilntest.Eventually(t, time.Minute, func() bool {
					n := be.asked("hi")
					require.LessOrEqual(t, n, tc.arrived, "requests the engine got while chunk writes stalled")
					return n == tc.arrived && env.Metric(t, tc.metric) == float64(tc.want)
				}, "%d requests at the engine and %s at %d", tc.arrived, tc.metric, tc.want)

				gate.let()
				b = kilntest.WaitBatch(t, c, b.ID)
				require.Equal(t, openai.BatchStatusCompleted, b.Status)
				require.EqualValues(t, lines, b.RequestCounts.Completed)
				seen := map[string]bool{}
				for _, l := range kilntest.ResultLines(t, c, b.OutputFileID) {
					id := l["custom_id"].(string)
					require.False(t, seen[id], "duplicate %s", id)
					seen[id] = true
				}
				require.Len(t, seen, lines)
				require.Equal(t, lines, be.asked("hi"), "each line asked of the engine once")
				require.Zero(t, env.Metric(t, "kiln_agent_lines_held"), "every line's place given back")
			})
		}
	}
}
