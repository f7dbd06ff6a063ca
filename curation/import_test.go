package curation

import (
	"testing"

	"github.com/kilnhq/kiln/internal/store"
	"github.com/stretchr/testify/require"
)

// TestParseOutput: an output is kept with what its line says of it, from
// a chat completion or a response; a usage of the wrong type leaves the
// tokens out, not the output; without a conquest type, any answered
// request is valid.
func TestParseOutput(t *testing.T) {
	t.Parallel()
	ms := int64(40)
	for _, c := range []struct {
		line, id string
		want     store.CurationOutput
	}{
		{`{"custom_id":"a","response":{"status_code":200,"latency_ms":40,"body":{"model":"m1","choices":[{"message":{"content":"hi"}}],` +
			`"usage":{"prompt_tokens":3,"completion_tokens":1}}}}`, "a",
			store.CurationOutput{BatchID: "batch_x", Model: "m1", Valid: true, Content: "hi", InputTokens: 3, OutputTokens: 1, LatencyMS: &ms}},
		{`{"custom_id":"b","response":{"status_code":200,"body":{"object":"response","output":[{"type":"message",` +
			`"content":[{"type":"output_text","text":"yes"}]}],"usage":{"input_tokens":"many","output_tokens":2}}}}`, "b",
			store.CurationOutput{BatchID: "batch_x", Model: "sim", Valid: true, Content: "yes", OutputTokens: 2}},
		{`{"custom_id":"c","response":{"status_code":200,"body":{"choices":[{"message":{"content":null}}]}}}`, "c",
			store.CurationOutput{BatchID: "batch_x", Model: "sim", Valid: true}},
		{`{"custom_id":"d","response":null,"error":{"code":"x","message":"y"}}`, "d",
			store.CurationOutput{BatchID: "batch_x", Model: "sim", Reason: "request_failed", Message: "the request got no successful answer"}},
		{`{"response":{"status_code":200}}`, "", store.CurationOutput{}},
		{`not json`, "", store.CurationOutput{}},
	} {
		o, id := parseOutput([]byte(c.line), "batch_x", "sim", nil)
		require.Equal(t, c.id, id, c.line)
		require.Equal(t, c.want, o, c.line)
	}
}
