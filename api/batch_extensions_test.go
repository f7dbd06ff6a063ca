package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestModelCatalogueAPI: through the OpenAI SDK, a batch naming a model
// kiln does not know fails at once with model_not_found on the line that
// names it; GET /v1/models lists the agents' models with their live agents
// and the configured ones with none; GET /v1/models/{model} finds one or
// answers 404 model_not_found. Both backends.
func TestModelCatalogueAPI(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) { c.Models = []string{"later/model"} }})
			c := sdkClient(env)
			ctx := context.Background()
			input := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"no/such-model","messages":[{"role":"user","content":"hi"}]}}` + "\n"
			b := waitBatch(t, c, createBatch(t, c, []byte(input), "24h").ID)
			require.Equal(t, openai.BatchStatusFailed, b.Status)
			require.Len(t, b.Errors.Data, 1)
			e := b.Errors.Data[0]
			require.Equal(t, "model_not_found", e.Code)
			require.EqualValues(t, 1, e.Line)
			require.Equal(t, "body.model", e.Param)
			require.Equal(t, "no/such-model", b.Model)

			var list api.ModelList
			kilntest.Call(t, env.Base(), env.Key, http.MethodGet, "/v1/models", nil, http.StatusOK, &list)
			byID := map[string]api.Model{}
			for _, m := range list.Data {
				byID[m.ID] = m
			}
			require.Equal(t, api.Model{ID: "later/model", Object: "model", OwnedBy: "kiln", Source: "config"}, byID["later/model"])
			sim := byID["sim-model"]
			require.Equal(t, 1, sim.Agents)
			require.Equal(t, "agent", sim.Source)
			require.True(t, sim.Synthetic)
			require.Equal(t, "kiln-sim", sim.OwnedBy)
			require.Positive(t, sim.Created)

			m, err := c.Models.Get(ctx, "sim-model")
			require.NoError(t, err)
			require.Equal(t, "sim-model", m.ID)
			_, err = c.Models.Get(ctx, "no-such-model")
			var apiErr *openai.Error
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
			require.Equal(t, "model_not_found", apiErr.Code)
		})
	}
}

// TestBatchExtensionsHTTP: the results, retry and lineage routes as a
// client without kiln's CLI uses them: a completed batch's results are its
// files' lines with a done header; bad parameters are 400s in OpenAI's
// envelope; a batch with nothing failed cannot be retried; its lineage is
// itself.
func TestBatchExtensionsHTTP(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	c := sdkClient(env)
	b := waitBatch(t, c, createBatch(t, c, chatLines(20, 5), "24h").ID)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)

	get := func(query string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodGet, env.URL+"/batches/"+b.ID+"/results"+query, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+env.Key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}
	resp, body := get("")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "application/jsonl", resp.Header.Get("Content-Type"))
	require.Equal(t, "true", resp.Header.Get(api.HeaderResultsDone))
	require.Equal(t, "20", resp.Header.Get(api.HeaderResultLines))
	require.Equal(t, "completed", resp.Header.Get(api.HeaderBatchStatus))
	var files bytes.Buffer
	for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
		r, err := c.Files.Content(context.Background(), id)
		require.NoError(t, err)
		_, err = io.Copy(&files, r.Body)
		r.Body.Close()
		require.NoError(t, err)
	}
	lines := func(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
	require.ElementsMatch(t, lines(files.String()), lines(body), "the files' lines, in another order")

	// Page by page: 7 lines, then the rest.
	resp, body = get("?limit=7")
	require.Equal(t, "7", resp.Header.Get(api.HeaderResultLines))
	require.Equal(t, "false", resp.Header.Get(api.HeaderResultsDone))
	first := body
	resp, body = get("?after=" + resp.Header.Get(api.HeaderNextAfter))
	require.Equal(t, "13", resp.Header.Get(api.HeaderResultLines))
	require.Equal(t, "true", resp.Header.Get(api.HeaderResultsDone))
	_, whole := get("")
	require.Equal(t, whole, first+body)

	for _, q := range []string{"?after=nope", "?wait=61", "?limit=-1"} {
		resp, body = get(q)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
		require.Contains(t, body, `"type":"invalid_request_error"`, q)
	}

	var lineage api.BatchLineage
	kilntest.Call(t, env.Base(), env.Key, http.MethodGet, "/v1/batches/"+b.ID+"/lineage", nil, http.StatusOK, &lineage)
	require.Len(t, lineage.Data, 1)
	require.Equal(t, api.BatchRequestCounts{Total: 20, Completed: b.RequestCounts.Completed, Failed: b.RequestCounts.Failed}, lineage.RequestCounts)

	// The error lines are the model server's 400s: retrying 5xx finds none.
	var errBody struct {
		Error struct{ Code, Param, Message string }
	}
	kilntest.Call(t, env.Base(), env.Key, http.MethodPost, "/v1/batches/"+b.ID+"/retry", map[string]any{"codes": []string{"5xx"}},
		http.StatusBadRequest, &errBody)
	require.Equal(t, "nothing_to_retry", errBody.Error.Code)
	require.Equal(t, "codes", errBody.Error.Param)
	var retry api.Batch
	kilntest.Call(t, env.Base(), env.Key, http.MethodPost, "/v1/batches/"+b.ID+"/retry", map[string]any{"codes": []string{"4xx"}},
		http.StatusOK, &retry)
	require.Equal(t, b.ID, retry.Metadata["retry_of"])
	r := waitBatch(t, c, retry.ID)
	require.EqualValues(t, b.RequestCounts.Failed, r.RequestCounts.Total, "the failed requests, and only those")
	kilntest.Call(t, env.Base(), env.Key, http.MethodGet, "/v1/batches/"+retry.ID+"/lineage", nil, http.StatusOK, &lineage)
	require.Len(t, lineage.Data, 2)
	require.EqualValues(t, 20, lineage.RequestCounts.Total)
	require.Equal(t, fmt.Sprint(r.RequestCounts.Failed), fmt.Sprint(lineage.RequestCounts.Failed), "still failing: the retry's failures")
}
