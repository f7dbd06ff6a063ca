package conquest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/kilntest"
)

// api calls kiln's API with the test key and decodes the answer.
func api(t *testing.T, env *kilntest.Env, method, path string, body any, want int, into any) {
	t.Helper()
	kilntest.Call(t, env.Base(), env.Key, method, "/v1"+path, body, want, into)
}

type batchConquest struct {
	Type      string `json:"type"`
	Version   int    `json:"version"`
	CheckedAt *int64 `json:"checked_at"`
	Valid     int    `json:"valid"`
	Invalid   int    `json:"invalid"`
	Error     string `json:"error"`
}

// waitChecked waits until the batch's outputs were checked.
func waitChecked(t *testing.T, env *kilntest.Env, id string) batchConquest {
	t.Helper()
	var b struct {
		Conquest *batchConquest `json:"conquest"`
	}
	kilntest.Eventually(t, time.Minute, func() bool {
		api(t, env, http.MethodGet, "/batches/"+id, nil, http.StatusOK, &b)
		return b.Conquest != nil && b.Conquest.CheckedAt != nil
	}, "batch %s's outputs to be checked", id)
	return *b.Conquest
}

func records(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		out = append(out, rec)
	}
	return out
}

type built struct {
	Type     string           `json:"type"`
	Version  int              `json:"version"`
	Requests []map[string]any `json:"requests"`
	Errors   []map[string]any `json:"errors"`
	FileID   *string          `json:"file_id"`
}

// TestRoundTrip takes every conquest type from sample data to requests
// (POST /v1/conquests/{type}/requests), through kiln sim (schema-valid
// JSON), to outputs checked valid against the type's schema.
func TestRoundTrip(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			c := env.Client()
			var list struct {
				Data []struct {
					ID       string `json:"id"`
					Versions []int  `json:"versions"`
				} `json:"data"`
			}
			api(t, env, http.MethodGet, "/conquests", nil, http.StatusOK, &list)
			require.Len(t, list.Data, len(types))
			batches := map[string]string{}
			sizes := map[string]int{}
			for _, typ := range types {
				recs := records(t, filepath.Join("..", "testdata", typ+".jsonl"))
				var b built
				api(t, env, http.MethodPost, "/conquests/"+typ+"/requests",
					map[string]any{"records": recs, "model": "sim-model", "file": true}, http.StatusOK, &b)
				require.Len(t, b.Requests, len(recs), typ)
				require.Empty(t, b.Errors, typ)
				require.NotNil(t, b.FileID, typ)
				batch, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: *b.FileID,
					Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
				require.NoError(t, err)
				batches[typ], sizes[typ] = batch.ID, len(recs)
			}
			for _, typ := range types {
				b := kilntest.WaitBatch(t, c, batches[typ])
				require.Equal(t, openai.BatchStatusCompleted, b.Status, typ)
				cq := waitChecked(t, env, b.ID)
				require.Equal(t, typ, cq.Type)
				require.Equal(t, 1, cq.Version)
				require.Equal(t, sizes[typ], cq.Valid, "%s: every output valid", typ)
				require.Zero(t, cq.Invalid, typ)
				var outs struct {
					Data []map[string]any `json:"data"`
				}
				api(t, env, http.MethodGet, "/batches/"+b.ID+"/conquest_outputs", nil, http.StatusOK, &outs)
				require.Len(t, outs.Data, sizes[typ])
				for _, o := range outs.Data {
					require.Equal(t, true, o["valid"])
				}
			}
		})
	}
}

// TestConquestBadInput: bad records, unknown types and versions, and
// outputs cut short are recorded with their reason; kiln keeps running.
func TestConquestBadInput(t *testing.T) {
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	c := env.Client()

	// Unknown type or version: 404 in OpenAI's envelope.
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	api(t, env, http.MethodGet, "/conquests/cv_parse", nil, http.StatusNotFound, &e)
	require.Equal(t, "unknown_conquest_type", e.Error.Code)
	require.Contains(t, e.Error.Message, "cv_parsing")
	api(t, env, http.MethodGet, "/conquests/cv_parsing?version=9", nil, http.StatusNotFound, &e)
	require.Equal(t, "unknown_conquest_version", e.Error.Code)

	// Bad records are left out with their position; none good is a 400.
	good := records(t, filepath.Join("..", "testdata", "cv_parsing.jsonl"))[0]
	bad := []map[string]any{good, {"candidate_id": "c9"}, {"candidate_id": 5, "resume_text": "x"}}
	var b built
	api(t, env, http.MethodPost, "/conquests/cv_parsing/requests", map[string]any{"records": bad, "model": "sim-model"}, http.StatusOK, &b)
	require.Len(t, b.Requests, 1)
	require.Len(t, b.Errors, 2)
	require.EqualValues(t, 2, b.Errors[0]["line"])
	require.Equal(t, "resume_text", b.Errors[0]["field"])
	require.EqualValues(t, 3, b.Errors[1]["line"])
	api(t, env, http.MethodPost, "/conquests/cv_parsing/requests", map[string]any{"records": bad[1:], "model": "sim-model"}, http.StatusBadRequest, &e)
	require.Contains(t, e.Error.Message, "line 1: resume_text: is required")

	// Answers cut short by max_tokens are invalid, as truncated.
	api(t, env, http.MethodPost, "/conquests/cv_parsing/requests",
		map[string]any{"records": []map[string]any{good}, "model": "sim-model", "max_tokens": 3, "file": true}, http.StatusOK, &b)
	batch, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: *b.FileID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	kilntest.WaitBatch(t, c, batch.ID)
	cq := waitChecked(t, env, batch.ID)
	require.Equal(t, 0, cq.Valid)
	require.Equal(t, 1, cq.Invalid)
	var outs struct {
		Data []map[string]any `json:"data"`
	}
	api(t, env, http.MethodGet, "/batches/"+batch.ID+"/conquest_outputs?valid=false", nil, http.StatusOK, &outs)
	require.Len(t, outs.Data, 1)
	require.Equal(t, "truncated", outs.Data[0]["reason"])

	// A request naming a version kiln does not know: the batch runs, and
	// records why its outputs could not be checked.
	line := b.Requests[0]
	body := line["body"].(map[string]any)
	body["max_tokens"] = 4096
	body["response_format"].(map[string]any)["json_schema"].(map[string]any)["name"] = "conquest-cv_parsing-v9"
	raw, _ := json.Marshal(line)
	f, err := c.Files.New(context.Background(), openai.FileNewParams{File: openai.File(bytes.NewReader(append(raw, '\n')), "v9.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	batch, err = c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: f.ID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, kilntest.WaitBatch(t, c, batch.ID).Status)
	cq = waitChecked(t, env, batch.ID)
	require.Equal(t, 9, cq.Version)
	require.Contains(t, cq.Error, "no version 9")
}
