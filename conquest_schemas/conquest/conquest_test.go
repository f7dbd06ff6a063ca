package conquest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/llmsim"
)

var types = []string{"candidate_evaluation", "cartographer", "cv_parsing", "email_evaluation", "quil_email", "report_evaluation"}

func registry(t testing.TB) *conquest.Registry {
	t.Helper()
	r, err := conquest.Load()
	require.NoError(t, err)
	return r
}

func TestLoad(t *testing.T) {
	r := registry(t)
	require.Equal(t, types, r.IDs())
	for _, d := range r.Latest() {
		require.Equal(t, 1, d.Version)
		require.NotEmpty(t, d.Rendering.Output, d.ID)
		require.Equal(t, "conquest-"+d.ID+"-v1", d.SchemaName())
		id, v, ok := conquest.ParseSchemaName(d.SchemaName())
		require.True(t, ok)
		require.Equal(t, d.ID, id)
		require.Equal(t, 1, v)
	}
	_, _, ok := conquest.ParseSchemaName("my-schema")
	require.False(t, ok)
}

// TestBuildSamples: every sample record becomes a request the batch
// validator accepts, carrying the strict output schema and the rendered
// data; every invalid record is left out with its line and reason.
func TestBuildSamples(t *testing.T) {
	r := registry(t)
	for _, id := range types {
		t.Run(id, func(t *testing.T) {
			d, err := r.Get(id, 0)
			require.NoError(t, err)
			in, err := os.ReadFile(filepath.Join("..", "testdata", id+".jsonl"))
			require.NoError(t, err)
			records := bytes.Count(bytes.TrimSpace(in), []byte("\n")) + 1
			var out bytes.Buffer
			rep, err := d.Build(bytes.NewReader(in), &out, conquest.BuildOptions{Model: "sim-model", MaxTokens: 2048}, 1<<20)
			require.NoError(t, err)
			require.Empty(t, rep.Errors)
			require.Equal(t, records, rep.Requests)
			sum, problems, err := batchline.Validate(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out.Bytes())), nil },
				batchline.ValidateOpts{Endpoint: "/v1/chat/completions", MaxLineSize: 1 << 20, MaxRequests: 1000})
			require.NoError(t, err)
			require.Empty(t, problems)
			require.Equal(t, records, sum.Requests)
			require.Equal(t, d.SchemaName(), sum.SchemaName)

			var first struct {
				CustomID string `json:"custom_id"`
				Body     struct {
					Messages []struct {
						Role, Content string
					} `json:"messages"`
					ResponseFormat struct {
						Type       string `json:"type"`
						JSONSchema struct {
							Name   string         `json:"name"`
							Strict bool           `json:"strict"`
							Schema map[string]any `json:"schema"`
						} `json:"json_schema"`
					} `json:"response_format"`
					MaxTokens int `json:"max_tokens"`
				} `json:"body"`
			}
			require.NoError(t, json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &first))
			require.Equal(t, "json_schema", first.Body.ResponseFormat.Type)
			require.True(t, first.Body.ResponseFormat.JSONSchema.Strict)
			require.Equal(t, false, first.Body.ResponseFormat.JSONSchema.Schema["additionalProperties"])
			require.Len(t, first.Body.Messages, 2)
			require.Equal(t, "system", first.Body.Messages[0].Role)
			require.NotContains(t, first.Body.Messages[1].Content, "<no value>")
			require.Equal(t, 2048, first.Body.MaxTokens)
			var rec map[string]any
			require.NoError(t, json.Unmarshal(bytes.SplitN(in, []byte("\n"), 2)[0], &rec))
			for _, f := range d.Data {
				if s, ok := rec[f.Name].(string); ok && f.Type == "string" && len(s) > 20 {
					require.Contains(t, first.Body.Messages[1].Content, s, "the prompt renders %s", f.Name)
				}
			}
		})
	}
}

// TestBuildInvalidRecords: each bad sample line is reported with its line
// number and the field at fault, and becomes no request.
func TestBuildInvalidRecords(t *testing.T) {
	r := registry(t)
	for _, id := range types {
		t.Run(id, func(t *testing.T) {
			d, err := r.Get(id, 0)
			require.NoError(t, err)
			in, err := os.ReadFile(filepath.Join("..", "testdata", "invalid", id+".jsonl"))
			require.NoError(t, err)
			lines := 0
			sc := bufio.NewScanner(bytes.NewReader(in))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				lines++
			}
			var out bytes.Buffer
			rep, err := d.Build(bytes.NewReader(in), &out, conquest.BuildOptions{Model: "m"}, 1<<20)
			require.NoError(t, err)
			require.Zero(t, rep.Requests)
			require.Zero(t, out.Len())
			require.Len(t, rep.Errors, lines)
			for i, e := range rep.Errors {
				require.Equal(t, i+1, e.Line)
				require.NotEmpty(t, e.Message)
			}
		})
	}
	d, _ := r.Get("cv_parsing", 0)
	for _, tc := range []struct{ line, want string }{
		{`{"candidate_id":"c1"}`, "resume_text: is required"},
		{`{"candidate_id":7,"resume_text":"x"}`, "candidate_id: must be a string, got an integer"},
		{`{"candidate_id":"c1","resume_text":"x","nickname":"y"}`, "nickname: is no field of cv_parsing"},
		{`{"candidate_id":"c1","resume_text":"x","custom_id":3}`, "custom_id: must be a non-empty string"},
		{`[1,2]`, "a data record must be a JSON object, got an array"},
		{`{"candidate_id":"c1",`, "not JSON"},
		{`{"candidate_id":"c1","resume_text":"x"} {}`, "more follows"},
	} {
		var out bytes.Buffer
		rep, err := d.Build(strings.NewReader("\n"+tc.line+"\n"), &out, conquest.BuildOptions{Model: "m"}, 1<<20)
		require.NoError(t, err)
		require.Len(t, rep.Errors, 1, tc.line)
		require.Equal(t, 2, rep.Errors[0].Line, "line numbers count blank lines")
		require.Contains(t, rep.Errors[0].Error(), tc.want)
	}
	// Duplicate custom_ids are refused, as the batch validator would.
	var out bytes.Buffer
	rep, err := d.Build(strings.NewReader(`{"candidate_id":"a","resume_text":"x","custom_id":"r1"}`+"\n"+`{"candidate_id":"b","resume_text":"y","custom_id":"r1"}`), &out, conquest.BuildOptions{Model: "m"}, 1<<20)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Requests)
	require.Contains(t, rep.Errors[0].Message, `"r1" is also line 1's`)
}

// minimal is a valid definition; tests break one part at a time.
const minimal = `{
  "id": "toy", "version": 1, "title": "Toy", "description": "A toy.",
  "data": [{"name": "text", "type": "string", "required": true, "description": "d"}],
  "questions": [{"id": "score", "question": "How good?", "guidance": "0 to 10."}],
  "output_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10}}, "required": ["score"], "additionalProperties": false},
  "prompt": {"system": "Answer in JSON.", "user": "{{.Data.text}}\n{{range .Questions}}{{.ID}}: {{.Question}}{{end}}"},
  "rendering": {"data": [{"field": "text", "label": "Text", "format": "text"}],
    "output": [{"pointer": "/score", "label": "Score", "format": "score", "min": 0, "max": 10}]}
}`

// TestBrokenDefinitions: a broken definition fails loading with its file
// and the path inside it.
func TestBrokenDefinitions(t *testing.T) {
	_, err := conquest.LoadFS(fstest.MapFS{"toy.v1.json": {Data: []byte(minimal)}}, ".")
	require.NoError(t, err)
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"syntax", "toy.v1.json", `"A toy."`, `"A toy.",,`, "conquest_schemas/toy.v1.json: line 2, column"},
		{"unknown key", "toy.v1.json", `"title"`, `"titel": "x", "title"`, `unknown field "titel"`},
		{"wrong type", "toy.v1.json", `"version": 1`, `"version": "1"`, "/version: want int"},
		{"file name", "toy.v2.json", "", "", "differ from the file name"},
		{"bad name", "Toy.json", "", "", "the file name must be <id>.v<version>.json"},
		{"field type", "toy.v1.json", `"type": "string", "required"`, `"type": "text", "required"`, "/data/0/type: \"text\""},
		{"question", "toy.v1.json", `"id": "score"`, `"id": "quality"`, "/questions/0/id: \"quality\" is no property"},
		{"not strict", "toy.v1.json", `"additionalProperties": false`, `"additionalProperties": true`, "/output_schema/additionalProperties: must be false"},
		{"not required", "toy.v1.json", `"required": ["score"]`, `"required": []`, "/output_schema/required: must list \"score\""},
		{"bad schema", "toy.v1.json", `"minimum": 0`, `"minimum": "zero"`, "/output_schema"},
		{"template syntax", "toy.v1.json", `{{.Data.text}}`, `{{.Data.text`, "/prompt/user"},
		{"template field", "toy.v1.json", `{{.Data.text}}`, `{{.Data.body}}`, "/prompt"},
		{"pointer", "toy.v1.json", `"pointer": "/score"`, `"pointer": "/grade"`, "/rendering/output/0/pointer"},
		{"score bounds", "toy.v1.json", `"min": 0, "max": 10`, `"min": 10, "max": 0`, "/rendering/output/0: a score needs min < max"},
		{"data view", "toy.v1.json", `"field": "text"`, `"field": "body"`, "/rendering/data/0/field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := minimal
			if tc.old != "" {
				require.Contains(t, body, tc.old)
				body = strings.Replace(body, tc.old, tc.new, 1)
			}
			_, err := conquest.LoadFS(fstest.MapFS{tc.file: {Data: []byte(body)}}, ".")
			require.Error(t, err)
			require.Contains(t, err.Error(), "conquest_schemas/"+tc.file)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestVersions: older versions stay readable; unknown types and versions
// are named errors.
func TestVersions(t *testing.T) {
	v2 := strings.Replace(strings.Replace(minimal, `"version": 1`, `"version": 2`, 1), `"title": "Toy"`, `"title": "Toy 2"`, 1)
	r, err := conquest.LoadFS(fstest.MapFS{"toy.v1.json": {Data: []byte(minimal)}, "toy.v2.json": {Data: []byte(v2)}}, ".")
	require.NoError(t, err)
	d, err := r.Get("toy", 0)
	require.NoError(t, err)
	require.Equal(t, 2, d.Version)
	d, err = r.Get("toy", 1)
	require.NoError(t, err)
	require.Equal(t, "Toy", d.Title)
	require.Equal(t, []int{1, 2}, r.Versions("toy"))
	_, err = r.Get("toy", 3)
	require.True(t, errors.Is(err, conquest.ErrUnknownVersion))
	_, err = r.Get("tool", 0)
	require.True(t, errors.Is(err, conquest.ErrUnknownType))
	require.Contains(t, err.Error(), "toy")
}

// outputLine is a batch output line with the given answer.
func outputLine(customID, content, finish string) []byte {
	b, _ := json.Marshal(map[string]any{"id": "batch_req_1", "custom_id": customID, "error": nil,
		"response": map[string]any{"status_code": 200, "request_id": "req_1", "body": map[string]any{
			"choices": []map[string]any{{"index": 0, "finish_reason": finish, "message": map[string]any{"role": "assistant", "content": content}}}}}})
	return b
}

// TestCheckOutput: valid answers pass; answers that are not JSON, cut
// short, or off the schema fail with their reason.
func TestCheckOutput(t *testing.T) {
	r := registry(t)
	for _, id := range types {
		d, _ := r.Get(id, 0)
		for seed := range uint64(20) {
			out, err := llmsim.GenerateJSON(d.OutputSchema, seed)
			require.NoError(t, err, id)
			res := d.CheckOutputLine(outputLine("r1", string(out), "stop"))
			require.Nil(t, res.Err, "%s seed %d: %v\n%s", id, seed, res.Err, out)
			require.Equal(t, "r1", res.CustomID)
		}
	}
	d, _ := r.Get("cv_parsing", 0)
	valid, err := llmsim.GenerateJSON(d.OutputSchema, 1)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(valid, &v))
	v["skills"] = "not a list"
	offSchema, _ := json.Marshal(v)
	delete(v, "skills")
	v["skills"] = []any{}
	delete(v, "summary")
	missing, _ := json.Marshal(v)
	for _, tc := range []struct {
		name, content, finish, reason, msg string
	}{
		{"prose", "Here is the JSON you asked for.", "stop", conquest.ReasonNotJSON, ""},
		{"truncated", string(valid[:len(valid)/2]), "length", conquest.ReasonTruncated, "max_tokens"},
		{"two values", string(valid) + " {}", "stop", conquest.ReasonNotJSON, "after top-level value"},
		{"wrong type", string(offSchema), "stop", conquest.ReasonSchema, "at /skills"},
		{"missing", string(missing), "stop", conquest.ReasonSchema, "summary"},
	} {
		res := d.CheckOutputLine(outputLine("r1", tc.content, tc.finish))
		require.NotNil(t, res.Err, tc.name)
		require.Equal(t, tc.reason, res.Err.Reason, tc.name)
		require.Contains(t, res.Err.Message, tc.msg, tc.name)
	}
	res := d.CheckOutputLine([]byte(`{"custom_id":"r2","response":{"status_code":500,"body":{}}}`))
	require.Equal(t, conquest.ReasonRequestFail, res.Err.Reason)
	res = d.CheckOutputLine([]byte(`{"custom_id":"r3","response":{"status_code":200,"body":{"choices":[{"message":{"refusal":"no"}}]}}}`))
	require.Equal(t, conquest.ReasonNoAnswer, res.Err.Reason)
	require.Contains(t, res.Err.Message, "refused")
	res = d.CheckOutputLine([]byte(`{"custom_id":`))
	require.Equal(t, conquest.ReasonNotJSON, res.Err.Reason)
}

// BenchmarkCheckCVParsing measures output validation throughput for
// cv_parsing against a baseline that only parses the same lines as JSON,
// in the same run; ratio's of-parse is the check's throughput over the
// baseline's, the two taking turns line by line (1 when checking costs no
// more than parsing).
//
//	go test -run '^$' -bench '^BenchmarkCheckCVParsing$' ./conquest_schemas/conquest
func BenchmarkCheckCVParsing(b *testing.B) {
	r := registry(b)
	d, _ := r.Get("cv_parsing", 0)
	const n = 1000
	lines := make([][]byte, n)
	var size int
	for i := range lines {
		out, err := llmsim.GenerateJSON(d.OutputSchema, uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		lines[i] = outputLine(fmt.Sprintf("r%d", i), string(out), "stop")
		size += len(lines[i])
	}
	parse := func(line []byte) {
		var l struct {
			Response struct {
				Body struct {
					Choices []struct {
						Message struct{ Content string }
					}
				}
			}
		}
		if err := json.Unmarshal(line, &l); err != nil {
			b.Fatal(err)
		}
		var v any
		if err := json.Unmarshal([]byte(l.Response.Body.Choices[0].Message.Content), &v); err != nil {
			b.Fatal(err)
		}
	}
	check := func(line []byte) {
		if res := d.CheckOutputLine(line); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	b.Run("parse-only-baseline", func(b *testing.B) {
		b.SetBytes(int64(size / n))
		for i := 0; b.Loop(); i++ {
			parse(lines[i%n])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "outputs/s")
	})
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(size / n))
		for i := 0; b.Loop(); i++ {
			check(lines[i%n])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "outputs/s")
	})
	// The ratio: each line parsed, then checked, in turn, so that both
	// share whatever else the machine runs.
	b.Run("ratio", func(b *testing.B) {
		var parseTime, checkTime time.Duration
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			parse(lines[i%n])
			t1 := time.Now()
			check(lines[i%n])
			parseTime, checkTime = parseTime+t1.Sub(t0), checkTime+time.Since(t1)
		}
		b.ReportMetric(float64(parseTime)/float64(checkTime), "of-parse")
	})
}
