package gpuagent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
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

// gauge reads a gauge without labels from a /metrics page.
func gauge(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("no %s on %s", name, url)
	return 0
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
				var (
					mu      sync.Mutex
					arrived int
				)
				engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					if r.Method == http.MethodGet {
						fmt.Fprint(w, `{"object":"list","data":[{"id":"m","object":"model","created":0,"owned_by":"test"}]}`)
						return
					}
					mu.Lock()
					arrived++
					mu.Unlock()
					fmt.Fprint(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
				}))
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
				c := openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(env.Key), option.WithMaxRetries(0))
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
				deadline := time.After(time.Minute)
				metrics := strings.TrimSuffix(env.URL, "/v1") + "/metrics"
				for {
					mu.Lock()
					n := arrived
					mu.Unlock()
					require.LessOrEqual(t, n, tc.arrived, "requests the engine got while chunk writes stalled")
					if n == tc.arrived && gauge(t, metrics, tc.metric) == float64(tc.want) {
						break
					}
					select {
					case <-time.After(10 * time.Millisecond):
					case <-deadline:
						t.Fatalf("the engine got %d requests, %s is %v", n, tc.metric, gauge(t, metrics, tc.metric))
					}
				}

				gate.let()
				for b.Status != openai.BatchStatusCompleted {
					require.NotContains(t, []openai.BatchStatus{openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled}, b.Status)
					select {
					case <-time.After(20 * time.Millisecond):
					case <-deadline:
						t.Fatalf("batch still %s", b.Status)
					}
					b, err = c.Batches.Get(ctx, b.ID)
					require.NoError(t, err)
				}
				require.EqualValues(t, lines, b.RequestCounts.Completed)
				resp, err := c.Files.Content(ctx, b.OutputFileID)
				require.NoError(t, err)
				defer resp.Body.Close()
				seen := map[string]bool{}
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					var l struct {
						CustomID string `json:"custom_id"`
					}
					require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
					require.False(t, seen[l.CustomID], "duplicate %s", l.CustomID)
					seen[l.CustomID] = true
				}
				require.Len(t, seen, lines)
				mu.Lock()
				require.Equal(t, lines, arrived, "each line asked of the engine once")
				mu.Unlock()
				require.Zero(t, gauge(t, metrics, "kiln_agent_lines_held"), "every line's place given back")
			})
		}
	}
}
