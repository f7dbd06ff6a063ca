package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/openaispec"
)

// cityJSONSchema is the text.format schema of the structured requests of
// TestSDKResponses.
var cityJSONSchema = map[string]any{
	"type":                 "object",
	"additionalProperties": false,
	"properties": map[string]any{
		"city":       map[string]any{"type": "string", "minLength": 1},
		"population": map[string]any{"type": "integer", "minimum": 0},
	},
	"required": []any{"city", "population"},
}

// responseLines makes n /v1/responses requests built with the SDK's
// ResponseNewParams: even ones free text, odd ones structured by
// cityJSONSchema; every badEvery-th one asks for max_output_tokens 0, so
// the model server answers 400 and the line goes to the error file.
func responseLines(t *testing.T, n, badEvery int) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i := range n {
		p := responses.ResponseNewParams{
			Model:           "sim-model",
			Instructions:    openai.String("Be brief."),
			Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String(fmt.Sprintf("Name city number %d", i))},
			MaxOutputTokens: openai.Int(256),
		}
		if i%2 == 1 {
			p.Text = responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{
				OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{Name: "city", Schema: cityJSONSchema, Strict: openai.Bool(true)},
			}}
		}
		if badEvery > 0 && i%badEvery == badEvery-1 {
			p.MaxOutputTokens = openai.Int(0)
		}
		body, err := json.Marshal(p)
		require.NoError(t, err)
		line, err := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("req-%d", i), "method": "POST", "url": "/v1/responses", "body": json.RawMessage(body)})
		require.NoError(t, err)
		openaispec.MustValidate(t, "BatchRequestInput", line)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// TestSDKResponses runs a /v1/responses batch with the official OpenAI Go
// SDK on both backends: every output line is OpenAI's BatchRequestOutput
// holding a Response the SDK reads, and structured answers are valid
// against their text.format schema.
func TestSDKResponses(t *testing.T) {
	t.Parallel()
	schemaDoc, err := json.Marshal(cityJSONSchema)
	require.NoError(t, err)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaDoc))
	require.NoError(t, err)
	comp := jsonschema.NewCompiler()
	require.NoError(t, comp.AddResource("city.json", doc))
	city, err := comp.Compile("city.json")
	require.NoError(t, err)

	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			c := sdkClient(env)
			ctx := context.Background()
			const n, badEvery = 40, 8
			f, err := c.Files.New(ctx, openai.FileNewParams{
				File:    openai.File(bytes.NewReader(responseLines(t, n, badEvery)), "responses.jsonl", "application/jsonl"),
				Purpose: openai.FilePurposeBatch,
			})
			require.NoError(t, err)
			b, err := c.Batches.New(ctx, openai.BatchNewParams{
				InputFileID:      f.ID,
				Endpoint:         openai.BatchNewParamsEndpointV1Responses,
				CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
			})
			require.NoError(t, err)
			require.Equal(t, "/v1/responses", b.Endpoint)
			openaispec.MustValidate(t, "Batch", []byte(b.RawJSON()))

			b = waitBatch(t, c, b.ID)
			require.Equal(t, openai.BatchStatusCompleted, b.Status, "errors: %v", b.Errors)
			openaispec.MustValidate(t, "Batch", []byte(b.RawJSON()))
			require.Equal(t, "sim-model", b.Model)
			require.Positive(t, b.Usage.InputTokens)
			require.Positive(t, b.Usage.OutputTokens)
			require.Equal(t, b.Usage.InputTokens+b.Usage.OutputTokens, b.Usage.TotalTokens)

			outputs := resultLines(t, c, b.OutputFileID)
			errs := resultLines(t, c, b.ErrorFileID)
			requireExactlyOnce(t, b, n, outputs, errs)
			require.Len(t, errs, n/badEvery)
			var input, output int64
			for _, l := range outputs {
				raw, err := json.Marshal(l)
				require.NoError(t, err)
				openaispec.MustValidate(t, "BatchRequestOutput", raw)
				body, err := json.Marshal(l["response"].(map[string]any)["body"])
				require.NoError(t, err)
				openaispec.MustValidate(t, "Response", body)

				var r responses.Response
				require.NoError(t, json.Unmarshal(body, &r))
				require.Equal(t, responses.ResponseStatusCompleted, r.Status)
				require.Equal(t, "sim-model", r.Model)
				require.Len(t, r.Output, 1)
				require.Equal(t, "message", r.Output[0].Type)
				require.Equal(t, "assistant", string(r.Output[0].Role))
				text := r.OutputText()
				require.NotEmpty(t, text)
				require.Equal(t, r.Usage.InputTokens+r.Usage.OutputTokens, r.Usage.TotalTokens)
				input += r.Usage.InputTokens
				output += r.Usage.OutputTokens

				var id int
				_, err = fmt.Sscanf(l["custom_id"].(string), "req-%d", &id)
				require.NoError(t, err)
				if id%2 == 1 {
					v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(text)))
					require.NoError(t, err, "answer: %s", text)
					require.NoError(t, city.Validate(v), "answer: %s", text)
				}
			}
			// The batch's usage is its responses' input and output tokens.
			require.Equal(t, input, b.Usage.InputTokens)
			require.Equal(t, output, b.Usage.OutputTokens)
			for _, l := range errs {
				raw, err := json.Marshal(l)
				require.NoError(t, err)
				openaispec.MustValidate(t, "BatchRequestOutput", raw)
				require.EqualValues(t, 400, l["response"].(map[string]any)["status_code"])
			}
		})
	}
}

// TestResponsesBadInput: a /v1/responses batch whose lines lack input, or
// name another url, fails validation with the lines' codes, as chat
// completions' do.
func TestResponsesBadInput(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	c := sdkClient(env)
	ctx := context.Background()
	good := `{"custom_id":"a","method":"POST","url":"/v1/responses","body":{"model":"sim-model","input":"hi"}}`
	input := good + "\n" +
		`{"custom_id":"b","method":"POST","url":"/v1/responses","body":{"model":"sim-model"}}` + "\n" +
		`{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","input":"hi"}}` + "\n" +
		`{"custom_id":"d","method":"POST","url":"/v1/responses","body":{"input":"hi"}}` + "\n"
	f, err := c.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader([]byte(input)), "bad.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1Responses,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	b = waitBatch(t, c, b.ID)
	require.Equal(t, openai.BatchStatusFailed, b.Status)
	openaispec.MustValidate(t, "Batch", []byte(b.RawJSON()))
	var got []string
	for _, e := range b.Errors.Data {
		got = append(got, fmt.Sprintf("%d:%s:%s", e.Line, e.Code, e.Param))
	}
	require.Equal(t, []string{"2:missing_input:body.input", "3:mismatched_url:url", "4:missing_model:body.model"}, got)
}
