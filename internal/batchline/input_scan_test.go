package batchline

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// inputLines are lines for the fast path's tests and the fuzz test's seeds:
// usual ones, which scanInput must accept, and the corners of
// encoding/json that it leaves to parseInputJSON.
var inputLines = []struct {
	name, line string
	fast       bool // scanInput accepts it (for /v1/chat/completions)
}{
	{"Chat", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}`, true},
	{"Spaces", " \t{ \"custom_id\" : \"r1\" ,\"method\":\"POST\",\r\n\"url\":\"/v1/chat/completions\", \"body\" : { \"model\" : \"m\" , \"n\" : [ 1 , -2.5e+3 , true , false , null , { } , [ ] ] } } ", true},
	{"OtherFields", `{"x":{"a":[1,{"b":"\u00e9\"\\"}]},"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m","input":null},"y":0}`, true},
	{"Unicode", `{"custom_id":"résumé-東京","method":"POST","url":"/v1/chat/completions","body":{"model":"qwen-ü","messages":[{"content":"naïve 😀"}]}}`, true},
	{"LastWins", `{"custom_id":"a","custom_id":"b","method":"GET","method":"POST","url":"/v1/chat/completions","body":1,"body":{"model":2,"model":"m"}}`, true},
	{"EscapedID", `{"custom_id":"r\u0031","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"EscapedModel", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m\/1"}}`, false},
	{"NULInID", `{"custom_id":"r\u0000","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"FoldedKey", `{"Custom_ID":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"FoldedBodyKey", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"MODEL":"m"}}`, false},
	{"UnicodeFoldedKey", `{"cuſtom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"EscapedKey", `{"custom\u005fid":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"NullID", `{"custom_id":"r1","custom_id":null,"method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"NumberID", `{"custom_id":1,"method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"NoModel", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":null}}`, false},
	{"BodyNotObject", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"},"body":[]}`, false},
	{"Get", `{"custom_id":"r1","method":"GET","url":"/v1/chat/completions","body":{"model":"m"}}`, false},
	{"OtherURL", `{"custom_id":"r1","method":"POST","url":"/v1/embeddings","body":{"model":"m"}}`, false},
	{"TrailingBracket", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}} ]`, false},
	{"TwoValues", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}} {}`, false},
	{"Truncated", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}`, false},
	{"BadNumber", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m","n":01}}`, false},
	{"BadEscape", `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m","s":"\x"}}`, false},
	{"ControlChar", "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"s\":\"a\tb\"}}", false},
	{"InvalidUTF8", "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"s\":\"\xff\"}}", false},
	{"Surrogate", "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"s\":\"\xed\xa0\x80\"}}", false},
	{"Array", `[1]`, false},
	{"Null", `null`, false},
}

// TestScanInput: scanInput takes the usual lines, which keeps Validate
// fast, and leaves the rest to parseInputJSON; ParseInput answers as
// parseInputJSON does either way.
func TestScanInput(t *testing.T) {
	t.Parallel()
	for _, tt := range inputLines {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, ok := scanInput([]byte(tt.line), "/v1/chat/completions")
			require.Equal(t, tt.fast, ok)
			requireSameParse(t, []byte(tt.line), "/v1/chat/completions")
		})
	}
	for _, body := range []string{`{"model":"m","input":"hi"}`, `{"model":"m","input":[ ]}`, `{"model":"m","input":null}`, `{"model":"m","input":[]}`, `{"model":"m","input":""}`, `{"model":"m"}`} {
		line := []byte(`{"custom_id":"r1","method":"POST","url":"/v1/responses","body":` + body + `}`)
		requireSameParse(t, line, EndpointResponses)
	}
}

// FuzzParseInput: ParseInput, with its fast path, reads any line as
// parseInputJSON (encoding/json) does: the same request, model and problem.
//
//	go test -run '^$' -fuzz '^FuzzParseInput$' ./internal/batchline
func FuzzParseInput(f *testing.F) {
	for _, tt := range inputLines {
		f.Add([]byte(tt.line), false)
	}
	f.Add([]byte(`{"custom_id":"r1","method":"POST","url":"/v1/responses","body":{"model":"m","input":[{"role":"user","content":"hi"}]}}`), true)
	f.Add([]byte(`{"custom_id":"r1","method":"POST","url":"/v1/responses","body":{"model":"m","input":[]}}`), true)
	f.Fuzz(func(t *testing.T, line []byte, responses bool) {
		endpoint := "/v1/chat/completions"
		if responses {
			endpoint = EndpointResponses
		}
		requireSameParse(t, line, endpoint)
	})
}

func requireSameParse(t *testing.T, line []byte, endpoint string) {
	t.Helper()
	in, model, p := ParseInput(line, endpoint)
	wantIn, wantModel, wantP := parseInputJSON(line, endpoint)
	require.Equal(t, wantP, p)
	require.Equal(t, wantModel, model)
	require.Equal(t, wantIn, in)
	if v, ok := scanInput(line, endpoint); ok {
		require.Nil(t, wantP, "scanInput accepted a line with a problem")
		require.Equal(t, wantIn.CustomID, string(v.customID))
		require.Equal(t, string(wantIn.Body), string(v.body))
		require.Equal(t, wantModel, string(v.model))
	}
}
