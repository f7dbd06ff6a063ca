package conquest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// responseOutputLine is a batch output line of /v1/responses with the given
// answer; incomplete marks it cut short by max_output_tokens.
func responseOutputLine(customID, content string, incomplete bool) []byte {
	body := map[string]any{"id": "resp_1", "object": "response", "status": "completed",
		"output": []any{map[string]any{"type": "message", "role": "assistant", "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": content, "annotations": []any{}}}}}}
	if incomplete {
		body["status"] = "incomplete"
		body["incomplete_details"] = map[string]any{"reason": "max_output_tokens"}
	}
	b, _ := json.Marshal(map[string]any{"id": "batch_req_1", "custom_id": customID, "error": nil,
		"response": map[string]any{"status_code": 200, "request_id": "req_1", "body": body}})
	return b
}

// TestBuildResponses: with endpoint /v1/responses, every sample record
// becomes a Responses API request the batch validator accepts, with the
// strict output schema in text.format.
func TestBuildResponses(t *testing.T) {
	t.Parallel()
	r := registry(t)
	for _, id := range types {
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			d, err := r.Get(id, 0)
			require.NoError(t, err)
			in, err := os.ReadFile(filepath.Join("..", "testdata", id+".jsonl"))
			require.NoError(t, err)
			var out bytes.Buffer
			rep, err := d.Build(bytes.NewReader(in), &out, conquest.BuildOptions{Model: "sim-model", MaxTokens: 2048, Endpoint: conquest.EndpointResponses}, 1<<20)
			require.NoError(t, err)
			require.Empty(t, rep.Errors)
			sum, problems, err := batchline.Validate(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out.Bytes())), nil },
				batchline.ValidateOpts{Endpoint: batchline.EndpointResponses, MaxLineSize: 1 << 20, MaxRequests: 1000})
			require.NoError(t, err)
			require.Empty(t, problems)
			require.Equal(t, rep.Requests, sum.Requests)
			require.Equal(t, d.SchemaName(), sum.SchemaName)

			var first struct {
				URL  string `json:"url"`
				Body struct {
					Input []struct {
						Role, Content string
					} `json:"input"`
					Messages        any   `json:"messages"`
					ResponseFormat  any   `json:"response_format"`
					MaxTokens       any   `json:"max_tokens"`
					MaxOutputTokens int64 `json:"max_output_tokens"`
					Text            struct {
						Format struct {
							Type   string         `json:"type"`
							Name   string         `json:"name"`
							Strict bool           `json:"strict"`
							Schema map[string]any `json:"schema"`
						} `json:"format"`
					} `json:"text"`
				} `json:"body"`
			}
			line, _, _ := bytes.Cut(out.Bytes(), []byte("\n"))
			require.NoError(t, json.Unmarshal(line, &first))
			require.Equal(t, "/v1/responses", first.URL)
			require.Len(t, first.Body.Input, 2)
			require.Equal(t, "system", first.Body.Input[0].Role)
			require.Equal(t, "user", first.Body.Input[1].Role)
			require.NotEmpty(t, first.Body.Input[1].Content)
			require.Nil(t, first.Body.Messages)
			require.Nil(t, first.Body.ResponseFormat)
			require.Nil(t, first.Body.MaxTokens)
			require.EqualValues(t, 2048, first.Body.MaxOutputTokens)
			require.Equal(t, "json_schema", first.Body.Text.Format.Type)
			require.Equal(t, d.SchemaName(), first.Body.Text.Format.Name)
			require.True(t, first.Body.Text.Format.Strict)
			require.NotEmpty(t, first.Body.Text.Format.Schema)
		})
	}

	t.Run("UnknownEndpoint", func(t *testing.T) {
		t.Parallel()
		d, err := r.Get("cv_parsing", 0)
		require.NoError(t, err)
		_, err = d.Build(bytes.NewReader(nil), io.Discard, conquest.BuildOptions{Model: "m", Endpoint: "/v1/embeddings"}, 1<<20)
		require.ErrorIs(t, err, conquest.ErrEndpoint)
	})
}

// TestCheckOutputResponses: a response's output text is checked like a
// chat completion's content.
func TestCheckOutputResponses(t *testing.T) {
	t.Parallel()
	r := registry(t)
	d, err := r.Get("cv_parsing", 0)
	require.NoError(t, err)
	valid, err := llmsim.GenerateJSON(d.OutputSchema, 1)
	require.NoError(t, err)

	res := d.CheckOutputLine(responseOutputLine("r1", string(valid), false))
	require.Nil(t, res.Err)
	require.Equal(t, "r1", res.CustomID)
	require.NotNil(t, res.Value)

	res = d.CheckOutputLine(responseOutputLine("r1", string(valid[:len(valid)/2]), true))
	require.NotNil(t, res.Err)
	require.Equal(t, conquest.ReasonTruncated, res.Err.Reason)

	res = d.CheckOutputLine(responseOutputLine("r1", "Here it is.", false))
	require.NotNil(t, res.Err)
	require.Equal(t, conquest.ReasonNotJSON, res.Err.Reason)

	res = d.CheckOutputLine([]byte(`{"custom_id":"r3","response":{"status_code":200,"body":{"object":"response","output":[{"type":"message","content":[{"type":"refusal","refusal":"no"}]}]}}}`))
	require.NotNil(t, res.Err)
	require.Equal(t, conquest.ReasonNoAnswer, res.Err.Reason)
	require.Contains(t, res.Err.Message, "refused")

	res = d.CheckOutputLine([]byte(`{"custom_id":"r4","response":{"status_code":200,"body":{"object":"response","output":[]}}}`))
	require.NotNil(t, res.Err)
	require.Equal(t, conquest.ReasonNoAnswer, res.Err.Reason)
}

// TestRoundTripResponses takes a conquest type's sample data through
// POST /v1/conquests/{type}/requests with endpoint /v1/responses, a
// /v1/responses batch on kiln sim, and the output check, on both backends.
func TestRoundTripResponses(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			c := env.Client()
			const typ = "cv_parsing"
			recs := records(t, filepath.Join("..", "testdata", typ+".jsonl"))
			var b built
			api(t, env, http.MethodPost, "/conquests/"+typ+"/requests",
				map[string]any{"records": recs, "model": "sim-model", "file": true, "endpoint": "/v1/responses"}, http.StatusOK, &b)
			require.Len(t, b.Requests, len(recs))
			require.Empty(t, b.Errors)
			require.Equal(t, "/v1/responses", b.Requests[0]["url"])
			require.NotNil(t, b.FileID)
			batch, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: *b.FileID,
				Endpoint: openai.BatchNewParamsEndpointV1Responses, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
			require.NoError(t, err)
			done := kilntest.WaitBatch(t, c, batch.ID)
			require.Equal(t, openai.BatchStatusCompleted, done.Status)
			cq := waitChecked(t, env, done.ID)
			require.Equal(t, typ, cq.Type)
			require.Equal(t, len(recs), cq.Valid, "every output valid")
			require.Zero(t, cq.Invalid)

			// Another endpoint is refused.
			var e struct {
				Error struct {
					Param string `json:"param"`
				} `json:"error"`
			}
			api(t, env, http.MethodPost, "/conquests/"+typ+"/requests",
				map[string]any{"records": recs, "model": "sim-model", "endpoint": "/v1/embeddings"}, http.StatusBadRequest, &e)
		})
	}
}
