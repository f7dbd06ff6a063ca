package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/store"
)

// slowSim holds each request about 100ms on 8 sequences: a batch of a few
// hundred requests runs for seconds, long enough to stop it midway.
func slowSim() *llmsim.Config {
	return &llmsim.Config{Models: app.SimModels, MaxNumSeqs: 8, TTFT: 50 * time.Millisecond, TPOT: 5 * time.Millisecond, OutputTokens: 10}
}

func createBatch(t *testing.T, c openai.Client, input []byte, window string) *openai.Batch {
	t.Helper()
	ctx := context.Background()
	f, err := c.Files.New(ctx, openai.FileNewParams{
		File: openai.File(bytes.NewReader(input), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch,
	})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{
		InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow(window),
	})
	require.NoError(t, err)
	return b
}

// waitProgress polls until at least n requests of the batch are done.
func waitProgress(t *testing.T, c openai.Client, id string, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := c.Batches.Get(context.Background(), id)
		require.NoError(t, err)
		if b.RequestCounts.Completed+b.RequestCounts.Failed >= n {
			return
		}
		require.Contains(t, []openai.BatchStatus{openai.BatchStatusValidating, openai.BatchStatusInProgress}, b.Status)
		if time.Now().After(deadline) {
			t.Fatalf("batch %s: fewer than %d requests done after a minute", id, n)
		}
		pause(20 * time.Millisecond)
	}
}

// TestPartialResults stops batches midway, by cancel and by expiry: both
// keep what finished and account for every other request in the error file.
func TestPartialResults(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{Sim: slowSim()})
			c := sdkClient(env)

			t.Run("Cancel", func(t *testing.T) {
				t.Parallel()
				const n = 400
				b := createBatch(t, c, chatLines(n, 0), "24h")
				waitProgress(t, c, b.ID, 20)
				got, err := c.Batches.Cancel(context.Background(), b.ID)
				require.NoError(t, err)
				require.Equal(t, openai.BatchStatusCancelling, got.Status)
				require.NotZero(t, got.CancellingAt)

				b = waitBatch(t, c, b.ID)
				require.Equal(t, openai.BatchStatusCancelled, b.Status)
				require.NotZero(t, b.CancelledAt)
				outputs := resultLines(t, c, b.OutputFileID)
				errs := resultLines(t, c, b.ErrorFileID)
				requireExactlyOnce(t, b, n, outputs, errs)
				require.GreaterOrEqual(t, len(outputs), 20)
				require.NotEmpty(t, errs)
				for _, l := range errs {
					require.Equal(t, "batch_cancelled", l["error"].(map[string]any)["code"])
					require.Nil(t, l["response"])
				}

				// A cancelled batch cannot be cancelled again.
				_, err = c.Batches.Cancel(context.Background(), b.ID)
				var apiErr *openai.Error
				require.ErrorAs(t, err, &apiErr)
				require.Equal(t, 409, apiErr.StatusCode)
			})

			t.Run("Expire", func(t *testing.T) {
				t.Parallel()
				// Its own kiln: the simulator's queue must not be shared with
				// the other subtests, or nothing might finish in the window.
				c := sdkClient(kilntest.Start(t, backend, kilntest.Options{Sim: slowSim()}))
				const n = 1500
				b := createBatch(t, c, chatLines(n, 0), "4s")
				require.Equal(t, "4s", b.CompletionWindow)
				require.Equal(t, b.CreatedAt+4, b.ExpiresAt)
				b = waitBatch(t, c, b.ID)
				require.Equal(t, openai.BatchStatusExpired, b.Status)
				require.NotZero(t, b.ExpiredAt)
				outputs := resultLines(t, c, b.OutputFileID)
				errs := resultLines(t, c, b.ErrorFileID)
				requireExactlyOnce(t, b, n, outputs, errs)
				require.NotEmpty(t, outputs)
				require.NotEmpty(t, errs)
				for _, l := range errs {
					require.Equal(t, "batch_expired", l["error"].(map[string]any)["code"])
				}
			})

			t.Run("CancelWhileValidating", func(t *testing.T) {
				t.Parallel()
				b := createBatch(t, c, chatLines(5, 0), "24h")
				got, err := c.Batches.Cancel(context.Background(), b.ID)
				require.NoError(t, err)
				if got.Status == openai.BatchStatusCancelling {
					b = waitBatch(t, c, b.ID)
					require.Equal(t, openai.BatchStatusCancelled, b.Status)
					if b.InProgressAt == 0 {
						require.Zero(t, b.RequestCounts.Total)
						require.Empty(t, b.OutputFileID)
					} else {
						requireExactlyOnce(t, b, 5, resultLines(t, c, b.OutputFileID), resultLines(t, c, b.ErrorFileID))
					}
				}
			})
		})
	}
}

// TestResumeAfterRestart stops kiln gracefully in the middle of a batch and
// starts another on the same database and object store: the batch completes,
// every request exactly once, and the requests whose results were durable
// are not sent again.
func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			// Few requests in flight and many to go, so that the batch is
			// far from its end when the graceful stop has drained them,
			// however late a busy machine notices the progress.
			first := kilntest.Start(t, backend, kilntest.Options{Sim: slowSim(), Configure: func(c *config.Config) { c.AgentConcurrency = 32 }})
			c := sdkClient(first)
			const n = 2000
			b := createBatch(t, c, chatLines(n, 0), "24h")
			waitProgress(t, c, b.ID, 40)
			require.NoError(t, first.Stop())
			st, err := store.Open(context.Background(), first.App.Cfg.DatabaseURL, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			before, err := st.BatchGet(context.Background(), b.ID)
			require.NoError(t, err)
			require.Less(t, before.Completed, int64(n), "the batch ended before the restart")
			live, err := st.BatchLeasesLive(context.Background(), b.ID)
			require.NoError(t, err)
			require.Zero(t, live, "a graceful stop gives the leases back")
			st.Close()

			second := kilntest.Start(t, backend, kilntest.Options{Sim: slowSim(), Configure: func(cfg *config.Config) {
				cfg.DatabaseURL = first.App.Cfg.DatabaseURL
				cfg.ObjectStore = first.App.Cfg.ObjectStore
			}})
			c = sdkClient(second)
			b = waitBatch(t, c, b.ID)
			require.Equal(t, openai.BatchStatusCompleted, b.Status)
			outputs := resultLines(t, c, b.OutputFileID)
			errs := resultLines(t, c, b.ErrorFileID)
			requireExactlyOnce(t, b, n, outputs, errs)
			require.Len(t, outputs, n)
			// Only the requests without a durable result ran again.
			require.LessOrEqual(t, second.App.Sim.Stats().Requests, int64(n)-before.Completed)
		})
	}
}

// TestUnservedModel: a batch for a model kiln knows (here from KILN_MODELS)
// but no agent serves waits, says so in
// its status message and in GET /v1/agents, and expires at the end of its
// window with every request as batch_expired.
func TestUnservedModel(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			// Known to kiln (the configuration names it), served by no agent.
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) { c.Models = []string{"nobody/serves-this"} }})
			c := sdkClient(env)
			var input bytes.Buffer
			for i := range 3 {
				fmt.Fprintf(&input, `{"custom_id":"req-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"nobody/serves-this","messages":[{"role":"user","content":"hi"}]}}`+"\n", i)
			}
			b := createBatch(t, c, input.Bytes(), "3s")
			deadline := time.Now().Add(time.Minute)
			for {
				got, err := c.Batches.Get(context.Background(), b.ID)
				require.NoError(t, err)
				if got.Status == openai.BatchStatusInProgress {
					var raw struct {
						StatusMessage string `json:"status_message"`
					}
					require.NoError(t, json.Unmarshal([]byte(got.RawJSON()), &raw))
					require.Contains(t, raw.StatusMessage, "no live agent serves model")
					break
				}
				require.True(t, time.Now().Before(deadline), "batch still %s", got.Status)
				pause(20 * time.Millisecond)
			}
			var agents struct {
				Data  []map[string]any `json:"data"`
				Queue []struct {
					Model    string `json:"model"`
					Requests int    `json:"requests"`
					Served   bool   `json:"served"`
				} `json:"queue"`
			}
			require.NoError(t, c.Get(context.Background(), "agents", nil, &agents))
			require.Len(t, agents.Data, 1)
			require.Len(t, agents.Queue, 1)
			require.Equal(t, "nobody/serves-this", agents.Queue[0].Model)
			require.Equal(t, 3, agents.Queue[0].Requests)
			require.False(t, agents.Queue[0].Served)

			b = waitBatch(t, c, b.ID)
			require.Equal(t, openai.BatchStatusExpired, b.Status)
			errs := resultLines(t, c, b.ErrorFileID)
			requireExactlyOnce(t, b, 3, nil, errs)
			for _, l := range errs {
				require.Equal(t, "batch_expired", l["error"].(map[string]any)["code"])
			}
		})
	}
}
