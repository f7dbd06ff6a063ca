package api_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/openaispec"
)

// sdkBatch uploads input and creates a chat batch of it with the SDK.
func sdkBatch(t *testing.T, c openai.Client, input []byte) *openai.Batch {
	t.Helper()
	ctx := context.Background()
	f, err := c.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(input), "requests.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{
		InputFileID:      f.ID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	require.NoError(t, err)
	return b
}

// TestBatchModel checks that a batch's model is the model its lines name
// once validation has read the file, whether the batch runs or fails; when
// the lines mix models it is the first one, as OpenAI documents.
func TestBatchModel(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			c := env.Client()

			t.Run("Completed", func(t *testing.T) {
				t.Parallel()
				b := kilntest.WaitBatch(t, c, sdkBatch(t, c, kilntest.ChatLines(3, 0)).ID)
				require.Equal(t, openai.BatchStatusCompleted, b.Status)
				require.Equal(t, "sim-model", b.Model)
			})

			t.Run("MixedModelsFail", func(t *testing.T) {
				t.Parallel()
				input := bytes.Replace(kilntest.ChatLines(2, 0), []byte(`"sim-model"`), []byte(`"other-model"`), 1)
				b := kilntest.WaitBatch(t, c, sdkBatch(t, c, input).ID)
				require.Equal(t, openai.BatchStatusFailed, b.Status)
				require.Equal(t, "other-model", b.Model, "the first line's model")
				require.NotEmpty(t, b.Errors.Data)
				require.Equal(t, "mismatched_model", b.Errors.Data[0].Code)
			})

			t.Run("FailedLineKeepsModel", func(t *testing.T) {
				t.Parallel()
				input := append(kilntest.ChatLines(1, 0), []byte("{oops\n")...)
				b := kilntest.WaitBatch(t, c, sdkBatch(t, c, input).ID)
				require.Equal(t, openai.BatchStatusFailed, b.Status)
				require.Equal(t, "sim-model", b.Model)
			})
		})
	}
}

// TestBatchUsageDetails checks that a batch's usage carries the cached and
// reasoning tokens the engine reported, summed over its lines as input and
// output tokens are: several shards, several chunks each, for chat and
// Responses.
func TestBatchUsageDetails(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{
				Sim: &llmsim.Config{Models: app.SimModels, TTFT: time.Millisecond, TPOT: -1, CachedShare: 0.5, ReasoningShare: 0.25},
				Configure: func(c *config.Config) {
					c.ShardSize = 7
					c.ChunkLines = 3
				},
			})
			c := env.Client()
			for _, tc := range []struct {
				name     string
				endpoint openai.BatchNewParamsEndpoint
				input    []byte
				// details reads a line's usage: its input, cached, output and
				// reasoning tokens.
				details func(u map[string]any) [4]int64
			}{
				{"Chat", openai.BatchNewParamsEndpointV1ChatCompletions, kilntest.ChatLines(30, 10), func(u map[string]any) [4]int64 {
					return [4]int64{num(u["prompt_tokens"]), num(u["prompt_tokens_details"].(map[string]any)["cached_tokens"]),
						num(u["completion_tokens"]), num(u["completion_tokens_details"].(map[string]any)["reasoning_tokens"])}
				}},
				{"Responses", openai.BatchNewParamsEndpointV1Responses, responseLines(t, 30, 10), func(u map[string]any) [4]int64 {
					return [4]int64{num(u["input_tokens"]), num(u["input_tokens_details"].(map[string]any)["cached_tokens"]),
						num(u["output_tokens"]), num(u["output_tokens_details"].(map[string]any)["reasoning_tokens"])}
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					f, err := c.Files.New(ctx, openai.FileNewParams{
						File:    openai.File(bytes.NewReader(tc.input), "requests.jsonl", "application/jsonl"),
						Purpose: openai.FilePurposeBatch,
					})
					require.NoError(t, err)
					b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: tc.endpoint,
						CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
					require.NoError(t, err)
					b = kilntest.WaitBatch(t, c, b.ID)
					require.Equal(t, openai.BatchStatusCompleted, b.Status)
					openaispec.MustValidate(t, "Batch", []byte(b.RawJSON()))

					var sum [4]int64
					outputs := kilntest.ResultLines(t, c, b.OutputFileID)
					require.Len(t, outputs, 27)
					for _, l := range outputs {
						d := tc.details(l["response"].(map[string]any)["body"].(map[string]any)["usage"].(map[string]any))
						for i := range sum {
							sum[i] += d[i]
						}
					}
					require.Positive(t, sum[1])
					require.Positive(t, sum[3])
					require.Equal(t, sum, [4]int64{b.Usage.InputTokens, b.Usage.InputTokensDetails.CachedTokens,
						b.Usage.OutputTokens, b.Usage.OutputTokensDetails.ReasoningTokens})
				})
			}
		})
	}
}

// num is a JSON number decoded into any.
func num(v any) int64 { return int64(v.(float64)) }
