package gpuagent

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batchline"
)

func TestIsAnswer(t *testing.T) {
	t.Parallel()

	const (
		chat      = `{"id":"c","object":"chat.completion","choices":[{"index":0}]}`
		embedding = `{"object":"list","data":[{"embedding":[0.1]}]}`
		response  = `{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message"}]}`
	)
	tests := []struct {
		name, endpoint, body string
		want                 bool
	}{
		{"Chat", "/v1/chat/completions", chat, true},
		{"ChatGotResponse", "/v1/chat/completions", response, false},
		{"Embedding", "/v1/embeddings", embedding, true},
		{"Response", batchline.EndpointResponses, response, true},
		{"ResponseEmptyOutput", batchline.EndpointResponses, `{"object":"response","output":[]}`, true},
		{"ResponseGotChat", batchline.EndpointResponses, chat, false},
		{"ResponseNoOutput", batchline.EndpointResponses, `{"object":"response"}`, false},
		{"ResponseOutputNotList", batchline.EndpointResponses, `{"object":"response","output":"hi"}`, false},
		{"ResponseArray", batchline.EndpointResponses, `[1]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, isAnswer(tt.endpoint, []byte(tt.body)))
		})
	}
}

func TestUsageOf(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		rec  batchline.Record
		want usage
	}{
		{"Chat", batchline.Record{OK: true, Data: []byte(`{"response":{"body":{"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}}}`)}, usage{in: 7, out: 3}},
		{"ChatDetails", batchline.Record{OK: true, Data: []byte(`{"response":{"body":{"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,` +
			`"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}}}`)}, usage{in: 7, out: 3, cached: 4, reasoning: 2}},
		{"ChatNullDetails", batchline.Record{OK: true, Data: []byte(`{"response":{"body":{"usage":{"prompt_tokens":7,"completion_tokens":3,` +
			`"prompt_tokens_details":null,"completion_tokens_details":null}}}}`)}, usage{in: 7, out: 3}},
		{"Response", batchline.Record{OK: true, Data: []byte(`{"response":{"body":{"usage":{"input_tokens":11,"output_tokens":5,"total_tokens":16,"input_tokens_details":{"cached_tokens":0}}}}}`)}, usage{in: 11, out: 5}},
		{"ResponseDetails", batchline.Record{OK: true, Data: []byte(`{"response":{"body":{"usage":{"input_tokens":11,"output_tokens":5,"total_tokens":16,` +
			`"input_tokens_details":{"cached_tokens":8},"output_tokens_details":{"reasoning_tokens":1}}}}}`)}, usage{in: 11, out: 5, cached: 8, reasoning: 1}},
		{"Failed", batchline.Record{OK: false, Data: []byte(`{"response":{"body":{"usage":{"input_tokens":11,"output_tokens":5}}}}`)}, usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, usageOf(tt.rec))
		})
	}
}

// isAnswer is parseAnswer's verdict on body, as the agent reads an
// engine's successful answer.
func isAnswer(endpoint string, body []byte) bool {
	a, _, err := parseAnswer(body)
	return a.is(endpoint, err)
}

// usageOf reads the token usage of a successful output line as the agent
// counts it (usageFields); a failed line used none.
func usageOf(rec batchline.Record) usage {
	if !rec.OK {
		return usage{}
	}
	var o struct {
		Response struct {
			Body struct {
				Usage usageFields `json:"usage"`
			} `json:"body"`
		} `json:"response"`
	}
	if json.Unmarshal(rec.Data, &o) != nil {
		return usage{}
	}
	return o.Response.Body.Usage.usage()
}
