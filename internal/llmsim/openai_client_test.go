package llmsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
	"github.com/stretchr/testify/require"
)

// TestOpenAIClient checks the simulator against the official OpenAI Go
// client: what it parses is what kiln's clients will see.
func TestOpenAIClient(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{OutputTokens: 15}).start(t)
	client := openai.NewClient(
		option.WithBaseURL(b.srv.URL+"/v1/"),
		option.WithAPIKey("unused"),
		option.WithMaxRetries(0),
		option.WithHTTPClient(b.srv.Client()),
	)
	chatParams := openai.ChatCompletionNewParams{
		Model:    ModelDefault,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("What is a kiln?")},
	}

	t.Run("Chat", func(t *testing.T) {
		t.Parallel()
		resp, err := client.Chat.Completions.New(t.Context(), chatParams)
		require.NoError(t, err)
		require.Equal(t, ModelDefault, resp.Model)
		require.Len(t, resp.Choices, 1)
		require.Equal(t, "stop", resp.Choices[0].FinishReason)
		require.Equal(t, int64(15), resp.Usage.CompletionTokens)
		require.Equal(t, resp.Usage.PromptTokens+15, resp.Usage.TotalTokens)
		require.Equal(t, 15, CountTokens(resp.Choices[0].Message.Content))

		cut := chatParams
		cut.MaxCompletionTokens = openai.Int(4)
		resp, err = client.Chat.Completions.New(t.Context(), cut)
		require.NoError(t, err)
		require.Equal(t, "length", resp.Choices[0].FinishReason)
		require.Equal(t, int64(4), resp.Usage.CompletionTokens)
	})

	t.Run("ChatStream", func(t *testing.T) {
		t.Parallel()
		full, err := client.Chat.Completions.New(t.Context(), chatParams)
		require.NoError(t, err)

		params := chatParams
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(t.Context(), params)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		require.NoError(t, stream.Err())
		require.NoError(t, stream.Close())
		require.Len(t, acc.Choices, 1)
		require.Equal(t, full.Choices[0].Message.Content, acc.Choices[0].Message.Content)
		require.Equal(t, "stop", acc.Choices[0].FinishReason)
		require.Equal(t, full.Usage.TotalTokens, acc.Usage.TotalTokens)
	})

	t.Run("JSONSchema", func(t *testing.T) {
		t.Parallel()
		ref, err := compileReference(t, testSchemas["Person"], true)
		require.NoError(t, err)
		var schemaDoc map[string]any
		require.NoError(t, json.Unmarshal([]byte(testSchemas["Person"]), &schemaDoc))
		params := chatParams
		params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Schema: schemaDoc, Strict: openai.Bool(true)},
			},
		}
		resp, err := client.Chat.Completions.New(t.Context(), params)
		require.NoError(t, err)
		require.NoError(t, validateReference(t, ref, []byte(resp.Choices[0].Message.Content)))
	})

	t.Run("Completion", func(t *testing.T) {
		t.Parallel()
		resp, err := client.Completions.New(t.Context(), openai.CompletionNewParams{
			Model:  ModelDefault,
			Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"one", "two"}},
		})
		require.NoError(t, err)
		require.Len(t, resp.Choices, 2)
		require.Equal(t, int64(30), resp.Usage.CompletionTokens)
	})

	t.Run("Embedding", func(t *testing.T) {
		t.Parallel()
		for _, format := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
			resp, err := client.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
				Model:          ModelDefault,
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
				EncodingFormat: format,
			})
			require.NoError(t, err)
			require.Len(t, resp.Data, 2)
			if format == openai.EmbeddingNewParamsEncodingFormatFloat {
				require.Len(t, resp.Data[0].Embedding, EmbeddingDimensionsDefault)
			}
			require.Equal(t, int64(2), resp.Usage.PromptTokens)
		}
	})

	t.Run("Models", func(t *testing.T) {
		t.Parallel()
		page, err := client.Models.List(t.Context())
		require.NoError(t, err)
		require.Len(t, page.Data, 1)
		require.Equal(t, ModelDefault, page.Data[0].ID)
		require.Equal(t, "kiln-sim", page.Data[0].OwnedBy)
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		params := chatParams
		params.Model = "unknown"
		_, err := client.Chat.Completions.New(t.Context(), params)
		apiErr, ok := errors.AsType[*openai.Error](err)
		require.True(t, ok, "error %v", err)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		require.Equal(t, "NotFoundError", apiErr.Type)
		require.Equal(t, "The model `unknown` does not exist.", apiErr.Message)
	})
}

// TestUsageDetails checks the usage details the simulator reports when
// configured, as the official client reads them.
func TestUsageDetails(t *testing.T) {
	t.Parallel()

	client := func(t *testing.T, cfg Config) openai.Client {
		b := setup(t, cfg).start(t)
		return openai.NewClient(option.WithBaseURL(b.srv.URL+"/v1/"), option.WithAPIKey("unused"),
			option.WithMaxRetries(0), option.WithHTTPClient(b.srv.Client()))
	}
	chat := openai.ChatCompletionNewParams{Model: ModelDefault, Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage("Tell me about kilns, the ones that fire pottery, at some length.")}}

	t.Run("Shares", func(t *testing.T) {
		t.Parallel()
		c := client(t, Config{OutputTokens: 20, CachedShare: 0.5, ReasoningShare: 0.25})
		resp, err := c.Chat.Completions.New(t.Context(), chat)
		require.NoError(t, err)
		u := resp.Usage
		require.Positive(t, u.PromptTokensDetails.CachedTokens)
		require.Equal(t, u.PromptTokens/2, u.PromptTokensDetails.CachedTokens)
		require.Equal(t, int64(5), u.CompletionTokensDetails.ReasoningTokens)

		r, err := c.Responses.New(t.Context(), responses.ResponseNewParams{Model: ModelDefault,
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Tell me about kilns.")}})
		require.NoError(t, err)
		require.Equal(t, r.Usage.InputTokens/2, r.Usage.InputTokensDetails.CachedTokens)
		require.Equal(t, int64(5), r.Usage.OutputTokensDetails.ReasoningTokens)
	})

	t.Run("Off", func(t *testing.T) {
		t.Parallel()
		c := client(t, Config{OutputTokens: 20})
		resp, err := c.Chat.Completions.New(t.Context(), chat)
		require.NoError(t, err)
		require.Contains(t, resp.RawJSON(), `"prompt_tokens_details":null`, "as vLLM without --enable-prompt-tokens-details")
		require.NotContains(t, resp.RawJSON(), "completion_tokens_details")
	})
}
