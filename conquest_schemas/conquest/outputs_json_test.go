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
}

// TestFastPath: the fast path reads usual answers and output lines, and
// agrees with encoding/json on the seeds.
func TestFastPath(t *testing.T) {
	t.Parallel()
	_, ok := decodeAnswer([]byte(fastSeeds[0]))
	require.True(t, ok)
	_, ok = decodeOutputLine([]byte(fastSeeds[17]))
	require.True(t, ok)
	_, ok = decodeOutputLine([]byte(fastSeeds[21]))
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
	if l, ok := decodeOutputLine(doc); ok {
		var want outputLineJSON
		require.NoError(t, json.Unmarshal(doc, &want), "the fast path read %q", doc)
		require.Equal(t, want, l)
	}
}
