package curation_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// client calls kiln's API with a bearer token.
type client struct {
	t     testing.TB
	base  string
	token string
}

func (c client) do(method, path string, body any, want int, into any) {
	c.t.Helper()
	kilntest.Call(c.t, c.base, c.token, method, path, body, want, into)
}

func records(t *testing.T, typ string) []map[string]any {
	raw, err := os.ReadFile(filepath.Join("..", "conquest_schemas", "testdata", typ+".jsonl"))
	require.NoError(t, err)
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		out = append(out, r)
	}
	return out
}

// runConquest builds requests of typ for model and runs them as a batch.
func runConquest(t *testing.T, env *kilntest.Env, api client, typ, model string, recs []map[string]any) string {
	var built struct {
		FileID string `json:"file_id"`
	}
	api.do(http.MethodPost, "/v1/conquests/"+typ+"/requests", map[string]any{"records": recs, "model": model, "file": true}, 200, &built)
	c := env.Client()
	b, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: built.FileID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, kilntest.WaitBatch(t, c, b.ID).Status)
	return b.ID
}

type taskList struct {
	Data []struct {
		ID      string `json:"id"`
		Key     string `json:"key"`
		Outputs int    `json:"outputs"`
		Version int64  `json:"version"`
	} `json:"data"`
	HasMore bool    `json:"has_more"`
	LastID  *string `json:"last_id"`
}

type task struct {
	ID      string  `json:"id"`
	Version int64   `json:"version"`
	Status  string  `json:"status"`
	Gold    *string `json:"gold_output_id"`
	Outputs []struct {
		ID             string  `json:"id"`
		Model          string  `json:"model"`
		Valid          bool    `json:"valid"`
		Parsed         any     `json:"parsed"`
		Content        string  `json:"content"`
		Rating         *int    `json:"rating"`
		LatencyMS      *int64  `json:"latency_ms"`
		Corrected      *string `json:"corrected"`
		CorrectedValid *bool   `json:"corrected_valid"`
	} `json:"outputs"`
	Rendering *struct {
		Output []map[string]any `json:"output"`
	} `json:"rendering"`
	Data    map[string]any   `json:"data"`
	History []map[string]any `json:"history"`
}

// TestCurationEndToEnd: a batch of one conquest type runs on two models; it
// is imported (once), annotated through the API, and exported in every
// format, each export checked line by line.
func TestCurationEndToEnd(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testEndToEnd(t, backend)
		})
	}
}

func testEndToEnd(t *testing.T, backend string) {
	env := kilntest.Start(t, backend, kilntest.Options{})
	base := strings.TrimSuffix(env.URL, "/v1")
	api := client{t: t, base: base, token: env.Key}
	_, secret, err := curation.CreateCurator(context.Background(), env.App.Store, "Ada", curation.RoleCurator)
	require.NoError(t, err)
	cur := client{t: t, base: base, token: secret}
	_, adminKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	admin := client{t: t, base: base, token: adminKey}

	// Keys stay apart: an API key is no curator key, and the reverse.
	api.do(http.MethodGet, "/v1/curation/tasks", nil, http.StatusUnauthorized, nil)
	cur.do(http.MethodGet, "/v1/batches", nil, http.StatusUnauthorized, nil)

	recs := records(t, "email_evaluation")
	batchA := runConquest(t, env, api, "email_evaluation", "sim-model", recs)
	batchB := runConquest(t, env, api, "email_evaluation", "Qwen/Qwen2.5-3B-Instruct", recs)

	// The import function runs when each batch ends: one task per record,
	// one output per model.
	var list taskList
	kilntest.Eventually(t, time.Minute, func() bool {
		cur.do(http.MethodGet, "/v1/curation/tasks?type=email_evaluation&limit=100", nil, 200, &list)
		if len(list.Data) != len(recs) {
			return false
		}
		for _, x := range list.Data {
			if x.Outputs != 2 {
				return false
			}
		}
		return true
	}, "both batches imported")
	// Importing again adds nothing.
	var imp struct {
		Tasks, Outputs int
		Already        bool `json:"already_imported"`
	}
	cur.do(http.MethodPost, "/v1/curation/imports/batches/"+batchA, nil, http.StatusForbidden, nil) // curators annotate; admins import
	admin.do(http.MethodPost, "/v1/curation/imports/batches/"+batchA, nil, 200, &imp)
	require.True(t, imp.Already)
	require.Zero(t, imp.Outputs)
	_ = batchB

	// Keyset pagination walks every task once.
	seen := map[string]bool{}
	after := ""
	for {
		var page taskList
		cur.do(http.MethodGet, "/v1/curation/tasks?limit=3&after="+after, nil, 200, &page)
		for _, x := range page.Data {
			require.False(t, seen[x.ID])
			seen[x.ID] = true
		}
		if !page.HasMore {
			break
		}
		after = *page.LastID
	}
	require.Len(t, seen, len(recs))
	var filtered taskList
	cur.do(http.MethodGet, "/v1/curation/tasks?model=Qwen/Qwen2.5-3B-Instruct&invalid=false&status=pending", nil, 200, &filtered)
	require.Len(t, filtered.Data, len(recs))

	// Annotate every task: A rated 5 and gold, B rated 2 and corrected.
	for i, x := range list.Data {
		var tk task
		cur.do(http.MethodGet, "/v1/curation/tasks/"+x.ID, nil, 200, &tk)
		require.Len(t, tk.Outputs, 2)
		require.NotNil(t, tk.Rendering)
		require.NotEmpty(t, tk.Data, "the record the requests were built from")
		var a, b string
		for _, o := range tk.Outputs {
			require.True(t, o.Valid)
			require.NotNil(t, o.LatencyMS, "the agent's latency is kept")
			require.Positive(t, *o.LatencyMS)
			if o.Model == "sim-model" {
				a = o.ID
			} else {
				b = o.ID
			}
		}
		fixed, _ := json.Marshal(tk.Outputs[0].Parsed)
		if i == 0 {
			// A correction off the schema is refused, unless forced.
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			cur.do(http.MethodPost, "/v1/curation/tasks/"+x.ID+"/annotations", map[string]any{"version": tk.Version,
				"outputs": []map[string]any{{"id": b, "corrected": `{"overall": "great"}`}}}, http.StatusBadRequest, &e)
			require.Equal(t, "correction_invalid", e.Error.Code)
			cur.do(http.MethodPost, "/v1/curation/tasks/"+x.ID+"/annotations", map[string]any{"version": tk.Version,
				"outputs": []map[string]any{{"id": b, "corrected": `{"overall": "great"}`, "force": true}}}, 200, &tk)
			for _, o := range tk.Outputs {
				if o.ID == b {
					require.False(t, *o.CorrectedValid, "a forced correction is marked")
				}
			}
			// A write from a stale read loses nothing: 409.
			cur.do(http.MethodPost, "/v1/curation/tasks/"+x.ID+"/annotations", map[string]any{"version": tk.Version - 1,
				"status": "skipped"}, http.StatusConflict, &e)
			require.Equal(t, "stale_task", e.Error.Code)
		}
		cur.do(http.MethodPost, "/v1/curation/tasks/"+x.ID+"/annotations", map[string]any{"version": tk.Version,
			"status": "reviewed", "notes": "checked", "gold_output_id": a,
			"outputs": []map[string]any{{"id": a, "rating": 5}, {"id": b, "rating": 2, "corrected": string(fixed)}}}, 200, &tk)
		require.Equal(t, "reviewed", tk.Status)
		require.Equal(t, a, *tk.Gold)
		require.NotEmpty(t, tk.History)
	}
	var gold taskList
	cur.do(http.MethodGet, "/v1/curation/tasks?gold=true&rated=true", nil, 200, &gold)
	require.Len(t, gold.Data, len(recs))
	var stats struct {
		Data []struct {
			Model        string   `json:"model"`
			Outputs      int      `json:"outputs"`
			ValidityRate float64  `json:"validity_rate"`
			MeanRating   *float64 `json:"mean_rating"`
			Gold         int      `json:"gold"`
		} `json:"data"`
		Tasks []struct {
			Type     string `json:"type"`
			Total    int    `json:"total"`
			Reviewed int    `json:"reviewed"`
		} `json:"tasks"`
	}
	cur.do(http.MethodGet, "/v1/curation/stats", nil, 200, &stats)
	require.Len(t, stats.Data, 2)
	require.Len(t, stats.Tasks, 1)
	require.Equal(t, len(recs), stats.Tasks[0].Total)
	require.Equal(t, len(recs), stats.Tasks[0].Reviewed)
	for _, s := range stats.Data {
		require.Equal(t, len(recs), s.Outputs)
		require.Equal(t, 1.0, s.ValidityRate)
		if s.Model == "sim-model" {
			require.Equal(t, 5.0, *s.MeanRating)
			require.Equal(t, len(recs), s.Gold)
		}
	}

	// Exports, each checked line by line against its format.
	for _, format := range curation.Formats {
		body := map[string]any{"format": format, "type": "email_evaluation"}
		if format == curation.FormatICL {
			body["per_type"] = 3
		}
		var ex struct {
			ID          string  `json:"id"`
			Status      string  `json:"status"`
			Rows        int     `json:"rows"`
			FileID      *string `json:"file_id"`
			DownloadURL *string `json:"download_url"`
			Error       string  `json:"error"`
		}
		cur.do(http.MethodPost, "/v1/curation/exports", body, 200, &ex)
		kilntest.Eventually(t, time.Minute, func() bool {
			cur.do(http.MethodGet, "/v1/curation/exports/"+ex.ID, nil, 200, &ex)
			return ex.Status == "completed" || ex.Status == "failed"
		}, "export %s", format)
		require.Equal(t, "completed", ex.Status, ex.Error)
		require.NotNil(t, ex.DownloadURL)
		data := download(t, *ex.DownloadURL)
		want := len(recs)
		if format == curation.FormatICL {
			want = 3
		}
		require.Equal(t, want, ex.Rows, format)
		checkExport(t, format, data, want)

		// The export is curation's: an API key neither sees nor touches it.
		require.NotNil(t, ex.FileID)
		api.do(http.MethodGet, "/v1/files/"+*ex.FileID, nil, http.StatusNotFound, nil)
		api.do(http.MethodGet, "/v1/files/"+*ex.FileID+"/content", nil, http.StatusNotFound, nil)
		api.do(http.MethodDelete, "/v1/files/"+*ex.FileID, nil, http.StatusNotFound, nil)
		api.do(http.MethodPost, "/v1/batches", map[string]any{"input_file_id": *ex.FileID, "endpoint": "/v1/chat/completions",
			"completion_window": "24h"}, http.StatusNotFound, nil)
		var files struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		api.do(http.MethodGet, "/v1/files?limit=10000", nil, http.StatusOK, &files)
		for _, f := range files.Data {
			require.NotEqual(t, *ex.FileID, f.ID, "an export in the API's file list")
		}
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	cur.do(http.MethodPost, "/v1/curation/exports", map[string]any{"format": "openai_sft", "type": "cartographer"}, http.StatusBadRequest, &e)
	require.Equal(t, "empty_export", e.Error.Code)
}

func download(t *testing.T, url string) []byte {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

type msg struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Weight  *int   `json:"weight"`
}

// checkExport validates an export against its format, line by line.
func checkExport(t *testing.T, format string, data []byte, want int) {
	t.Helper()
	if format == curation.FormatLabelStudio {
		var tasks []struct {
			Data        map[string]any `json:"data"`
			Predictions []struct {
				ModelVersion string `json:"model_version"`
				Result       []struct {
					FromName string `json:"from_name"`
					ToName   string `json:"to_name"`
					Type     string `json:"type"`
					Value    struct {
						Text []string `json:"text"`
					} `json:"value"`
				} `json:"result"`
			} `json:"predictions"`
			Annotations []struct {
				GroundTruth bool `json:"ground_truth"`
			} `json:"annotations"`
		}
		require.NoError(t, json.Unmarshal(data, &tasks))
		require.Len(t, tasks, want)
		for _, x := range tasks {
			require.NotEmpty(t, x.Data["prompt"])
			require.Len(t, x.Predictions, 2)
			for _, p := range x.Predictions {
				require.NotEmpty(t, p.ModelVersion)
				require.Equal(t, "textarea", p.Result[0].Type)
				require.Len(t, p.Result[0].Value.Text, 1)
			}
			require.Len(t, x.Annotations, 1)
			require.True(t, x.Annotations[0].GroundTruth)
		}
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	n := 0
	for sc.Scan() {
		n++
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		switch format {
		case curation.FormatSFT:
			var l struct {
				Messages []msg `json:"messages"`
			}
			require.NoError(t, dec.Decode(&l), sc.Text())
			require.GreaterOrEqual(t, len(l.Messages), 2)
			last := l.Messages[len(l.Messages)-1]
			require.Equal(t, "assistant", last.Role)
			require.True(t, json.Valid([]byte(last.Content)), "the gold answer is JSON")
			require.Equal(t, 1, *last.Weight)
			for _, m := range l.Messages[:len(l.Messages)-1] {
				require.Contains(t, []string{"system", "user"}, m.Role)
				require.NotEmpty(t, m.Content)
			}
		case curation.FormatDPO:
			var l struct {
				Input struct {
					Messages []msg `json:"messages"`
				} `json:"input"`
				Preferred    []msg `json:"preferred_output"`
				NonPreferred []msg `json:"non_preferred_output"`
			}
			require.NoError(t, dec.Decode(&l), sc.Text())
			require.NotEmpty(t, l.Input.Messages)
			require.Len(t, l.Preferred, 1)
			require.Len(t, l.NonPreferred, 1)
			require.Equal(t, "assistant", l.Preferred[0].Role)
			require.NotEqual(t, l.Preferred[0].Content, "")
		case curation.FormatTRL:
			var l struct {
				Prompt   []msg `json:"prompt"`
				Chosen   []msg `json:"chosen"`
				Rejected []msg `json:"rejected"`
			}
			require.NoError(t, dec.Decode(&l), sc.Text())
			require.NotEmpty(t, l.Prompt)
			require.Equal(t, "assistant", l.Chosen[0].Role)
			require.Equal(t, "assistant", l.Rejected[0].Role)
		case curation.FormatICL:
			var l struct {
				Type     string         `json:"type"`
				TaskID   string         `json:"task_id"`
				Key      string         `json:"key"`
				Messages []msg          `json:"messages"`
				Output   map[string]any `json:"output"`
			}
			require.NoError(t, dec.Decode(&l), sc.Text())
			require.Equal(t, "email_evaluation", l.Type)
			require.NotEmpty(t, l.Output)
		}
	}
	require.NoError(t, sc.Err())
	require.Equal(t, want, n)
}

// TestCurationBulkImport: external JSONL and Label Studio exports come in,
// bad lines are named, a line too large is refused without harm, and
// importing twice adds nothing.
func TestCurationBulkImport(t *testing.T) {
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	_, secret, err := curation.CreateCurator(context.Background(), env.App.Store, "Bo", curation.RoleAdmin)
	require.NoError(t, err)
	cur := client{t: t, base: strings.TrimSuffix(env.URL, "/v1"), token: secret}
	xss := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	lines := strings.Join([]string{
		`{"type":"notes","key":"k1","messages":[{"role":"user","content":"Summarise ` + "this" + `"}],"model":"m1","output":"` + strings.ReplaceAll(xss, `"`, `\"`) + `"}`,
		`{"type":"notes","key":"k1","messages":[{"role":"user","content":"Summarise this"}],"model":"m2","output":{"a":1},"source":"run2"}`,
		`{"type":"notes","messages":"not an array","model":"m1","output":"x"}`,
		`not json`,
		`{"type":"notes","key":"big","messages":[{"role":"user","content":"x"}],"model":"m1","output":"` + strings.Repeat("a", curation.MaxOutputBytes+(2<<20)) + `"}`,
	}, "\n")
	var res struct {
		Tasks, Outputs int
		Errors         []struct {
			Line    int
			Message string
		}
	}
	cur.do(http.MethodPost, "/v1/curation/imports", []byte(lines), 200, &res)
	require.Equal(t, 1, res.Tasks)
	require.Equal(t, 2, res.Outputs)
	require.Len(t, res.Errors, 3)
	require.Equal(t, []int{3, 4, 5}, []int{res.Errors[0].Line, res.Errors[1].Line, res.Errors[2].Line})
	cur.do(http.MethodPost, "/v1/curation/imports", []byte(lines), 200, &res)
	require.Zero(t, res.Outputs, "importing twice adds nothing")

	var list taskList
	cur.do(http.MethodGet, "/v1/curation/tasks?type=notes&q=SUMMARISE", nil, 200, &list)
	require.Len(t, list.Data, 1)
	cur.do(http.MethodGet, "/v1/curation/tasks?type=notes&q=SUM", nil, 200, &list)
	require.Len(t, list.Data, 1, "three characters are enough")
	// Shorter text has no index to serve it: it is refused, not a scan.
	var apiErr struct {
		Error struct {
			Param string `json:"param"`
		} `json:"error"`
	}
	cur.do(http.MethodGet, "/v1/curation/tasks?type=notes&q=SU", nil, 400, &apiErr)
	require.Equal(t, "q", apiErr.Error.Param)
	var tk task
	cur.do(http.MethodGet, "/v1/curation/tasks/"+list.Data[0].ID, nil, 200, &tk)
	require.Equal(t, xss, tk.Outputs[0].Content, "stored as given; the UI shows it as text")

	ls := `[{"id": 7, "data": {"prompt": "Rate this email"}, "predictions": [{"model_version": "gemma", "result": [{"from_name": "answer", "to_name": "prompt", "type": "textarea", "value": {"text": ["Fine."]}}]}],
	  "annotations": [{"ground_truth": true, "result": [{"from_name": "answer", "to_name": "prompt", "type": "textarea", "value": {"text": ["Great email."]}}]}]}]`
	cur.do(http.MethodPost, "/v1/curation/imports/label_studio?type=ls", []byte(ls), 200, &res)
	require.Equal(t, 1, res.Tasks)
	cur.do(http.MethodGet, "/v1/curation/tasks?type=ls&gold=true", nil, 200, &list)
	require.Len(t, list.Data, 1, "ground truth became the gold star")

	// Loose input is refused at once, saying why.
	var e struct {
		Error struct {
			Code  string  `json:"code"`
			Param *string `json:"param"`
		} `json:"error"`
	}
	for _, empty := range []string{"[]", "null"} {
		cur.do(http.MethodPost, "/v1/curation/imports/label_studio?type=ls", []byte(empty), http.StatusBadRequest, &e)
		require.Equal(t, "invalid_label_studio", e.Error.Code, empty)
	}
	for _, typ := range []string{"../../x", "<b>x</b>", strings.Repeat("t", 65), "Upper"} {
		cur.do(http.MethodPost, "/v1/curation/imports/label_studio?type="+url.QueryEscape(typ), []byte(ls), http.StatusBadRequest, &e)
		require.NotNil(t, e.Error.Param, typ)
		require.Equal(t, "type", *e.Error.Param, typ)
	}
	cur.do(http.MethodPost, "/v1/curation/imports", []byte(`{"type":"../x","messages":[{"role":"user","content":"a"}],"model":"m1","output":"b"}`+"\n"+
		`{"type":"notes","messages":[{"role":"user","content":"a\u0000"}],"model":"m1","output":"b"}`+"\n"), 200, &res)
	require.Zero(t, res.Tasks)
	require.Len(t, res.Errors, 2, "a bad type and a NUL are line errors")
}

// TestCurationLargeOutput: a batch output with a 100 MB answer is imported
// without holding it: the output is kept as invalid (too_large), and the
// other outputs of the batch come in whole.
func TestCurationLargeOutput(t *testing.T) {
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	ctx := context.Background()
	st := env.App.Store
	in := `{"custom_id":"big","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"Write a lot"}]}}` + "\n" +
		`{"custom_id":"small","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"Write a little"}]}}` + "\n"
	b := importableBatch(t, env, "batch_large", "notes", in, outputLine("big", strings.Repeat("x", 100<<20))+outputLine("small", `{"ok":true}`), 2)
	_, err := env.App.Importer.ImportBatch(ctx, b.ID)
	require.NoError(t, err)

	list, _, err := st.CurationTaskList(ctx, store.TaskFilter{Type: "notes"}, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, tk := range list {
		_, outs, _, err := st.CurationTaskGet(ctx, tk.ID)
		require.NoError(t, err)
		require.Len(t, outs, 1)
		if tk.Key == "small" {
			require.Equal(t, `{"ok":true}`, outs[0].Content)
			require.True(t, outs[0].Valid)
		} else {
			require.Equal(t, curation.ReasonTooLarge, outs[0].Reason)
			require.Empty(t, outs[0].Content)
			require.False(t, outs[0].Valid)
		}
	}
}

// TestImportBatchInChunks: a batch imported in many chunks, written
// concurrently where the store allows it (Postgres), gets one task and one
// output per custom_id: with the outputs in another order than the inputs,
// a second output of one custom_id left out (the first counts), and an
// output without an input given a task of its own.
func TestImportBatchInChunks(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
			ctx := context.Background()
			st := env.App.Store
			// The import is the test's own: the function must not run it.
			require.NoError(t, st.StopWorkers(ctx))
			curation.SetChunkItems(env.App.Importer, 7)
			const n = 60
			var in, out strings.Builder
			for i := range n {
				fmt.Fprintf(&in, `{"custom_id":"r-%03d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"Prompt %d"}]}}`+"\n", i, i)
			}
			for i := n - 1; i >= 0; i-- {
				out.WriteString(outputLine(fmt.Sprintf("r-%03d", i), fmt.Sprintf("answer %d", i)))
			}
			out.WriteString(outputLine("r-059", "a second answer, chunks after the first"))
			out.WriteString(outputLine("stray", "an answer without a request"))
			b := importableBatch(t, env, "batch_chunks", "notes", in.String(), out.String(), n)

			res, err := env.App.Importer.ImportBatch(ctx, b.ID)
			require.NoError(t, err)
			require.Equal(t, store.ImportResult{Tasks: n + 1, Outputs: n + 1}, res)
			list, _, err := st.CurationTaskList(ctx, store.TaskFilter{Type: "notes"}, "", 200)
			require.NoError(t, err)
			require.Len(t, list, n+1)
			for _, tk := range list {
				task, outs, _, err := st.CurationTaskGet(ctx, tk.ID)
				require.NoError(t, err)
				require.Len(t, outs, 1, tk.Key)
				switch {
				case tk.Key == "stray":
					require.Equal(t, "an answer without a request", outs[0].Content)
				default:
					var i int
					_, err := fmt.Sscanf(tk.Key, "r-%03d", &i)
					require.NoError(t, err)
					require.Equal(t, fmt.Sprintf("answer %d", i), outs[0].Content, "the first output counts")
					require.Contains(t, string(task.Input), fmt.Sprintf("Prompt %d", i))
				}
			}
			again, err := env.App.Importer.ImportBatch(ctx, b.ID)
			require.NoError(t, err)
			require.True(t, again.Already)
		})
	}
}

// importableBatch stores a completed batch of the given input and output
// files, flagged for import as tasks of type typ.
func importableBatch(t *testing.T, env *kilntest.Env, id, typ, in, out string, completed int64) store.Batch {
	t.Helper()
	ctx := context.Background()
	st := env.App.Store
	put := func(fid, body string) store.File {
		f := store.File{ID: fid, Purpose: "batch", Filename: fid + ".jsonl", Bytes: int64(len(body)), ObjectKey: "files/" + fid,
			Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
		_, err := env.App.Bucket.Put(ctx, f.ObjectKey, strings.NewReader(body), int64(len(body)))
		require.NoError(t, err)
		return f
	}
	inFile, outFile := put("file-in-"+id, in), put("file-out-"+id, out)
	require.NoError(t, st.FileCreate(ctx, inFile))
	now := time.Now()
	b := store.Batch{ID: id, Endpoint: "/v1/chat/completions", Model: "sim-model", InputFileID: inFile.ID, CompletionWindow: "24h",
		Status: store.BatchValidating, CreatedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(),
		Metadata: map[string]string{curation.MetaImport: "true", curation.MetaType: typ}}
	require.NoError(t, st.BatchCreate(ctx, b))
	_, err := st.BatchComplete(ctx, b.ID, store.Outcome{Output: &outFile, Completed: completed})
	require.NoError(t, err)
	return b
}

// outputLine is a batch output line: an answer to custom_id id.
func outputLine(id, content string) string {
	b, _ := json.Marshal(map[string]any{"custom_id": id, "response": map[string]any{"status_code": 200, "body": map[string]any{
		"model": "sim-model", "choices": []map[string]any{{"message": map[string]any{"content": content}, "finish_reason": "stop"}}}}})
	return string(b) + "\n"
}
