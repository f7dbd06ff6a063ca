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

// TestAgentStopsWhileChunksStall: while a shard's chunk writes stall, the
// agent holds at most its slots' answers and the shard's queue, and starts
// no more requests; once the writes go through, every line ends once.
// Before, each answer freed its slot at once and waited for the shard
// apart from it, so the agent went on asking the engine and held every
// answer that came back until the store caught up.
func TestAgentStopsWhileChunksStall(t *testing.T) {
	t.Parallel()
	const (
		slots      = 8
		chunkLines = 4
		lines      = 60
		// The shard's collector holds one chunk (its write stalled), its
		// queue holds another chunk's worth, and each slot one answer.
		held = chunkLines + chunkLines + slots
	)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
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
					c.ChunkInterval = time.Hour // chunks flush only when full
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

			// Wait until every slot holds an answer that waits for the
			// shard's queue: the agent can start nothing more.
			deadline := time.After(time.Minute)
			metrics := strings.TrimSuffix(env.URL, "/v1") + "/metrics"
			for gauge(t, metrics, "kiln_agent_answers_waiting") != slots {
				mu.Lock()
				n := arrived
				mu.Unlock()
				require.Less(t, n, lines, "the agent ran the whole batch while its chunk writes stalled")
				select {
				case <-time.After(10 * time.Millisecond):
				case <-deadline:
					t.Fatalf("the engine got %d requests, and not every slot waits", n)
				}
			}
			mu.Lock()
			require.Equal(t, held, arrived, "requests the engine got while the shard's chunk write stalled")
			mu.Unlock()

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
		})
	}
}
