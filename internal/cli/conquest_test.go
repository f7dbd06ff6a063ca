package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
)

// samplesDir is the conquest sample data, from this package's folder.
const samplesDir = "../../conquest_schemas/testdata"

// kiln runs the command line and returns its exit code, stdout and stderr.
func kiln(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func conquestTypes(t *testing.T) []string {
	t.Helper()
	r, err := conquest.Load()
	require.NoError(t, err)
	require.Len(t, r.IDs(), 6)
	return r.IDs()
}

// records counts the non-blank lines of a data file.
func records(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

func TestConquestList(t *testing.T) {
	code, out, errOut := kiln(t, "conquest", "list")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "TYPE")
	for _, id := range conquestTypes(t) {
		require.Regexp(t, `(?m)^`+id+`\s+1\s+1\s+\S`, out)
	}
}

func TestConquestShow(t *testing.T) {
	code, out, errOut := kiln(t, "conquest", "show", "cv_parsing", "--version", "1")
	require.Equal(t, 0, code, errOut)
	var def struct {
		ID           string         `json:"id"`
		Version      int            `json:"version"`
		OutputSchema map[string]any `json:"output_schema"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &def))
	require.Equal(t, "cv_parsing", def.ID)
	require.Equal(t, 1, def.Version)
	require.NotEmpty(t, def.OutputSchema)

	code, _, errOut = kiln(t, "conquest", "show", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `unknown conquest type "nope"`)
	require.Contains(t, errOut, "cv_parsing, email_evaluation")

	code, _, errOut = kiln(t, "conquest", "show", "cv_parsing", "--version", "9")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "cv_parsing has no version 9; its versions are: 1")
}

func TestConquestBuildSamples(t *testing.T) {
	for _, id := range conquestTypes(t) {
		t.Run(id, func(t *testing.T) {
			path := filepath.Join(samplesDir, id+".jsonl")
			want := records(t, path)
			code, out, errOut := kiln(t, "conquest", "build", "--type", id, "--data", path, "--max-tokens", "2000")
			require.Equal(t, 0, code, errOut)
			require.Contains(t, errOut, "built "+strconv.Itoa(want)+" requests; 0 records left out")
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(nil, 10<<20)
			n := 0
			for sc.Scan() {
				var req struct {
					CustomID string `json:"custom_id"`
					Method   string `json:"method"`
					URL      string `json:"url"`
					Body     struct {
						Model          string `json:"model"`
						MaxTokens      int    `json:"max_tokens"`
						ResponseFormat struct {
							JSONSchema struct {
								Name string `json:"name"`
							} `json:"json_schema"`
						} `json:"response_format"`
					} `json:"body"`
				}
				require.NoError(t, json.Unmarshal(sc.Bytes(), &req))
				require.NotEmpty(t, req.CustomID)
				require.Equal(t, "/v1/chat/completions", req.URL)
				require.Equal(t, "google/gemma-3-4b-it", req.Body.Model)
				require.Equal(t, 2000, req.Body.MaxTokens)
				require.Equal(t, "conquest-"+id+"-v1", req.Body.ResponseFormat.JSONSchema.Name)
				n++
			}
			require.NoError(t, sc.Err())
			require.Equal(t, want, n)
		})
	}
}

func TestConquestBuildInvalid(t *testing.T) {
	path := filepath.Join(samplesDir, "invalid", "cv_parsing.jsonl")
	n := records(t, path)
	require.Positive(t, n)
	outFile := filepath.Join(t.TempDir(), "requests.jsonl")
	code, out, errOut := kiln(t, "conquest", "build", "--type", "cv_parsing", "--data", path, "--out", outFile)
	require.Equal(t, 1, code, errOut)
	require.Empty(t, out)
	for line := 1; line <= n; line++ {
		require.Contains(t, errOut, path+":"+strconv.Itoa(line)+": ")
	}
	require.Contains(t, errOut, path+":1: resume_text: is required")
	require.Contains(t, errOut, "built 0 requests; "+strconv.Itoa(n)+" records left out")
	require.Contains(t, errOut, "kiln: ")
	got, err := os.ReadFile(outFile)
	require.NoError(t, err)
	require.Empty(t, got)
}

// A file of good and bad records: the good ones are written, the bad ones
// reported, and the exit status is 1.
func TestConquestBuildMixed(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(samplesDir, "cv_parsing.jsonl"))
	require.NoError(t, err)
	first, rest, _ := bytes.Cut(good, []byte("\n"))
	second, _, _ := bytes.Cut(rest, []byte("\n"))
	data := filepath.Join(t.TempDir(), "records.jsonl")
	require.NoError(t, os.WriteFile(data, []byte(string(first)+"\n\n{\"candidate_id\":\"x\"}\n[1]\n"+string(second)+"\n"), 0o644))
	code, out, errOut := kiln(t, "conquest", "build", "--type", "cv_parsing", "--data", data)
	require.Equal(t, 1, code, errOut)
	require.Equal(t, 2, strings.Count(out, "\n"))
	// Requests are named by their record's content.
	require.Regexp(t, `"custom_id":"cv_parsing-[0-9a-f]{12}"`, out)
	ids := regexp.MustCompile(`"custom_id":"(cv_parsing-[0-9a-f]{12})"`).FindAllStringSubmatch(out, -1)
	require.Len(t, ids, 2)
	require.NotEqual(t, ids[0][1], ids[1][1])
	require.Contains(t, errOut, data+":3: resume_text: is required\n")
	require.Contains(t, errOut, data+":4: a data record must be a JSON object, got an array\n")
	require.Contains(t, errOut, "built 2 requests; 2 records left out\n")
}

func TestConquestBuildStdin(t *testing.T) {
	f, err := os.Open(filepath.Join(samplesDir, "quil_email.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	old := stdin
	stdin = f
	defer func() { stdin = old }()
	code, out, errOut := kiln(t, "conquest", "build", "--type", "quil_email", "--data", "-", "--model", "sim-model")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, records(t, filepath.Join(samplesDir, "quil_email.jsonl")), strings.Count(out, "\n"))
	require.Contains(t, out, `"model":"sim-model"`)
}

func TestConquestBuildUnknown(t *testing.T) {
	code, _, errOut := kiln(t, "conquest", "build", "--type", "nope", "--data", filepath.Join(samplesDir, "cv_parsing.jsonl"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `unknown conquest type "nope"; the types are: candidate_evaluation, cartographer`)
}

func TestConquestDemo(t *testing.T) {
	start := time.Now()
	code, out, errOut := kiln(t, "conquest", "demo", "--samples", samplesDir, "--dir", t.TempDir(), "--timeout", "45s")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	t.Logf("demo took %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	require.Contains(t, out, "TYPE")
	for _, id := range conquestTypes(t) {
		n := strconv.Itoa(records(t, filepath.Join(samplesDir, id+".jsonl")))
		// requests, completed and valid are all the samples; none invalid.
		require.Regexp(t, `(?m)^`+id+`\s+`+n+`\s+`+n+`\s+`+n+`\s+0\s*$`, out)
	}
	require.Contains(t, errOut, "kiln is serving at http://127.0.0.1:")
	require.NotContains(t, out, "KILN_CLIENT_KEY") // only with --keep
}

func TestConquestDemoNoSamples(t *testing.T) {
	code, _, errOut := kiln(t, "conquest", "demo", "--samples", t.TempDir())
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no sample data at ")
	require.Contains(t, errOut, "--samples DIR")
}
