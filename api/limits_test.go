package api_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// TestRequestsPerMinute: a project's max_requests_per_1_minute paces the
// agent's dispatch of its requests, and the other project's batch, which
// has no limit, runs meanwhile at full speed: it ends while the paced one
// is held to its rate.
func TestRequestsPerMinute(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			ctx := context.Background()
			client := func(name string, perMinute int64) openai.Client {
				p := store.Project{ID: ids.New(ids.Project), Name: name}
				require.NoError(t, env.App.Store.ProjectCreate(ctx, p))
				if perMinute > 0 {
					_, err := env.App.Store.RateLimitPut(ctx, store.RateLimit{ID: ids.New(ids.RateLimit), ProjectID: p.ID, Model: "sim-model",
						MaxRequestsPer1Minute: perMinute})
					require.NoError(t, err)
				}
				_, secret, err := apikey.New(ctx, env.App.Store, store.APIKey{Name: name, ProjectID: p.ID})
				require.NoError(t, err)
				return openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(secret))
			}
			const perMinute = 60 // one a second, one at a time
			paced, free := client("paced", perMinute), client("free", 0)
			const n = 30
			start := time.Now()
			pb := createBatch(t, paced, chatLines(n, 0), "24h")
			fb := createBatch(t, free, chatLines(n, 0), "24h")

			done := kilntest.WaitBatch(t, free, fb.ID)
			took := time.Since(start)
			require.Equal(t, openai.BatchStatusCompleted, done.Status)
			require.EqualValues(t, n, done.RequestCounts.Completed, "the other project's batch ran whole")

			got, err := paced.Batches.Get(ctx, pb.ID)
			require.NoError(t, err)
			// At most the bucket's second's worth, plus the rate over the
			// time that passed, and one in flight.
			bound := int64(2 + took.Seconds()*perMinute/60)
			require.LessOrEqual(t, got.RequestCounts.Completed+got.RequestCounts.Failed, bound,
				"the paced project ran faster than its limit (%s since both started)", took)
			_, err = paced.Batches.Cancel(ctx, pb.ID)
			require.NoError(t, err)
		})
	}
}

// TestFairShare: projects that share one agent, all with work waiting, get
// equal shares of it: when the first of four equal batches ends, each of
// the others is within 15% of it, that is, within the three shards of 5
// requests the agent may be holding at once. (Within a project, priority
// orders its own batches; no project takes another's share by asking for
// more: before the least-recently-served order, the shares were
// [0 70 95 120].) BenchmarkProjectsShareOneAgent measures the shares on a
// quiet machine.
func TestFairShare(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{Sim: slowSim(), Configure: func(c *config.Config) {
				// request_counts move a chunk at a time: with chunks every
				// 200 ms, a batch's count lags by up to 10% of it at
				// this pace, which would blur the shares measured.
				c.ShardSize = 5
				c.AgentConcurrency = 8
				c.ChunkInterval = 20 * time.Millisecond
			}})
			ctx := context.Background()
			const projects, n = 4, 120
			clients := make([]openai.Client, projects)
			batches := make([]*openai.Batch, projects)
			for i := range clients {
				p := store.Project{ID: ids.New(ids.Project), Name: fmt.Sprint("p", i)}
				require.NoError(t, env.App.Store.ProjectCreate(ctx, p))
				_, secret, err := apikey.New(ctx, env.App.Store, store.APIKey{Name: p.Name, ProjectID: p.ID})
				require.NoError(t, err)
				clients[i] = openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(secret))
			}
			// Upload every input first and create the four batches at once,
			// so no project starts with a lead; what lead the creations'
			// jitter still gives is taken out by counting from the snapshot
			// taken once all four exist.
			files := make([]string, projects)
			for i, c := range clients {
				f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(chatLines(n, 0)), "in.jsonl", "application/jsonl"),
					Purpose: openai.FilePurposeBatch})
				require.NoError(t, err)
				files[i] = f.ID
			}
			var created sync.WaitGroup
			errs := make([]error, projects)
			for i, c := range clients {
				created.Go(func() {
					// A higher priority must not buy a bigger share.
					batches[i], errs[i] = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: files[i],
						Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h"},
						option.WithJSONSet("priority", i*30))
				})
			}
			created.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			snapshot := func() (counts []int64, ended bool) {
				for i, c := range clients {
					b, err := c.Batches.Get(ctx, batches[i].ID)
					require.NoError(t, err)
					counts = append(counts, b.RequestCounts.Completed+b.RequestCounts.Failed)
					ended = ended || b.Status == openai.BatchStatusCompleted || b.Status == openai.BatchStatusFinalizing
				}
				return counts, ended
			}
			start, _ := snapshot()
			var counts []int64
			kilntest.Eventually(t, 2*time.Minute, func() bool {
				var ended bool
				counts, ended = snapshot()
				return ended
			}, "the first batch to end")
			for i := range counts {
				counts[i] -= start[i]
			}
			lo, hi := counts[0], counts[0]
			for _, c := range counts {
				lo, hi = min(lo, c), max(hi, c)
			}
			t.Logf("requests done by project between all four batches existing (%v done then) and the first ending: %v", start, counts)
			require.GreaterOrEqual(t, float64(lo), 0.85*float64(hi), "unequal shares: %v", counts)
		})
	}
}
