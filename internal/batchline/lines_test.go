package batchline

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseInputResponses(t *testing.T) {
	t.Parallel()

	line := func(body string) []byte {
		return []byte(`{"custom_id":"r1","method":"POST","url":"/v1/responses","body":` + body + `}`)
	}
	tests := []struct {
		name     string
		line     []byte
		endpoint string
		code     string // "" when the line is valid
		param    string
	}{
		{"String", line(`{"model":"m","input":"hi"}`), EndpointResponses, "", ""},
		{"Items", line(`{"model":"m","input":[{"role":"user","content":"hi"}]}`), EndpointResponses, "", ""},
		{"NoModel", line(`{"input":"hi"}`), EndpointResponses, CodeMissingModel, "body.model"},
		{"NoInput", line(`{"model":"m"}`), EndpointResponses, CodeMissingInput, "body.input"},
		{"NullInput", line(`{"model":"m","input":null}`), EndpointResponses, CodeMissingInput, "body.input"},
		{"EmptyInput", line(`{"model":"m","input":""}`), EndpointResponses, CodeMissingInput, "body.input"},
		{"NoItems", line(`{"model":"m","input":[]}`), EndpointResponses, CodeMissingInput, "body.input"},
		{"OtherEndpoint", line(`{"model":"m","input":"hi"}`), "/v1/chat/completions", CodeMismatchedURL, "url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, model, p := ParseInput(tt.line, tt.endpoint)
			if tt.code == "" {
				require.Nil(t, p)
				require.Equal(t, "m", model)
				require.Equal(t, "r1", in.CustomID)
				return
			}
			require.NotNil(t, p)
			require.Equal(t, tt.code, p.Code)
			require.Equal(t, tt.param, p.Param)
		})
	}
}

func TestValidateSchemaName(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, endpoint, body, want string
	}{
		{"ResponseFormat", "/v1/chat/completions", `{"model":"m","messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"conquest-x-v1","schema":{}}}}`, "conquest-x-v1"},
		{"TextFormat", EndpointResponses, `{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"conquest-x-v1","schema":{}}}}`, "conquest-x-v1"},
		{"TextFormatText", EndpointResponses, `{"model":"m","input":"hi","text":{"format":{"type":"text"}}}`, ""},
		{"None", EndpointResponses, `{"model":"m","input":"hi"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := `{"custom_id":"a","method":"POST","url":"` + tt.endpoint + `","body":` + tt.body + "}\n"
			open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(file)), nil }
			sum, problems, err := Validate(open, ValidateOpts{Endpoint: tt.endpoint, MaxLineSize: 1 << 20, MaxRequests: 10})
			require.NoError(t, err)
			require.Empty(t, problems)
			require.Equal(t, 1, sum.Requests)
			require.Equal(t, tt.want, sum.SchemaName)
		})
	}
}
