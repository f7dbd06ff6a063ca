package curation_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

const paragraph = `Dear hiring team, I am writing to apply for the data engineer role at Northwind Analytics. ` +
	`Over the last five years I have built batch pipelines in Go and Python, moved a reporting stack from cron jobs to a queue, ` +
	`and cut the nightly load from four hours to forty minutes. I would welcome the chance to talk about how I could help your team.`

func TestSimHash(t *testing.T) {
	t.Parallel()
	near := map[string]string{
		"one word changed":    strings.Replace(paragraph, "five years", "six years", 1),
		"case and punctation": strings.ToUpper(strings.ReplaceAll(paragraph, ",", " ;")),
		"spacing":             strings.ReplaceAll(paragraph, " ", "   \n "),
		"a word added":        strings.Replace(paragraph, "built batch", "built reliable batch", 1),
	}
	h := curation.SimHash(paragraph)
	for name, text := range near {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := bits.OnesCount64(h ^ curation.SimHash(text))
			require.True(t, curation.NearDuplicate(h, curation.SimHash(text)), "%d bits apart", d)
		})
	}
	distinct := []string{
		`Hello, could you summarise the attached quarterly report for the board, keeping to one page and leaving out the appendix tables?`,
		`Translate the following recipe into French: mix two cups of flour with one egg, add milk slowly, and rest the batter for an hour.`,
		`Dear hiring team, I am applying for the nurse position at Riverside Clinic, where I hope to bring ten years of work in paediatric wards.`,
	}
	for i, text := range distinct {
		require.False(t, curation.NearDuplicate(h, curation.SimHash(text)), "distinct text %d: %d bits apart", i, bits.OnesCount64(h^curation.SimHash(text)))
	}
	require.Equal(t, curation.SimHash(paragraph), curation.SimHash(paragraph), "stable")
	require.Zero(t, curation.SimHash(" ... "))

	// Clusters: each task joins the first earlier one it is near.
	hashes := []uint64{h, curation.SimHash(distinct[0]), curation.SimHash(near["one word changed"]), curation.SimHash(near["spacing"])}
	require.Equal(t, []string{"a", "b", "a", "a"}, curation.ClusterNearDups([]string{"a", "b", "c", "d"}, hashes))
}

func TestDiffItems(t *testing.T) {
	t.Parallel()
	from := []store.DatasetItem{{TaskID: "t1", Rows: 1, Hash: "x"}, {TaskID: "t2", Rows: 1, Hash: "y"}, {TaskID: "t4", Rows: 1, Hash: "z"}}
	to := []store.DatasetItem{{TaskID: "t2", Rows: 1, Hash: "y2"}, {TaskID: "t3", Rows: 1, Hash: "w"}, {TaskID: "t4", Rows: 1, Hash: "z"}, {TaskID: "t5", Rows: 2, Hash: "v"}}
	added, removed, changed, unchanged := curation.DiffItems(from, to)
	require.Equal(t, []string{"t3", "t5"}, added)
	require.Equal(t, []string{"t1"}, removed)
	require.Equal(t, []string{"t2"}, changed)
	require.EqualValues(t, 1, unchanged)
	added, removed, changed, unchanged = curation.DiffItems(nil, nil)
	require.Empty(t, append(append(added, removed...), changed...))
	require.Zero(t, unchanged)
}

// seedDatasets imports n tasks of type notes, each answered by two models;
// tasks 0 and 1 ask nearly the same. It returns the tasks by key.
func seedDatasets(t *testing.T, a uiAPI, n int) map[string]uiTask {
	var lines bytes.Buffer
	for i := range n {
		prompt := fmt.Sprintf("Question %d about topic %d: %s", i, i*7919, strings.Repeat(fmt.Sprintf("word%d ", i), 5))
		if i < 2 {
			prompt = strings.Replace(paragraph, "five", []string{"five", "six"}[i], 1)
		}
		for _, m := range []string{"m/one", "m/two"} {
			b, err := json.Marshal(map[string]any{"type": "notes", "key": fmt.Sprintf("k-%02d", i), "model": m, "output": fmt.Sprintf("answer %d of %s", i, m),
				"messages": []map[string]string{{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": prompt}}})
			require.NoError(t, err)
			lines.Write(b)
			lines.WriteByte('\n')
		}
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/imports", "application/jsonl", lines.Bytes(), nil))
	var list struct {
		Data []struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/tasks?limit=200", "", nil, &list))
	require.Len(t, list.Data, n)
	out := map[string]uiTask{}
	for _, x := range list.Data {
		out[x.Key] = a.task(x.ID)
	}
	return out
}

// gold stars model's output of the task.
func gold(t *testing.T, a uiAPI, tk uiTask, model string) {
	body, err := json.Marshal(map[string]any{"version": tk.Version, "gold_output_id": tk.output(model).ID})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/tasks/"+tk.ID+"/annotations", "application/json", body, nil))
}

type datasetView struct {
	Name        string `json:"name"`
	Version     int64  `json:"version"`
	FileFormat  string `json:"file_format"`
	Rows        int64  `json:"rows"`
	ContentHash string `json:"content_hash"`
	DownloadURL string `json:"download_url"`
	Manifest    struct {
		Counts struct {
			Types, Models, Sources map[string]int64
		} `json:"counts"`
		Files []struct {
			Path   string `json:"path"`
			Rows   int64  `json:"rows"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
		ContentHash string `json:"content_hash"`
	} `json:"manifest"`
	Files []struct{ Path, URL string } `json:"files"`
}

func (a uiAPI) post(path string, body any, into any) int {
	a.t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(a.t, err)
	req, err := http.NewRequest(http.MethodPost, a.base+path, bytes.NewReader(raw))
	require.NoError(a.t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	if resp.StatusCode >= 300 {
		a.t.Logf("POST %s: %d %s", path, resp.StatusCode, b)
	} else if into != nil {
		require.NoError(a.t, json.Unmarshal(b, into), string(b))
	}
	return resp.StatusCode
}

func (a uiAPI) bytes(path string) []byte {
	a.t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	require.NoError(a.t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	require.Equal(a.t, http.StatusOK, resp.StatusCode, string(b))
	return b
}

// readParquet reads a Parquet file with Arrow's reader (not the writer's
// library) and returns its table.
func readParquet(t *testing.T, b []byte) arrow.Table {
	t.Helper()
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(b), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	require.NoError(t, err)
	t.Cleanup(tbl.Release)
	return tbl
}

// column returns the strings of a table's string column.
func column(t *testing.T, tbl arrow.Table, name string) []string {
	t.Helper()
	idx := tbl.Schema().FieldIndices(name)
	require.Len(t, idx, 1, "column %s in %s", name, tbl.Schema())
	var out []string
	for _, chunk := range tbl.Column(idx[0]).Data().Chunks() {
		s := chunk.(*array.String)
		for i := range s.Len() {
			out = append(out, s.Value(i))
		}
	}
	return out
}

// lastContents returns, per row, the content of the last message of a
// list<struct<role, content>> column.
func lastContents(t *testing.T, tbl arrow.Table, name string) []string {
	t.Helper()
	idx := tbl.Schema().FieldIndices(name)
	require.Len(t, idx, 1)
	var out []string
	for _, chunk := range tbl.Column(idx[0]).Data().Chunks() {
		l := chunk.(*array.List)
		st := l.ListValues().(*array.Struct)
		var content *array.String
		for f := range st.NumField() {
			if st.DataType().(*arrow.StructType).Field(f).Name == "content" {
				content = st.Field(f).(*array.String)
			}
		}
		require.NotNil(t, content)
		offsets := l.Offsets()
		for i := range l.Len() {
			out = append(out, content.Value(int(offsets[i+1]-1)))
		}
	}
	return out
}

// TestCurationDatasets saves dataset versions in both file formats through
// the API, reads their Parquet back with Arrow, checks the manifest's
// hash is stable, diffs versions, and dedupes near duplicates.
func TestCurationDatasets(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")
	_, key, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	a := uiAPI{t: t, base: origin, key: key}
	tasks := seedDatasets(t, a, 6)
	for i := range 4 {
		gold(t, a, tasks[fmt.Sprintf("k-%02d", i)], "m/one")
	}

	// The near duplicate is marked in the queue.
	var list struct {
		Data []struct {
			ID              string  `json:"id"`
			Key             string  `json:"key"`
			NearDuplicateOf *string `json:"near_duplicate_of"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/tasks?type=notes", "", nil, &list))
	dups := map[string]string{}
	for _, x := range list.Data {
		if x.NearDuplicateOf != nil {
			dups[x.Key] = *x.NearDuplicateOf
		}
	}
	require.Equal(t, map[string]string{"k-01": tasks["k-00"].ID}, dups)

	// Parquet: two versions of the same selection hash the same.
	req := map[string]any{"name": "notes-sft", "format": curation.FormatSFT, "type": "notes", "file_format": "parquet"}
	var v1, v2 datasetView
	require.Equal(t, http.StatusOK, a.post("/v1/curation/datasets", req, &v1))
	require.EqualValues(t, 1, v1.Version)
	require.EqualValues(t, 4, v1.Rows)
	require.Equal(t, map[string]int64{"notes": 4}, v1.Manifest.Counts.Types)
	require.Equal(t, map[string]int64{"m/one": 4}, v1.Manifest.Counts.Models)
	require.Equal(t, map[string]int64{"gold": 4}, v1.Manifest.Counts.Sources)
	require.Len(t, v1.Manifest.Files, 1)
	require.Equal(t, "data/train-00000-of-00001.parquet", v1.Manifest.Files[0].Path)
	require.Len(t, v1.ContentHash, 64)
	require.Equal(t, http.StatusOK, a.post("/v1/curation/datasets", req, &v2))
	require.EqualValues(t, 2, v2.Version)
	require.Equal(t, v1.ContentHash, v2.ContentHash, "the same examples, the same hash")

	// The zip: the card, the manifest and the data, read back with Arrow.
	zb := a.bytes(v1.DownloadURL)
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		files[f.Name], err = io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
	}
	require.ElementsMatch(t, []string{"README.md", "manifest.json", "data/train-00000-of-00001.parquet"}, keys(files))
	card := string(files["README.md"])
	require.True(t, strings.HasPrefix(card, "---\n"))
	var front struct {
		Configs []struct {
			ConfigName string                         `yaml:"config_name"`
			DataFiles  []struct{ Split, Path string } `yaml:"data_files"`
		} `yaml:"configs"`
		DatasetInfo struct {
			Features []map[string]any `yaml:"features"`
			Splits   []struct {
				Name        string
				NumExamples int `yaml:"num_examples"`
			} `yaml:"splits"`
		} `yaml:"dataset_info"`
	}
	fm, _, ok := strings.Cut(strings.TrimPrefix(card, "---\n"), "\n---\n")
	require.True(t, ok)
	require.NoError(t, yaml.Unmarshal([]byte(fm), &front), fm)
	require.Equal(t, "default", front.Configs[0].ConfigName)
	require.Equal(t, "train", front.Configs[0].DataFiles[0].Split)
	require.Equal(t, "data/train-*", front.Configs[0].DataFiles[0].Path)
	require.Equal(t, 4, front.DatasetInfo.Splits[0].NumExamples)
	require.Equal(t, "task_id", front.DatasetInfo.Features[0]["name"])
	require.Equal(t, "messages", front.DatasetInfo.Features[1]["name"])

	tbl := readParquet(t, files["data/train-00000-of-00001.parquet"])
	require.EqualValues(t, 4, tbl.NumRows())
	ids := column(t, tbl, "task_id")
	want := []string{}
	for i := range 4 {
		want = append(want, tasks[fmt.Sprintf("k-%02d", i)].ID)
	}
	sort.Strings(want)
	require.Equal(t, want, ids)
	answers := lastContents(t, tbl, "messages")
	for i, id := range ids {
		for k, tk := range tasks {
			if tk.ID == id {
				require.Equal(t, fmt.Sprintf("answer %d of m/one", atoiKey(k)), answers[i])
			}
		}
	}
	// One file alone, and its hash as the manifest says.
	one := a.bytes(v1.DownloadURL + "?file=data/train-00000-of-00001.parquet")
	require.Equal(t, files["data/train-00000-of-00001.parquet"], one)

	// A change: gold moves to m/two on one task, one more task is starred;
	// dedupe leaves k-01 out.
	tk := a.task(tasks["k-02"].ID)
	gold(t, a, tk, "m/two")
	gold(t, a, tasks["k-04"], "m/one")
	req["dedupe"] = true
	var v3 datasetView
	require.Equal(t, http.StatusOK, a.post("/v1/curation/datasets", req, &v3))
	require.EqualValues(t, 3, v3.Version)
	require.EqualValues(t, 4, v3.Rows)
	require.NotEqual(t, v1.ContentHash, v3.ContentHash)
	var diff struct {
		Added, Removed, Changed []string
		Unchanged               int64
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/datasets/notes-sft/diff?from=1&to=3", "", nil, &diff))
	require.Equal(t, []string{tasks["k-04"].ID}, diff.Added)
	require.Equal(t, []string{tasks["k-01"].ID}, diff.Removed)
	require.Equal(t, []string{tasks["k-02"].ID}, diff.Changed)
	require.EqualValues(t, 2, diff.Unchanged)

	// JSONL: one file, lines as the export writes them.
	var j datasetView
	require.Equal(t, http.StatusOK, a.post("/v1/curation/datasets", map[string]any{"name": "notes-trl", "format": curation.FormatSFT,
		"file_format": "jsonl"}, &j))
	require.EqualValues(t, 1, j.Version)
	data := a.bytes(j.DownloadURL + "?file=data/train-00000-of-00001.jsonl")
	require.Len(t, strings.Split(strings.TrimSpace(string(data)), "\n"), 5)

	// An export as Parquet: one file of the same rows, deduped.
	var ex struct {
		ID          string  `json:"id"`
		Status      string  `json:"status"`
		Rows        int     `json:"rows"`
		DownloadURL *string `json:"download_url"`
		Error       string  `json:"error"`
	}
	require.Equal(t, http.StatusOK, a.post("/v1/curation/exports", map[string]any{"format": curation.FormatSFT, "file_format": "parquet", "dedupe": true}, &ex))
	kilntest.Eventually(t, time.Minute, func() bool {
		require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/exports/"+ex.ID, "", nil, &ex))
		return ex.Status == "completed" || ex.Status == "failed"
	}, "the export")
	require.Equal(t, "completed", ex.Status, ex.Error)
	require.Equal(t, 4, ex.Rows)
	tbl = readParquet(t, download(t, *ex.DownloadURL))
	require.EqualValues(t, 4, tbl.NumRows())
	require.NotContains(t, column(t, tbl, "task_id"), tasks["k-01"].ID)

	var all struct{ Data []datasetView }
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/datasets", "", nil, &all))
	require.Len(t, all.Data, 4)
	var got datasetView
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/datasets/notes-sft/versions/2", "", nil, &got))
	require.Equal(t, v2.ContentHash, got.ContentHash)
	require.Equal(t, http.StatusNotFound, a.call(http.MethodGet, "/v1/curation/datasets/notes-sft/versions/9", "", nil, nil))
	require.Equal(t, http.StatusNotFound, a.call(http.MethodGet, "/v1/curation/datasets/notes-sft/diff?from=1&to=9", "", nil, nil))
	require.Equal(t, http.StatusBadRequest, a.post("/v1/curation/datasets", map[string]any{"name": "x", "format": curation.FormatLabelStudio,
		"file_format": "parquet"}, nil))
	require.Equal(t, http.StatusBadRequest, a.post("/v1/curation/datasets", map[string]any{"name": "x", "format": curation.FormatICL, "type": "none"}, nil))
	require.Equal(t, http.StatusBadRequest, a.post("/v1/curation/datasets", map[string]any{"name": "../x", "format": curation.FormatSFT}, nil))
}

func atoiKey(k string) int {
	var n int
	_, _ = fmt.Sscanf(k, "k-%d", &n)
	return n
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
