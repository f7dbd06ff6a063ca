package llmsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/internal/openaispec"
	"github.com/stretchr/testify/require"
)

type responseBody struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	CreatedAt         int64  `json:"created_at"`
	Model             string `json:"model"`
	Status            string `json:"status"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Output []struct {
		Type    string `json:"type"`
		Role    string `json:"role"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage struct {
		InputTokens        int `json:"input_tokens"`
		OutputTokens       int `json:"output_tokens"`
		TotalTokens        int `json:"total_tokens"`
		InputTokensDetails struct {
			CachedTokens *int `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokensDetails struct {
			ReasoningTokens *int `json:"reasoning_tokens"`
		} `json:"output_tokens_details"`
	} `json:"usage"`
}

// respond posts body to /v1/responses, checks the answer against OpenAI's
// Response schema and decodes it.
func (b *testBundle) respond(t *testing.T, body map[string]any) responseBody {
	t.Helper()
	resp, data := b.post(t, "/v1/responses", body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", data)
	openaispec.MustValidate(t, "Response", data)
	var out responseBody
	require.NoError(t, json.Unmarshal(data, &out), "body: %s", data)
	return out
}

func (r responseBody) text(t *testing.T) string {
	t.Helper()
	require.Len(t, r.Output, 1)
	require.Equal(t, "message", r.Output[0].Type)
	require.Equal(t, "assistant", r.Output[0].Role)
	require.Len(t, r.Output[0].Content, 1)
	require.Equal(t, "output_text", r.Output[0].Content[0].Type)
	return r.Output[0].Content[0].Text
}

func TestResponse(t *testing.T) {
	t.Parallel()

	b := setup(t, Config{OutputTokens: 12}).start(t)

	t.Run("Shape", func(t *testing.T) {
		t.Parallel()
		r := b.respond(t, map[string]any{"model": ModelDefault, "input": "Say hi.", "instructions": "Be brief."})
		require.True(t, strings.HasPrefix(r.ID, "resp_"), r.ID)
		require.Equal(t, "response", r.Object)
		require.Equal(t, ModelDefault, r.Model)
		require.Equal(t, "completed", r.Status)
		require.NotZero(t, r.CreatedAt)
		require.NotEmpty(t, r.text(t))
		require.Equal(t, 12, r.Usage.OutputTokens)
		require.Equal(t, r.Usage.InputTokens+r.Usage.OutputTokens, r.Usage.TotalTokens)
		require.NotNil(t, r.Usage.InputTokensDetails.CachedTokens)
		require.NotNil(t, r.Usage.OutputTokensDetails.ReasoningTokens)
	})

	t.Run("InputItems", func(t *testing.T) {
		t.Parallel()
		items := []any{
			map[string]any{"role": "system", "content": "Be brief."},
			map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "Say hi."}}},
		}
		r := b.respond(t, map[string]any{"model": ModelDefault, "input": items})
		require.NotEmpty(t, r.text(t))
		// The same request gets the same answer; another prompt another.
		require.Equal(t, r.text(t), b.respond(t, map[string]any{"model": ModelDefault, "input": items}).text(t))
		require.NotEqual(t, r.text(t), b.respond(t, map[string]any{"model": ModelDefault, "input": "Say bye."}).text(t))
	})

	t.Run("MaxOutputTokens", func(t *testing.T) {
		t.Parallel()
		r := b.respond(t, map[string]any{"model": ModelDefault, "input": "Say hi.", "max_output_tokens": 3})
		require.Equal(t, "incomplete", r.Status)
		require.NotNil(t, r.IncompleteDetails)
		require.Equal(t, "max_output_tokens", r.IncompleteDetails.Reason)
		require.Equal(t, 3, r.Usage.OutputTokens)
	})

	t.Run("JSONSchema", func(t *testing.T) {
		t.Parallel()
		schemaText := testSchemas["OrderWithDefs"]
		var schemaDoc map[string]any
		require.NoError(t, json.Unmarshal([]byte(schemaText), &schemaDoc))
		ref, err := compileReference(t, schemaText, true)
		require.NoError(t, err)
		format := map[string]any{"type": "json_schema", "name": "order", "schema": schemaDoc, "strict": true}
		for i := range 10 {
			r := b.respond(t, map[string]any{"model": ModelDefault, "input": "Order " + string(rune('A'+i)), "text": map[string]any{"format": format}})
			require.Equal(t, "completed", r.Status)
			content := r.text(t)
			require.NoError(t, validateReference(t, ref, []byte(content)), "content: %s", content)
			require.Equal(t, CountTokens(content), r.Usage.OutputTokens)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name  string
			body  map[string]any
			code  int
			param string
		}{
			{"NoModel", map[string]any{"input": "hi"}, 400, "model"},
			{"UnknownModel", map[string]any{"model": "nope", "input": "hi"}, 404, ""},
			{"NoInput", map[string]any{"model": ModelDefault}, 400, "input"},
			{"EmptyInput", map[string]any{"model": ModelDefault, "input": []any{}}, 400, "input"},
			{"BadRole", map[string]any{"model": ModelDefault, "input": []any{map[string]any{"role": "robot", "content": "hi"}}}, 400, "input"},
			{"Stream", map[string]any{"model": ModelDefault, "input": "hi", "stream": true}, 400, "stream"},
			{"BadFormat", map[string]any{"model": ModelDefault, "input": "hi", "text": map[string]any{"format": map[string]any{"type": "xml"}}}, 400, "text.format.type"},
			{"NoSchema", map[string]any{"model": ModelDefault, "input": "hi", "text": map[string]any{"format": map[string]any{"type": "json_schema", "name": "x"}}}, 400, "text.format.schema"},
			{"BadMaxOutputTokens", map[string]any{"model": ModelDefault, "input": "hi", "max_output_tokens": 0}, 400, "max_output_tokens"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				resp, data := b.post(t, "/v1/responses", tt.body)
				require.Equal(t, tt.code, resp.StatusCode, "body: %s", data)
				var env struct {
					Error struct {
						Param *string `json:"param"`
					} `json:"error"`
				}
				require.NoError(t, json.Unmarshal(data, &env))
				if tt.param == "" {
					require.Nil(t, env.Error.Param)
				} else {
					require.NotNil(t, env.Error.Param, "body: %s", data)
					require.Equal(t, tt.param, *env.Error.Param)
				}
			})
		}
	})
}
