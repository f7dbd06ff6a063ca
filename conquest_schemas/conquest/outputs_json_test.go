package conquest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// fastSeeds are answers and output lines for the fast path's tests and the
// fuzz test's seeds, with the corners of encoding/json it leaves to it.
var fastSeeds = []string{
	`{"name":"Ada","skills":["go","sql"],"years":12,"score":-1.5e3,"ok":true,"no":false,"x":null,"o":{},"a":[]}`,
	` [1, "two", {"three": [3.0, 0, -0]}] `,
	`"\u00e9\ud83d\ude00\ud800\u0041\"\\\/\b\f\n\r\t"`,
	`{"k\u0065y":1,"key":2}`,
	`{"a":1,"a":2}`,
	`{"a":1} {"b":2}`, `{"a":1}]`, `[01]`, `[1.]`, `["\x"]`, "[\"\t\"]", "[\"\xff\"]", `[tru]`, `{"a" 1}`, `[1,]`, `{,}`, ``,
	`{"custom_id":"r1","response":{"status_code":200,"body":{"choices":[{"index":0,"message":{"role":"assistant","content":"{\"a\":1}"},"finish_reason":"stop"}]}}}`,
	`{"custom_id":"r2","response":null,"error":{"code":"x","message":"y"}}`,
	`{"custom_id":"r3","response":{"status_code":500,"body":{}}}`,
	`{"custom_id":"r4","response":{"status_code":200,"body":{"choices":[{"message":{"content":null,"refusal":"no"}}]}}}`,
	`{"custom_id":"r5","response":{"status_code":200,"body":{"object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"reasoning"},{"type":"message","content":[{"type":"output_text","text":"{\"a\":"}]}]}}}`,
	`{"Custom_ID":"r6","response":{"status_code":200,"body":{}}}`,
	`{"custom_id":"r7","response":{"status_code":200,"status_code":201,"body":{}}}`,
	`{"custom_id":"r8","response":{"status_code":2e2,"body":{}}}`,
	`{"custom_id":"r9","response":{"status_code":200,"body":{"choices":[{"message":{"content":1}}]}}}`,
	`{"cuſtom_id":"r10"}`,
	`{"custom_id":"r11","response":{"status_code":200,"body":{"choices":[],"output":[{"type":"message","content":[]}]}}}`,
	`{"custom_id":"r\u0031","response":{"status_code":200,"body":{"choices":[{"message":{"content":"1"}}]}}}`,
	`{"custom_id":"r12","response":{"status_code":200,"latency_ms":null,"body":{"model":"m","usage":{"prompt_tokens":1.5}}}}`,
	`{"custom_id":"r13","response":{"status_code":200,"latency_ms":"7","body":{"usage":null,"model":null}}}`,
	`{"custom_id":"r14","response":{"status_code":200,"latency_ms":9223372036854775808,"body":{"usage":{"input_tokens":-0,"output_tokens":null}}}}`,
	`{"custom_id":"r15","response":{"status_code":200,"latency_ms":120,"body":{"model":"sim","choices":[{"message":{"content":"{}"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}}}`,
}

// TestFastPath: the fast path reads usual answers and output lines, and
// agrees with encoding/json on the seeds.
func TestFastPath(t *testing.T) {
	t.Parallel()
	_, ok := decodeAnswer([]byte(fastSeeds[0]))
	require.True(t, ok)
	_, _, ok = decodeOutputLine([]byte(fastSeeds[17]))
	require.True(t, ok)
	_, _, ok = decodeOutputLine([]byte(fastSeeds[21]))
	require.True(t, ok)
	_, _, ok = decodeOutputLine([]byte(fastSeeds[len(fastSeeds)-1]))
	require.True(t, ok)
	_, ok = decodeCustomID([]byte(fastSeeds[17]))
	require.True(t, ok)
	for _, s := range fastSeeds {
		requireSameDecode(t, []byte(s))
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	_, ok = decodeAnswer([]byte(deep))
	require.False(t, ok)
	requireSameDecode(t, []byte(deep))
}

// FuzzCheckOutputFast: the fast path reads any answer as
// jsonschema.UnmarshalJSON does, and any output line as json.Unmarshal
// does, or leaves it to them.
//
//	go test -run '^$' -fuzz '^FuzzCheckOutputFast$' ./conquest_schemas/conquest
func FuzzCheckOutputFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		requireSameDecode(t, doc)
	})
}

func requireSameDecode(t *testing.T, doc []byte) {
	t.Helper()
	if v, ok := decodeAnswer(doc); ok {
		want, err := jsonschema.UnmarshalJSON(strings.NewReader(string(doc)))
		require.NoError(t, err, "the fast path read %q", doc)
		require.Equal(t, want, v)
	}
	if l, m, ok := decodeOutputLine(doc); ok {
		var want outputLineJSON
		require.NoError(t, json.Unmarshal(doc, &want), "the fast path read %q", doc)
		require.Equal(t, want, l)
		var wantMeta outputMetaJSON
		require.NoError(t, json.Unmarshal(doc, &wantMeta), "the fast path read %q", doc)
		require.Equal(t, wantMeta, m)
	}
	if id, ok := decodeCustomID(doc); ok {
		var want struct {
			CustomID string `json:"custom_id"`
		}
		require.NoError(t, json.Unmarshal(doc, &want), "the fast path read %q", doc)
		require.Equal(t, want.CustomID, id)
	}
}

// TestReadOutputLine: what an output line says of its answer (model,
// tokens, latency) is read with it, from chat completions and responses
// alike, and a field of the wrong type there leaves that field out, not
// the line.
func TestReadOutputLine(t *testing.T) {
	t.Parallel()
	ms := int64(120)
	for _, c := range []struct {
		line string
		want OutputLine
	}{
		{fastSeeds[len(fastSeeds)-1], OutputLine{CustomID: "r15", StatusCode: 200, Content: "{}", Model: "sim",
			InputTokens: 12, OutputTokens: 3, LatencyMS: &ms}},
		{`{"custom_id":"r16","response":{"status_code":200,"latency_ms":120,"body":{"object":"response","model":"m2",` +
			`"output":[{"type":"message","content":[{"type":"output_text","text":"{\"a\":1}"}]}],"usage":{"input_tokens":7,"output_tokens":5}}}}`,
			OutputLine{CustomID: "r16", StatusCode: 200, Content: `{"a":1}`, Model: "m2", InputTokens: 7, OutputTokens: 5, LatencyMS: &ms}},
		{`{"custom_id":"r17","response":{"status_code":200,"latency_ms":"slow","body":{"model":"m","choices":[{"message":{"content":"x"}}],` +
			`"usage":{"prompt_tokens":1.5,"completion_tokens":2}}}}`,
			OutputLine{CustomID: "r17", StatusCode: 200, Content: "x", Model: "m", OutputTokens: 2}},
		{`{"custom_id":"r18","response":{"status_code":429,"body":{"error":{"message":"busy"}}}}`,
			OutputLine{CustomID: "r18", StatusCode: 429, Err: &OutputError{Reason: ReasonRequestFail, Message: "the request got no successful answer"}}},
	} {
		require.Equal(t, c.want, ReadOutputLine([]byte(c.line)), c.line)
		require.Equal(t, c.want.CustomID, OutputCustomID([]byte(c.line)))
	}
	require.Equal(t, ReasonNotJSON, ReadOutputLine([]byte(`{"custom_id":`)).Err.Reason)
	require.Empty(t, OutputCustomID([]byte(`{"custom_id":`)))
	require.Equal(t, "r\u00e9", OutputCustomID([]byte(`{"response":{"body":[1,{"a":null}]},"custom_id":"r\u00e9"}`)))
}
