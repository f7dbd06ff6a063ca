package llmsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitFor is the deadline for conditions polled in tests.
const waitFor = 10 * time.Second

type testBundle struct {
	sim *Server
	srv *httptest.Server
}

// setup starts a simulator. Unless the test sets them, TTFT and TPOT are
// zero so tests run fast.
func setup(t *testing.T, cfg Config) *testBundle {
	t.Helper()
	if cfg.TTFT == 0 {
		cfg.TTFT = -1
	}
	if cfg.TPOT == 0 {
		cfg.TPOT = -1
	}
	sim, err := New(cfg)
	require.NoError(t, err)
	return &testBundle{sim: sim}
}

// start serves the simulator; tests that set hooks do so before.
func (b *testBundle) start(t *testing.T) *testBundle {
	t.Helper()
	b.srv = httptest.NewServer(b.sim.Handler())
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBundle) do(t *testing.T, ctx context.Context, method, path string, body any) (*http.Response, []byte, error) {
	t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	default:
		data, err := json.Marshal(v)
		require.NoError(t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.srv.URL+path, r)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

func (b *testBundle) post(t *testing.T, path string, body any) (*http.Response, []byte) {
	t.Helper()
	resp, data, err := b.do(t, t.Context(), http.MethodPost, path, body)
	require.NoError(t, err)
	return resp, data
}

// postOK posts and decodes a 200 answer into out.
func (b *testBundle) postOK(t *testing.T, path string, body, out any) {
	t.Helper()
	resp, data := b.post(t, path, body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", data)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(data, out), "body: %s", data)
}

func chatBody(content string, extra ...any) map[string]any {
	body := map[string]any{
		"model":    ModelDefault,
		"messages": []any{map[string]any{"role": "system", "content": "Be brief."}, map[string]any{"role": "user", "content": content}},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i].(string)] = extra[i+1]
	}
	return body
}

type chatResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func (b *testBundle) chat(t *testing.T, body map[string]any) chatResponse {
	t.Helper()
	var resp chatResponse
	b.postOK(t, "/v1/chat/completions", body, &resp)
	return resp
}

func TestChatCompletion(t *testing.T) {
	t.Parallel()

	t.Run("Shape", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}).start(t)

		_, data := b.post(t, "/v1/chat/completions", chatBody("Hello there, how are you?"))
		var raw map[string]any
		require.NoError(t, json.Unmarshal(data, &raw))
		require.Regexp(t, `^chatcmpl-[0-9a-f]{32}$`, raw["id"])
		require.Equal(t, "chat.completion", raw["object"])
		require.Equal(t, ModelDefault, raw["model"])
		require.InDelta(t, time.Now().Unix(), raw["created"], 60)
		choices := raw["choices"].([]any)
		require.Len(t, choices, 1)
		choice := choices[0].(map[string]any)
		require.Equal(t, float64(0), choice["index"])
		require.Contains(t, choice, "logprobs")
		require.Nil(t, choice["logprobs"])
		require.Equal(t, "stop", choice["finish_reason"])
		msg := choice["message"].(map[string]any)
		require.Equal(t, "assistant", msg["role"])
		require.NotEmpty(t, msg["content"])
		require.Equal(t, []any{}, msg["tool_calls"])
		u := raw["usage"].(map[string]any)
		require.Equal(t, u["prompt_tokens"].(float64)+u["completion_tokens"].(float64), u["total_tokens"])

		resp := b.chat(t, chatBody("Hello there, how are you?"))
		require.NotEqual(t, raw["id"], resp.ID, "IDs must be unique")
	})

	t.Run("Usage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{OutputTokens: 37}).start(t)

		resp := b.chat(t, chatBody("Count these words, please: one two three."))
		want := chatPromptOverhead + 2*chatMessageOverhead + CountTokens("Be brief.") + CountTokens("Count these words, please: one two three.")
		require.Equal(t, want, resp.Usage.PromptTokens)
		require.Equal(t, 37, resp.Usage.CompletionTokens)
		require.Equal(t, 37, CountTokens(resp.Choices[0].Message.Content))
		require.Equal(t, resp.Usage.PromptTokens+resp.Usage.CompletionTokens, resp.Usage.TotalTokens)

		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Completed)
		require.Equal(t, int64(want), st.PromptTokens)
		require.Equal(t, int64(37), st.CompletionTokens)
	})

	t.Run("ContentParts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}).start(t)

		parts := b.chat(t, map[string]any{"model": ModelDefault, "messages": []any{map[string]any{
			"role": "user",
			"content": []any{
				map[string]any{"type": "text", "text": "Describe"},
				map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://example.com/a.png"}},
				map[string]any{"type": "text", "text": "this image."},
			},
		}}})
		require.Equal(t, chatPromptOverhead+chatMessageOverhead+CountTokens("Describe")+CountTokens("this image."), parts.Usage.PromptTokens)
	})

	t.Run("Deterministic", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}).start(t)
		other := setup(t, Config{Seed: 42}).start(t)

		first := b.chat(t, chatBody("Tell me about kilns."))
		again := b.chat(t, chatBody("Tell me about kilns."))
		require.Equal(t, first.Choices[0].Message.Content, again.Choices[0].Message.Content)

		different := b.chat(t, chatBody("Tell me about glazes."))
		require.NotEqual(t, first.Choices[0].Message.Content, different.Choices[0].Message.Content)

		seeded := other.chat(t, chatBody("Tell me about kilns."))
		require.NotEqual(t, first.Choices[0].Message.Content, seeded.Choices[0].Message.Content)

		withSeed := b.chat(t, chatBody("Tell me about kilns.", "seed", 7))
		require.NotEqual(t, first.Choices[0].Message.Content, withSeed.Choices[0].Message.Content)
		require.Equal(t, withSeed.Choices[0].Message.Content, b.chat(t, chatBody("Tell me about kilns.", "seed", 7)).Choices[0].Message.Content)

		// Sampling knobs do not change the simulated answer.
		require.Equal(t, first.Choices[0].Message.Content, b.chat(t, chatBody("Tell me about kilns.", "temperature", 0.2, "top_p", 0.9)).Choices[0].Message.Content)
	})

	t.Run("Choices", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{OutputTokens: 10}).start(t)

		resp := b.chat(t, chatBody("Give me options.", "n", 3))
		require.Len(t, resp.Choices, 3)
		seen := map[string]bool{}
		for i, c := range resp.Choices {
			require.Equal(t, i, c.Index)
			seen[c.Message.Content] = true
		}
		require.Len(t, seen, 3, "choices should differ")
		require.Equal(t, 30, resp.Usage.CompletionTokens)
	})

	t.Run("OutputLength", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{OutputTokens: 50}).start(t)
		natural := b.chat(t, chatBody("Explain batching.")).Choices[0].Message.Content

		tests := []struct {
			name       string
			extra      []any
			wantTokens int
			wantFinish string
		}{
			{"Default", nil, 50, "stop"},
			{"MaxTokensCuts", []any{"max_tokens", 5}, 5, "length"},
			{"MaxCompletionTokensCuts", []any{"max_completion_tokens", 7}, 7, "length"},
			{"MaxCompletionTokensWins", []any{"max_tokens", 3, "max_completion_tokens", 9}, 9, "length"},
			{"MaxTokensAbove", []any{"max_tokens", 100}, 50, "stop"},
			{"MaxTokensEqual", []any{"max_tokens", 50}, 50, "stop"},
			{"IgnoreEOS", []any{"max_tokens", 80, "ignore_eos", true}, 80, "length"},
			{"MinTokens", []any{"min_tokens", 60}, 60, "stop"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				resp := b.chat(t, chatBody("Explain batching.", tt.extra...))
				content := resp.Choices[0].Message.Content
				require.Equal(t, tt.wantFinish, resp.Choices[0].FinishReason)
				require.Equal(t, tt.wantTokens, resp.Usage.CompletionTokens)
				require.Equal(t, tt.wantTokens, CountTokens(content))
				if tt.wantTokens <= 50 {
					require.True(t, strings.HasPrefix(natural, content), "a cut answer is a prefix of the full one")
				}
			})
		}
	})
}

func TestStructuredOutput(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{OutputTokens: 5}).start(t)
	schemaText := testSchemas["OrderWithDefs"]
	var schemaDoc map[string]any
	require.NoError(t, json.Unmarshal([]byte(schemaText), &schemaDoc))
	ref, err := compileReference(t, schemaText, true)
	require.NoError(t, err)

	t.Run("Formats", func(t *testing.T) {
		t.Parallel()

		tests := []struct {
			name  string
			extra []any
		}{
			{"ResponseFormat", []any{"response_format", map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "order", "schema": schemaDoc, "strict": true}}}},
			{"StructuredOutputs", []any{"structured_outputs", map[string]any{"json": schemaDoc}}},
			{"StructuredOutputsString", []any{"structured_outputs", map[string]any{"json": schemaText}}},
			{"GuidedJSON", []any{"guided_json", schemaDoc}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				for i := range 20 {
					resp := b.chat(t, chatBody("Order number "+string(rune('A'+i)), tt.extra...))
					content := resp.Choices[0].Message.Content
					require.Equal(t, "stop", resp.Choices[0].FinishReason)
					require.NoError(t, validateReference(t, ref, []byte(content)), "content: %s", content)
					// Structured output is as long as its JSON, whatever
					// OutputTokens says.
					require.Equal(t, CountTokens(content), resp.Usage.CompletionTokens)
					require.Greater(t, resp.Usage.CompletionTokens, 5)
				}
			})
		}
	})

	t.Run("SameRequestSameJSON", func(t *testing.T) {
		t.Parallel()
		body := chatBody("Same order", "guided_json", schemaDoc)
		require.Equal(t, b.chat(t, body).Choices[0].Message.Content, b.chat(t, body).Choices[0].Message.Content)
	})

	t.Run("JSONObject", func(t *testing.T) {
		t.Parallel()
		resp := b.chat(t, chatBody("Answer in JSON.", "response_format", map[string]any{"type": "json_object"}))
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(resp.Choices[0].Message.Content), &obj))
		require.NotEmpty(t, obj)
	})

	t.Run("Choice", func(t *testing.T) {
		t.Parallel()
		resp := b.chat(t, chatBody("Pick.", "structured_outputs", map[string]any{"choice": []string{"red", "green"}}))
		require.Contains(t, []string{"red", "green"}, resp.Choices[0].Message.Content)
	})

	t.Run("Regex", func(t *testing.T) {
		t.Parallel()
		resp := b.chat(t, chatBody("Code?", "guided_regex", `[A-Z]{2}-\d{3}`))
		require.Regexp(t, `^[A-Z]{2}-\d{3}$`, resp.Choices[0].Message.Content)
	})

	t.Run("MaxTokensCutsJSON", func(t *testing.T) {
		t.Parallel()
		resp := b.chat(t, chatBody("Order", "guided_json", schemaDoc, "max_tokens", 6))
		require.Equal(t, "length", resp.Choices[0].FinishReason)
		require.Equal(t, 6, resp.Usage.CompletionTokens)
		require.False(t, json.Valid([]byte(resp.Choices[0].Message.Content)))
	})

	t.Run("Completions", func(t *testing.T) {
		t.Parallel()
		var resp completionTestResponse
		b.postOK(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "Order:", "guided_json": schemaDoc}, &resp)
		require.NoError(t, validateReference(t, ref, []byte(resp.Choices[0].Text)))
	})
}

type completionTestResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int    `json:"index"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func TestCompletion(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{OutputTokens: 12}).start(t)

	t.Run("Shape", func(t *testing.T) {
		t.Parallel()
		_, data := b.post(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "Once upon a time"})
		var raw map[string]any
		require.NoError(t, json.Unmarshal(data, &raw))
		require.Regexp(t, `^cmpl-[0-9a-f]{32}$`, raw["id"])
		require.Equal(t, "text_completion", raw["object"])
		choice := raw["choices"].([]any)[0].(map[string]any)
		require.Contains(t, choice, "logprobs")
		require.Equal(t, "stop", choice["finish_reason"])
		require.Equal(t, 12, CountTokens(choice["text"].(string)))
		u := raw["usage"].(map[string]any)
		require.Equal(t, float64(CountTokens("Once upon a time")), u["prompt_tokens"])
		require.Equal(t, float64(12), u["completion_tokens"])
		require.Equal(t, float64(CountTokens("Once upon a time")+12), u["total_tokens"])
	})

	t.Run("PromptForms", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name         string
			prompt       any
			wantChoices  int
			wantPromptTk int
		}{
			{"String", "a b c", 1, 3},
			{"Strings", []string{"a b", "c d e"}, 2, 5},
			{"TokenIDs", []int{1, 2, 3, 4}, 1, 4},
			{"TokenIDLists", [][]int{{1, 2}, {3}}, 2, 3},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				var resp completionTestResponse
				b.postOK(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": tt.prompt, "n": 2}, &resp)
				require.Len(t, resp.Choices, 2*tt.wantChoices)
				for i, c := range resp.Choices {
					require.Equal(t, i, c.Index)
				}
				require.Equal(t, tt.wantPromptTk, resp.Usage.PromptTokens)
				require.Equal(t, 2*tt.wantChoices*12, resp.Usage.CompletionTokens)
			})
		}
	})

	t.Run("DeterministicAndDistinct", func(t *testing.T) {
		t.Parallel()
		var a, a2, c completionTestResponse
		b.postOK(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "alpha"}, &a)
		b.postOK(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "alpha"}, &a2)
		b.postOK(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "beta"}, &c)
		require.Equal(t, a.Choices[0].Text, a2.Choices[0].Text)
		require.NotEqual(t, a.Choices[0].Text, c.Choices[0].Text)
	})

	t.Run("MaxTokens", func(t *testing.T) {
		t.Parallel()
		var resp completionTestResponse
		b.postOK(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "x", "max_tokens": 4}, &resp)
		require.Equal(t, "length", resp.Choices[0].FinishReason)
		require.Equal(t, 4, resp.Usage.CompletionTokens)
	})
}

func TestEmbedding(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{Models: []string{"embed-model"}}).start(t)
	type embeddingResp struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Index     int       `json:"index"`
			Object    string    `json:"object"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage map[string]int `json:"usage"`
	}
	embed := func(t *testing.T, body map[string]any) embeddingResp {
		t.Helper()
		body["model"] = "embed-model"
		var resp embeddingResp
		b.postOK(t, "/v1/embeddings", body, &resp)
		return resp
	}
	norm := func(v []float64) float64 {
		var n float64
		for _, x := range v {
			n += x * x
		}
		return n
	}

	t.Run("Shape", func(t *testing.T) {
		t.Parallel()
		resp := embed(t, map[string]any{"input": []string{"hello world", "kiln fires clay", "hello world"}})
		require.Equal(t, "list", resp.Object)
		require.Equal(t, "embed-model", resp.Model)
		require.Len(t, resp.Data, 3)
		for i, d := range resp.Data {
			require.Equal(t, i, d.Index)
			require.Equal(t, "embedding", d.Object)
			require.Len(t, d.Embedding, EmbeddingDimensionsDefault)
			require.InDelta(t, 1, norm(d.Embedding), 1e-4)
		}
		require.Equal(t, resp.Data[0].Embedding, resp.Data[2].Embedding)
		require.NotEqual(t, resp.Data[0].Embedding, resp.Data[1].Embedding)
		want := CountTokens("hello world")*2 + CountTokens("kiln fires clay")
		require.Equal(t, want, resp.Usage["prompt_tokens"])
		require.Equal(t, want, resp.Usage["total_tokens"])
	})

	t.Run("StringInputAndDimensions", func(t *testing.T) {
		t.Parallel()
		resp := embed(t, map[string]any{"input": "hello world", "dimensions": 16})
		require.Len(t, resp.Data, 1)
		require.Len(t, resp.Data[0].Embedding, 16)
		require.InDelta(t, 1, norm(resp.Data[0].Embedding), 1e-4)
		require.Equal(t, resp.Data[0].Embedding, embed(t, map[string]any{"input": "hello world", "dimensions": 16}).Data[0].Embedding)
	})

	t.Run("Base64", func(t *testing.T) {
		t.Parallel()
		_, data := b.post(t, "/v1/embeddings", map[string]any{"model": "embed-model", "input": "x", "encoding_format": "base64", "dimensions": 8})
		var resp struct {
			Data []struct {
				Embedding string `json:"embedding"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(data, &resp))
		require.Len(t, resp.Data[0].Embedding, 44) // 32 bytes in base64
	})
}

func TestModelsHealthMetrics(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{Models: []string{"m1", "m2"}}).start(t)

	resp, data, err := b.do(t, t.Context(), http.MethodGet, "/v1/models", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			OwnedBy string `json:"owned_by"`
			Created int64  `json:"created"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(data, &list))
	require.Equal(t, "list", list.Object)
	require.Len(t, list.Data, 2)
	for i, want := range []string{"m1", "m2"} {
		require.Equal(t, want, list.Data[i].ID)
		require.Equal(t, "model", list.Data[i].Object)
		require.Equal(t, "kiln-sim", list.Data[i].OwnedBy)
		require.NotZero(t, list.Data[i].Created)
	}

	resp, data, err = b.do(t, t.Context(), http.MethodGet, "/health", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, data)

	b.post(t, "/v1/chat/completions", map[string]any{"model": "m2", "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	b.post(t, "/v1/chat/completions", map[string]any{"model": "nope", "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	resp, data, err = b.do(t, t.Context(), http.MethodGet, "/metrics", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	metrics := string(data)
	require.Contains(t, metrics, `kiln_sim_requests_total{code="200",route="chat_completions"} 1`)
	require.Contains(t, metrics, `kiln_sim_requests_total{code="404",route="chat_completions"} 1`)
	require.Contains(t, metrics, "kiln_sim_requests_in_flight 0")
	require.Contains(t, metrics, "kiln_sim_requests_queued 0")
	require.Contains(t, metrics, `vllm:num_requests_running{model_name="m1"} 0`)
	require.Contains(t, metrics, `vllm:num_requests_waiting{model_name="m1"} 0`)
	require.Contains(t, metrics, `vllm:prompt_tokens_total{model_name="m1"}`)
}

func TestErrors(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{}).start(t)
	user := []any{map[string]any{"role": "user", "content": "hi"}}

	tests := []struct {
		name       string
		path       string
		body       any
		wantStatus int
		wantType   string
		wantMsg    string
	}{
		{"InvalidJSON", "/v1/chat/completions", `{"model": `, 400, "BadRequestError", "Invalid request body"},
		{"NotAnObject", "/v1/chat/completions", `[1]`, 400, "BadRequestError", "Invalid request body"},
		{"WrongFieldType", "/v1/chat/completions", `{"model": 5, "messages": []}`, 400, "BadRequestError", "Invalid request body"},
		{"MissingModel", "/v1/chat/completions", map[string]any{"messages": user}, 400, "BadRequestError", "model"},
		{"UnknownModel", "/v1/chat/completions", map[string]any{"model": "gpt-4", "messages": user}, 404, "NotFoundError", "The model `gpt-4` does not exist."},
		{"MissingMessages", "/v1/chat/completions", map[string]any{"model": ModelDefault}, 400, "BadRequestError", "messages"},
		{"EmptyMessages", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": []any{}}, 400, "BadRequestError", "messages"},
		{"MessagesNotArray", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": "hi"}, 400, "BadRequestError", "messages"},
		{"BadRole", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": []any{map[string]any{"role": "wizard", "content": "hi"}}}, 400, "BadRequestError", "role"},
		{"MissingContent", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": []any{map[string]any{"role": "user"}}}, 400, "BadRequestError", "content"},
		{"BadContent", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": []any{map[string]any{"role": "user", "content": 5}}}, 400, "BadRequestError", "content"},
		{"ZeroMaxTokens", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "max_tokens": 0}, 400, "BadRequestError", "max_tokens"},
		{"TooManyTokens", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "max_tokens": MaxModelLen}, 400, "BadRequestError", "maximum context length"},
		{"StreamOptionsWithoutStream", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "stream_options": map[string]any{"include_usage": true}}, 400, "BadRequestError", "stream=True"},
		{"ZeroN", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "n": 0}, 400, "BadRequestError", "n must be"},
		{"BadResponseFormat", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "response_format": map[string]any{"type": "yaml"}}, 400, "BadRequestError", "response_format"},
		{"InvalidSchema", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "x", "schema": map[string]any{"type": "thing"}}}}, 400, "BadRequestError", "Invalid JSON schema"},
		{"UnsatisfiableSchema", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "guided_json": map[string]any{"type": "integer", "minimum": 3, "maximum": 1}}, 400, "BadRequestError", "cannot generate"},
		{"TwoConstraints", "/v1/chat/completions", map[string]any{"model": ModelDefault, "messages": user, "structured_outputs": map[string]any{"regex": "a", "choice": []string{"a"}}}, 400, "BadRequestError", "only use one kind"},
		{"CompletionNoPrompt", "/v1/completions", map[string]any{"model": ModelDefault}, 400, "BadRequestError", "prompt"},
		{"CompletionBadPrompt", "/v1/completions", map[string]any{"model": ModelDefault, "prompt": map[string]any{}}, 400, "BadRequestError", "prompt"},
		{"CompletionUnknownModel", "/v1/completions", map[string]any{"model": "x", "prompt": "hi"}, 404, "NotFoundError", "does not exist"},
		{"EmbeddingNoInput", "/v1/embeddings", map[string]any{"model": ModelDefault}, 400, "BadRequestError", "input"},
		{"EmbeddingEmptyInput", "/v1/embeddings", map[string]any{"model": ModelDefault, "input": []string{}}, 400, "BadRequestError", "input"},
		{"EmbeddingBadDimensions", "/v1/embeddings", map[string]any{"model": ModelDefault, "input": "x", "dimensions": 0}, 400, "BadRequestError", "dimensions"},
		{"EmbeddingUnknownModel", "/v1/embeddings", map[string]any{"model": "x", "input": "hi"}, 404, "NotFoundError", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, data := b.post(t, tt.path, tt.body)
			require.Equal(t, tt.wantStatus, resp.StatusCode, "body: %s", data)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var env map[string]map[string]any
			require.NoError(t, json.Unmarshal(data, &env), "body: %s", data)
			e := env["error"]
			require.Equal(t, tt.wantType, e["type"])
			require.Equal(t, float64(tt.wantStatus), e["code"])
			require.Contains(t, e["message"], tt.wantMsg)
			require.Contains(t, e, "param")
		})
	}

	t.Run("Routing", func(t *testing.T) {
		t.Parallel()
		resp, data, err := b.do(t, t.Context(), http.MethodGet, "/v1/chat/completions", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		require.JSONEq(t, `{"detail":"Method Not Allowed"}`, string(data))

		resp, data, err = b.do(t, t.Context(), http.MethodGet, "/v1/nothing", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.JSONEq(t, `{"detail":"Not Found"}`, string(data))
	})
}

func TestStreaming(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{OutputTokens: 20}).start(t)

	// events reads the server-sent events of a streamed response.
	events := func(t *testing.T, path string, body map[string]any) []string {
		t.Helper()
		resp, data := b.post(t, path, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", data)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
		var out []string
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				continue
			}
			require.True(t, strings.HasPrefix(line, "data: "), "line %q", line)
			out = append(out, strings.TrimPrefix(line, "data: "))
		}
		require.NotEmpty(t, out)
		require.Equal(t, "[DONE]", out[len(out)-1])
		return out[:len(out)-1]
	}
	type chunk struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Index int `json:"index"`
			Delta struct {
				Role    *string `json:"role"`
				Content *string `json:"content"`
			} `json:"delta"`
			Text         string  `json:"text"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
	}

	t.Run("Chat", func(t *testing.T) {
		t.Parallel()
		full := b.chat(t, chatBody("Stream me a story.", "n", 2))

		evs := events(t, "/v1/chat/completions", chatBody("Stream me a story.", "n", 2, "stream", true, "stream_options", map[string]any{"include_usage": true}))
		content := map[int]string{}
		finish := map[int]string{}
		seen := map[int]bool{}
		var id string
		for i, ev := range evs {
			var c chunk
			require.NoError(t, json.Unmarshal([]byte(ev), &c), "event %s", ev)
			require.Equal(t, "chat.completion.chunk", c.Object)
			require.Equal(t, ModelDefault, c.Model)
			if id == "" {
				id = c.ID
			}
			require.Equal(t, id, c.ID)
			if i == len(evs)-1 {
				require.Empty(t, c.Choices)
				require.NotNil(t, c.Usage)
				require.Equal(t, full.Usage.PromptTokens, c.Usage.PromptTokens)
				require.Equal(t, full.Usage.CompletionTokens, c.Usage.CompletionTokens)
				require.Equal(t, full.Usage.TotalTokens, c.Usage.TotalTokens)
				continue
			}
			require.Nil(t, c.Usage)
			require.Len(t, c.Choices, 1)
			ch := c.Choices[0]
			if !seen[ch.Index] {
				require.NotNil(t, ch.Delta.Role, "the first chunk of each choice carries the role")
				seen[ch.Index] = true
			}
			if ch.Delta.Content != nil {
				require.Empty(t, finish[ch.Index], "content after the finish reason")
				content[ch.Index] += *ch.Delta.Content
			}
			if ch.FinishReason != nil {
				finish[ch.Index] = *ch.FinishReason
			}
		}
		for i, c := range full.Choices {
			require.Equal(t, c.Message.Content, content[i])
			require.Equal(t, "stop", finish[i])
		}
	})

	t.Run("ChatWithoutUsage", func(t *testing.T) {
		t.Parallel()
		evs := events(t, "/v1/chat/completions", chatBody("Short.", "stream", true, "max_tokens", 3))
		require.Len(t, evs, 4) // role, then 3 tokens
		var last chunk
		require.NoError(t, json.Unmarshal([]byte(evs[3]), &last))
		require.Equal(t, "length", *last.Choices[0].FinishReason)
		require.NotContains(t, evs[3], "usage")
	})

	t.Run("Completion", func(t *testing.T) {
		t.Parallel()
		var full completionTestResponse
		b.postOK(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "Once"}, &full)

		evs := events(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "Once", "stream": true, "stream_options": map[string]any{"include_usage": true}})
		require.Len(t, evs, 21) // 20 tokens and the usage
		var text strings.Builder
		for _, ev := range evs[:20] {
			var c chunk
			require.NoError(t, json.Unmarshal([]byte(ev), &c))
			require.Equal(t, "text_completion", c.Object)
			text.WriteString(c.Choices[0].Text)
		}
		require.Equal(t, full.Choices[0].Text, text.String())
		var u chunk
		require.NoError(t, json.Unmarshal([]byte(evs[20]), &u))
		require.Equal(t, full.Usage.TotalTokens, u.Usage.TotalTokens)
	})
}

// gate is a holdHook that keeps every request in its slot until opened.
type gate struct {
	open chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) hold(ctx context.Context) error {
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func TestCapacity(t *testing.T) {
	t.Parallel()

	for _, stream := range []bool{false, true} {
		name := "NonStreaming"
		if stream {
			name = "Streaming"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			b := setup(t, Config{MaxNumSeqs: 4})
			g := newGate()
			t.Cleanup(g.release)
			b.sim.holdHook = g.hold
			b.start(t)

			const requests = 12
			var wg sync.WaitGroup
			statuses := make(chan int, requests)
			for i := range requests {
				wg.Go(func() {
					resp, _, err := b.do(t, t.Context(), http.MethodPost, "/v1/chat/completions", chatBody("request "+string(rune('a'+i)), "stream", stream))
					if err != nil {
						statuses <- -1
						return
					}
					statuses <- resp.StatusCode
				})
			}
			require.Eventually(t, func() bool {
				st := b.sim.Stats()
				return st.InFlight == 4 && st.Queued == requests-4
			}, waitFor, time.Millisecond, "4 requests should run and 8 wait")
			require.Equal(t, int64(4), b.sim.Stats().PeakInFlight)

			g.release()
			wg.Wait()
			close(statuses)
			for status := range statuses {
				require.Equal(t, http.StatusOK, status)
			}
			st := b.sim.Stats()
			require.Equal(t, int64(requests), st.Requests)
			require.Equal(t, int64(requests), st.Completed)
			require.Equal(t, int64(4), st.PeakInFlight)
			require.Zero(t, st.InFlight)
			require.Zero(t, st.Queued)
			require.False(t, st.FirstRequestAt.IsZero())
			require.False(t, st.LastCompletedAt.Before(st.FirstRequestAt))
		})
	}
}

func TestCanceledRequestFreesSlot(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{MaxNumSeqs: 1})
	// Hold every request until its client leaves.
	b.sim.holdHook = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	b.start(t)

	send := func(ctx context.Context) chan error {
		errc := make(chan error, 1)
		go func() {
			_, _, err := b.do(t, ctx, http.MethodPost, "/v1/chat/completions", chatBody("wait"))
			errc <- err
		}()
		return errc
	}
	ctxA, cancelA := context.WithCancel(t.Context())
	errA := send(ctxA)
	require.Eventually(t, func() bool { return b.sim.Stats().InFlight == 1 }, waitFor, time.Millisecond)
	ctxB, cancelB := context.WithCancel(t.Context())
	errB := send(ctxB)
	require.Eventually(t, func() bool { return b.sim.Stats().Queued == 1 }, waitFor, time.Millisecond)

	cancelA()
	require.ErrorIs(t, receive(t, errA), context.Canceled)
	require.Eventually(t, func() bool {
		st := b.sim.Stats()
		return st.Canceled == 1 && st.InFlight == 1 && st.Queued == 0
	}, waitFor, time.Millisecond, "B should get A's slot")

	cancelB()
	require.ErrorIs(t, receive(t, errB), context.Canceled)
	require.Eventually(t, func() bool {
		st := b.sim.Stats()
		return st.Canceled == 2 && st.InFlight == 0
	}, waitFor, time.Millisecond)
}

func receive[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(waitFor):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name       string
			cfg        Config
			path       string
			body       any
			wantStatus int
			wantType   string
		}{
			{"Chat500", Config{ErrorRate500: 1}, "/v1/chat/completions", chatBody("hi"), 500, "InternalServerError"},
			{"Chat429", Config{ErrorRate429: 1}, "/v1/chat/completions", chatBody("hi"), 429, "RateLimitError"},
			{"Completion500", Config{ErrorRate500: 1}, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "x"}, 500, "InternalServerError"},
			{"Embedding429", Config{ErrorRate429: 1}, "/v1/embeddings", map[string]any{"model": ModelDefault, "input": "x"}, 429, "RateLimitError"},
			{"StreamBeforeHeaders", Config{ErrorRate500: 1}, "/v1/chat/completions", chatBody("hi", "stream", true), 500, "InternalServerError"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, tt.cfg).start(t)
				for range 3 {
					resp, data := b.post(t, tt.path, tt.body)
					require.Equal(t, tt.wantStatus, resp.StatusCode)
					var env map[string]map[string]any
					require.NoError(t, json.Unmarshal(data, &env))
					require.Equal(t, tt.wantType, env["error"]["type"])
					require.Equal(t, float64(tt.wantStatus), env["error"]["code"])
					if tt.wantStatus == http.StatusTooManyRequests {
						require.Equal(t, "1", resp.Header.Get("Retry-After"))
					}
				}
				st := b.sim.Stats()
				require.Equal(t, int64(3), st.Failed)
				require.Zero(t, st.Completed)
				require.Zero(t, st.PeakInFlight, "faults do not take a slot")
			})
		}
	})

	t.Run("ValidationComesFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{ErrorRate500: 1}).start(t)
		resp, _ := b.post(t, "/v1/chat/completions", map[string]any{"model": "other", "messages": []any{}})
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("Rates", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{ErrorRate500: 0.2, ErrorRate429: 0.3, Seed: 9}).start(t)
		counts := map[int]int{}
		for i := range 200 {
			resp, _ := b.post(t, "/v1/completions", map[string]any{"model": ModelDefault, "prompt": "p", "max_tokens": 1, "seed": i})
			counts[resp.StatusCode]++
		}
		// Loose bounds: the draws are pseudo-random, not a schedule.
		require.InDelta(t, 40, counts[500], 25)
		require.InDelta(t, 60, counts[429], 30)
		require.InDelta(t, 100, counts[200], 35)
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{TimeoutRate: 1}).start(t)

		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, _, err := b.do(t, ctx, http.MethodPost, "/v1/chat/completions", chatBody("hang"))
			errc <- err
		}()
		require.Eventually(t, func() bool { return b.sim.Stats().Stalled == 1 }, waitFor, time.Millisecond)
		select {
		case err := <-errc:
			t.Fatalf("a stalled request was answered: %v", err)
		default:
		}
		cancel()
		require.ErrorIs(t, receive(t, errc), context.Canceled)
		require.Eventually(t, func() bool {
			st := b.sim.Stats()
			return st.Stalled == 0 && st.Canceled == 1
		}, waitFor, time.Millisecond)
		require.Zero(t, b.sim.Stats().PeakInFlight)
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()

	cfg := Config{}.WithDefaults()
	require.Equal(t, []string{ModelDefault}, cfg.Models)
	require.Equal(t, MaxNumSeqsDefault, cfg.MaxNumSeqs)
	require.Equal(t, TTFTDefault, cfg.TTFT)
	require.Equal(t, TPOTDefault, cfg.TPOT)
	require.Equal(t, OutputTokensDefault, cfg.OutputTokens)

	invalid := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"NegativeSeqs", Config{MaxNumSeqs: -1}, "Config.MaxNumSeqs"},
		{"NegativeOutput", Config{OutputTokens: -5}, "Config.OutputTokens"},
		{"RateAboveOne", Config{ErrorRate500: 1.5}, "Config.ErrorRate500"},
		{"NegativeRate", Config{TimeoutRate: -0.1}, "Config.TimeoutRate"},
		{"RatesSum", Config{ErrorRate500: 0.6, ErrorRate429: 0.6}, "at most 1"},
		{"EmptyModel", Config{Models: []string{""}}, "Config.Models"},
		{"DuplicateModel", Config{Models: []string{"a", "a"}}, "Config.Models"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestServe(t *testing.T) {
	t.Parallel()

	t.Run("GracefulShutdown", func(t *testing.T) {
		t.Parallel()
		sim, err := New(Config{TTFT: -1, TPOT: -1})
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- sim.serve(ctx, ln, nil) }()

		resp, err := http.Post("http://"+ln.Addr().String()+"/v1/completions", "application/json", strings.NewReader(`{"model":"sim-model","prompt":"hi"}`))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)

		cancel()
		require.NoError(t, receive(t, done))
		_, err = http.Get("http://" + ln.Addr().String() + "/health")
		require.Error(t, err, "the server should be closed")
	})

	t.Run("ShutdownDropsStalledRequests", func(t *testing.T) {
		t.Parallel()
		sim, err := New(Config{TimeoutRate: 1})
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- sim.serve(ctx, ln, nil) }()

		errc := make(chan error, 1)
		go func() {
			resp, err := http.Post("http://"+ln.Addr().String()+"/v1/completions", "application/json", strings.NewReader(`{"model":"sim-model","prompt":"hi"}`))
			if err == nil {
				resp.Body.Close()
				err = errors.New("answered: " + resp.Status)
			}
			errc <- err
		}()
		require.Eventually(t, func() bool { return sim.Stats().Stalled == 1 }, waitFor, time.Millisecond)
		cancel()
		require.NoError(t, receive(t, done))
		require.Error(t, receive(t, errc), "the stalled request must get no answer")
	})

	t.Run("BadAddress", func(t *testing.T) {
		t.Parallel()
		require.Error(t, Serve(t.Context(), "256.0.0.1:http", Config{}, nil))
		require.Error(t, Serve(t.Context(), ":0", Config{MaxNumSeqs: -1}, nil))
	})
}
