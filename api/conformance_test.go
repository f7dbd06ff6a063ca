package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/openaispec"
)

// rawClient calls kiln with plain net/http, so that a test sees the exact
// status, headers and bytes of every answer.
type rawClient struct {
	env  *kilntest.Env
	root string // the server's root URL, without /v1
	hc   *http.Client
}

func newRawClient(env *kilntest.Env) *rawClient {
	return &rawClient{env: env, root: strings.TrimSuffix(env.URL, "/v1"), hc: &http.Client{Timeout: 2 * time.Minute}}
}

// rawResponse is an answer read whole.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r rawResponse) String() string {
	return fmt.Sprintf("%d %s", r.Status, r.Body)
}

// do sends a request to path (such as "/v1/files") with kiln's API key.
// headers are name, value pairs; an "Authorization" among them replaces the
// key, and an empty one removes it.
func (c *rawClient) do(t *testing.T, method, path string, body io.Reader, headers ...string) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, c.root+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+c.env.Key)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
		if headers[i] == "Authorization" && headers[i+1] == "" {
			req.Header.Del("Authorization")
		}
	}
	resp, err := c.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// ok requires a 200 answer in JSON that validates against OpenAI's schema
// and decodes it into v.
func ok[T any](t *testing.T, r rawResponse, schema string) T {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "Content-Type %q", r.Header.Get("Content-Type"))
	openaispec.MustValidate(t, schema, r.Body)
	var v T
	require.NoError(t, json.Unmarshal(r.Body, &v))
	return v
}

// requireAPIError checks that r is OpenAI's error envelope, exactly
// {"error":{"message","type","param","code"}}, with status. A non-empty
// code or param must match; "null" requires null.
func requireAPIError(t *testing.T, r rawResponse, status int, code, param string) apierror.Body {
	t.Helper()
	require.Equal(t, status, r.Status, "%s", r)
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "Content-Type %q: %s", r.Header.Get("Content-Type"), r)
	openaispec.MustValidate(t, "ErrorResponse", r.Body)
	var env map[string]map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &env), "%s", r)
	require.Equal(t, []string{"error"}, slices.Sorted(maps.Keys(env)), "%s", r)
	require.Equal(t, []string{"code", "message", "param", "type"}, slices.Sorted(maps.Keys(env["error"])), "%s", r)
	var e struct{ Error apierror.Body }
	require.NoError(t, json.Unmarshal(r.Body, &e))
	require.NotEmpty(t, e.Error.Message, "%s", r)
	require.NotEmpty(t, e.Error.Type, "%s", r)
	for _, want := range []struct {
		name, v string
		got     *string
	}{{"code", code, e.Error.Code}, {"param", param, e.Error.Param}} {
		switch want.v {
		case "":
		case "null":
			require.Nil(t, want.got, "%s: %s", want.name, r)
		default:
			require.NotNil(t, want.got, "%s: %s", want.name, r)
			require.Equal(t, want.v, *want.got, "%s: %s", want.name, r)
		}
	}
	return e.Error
}

// formPart is one part of a multipart body: a file when filename is set.
type formPart struct {
	name, filename string
	data           []byte
}

func multipartBody(t *testing.T, parts ...formPart) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		var pw io.Writer
		var err error
		if p.filename != "" {
			pw, err = w.CreateFormFile(p.name, p.filename)
		} else {
			pw, err = w.CreateFormField(p.name)
		}
		require.NoError(t, err)
		_, err = pw.Write(p.data)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), buf.Bytes()
}

// uploadRaw posts a multipart body to /v1/files.
func (c *rawClient) uploadRaw(t *testing.T, parts ...formPart) rawResponse {
	t.Helper()
	ct, body := multipartBody(t, parts...)
	return c.do(t, http.MethodPost, "/v1/files", bytes.NewReader(body), "Content-Type", ct)
}

// upload uploads data and returns the File kiln answered.
func (c *rawClient) upload(t *testing.T, purpose, filename string, data []byte) api.File {
	t.Helper()
	f := ok[api.File](t, c.uploadRaw(t, formPart{name: "purpose", data: []byte(purpose)}, formPart{name: "file", filename: filename, data: data}), "OpenAIFile")
	require.Equal(t, purpose, f.Purpose)
	require.Equal(t, filename, f.Filename)
	require.EqualValues(t, len(data), f.Bytes)
	return f
}

func jsonReader(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return bytes.NewReader(b)
}

// createBatchRaw posts body to /v1/batches.
func (c *rawClient) createBatchRaw(t *testing.T, body any) rawResponse {
	t.Helper()
	return c.do(t, http.MethodPost, "/v1/batches", jsonReader(t, body), "Content-Type", "application/json")
}

// createBatch makes a 24h chat batch of fileID.
func (c *rawClient) createBatch(t *testing.T, fileID string) api.Batch {
	t.Helper()
	b := ok[api.Batch](t, c.createBatchRaw(t, map[string]any{
		"input_file_id": fileID, "endpoint": "/v1/chat/completions", "completion_window": "24h",
	}), "Batch")
	require.Equal(t, "validating", b.Status)
	return b
}

// batch retrieves a batch, validated against OpenAI's schema.
func (c *rawClient) batch(t *testing.T, id string) api.Batch {
	t.Helper()
	return ok[api.Batch](t, c.do(t, http.MethodGet, "/v1/batches/"+id, nil), "Batch")
}

// waitStatus polls a batch until it reaches a terminal status.
func (c *rawClient) waitStatus(t *testing.T, id string) api.Batch {
	t.Helper()
	return c.batch(t, waitBatch(t, sdkClient(c.env), id).ID)
}

// waitInProgress polls a batch until its requests run.
func (c *rawClient) waitInProgress(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b := c.batch(t, id)
		if b.Status == "in_progress" {
			return
		}
		require.Equal(t, "validating", b.Status)
		require.True(t, time.Now().Before(deadline), "batch %s still validating after a minute", id)
		pause(20 * time.Millisecond)
	}
}

// content downloads a file's bytes.
func (c *rawClient) content(t *testing.T, id string) []byte {
	t.Helper()
	r := c.do(t, http.MethodGet, "/v1/files/"+id+"/content", nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	return r.Body
}

// fileList lists files with the query, validated.
func (c *rawClient) fileList(t *testing.T, query string) api.FileList {
	t.Helper()
	return ok[api.FileList](t, c.do(t, http.MethodGet, "/v1/files?"+query, nil), "ListFilesResponse")
}

// batchList lists batches with the query, validated.
func (c *rawClient) batchList(t *testing.T, query string) api.BatchList {
	t.Helper()
	return ok[api.BatchList](t, c.do(t, http.MethodGet, "/v1/batches?"+query, nil), "ListBatchesResponse")
}

func fileIDs(l api.FileList) []string {
	out := []string{}
	for _, f := range l.Data {
		out = append(out, f.ID)
	}
	return out
}

func batchIDs(l api.BatchList) []string {
	out := []string{}
	for _, b := range l.Data {
		out = append(out, b.ID)
	}
	return out
}

// slowChatLines makes n chat requests that each take the simulator about
// 20s at 1ms per token, so a batch of them is still running when a test
// cancels it.
func slowChatLines(n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("req-%d", i), "method": "POST", "url": "/v1/chat/completions",
			"body": map[string]any{"model": "sim-model", "messages": []map[string]string{{"role": "user", "content": "Tell a long story"}},
				"max_tokens": 20000, "ignore_eos": true}})
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// TestConformance calls every /v1 route with raw HTTP and checks each answer,
// errors included, against OpenAI's schemas, along with the lists' filters
// and pagination.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			const maxFile = 1 << 20
			env := kilntest.Start(t, backend, kilntest.Options{
				Configure: func(c *config.Config) { c.MaxFileBytes = maxFile },
				Sim:       &llmsim.Config{Models: []string{"sim-model"}, TTFT: time.Millisecond, TPOT: time.Millisecond},
			})
			c := newRawClient(env)
			var doneID string // a completed batch

			t.Run("files", func(t *testing.T) {
				data := chatLines(3, 0)
				var batchFiles []api.File
				for i := range 4 {
					batchFiles = append(batchFiles, c.upload(t, "batch", fmt.Sprintf("in-%d.jsonl", i), data))
				}
				userFile := c.upload(t, "user_data", "notes.txt", []byte("not JSONL, and that is fine\x00\xff"))
				require.Equal(t, "file", userFile.Object)
				require.Equal(t, "processed", userFile.Status)

				// Retrieve and download.
				got := ok[api.File](t, c.do(t, http.MethodGet, "/v1/files/"+batchFiles[0].ID, nil), "OpenAIFile")
				require.Equal(t, batchFiles[0], got)
				r := c.do(t, http.MethodGet, "/v1/files/"+batchFiles[0].ID+"/content", nil)
				require.Equal(t, http.StatusOK, r.Status, "%s", r)
				require.Equal(t, data, r.Body)
				require.Equal(t, fmt.Sprint(len(data)), r.Header.Get("Content-Length"))
				require.Equal(t, []byte("not JSONL, and that is fine\x00\xff"), c.content(t, userFile.ID))

				// All files, newest first by default.
				all := c.fileList(t, "")
				require.Equal(t, "list", all.Object)
				require.Equal(t, []string{userFile.ID, batchFiles[3].ID, batchFiles[2].ID, batchFiles[1].ID, batchFiles[0].ID}, fileIDs(all))
				require.False(t, all.HasMore)
				require.Equal(t, userFile.ID, all.FirstID)
				require.Equal(t, batchFiles[0].ID, all.LastID)

				// Purpose filter.
				users := c.fileList(t, "purpose=user_data")
				require.Equal(t, []string{userFile.ID}, fileIDs(users))
				require.Empty(t, fileIDs(c.fileList(t, "purpose=fine-tune")))

				// Ascending, paged with limit and after.
				page := c.fileList(t, "purpose=batch&order=asc&limit=3")
				require.Equal(t, []string{batchFiles[0].ID, batchFiles[1].ID, batchFiles[2].ID}, fileIDs(page))
				require.True(t, page.HasMore)
				require.Equal(t, batchFiles[0].ID, page.FirstID)
				require.Equal(t, batchFiles[2].ID, page.LastID)
				page = c.fileList(t, "purpose=batch&order=asc&limit=3&after="+page.LastID)
				require.Equal(t, []string{batchFiles[3].ID}, fileIDs(page))
				require.False(t, page.HasMore)

				// Descending, paged.
				page = c.fileList(t, "purpose=batch&order=desc&limit=2")
				require.Equal(t, []string{batchFiles[3].ID, batchFiles[2].ID}, fileIDs(page))
				require.True(t, page.HasMore)
				page = c.fileList(t, "purpose=batch&order=desc&limit=2&after="+page.LastID)
				require.Equal(t, []string{batchFiles[1].ID, batchFiles[0].ID}, fileIDs(page))
				require.False(t, page.HasMore)
				page = c.fileList(t, "purpose=batch&order=desc&after="+batchFiles[0].ID)
				require.Empty(t, fileIDs(page))
				require.False(t, page.HasMore)

				// Delete: the file, its listing and its object are gone.
				del := ok[api.FileDeleted](t, c.do(t, http.MethodDelete, "/v1/files/"+userFile.ID, nil), "DeleteFileResponse")
				require.Equal(t, api.FileDeleted{ID: userFile.ID, Object: "file", Deleted: true}, del)
				requireAPIError(t, c.do(t, http.MethodGet, "/v1/files/"+userFile.ID, nil), http.StatusNotFound, "", "")
				requireAPIError(t, c.do(t, http.MethodGet, "/v1/files/"+userFile.ID+"/content", nil), http.StatusNotFound, "", "")
				requireAPIError(t, c.do(t, http.MethodDelete, "/v1/files/"+userFile.ID, nil), http.StatusNotFound, "", "")
				require.NotContains(t, fileIDs(c.fileList(t, "")), userFile.ID)
				require.NotContains(t, objectKeys(t, env, "files/"), "files/"+userFile.ID)
			})

			t.Run("batches", func(t *testing.T) {
				completedIn := c.upload(t, "batch", "ok.jsonl", chatLines(5, 0))
				completed := c.createBatch(t, completedIn.ID)
				require.Equal(t, "batch", completed.Object)
				require.Equal(t, "24h", completed.CompletionWindow)
				require.Equal(t, completedIn.ID, completed.InputFileID)

				failedIn := c.upload(t, "batch", "bad.jsonl", append(chatLines(2, 0), "{oops\n"...))
				failed := c.createBatch(t, failedIn.ID)

				slowIn := c.upload(t, "batch", "slow.jsonl", slowChatLines(3))
				slow := c.createBatch(t, slowIn.ID)
				c.waitInProgress(t, slow.ID)
				cancelling := ok[api.Batch](t, c.do(t, http.MethodPost, "/v1/batches/"+slow.ID+"/cancel", nil), "Batch")
				require.Equal(t, "cancelling", cancelling.Status)
				require.NotNil(t, cancelling.CancellingAt)

				completed = c.waitStatus(t, completed.ID)
				require.Equal(t, "completed", completed.Status, "errors: %+v", completed.Errors)
				doneID = completed.ID
				require.Nil(t, completed.Errors)
				require.NotNil(t, completed.OutputFileID)
				require.Nil(t, completed.ErrorFileID)
				require.Equal(t, api.BatchRequestCounts{Total: 5, Completed: 5}, completed.RequestCounts)
				for line := range bytes.Lines(c.content(t, *completed.OutputFileID)) {
					openaispec.MustValidate(t, "BatchRequestOutput", line)
				}
				out := ok[api.File](t, c.do(t, http.MethodGet, "/v1/files/"+*completed.OutputFileID, nil), "OpenAIFile")
				require.Equal(t, "batch_output", out.Purpose)

				failed = c.waitStatus(t, failed.ID)
				require.Equal(t, "failed", failed.Status)
				require.NotNil(t, failed.Errors)
				require.Equal(t, "list", failed.Errors.Object)
				require.Len(t, failed.Errors.Data, 1)
				require.Equal(t, "invalid_json_line", failed.Errors.Data[0].Code)
				require.Equal(t, 3, *failed.Errors.Data[0].Line)

				cancelled := c.waitStatus(t, slow.ID)
				require.Equal(t, "cancelled", cancelled.Status)
				require.NotNil(t, cancelled.CancelledAt)
				require.Equal(t, api.BatchRequestCounts{Total: 3, Failed: 3}, cancelled.RequestCounts)
				require.NotNil(t, cancelled.ErrorFileID)
				for line := range bytes.Lines(c.content(t, *cancelled.ErrorFileID)) {
					openaispec.MustValidate(t, "BatchRequestOutput", line)
				}

				// Cancelling a finished batch is a conflict.
				for _, id := range []string{completed.ID, failed.ID, cancelled.ID} {
					requireAPIError(t, c.do(t, http.MethodPost, "/v1/batches/"+id+"/cancel", nil), http.StatusConflict, "", "")
				}

				// Newest first, paged with limit and after.
				all := c.batchList(t, "")
				require.Equal(t, "list", all.Object)
				require.Equal(t, []string{slow.ID, failed.ID, completed.ID}, batchIDs(all))
				require.False(t, all.HasMore)
				require.Equal(t, slow.ID, *all.FirstID)
				require.Equal(t, completed.ID, *all.LastID)
				page := c.batchList(t, "limit=2")
				require.Equal(t, []string{slow.ID, failed.ID}, batchIDs(page))
				require.True(t, page.HasMore)
				require.Equal(t, slow.ID, *page.FirstID)
				require.Equal(t, failed.ID, *page.LastID)
				page = c.batchList(t, "limit=2&after="+*page.LastID)
				require.Equal(t, []string{completed.ID}, batchIDs(page))
				require.False(t, page.HasMore)
				require.Equal(t, completed.ID, *page.FirstID)
				require.Equal(t, completed.ID, *page.LastID)
				page = c.batchList(t, "after="+completed.ID)
				require.Empty(t, batchIDs(page))
				require.False(t, page.HasMore)
				require.Nil(t, page.FirstID)
				require.Nil(t, page.LastID)
			})

			t.Run("models", func(t *testing.T) {
				deadline := time.Now().Add(30 * time.Second)
				for {
					l := ok[api.ModelList](t, c.do(t, http.MethodGet, "/v1/models", nil), "ListModelsResponse")
					if len(l.Data) > 0 {
						require.Equal(t, "list", l.Object)
						require.Len(t, l.Data, 1)
						m := l.Data[0]
						require.Equal(t, "sim-model", m.ID)
						require.Equal(t, "model", m.Object)
						require.Equal(t, "kiln-sim", m.OwnedBy)
						require.True(t, m.Synthetic)
						require.Equal(t, 1, m.Agents)
						return
					}
					require.True(t, time.Now().Before(deadline), "no model listed after 30s")
					pause(50 * time.Millisecond)
				}
			})

			t.Run("errors", func(t *testing.T) {
				require.NotEmpty(t, doneID, "the batches subtest made no completed batch")
				for _, tc := range []struct {
					name         string
					method, path string
					body         io.Reader
					headers      []string
					status       int
					code, param  string
				}{
					{name: "no key", method: "GET", path: "/v1/files", headers: []string{"Authorization", ""}, status: 401, code: "missing_api_key", param: "null"},
					{name: "wrong key", method: "GET", path: "/v1/batches", headers: []string{"Authorization", "Bearer sk-kiln-not-a-real-key"}, status: 401, code: "invalid_api_key", param: "null"},
					{name: "not bearer", method: "GET", path: "/v1/models", headers: []string{"Authorization", "Basic " + env.Key}, status: 401, code: "missing_api_key"},
					{name: "no key on unknown route", method: "GET", path: "/v1/nope", headers: []string{"Authorization", ""}, status: 401},
					{name: "unknown route", method: "GET", path: "/v1/nope", status: 404, code: "unknown_url"},
					{name: "bare /v1", method: "GET", path: "/v1", status: 404, code: "unknown_url"},
					{name: "bare /v1/", method: "GET", path: "/v1/", status: 404, code: "unknown_url"},
					{name: "unknown nested route", method: "GET", path: "/v1/files/a/b/c", status: 404, code: "unknown_url"},
					{name: "wrong method", method: "PUT", path: "/v1/batches", status: 404, code: "unknown_url"},
					{name: "unknown file", method: "GET", path: "/v1/files/file-nope", status: 404},
					{name: "unknown file content", method: "GET", path: "/v1/files/file-nope/content", status: 404},
					{name: "delete unknown file", method: "DELETE", path: "/v1/files/file-nope", status: 404},
					{name: "unknown batch", method: "GET", path: "/v1/batches/batch_nope", status: 404},
					{name: "cancel unknown batch", method: "POST", path: "/v1/batches/batch_nope/cancel", status: 404},
					{name: "limit too small", method: "GET", path: "/v1/batches?limit=0", status: 400, param: "limit"},
					{name: "limit too large", method: "GET", path: "/v1/batches?limit=101", status: 400, param: "limit"},
					{name: "limit not a number", method: "GET", path: "/v1/files?limit=ten", status: 400, param: "limit"},
					{name: "bad order", method: "GET", path: "/v1/files?order=sideways", status: 400, param: "order"},
					{name: "batch body not JSON", method: "POST", path: "/v1/batches", body: strings.NewReader("{"), headers: []string{"Content-Type", "application/json"}, status: 400},
					{name: "batch bad endpoint", method: "POST", path: "/v1/batches", body: jsonReader(t, map[string]any{"input_file_id": "file-x", "endpoint": "/v1/moderations", "completion_window": "24h"}), headers: []string{"Content-Type", "application/json"}, status: 400, param: "endpoint"},
					{name: "batch body too large", method: "POST", path: "/v1/batches", body: jsonReader(t, map[string]any{"input_file_id": strings.Repeat("x", 2<<20)}), headers: []string{"Content-Type", "application/json"}, status: 413},
					{name: "cancel finished", method: "POST", path: "/v1/batches/" + doneID + "/cancel", status: 409},
				} {
					t.Run(tc.name, func(t *testing.T) {
						requireAPIError(t, c.do(t, tc.method, tc.path, tc.body, tc.headers...), tc.status, tc.code, tc.param)
					})
				}

				t.Run("upload too large", func(t *testing.T) {
					r := c.uploadRaw(t, formPart{name: "purpose", data: []byte("batch")}, formPart{name: "file", filename: "big.jsonl", data: bytes.Repeat(chatLines(1, 0), maxFile/100)})
					requireAPIError(t, r, http.StatusRequestEntityTooLarge, "file_too_large", "file")
				})
				t.Run("upload not JSONL", func(t *testing.T) {
					r := c.uploadRaw(t, formPart{name: "purpose", data: []byte("batch")}, formPart{name: "file", filename: "x.jsonl", data: []byte("hello\n")})
					requireAPIError(t, r, http.StatusBadRequest, "invalid_file_format", "file")
				})
			})
		})
	}
}

// objectKeys lists the keys under prefix in kiln's object store.
func objectKeys(t *testing.T, env *kilntest.Env, prefix string) []string {
	t.Helper()
	keys := []string{}
	require.NoError(t, env.App.Bucket.List(context.Background(), prefix, func(i objectstore.Info) error {
		keys = append(keys, i.Key)
		return nil
	}))
	return keys
}
