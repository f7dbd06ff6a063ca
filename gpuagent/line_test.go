package gpuagent

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batchline"
)

// TestAppendOutputLine checks that the output line written by hand is
// json.Marshal's, byte for byte, or is left to json.Marshal.
func TestAppendOutputLine(t *testing.T) {
	t.Parallel()

	bodies := []string{
		`{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"content":"hello world"}}],"usage":{"prompt_tokens":3}}`,
		`{"a":"quote \" and backslash \\ and \u003c","b":[1,2.5e3,true,false,null]}`,
		`{"a":"<b>"}`,
		`{"a":"x & y"}`,
		"{\"a\":\"line\u2028sep\"}",
		"{\"a\":\"dash \u2014 é\"}",
		`{"a": 1}`,
		"{\"a\":1}\n",
		` {"a":1}`,
		`{"a":"tab\tin string"}`,
		`[1,{"b":"c"}]`,
		`"just a string"`,
	}
	customIDs := []string{"req-1", `with "quotes"`, "tab\there", "<html>", "é", ""}
	for _, body := range bodies {
		for _, cid := range customIDs {
			r := &batchline.Response{StatusCode: 200, RequestID: "req_01abc", Body: json.RawMessage(body), LatencyMS: 12}
			want, err := json.Marshal(batchline.Output{ID: "batch_req_01xyz", CustomID: cid, Response: r})
			require.NoError(t, err)
			got, ok := appendOutputLine([]byte("prefix"), "batch_req_01xyz", cid, r)
			if !ok {
				require.Equal(t, "prefix", string(got), "nothing appended when it declines")
				continue
			}
			require.Equal(t, "prefix"+string(want), string(got), "body %q custom_id %q", body, cid)
		}
	}
	// The plain case is written by hand, not left to json.Marshal.
	_, ok := appendOutputLine(nil, "batch_req_1", "req-1", &batchline.Response{StatusCode: 200, RequestID: "req_1", Body: json.RawMessage(bodies[0]), LatencyMS: 1})
	require.True(t, ok)
}

// TestParseAnswerUsage checks that one pass over a body reads what
// isAnswer and usageOf read of it.
func TestParseAnswerUsage(t *testing.T) {
	t.Parallel()

	for _, body := range []string{
		`{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}`,
		`{"choices":[],"usage":{"prompt_tokens":"7","completion_tokens":3}}`,
		`{"choices":[],"usage":{"prompt_tokens":7},"usage":{"completion_tokens":3}}`,
		`{"choices":[],"usage":null}`,
		`{"choices":[],"usage":5}`,
		`{"Choices":[],"USAGE":{"input_tokens":11,"output_tokens_details":{"reasoning_tokens":1}}}`,
		`{"choices":null,"usage":{"prompt_tokens":7}}`,
		`{"choices":{},"usage":{"prompt_tokens":7}}`,
	} {
		a, notJSON, err := parseAnswer([]byte(body))
		require.False(t, notJSON)
		line, merr := json.Marshal(batchline.Output{Response: &batchline.Response{StatusCode: 200, Body: json.RawMessage(body)}})
		require.NoError(t, merr)
		var ref struct {
			Choices []json.RawMessage `json:"choices"`
		}
		isAnswer := json.Unmarshal([]byte(body), &ref) == nil && ref.Choices != nil
		require.Equal(t, isAnswer, a.is("/v1/chat/completions", err), body)
		if isAnswer { // only an answer's usage counts
			require.Equal(t, usageOf(batchline.Record{OK: true, Data: line}), a.Usage.usage(), body)
		}
	}
	_, notJSON, _ := parseAnswer([]byte(`{"choices":[`))
	require.True(t, notJSON)
	_, notJSON, _ = parseAnswer(nil)
	require.True(t, notJSON)
}
