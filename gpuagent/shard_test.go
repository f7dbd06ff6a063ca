package gpuagent

import (
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
		name    string
		rec     batchline.Record
		in, out int64
	}{
		{"Chat", batchline.Record{OK: true, Data: []byte(`{"response":{"body":{"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}}}`)}, 7, 3},
		{"Response", batchline.Record{OK: true, Data: []byte(`{"response":{"body":{"usage":{"input_tokens":11,"output_tokens":5,"total_tokens":16,"input_tokens_details":{"cached_tokens":0}}}}}`)}, 11, 5},
		{"Failed", batchline.Record{OK: false, Data: []byte(`{"response":{"body":{"usage":{"input_tokens":11,"output_tokens":5}}}}`)}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, out := usageOf(tt.rec)
			require.Equal(t, tt.in, in)
			require.Equal(t, tt.out, out)
		})
	}
}
