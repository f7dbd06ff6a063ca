package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestBadInput sends kiln every kind of bad input the issue lists: each gets
// OpenAI's error envelope (or, for input lines, a failed batch with
// line-numbered errors) and leaves nothing half-written behind.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			// Large enough for a file holding a line over the 10 MiB line
			// limit, small enough to exceed cheaply.
			const maxFile = 12 << 20
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) { c.MaxFileBytes = maxFile }})
			c := newRawClient(env)

			// The groups run one after another: each checks that the
			// server's state did not change, which a neighbour would upset.
			t.Run("uploads", func(t *testing.T) { testBadUploads(t, c, maxFile) })
			t.Run("batches", func(t *testing.T) { testBadBatches(t, c) })
			t.Run("lines", func(t *testing.T) { testBadLines(t, c) })
			t.Run("requests", func(t *testing.T) { testBadRequests(t, c) })
		})
	}
}

// fileState is what an upload could leave behind: the listed files and the
// objects under files/.
type fileState struct {
	Files   []string
	Objects []string
}

func (c *rawClient) fileState(t *testing.T) fileState {
	t.Helper()
	requireNoStrayObjects(t, c.env, pendingMultipartParts)
	return fileState{Files: fileIDs(c.fileList(t, "limit=10000")), Objects: objectKeys(t, c.env, "files/")}
}

// requireNoStrayObjects checks, for a folder object store, that every file
// under its root is an object the store lists: a failed upload leaves no
// temporary or partial file either.
func requireNoStrayObjects(t *testing.T, env *kilntest.Env, allow ...string) {
	t.Helper()
	root, isFolder := strings.CutPrefix(env.App.Cfg.ObjectStore, "file://")
	if !isFolder {
		return
	}
	listed := map[string]bool{}
	for _, k := range objectKeys(t, env, "") {
		listed[filepath.FromSlash(k)] = true
	}
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		require.NoError(t, err)
		for _, dir := range allow {
			if strings.HasPrefix(rel, filepath.FromSlash(dir)) {
				return nil
			}
		}
		require.True(t, listed[rel], "stray file %s in the object store's folder", rel)
		return nil
	}))
}

// pendingMultipartParts is where a folder keeps the parts of multipart
// uploads in progress: no stray objects while the upload is pending.
const pendingMultipartParts = ".tmp/multipart/"

func testBadUploads(t *testing.T, c *rawClient, maxFile int) {
	valid := chatLines(2, 0)
	purpose := formPart{name: "purpose", data: []byte("batch")}
	file := formPart{name: "file", filename: "in.jsonl", data: valid}
	ct, body := multipartBody(t, purpose, file)
	// A body cut off inside the file part, after more than the object
	// store's first buffer (1 MiB for S3), so a multipart upload was
	// already under way.
	_, long := multipartBody(t, purpose, formPart{name: "file", filename: "in.jsonl", data: bytes.Repeat(valid, (2<<20)/len(valid))})
	truncated := long[:len(long)-1000]

	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		status      int
		code, param string
	}{
		{name: "not multipart", contentType: "application/json", body: []byte(`{"purpose":"batch"}`), status: 400},
		{name: "no boundary", contentType: "multipart/form-data", body: body, status: 400},
		{name: "wrong boundary", contentType: "multipart/form-data; boundary=nope", body: body, status: 400},
		{name: "garbage", contentType: ct, body: []byte("this is not multipart"), status: 400},
		{name: "truncated", contentType: ct, body: truncated, status: 400},
		{name: "empty body", contentType: ct, body: nil, status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.fileState(t)
			r := c.do(t, http.MethodPost, "/v1/files", bytes.NewReader(tc.body), "Content-Type", tc.contentType)
			requireAPIError(t, r, tc.status, tc.code, tc.param)
			require.Equal(t, before, c.fileState(t))
		})
	}

	for _, tc := range []struct {
		name        string
		parts       []formPart
		status      int
		code, param string
	}{
		{name: "missing file", parts: []formPart{purpose}, status: 400, param: "file"},
		{name: "missing purpose", parts: []formPart{file}, status: 400, param: "purpose"},
		{name: "empty purpose", parts: []formPart{{name: "purpose"}, file}, status: 400, param: "purpose"},
		{name: "purpose after file", parts: []formPart{file, {name: "purpose", data: []byte("nonsense")}}, status: 400, param: "purpose"},
		{name: "unknown purpose", parts: []formPart{{name: "purpose", data: []byte("batch_output")}, file}, status: 400, param: "purpose"},
		{name: "two files", parts: []formPart{purpose, file, file}, status: 400, param: "file"},
		{name: "empty batch file", parts: []formPart{purpose, {name: "file", filename: "in.jsonl"}}, status: 400, code: "invalid_file_format", param: "file"},
		{name: "blank batch file", parts: []formPart{purpose, {name: "file", filename: "in.jsonl", data: []byte("\n \n\n")}}, status: 400, code: "invalid_file_format", param: "file"},
		{name: "text batch file", parts: []formPart{purpose, {name: "file", filename: "in.jsonl", data: []byte("custom_id,url\nr1,/v1/chat/completions\n")}}, status: 400, code: "invalid_file_format", param: "file"},
		{name: "JSON array batch file", parts: []formPart{purpose, {name: "file", filename: "in.json", data: []byte("[{\"custom_id\": \"r1\"}]\n")}}, status: 400, code: "invalid_file_format", param: "file"},
		{name: "too large", parts: []formPart{purpose, {name: "file", filename: "in.jsonl", data: bytes.Repeat(valid, maxFile/len(valid)+1)}}, status: 413, code: "file_too_large", param: "file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.fileState(t)
			requireAPIError(t, c.uploadRaw(t, tc.parts...), tc.status, tc.code, tc.param)
			require.Equal(t, before, c.fileState(t))
		})
	}

	// An endless upload: kiln answers 413 once the file passes the limit and
	// stops reading, instead of storing (or discarding) the rest.
	t.Run("too large stream is aborted", func(t *testing.T) {
		before := c.fileState(t)
		const sent = 64 << 20
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		var written atomic.Int64
		go func() {
			err := mw.WriteField("purpose", "batch")
			var w io.Writer
			if err == nil {
				w, err = mw.CreateFormFile("file", "endless.jsonl")
			}
			for err == nil && written.Load() < sent {
				var n int
				n, err = w.Write(valid)
				written.Add(int64(n))
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		r := c.do(t, http.MethodPost, "/v1/files", pr, "Content-Type", mw.FormDataContentType())
		_ = pr.CloseWithError(io.ErrClosedPipe) // stop the writer, whatever it was doing
		requireAPIError(t, r, http.StatusRequestEntityTooLarge, "file_too_large", "file")
		require.Less(t, written.Load(), int64(sent), "the whole body was read")
		require.Equal(t, before, c.fileState(t))
	})

	// A valid upload after all that works.
	t.Run("valid", func(t *testing.T) {
		before := c.fileState(t)
		f := c.upload(t, "batch", "in.jsonl", valid)
		after := c.fileState(t)
		require.Equal(t, append([]string{f.ID}, before.Files...), after.Files)
		require.Contains(t, after.Objects, "files/"+f.ID)
	})
}

func testBadBatches(t *testing.T, c *rawClient) {
	f := c.upload(t, "batch", "in.jsonl", chatLines(2, 0))
	deleted := c.upload(t, "batch", "gone.jsonl", chatLines(2, 0))
	ok[api.FileDeleted](t, c.do(t, http.MethodDelete, "/v1/files/"+deleted.ID, nil), "DeleteFileResponse")
	notes := c.upload(t, "user_data", "notes.jsonl", chatLines(2, 0))

	manyKeys := map[string]string{}
	for i := range 17 {
		manyKeys[fmt.Sprintf("k%d", i)] = "v"
	}
	body := func(edit func(b map[string]any)) map[string]any {
		b := map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
		edit(b)
		return b
	}
	for _, tc := range []struct {
		name        string
		body        map[string]any
		status      int
		code, param string
	}{
		{name: "unknown file", body: body(func(b map[string]any) { b["input_file_id"] = "file-nope" }), status: 404, param: "input_file_id"},
		{name: "deleted file", body: body(func(b map[string]any) { b["input_file_id"] = deleted.ID }), status: 404, param: "input_file_id"},
		{name: "missing file", body: body(func(b map[string]any) { delete(b, "input_file_id") }), status: 400, param: "input_file_id"},
		{name: "file not for batches", body: body(func(b map[string]any) { b["input_file_id"] = notes.ID }), status: 400, param: "input_file_id"},
		{name: "wrong endpoint", body: body(func(b map[string]any) { b["endpoint"] = "/v1/moderations" }), status: 400, param: "endpoint"},
		{name: "missing endpoint", body: body(func(b map[string]any) { delete(b, "endpoint") }), status: 400, param: "endpoint"},
		{name: "missing completion_window", body: body(func(b map[string]any) { delete(b, "completion_window") }), status: 400, param: "completion_window"},
		{name: "completion_window not a duration", body: body(func(b map[string]any) { b["completion_window"] = "tomorrow" }), status: 400, param: "completion_window"},
		{name: "completion_window too short", body: body(func(b map[string]any) { b["completion_window"] = "500ms" }), status: 400, param: "completion_window"},
		{name: "completion_window too long", body: body(func(b map[string]any) { b["completion_window"] = "169h" }), status: 400, param: "completion_window"},
		{name: "completion_window negative", body: body(func(b map[string]any) { b["completion_window"] = "-24h" }), status: 400, param: "completion_window"},
		{name: "completion_window not a string", body: body(func(b map[string]any) { b["completion_window"] = 24 }), status: 400, param: "completion_window"},
		{name: "too many metadata keys", body: body(func(b map[string]any) { b["metadata"] = manyKeys }), status: 400, param: "metadata"},
		{name: "metadata key too long", body: body(func(b map[string]any) { b["metadata"] = map[string]string{strings.Repeat("k", 65): "v"} }), status: 400, param: "metadata"},
		{name: "metadata value too long", body: body(func(b map[string]any) { b["metadata"] = map[string]string{"k": strings.Repeat("v", 513)} }), status: 400, param: "metadata"},
		{name: "metadata value not a string", body: body(func(b map[string]any) { b["metadata"] = map[string]any{"k": 1} }), status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := batchIDs(c.batchList(t, "limit=100"))
			requireAPIError(t, c.createBatchRaw(t, tc.body), tc.status, tc.code, tc.param)
			require.Equal(t, before, batchIDs(c.batchList(t, "limit=100")))
		})
	}

	// The limits themselves are allowed: 16 keys of 64 characters, values
	// of 512 (multi-byte ones count as one), and windows from 1s to 168h.
	t.Run("at the limits", func(t *testing.T) {
		meta := map[string]string{}
		for i := range 16 {
			meta[fmt.Sprintf("%02d", i)+strings.Repeat("é", 62)] = strings.Repeat("ü", 512)
		}
		for _, window := range []string{"1s", "90m", "168h"} {
			b := ok[api.Batch](t, c.createBatchRaw(t, map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions", "completion_window": window, "metadata": meta}), "Batch")
			require.Equal(t, meta, b.Metadata)
			require.Equal(t, window, b.CompletionWindow)
			require.Contains(t, batchIDs(c.batchList(t, "limit=100")), b.ID)
		}
	})
}

// chatLine is one valid input line with custom_id id.
func chatLine(id string) string {
	return fmt.Sprintf(`{"custom_id": %q, "method": "POST", "url": "/v1/chat/completions", "body": {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}}`, id)
}

// lineError is an expected entry of Batch.errors.data.
type lineError struct {
	line int // 0: null
	code string
}

func testBadLines(t *testing.T, c *rawClient) {
	const maxLine = config.MaxLineBytesDefault
	bigLine := func(size int) string {
		l := chatLine("big")
		pad := size - len(l)
		return strings.Replace(l, `"hi"`, `"hi`+strings.Repeat("x", pad)+`"`, 1)
	}
	require.Len(t, bigLine(maxLine+1), maxLine+1)
	manyBad := func(first string, n int) string {
		var b strings.Builder
		b.WriteString(first)
		for range n {
			b.WriteString("{not json\n")
		}
		return b.String()
	}
	wantBad := func(first []lineError, from, to int) []lineError {
		out := append([]lineError{}, first...)
		for l := from; l <= to; l++ {
			out = append(out, lineError{l, "invalid_json_line"})
		}
		return append(out, lineError{0, "too_many_errors"})
	}

	for _, tc := range []struct {
		name  string
		input string
		want  []lineError
		more  int // problems counted in the last, too_many_errors entry
	}{
		{name: "not JSON", input: chatLine("a") + "\n{\"custom_id\": \n" + chatLine("c") + "\n", want: []lineError{{2, "invalid_json_line"}}},
		{name: "not an object", input: chatLine("a") + "\n[1, 2]\n", want: []lineError{{2, "invalid_json_line"}}},
		{name: "two values", input: chatLine("a") + "\n" + chatLine("b") + " {}\n", want: []lineError{{2, "invalid_json_line"}}},
		{name: "duplicate custom_id", input: chatLine("a") + "\n" + chatLine("b") + "\n" + chatLine("a") + "\n", want: []lineError{{3, "duplicate_custom_id"}}},
		{name: "missing custom_id", input: chatLine("a") + "\n" + chatLine("") + "\n", want: []lineError{{2, "missing_custom_id"}}},
		{name: "url differs", input: chatLine("a") + "\n" + strings.Replace(chatLine("b"), "/v1/chat/completions", "/v1/embeddings", 1) + "\n", want: []lineError{{2, "mismatched_url"}}},
		{name: "wrong method", input: chatLine("a") + "\n" + strings.Replace(chatLine("b"), `"POST"`, `"GET"`, 1) + "\n", want: []lineError{{2, "invalid_method"}}},
		{name: "missing model", input: chatLine("a") + "\n" + strings.Replace(chatLine("b"), `"model": "sim-model", `, "", 1) + "\n", want: []lineError{{2, "missing_model"}}},
		{name: "two models", input: chatLine("a") + "\n" + strings.Replace(chatLine("b"), `"sim-model"`, `"other-model"`, 1) + "\n", want: []lineError{{2, "mismatched_model"}}},
		{name: "missing body", input: chatLine("a") + "\n" + `{"custom_id": "b", "method": "POST", "url": "/v1/chat/completions"}` + "\n", want: []lineError{{2, "missing_body"}}},
		{name: "invalid UTF-8", input: chatLine("a") + "\n" + strings.Replace(chatLine("b"), "hi", "h\xffi", 1) + "\n", want: []lineError{{2, "invalid_utf8"}}},
		// A NUL in a stored field used to leave the batch validating for
		// good on PostgreSQL: the job retried SQLSTATE 22021 forever.
		{name: "NUL in model", input: chatLine("a") + "\n" + strings.Replace(chatLine("b"), `"sim-model"`, `"sim\u0000model"`, 1) + "\n", want: []lineError{{2, "invalid_text"}}},
		{name: "NUL in custom_id", input: chatLine("a") + "\n" + strings.Replace(chatLine("b-c"), "b-c", `b\u0000c`, 1) + "\n", want: []lineError{{2, "invalid_text"}}},
		{name: "10.5 MiB line", input: chatLine("a") + "\n" + bigLine(maxLine+maxLine/20) + "\n" + chatLine("c") + "\n", want: []lineError{{2, "line_too_long"}}},
		{name: "first line too long", input: bigLine(maxLine+1) + "\n" + chatLine("c") + "\n", want: []lineError{{1, "line_too_long"}}},
		{name: "last line one byte too long without final newline", input: chatLine("a") + "\n" + bigLine(maxLine+1), want: []lineError{{2, "line_too_long"}}},
		{name: "line numbers count blank lines", input: "\n" + chatLine("a") + "\n\n  \n{oops\n", want: []lineError{{5, "invalid_json_line"}}},
		{name: "several problems", input: chatLine("a") + "\n{oops\n" + chatLine("a") + "\n" + chatLine("") + "\n",
			want: []lineError{{2, "invalid_json_line"}, {3, "duplicate_custom_id"}, {4, "missing_custom_id"}}},
		{name: "over 100 errors", input: manyBad(chatLine("a")+"\n", 130), want: wantBad(nil, 2, 101), more: 30},
		{name: "an early duplicate among over 100 errors", input: manyBad(chatLine("a")+"\n"+chatLine("a")+"\n", 150),
			want: wantBad([]lineError{{2, "duplicate_custom_id"}}, 3, 101), more: 51},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := c.upload(t, "batch", "in.jsonl", []byte(tc.input))
			b := c.waitStatus(t, c.createBatch(t, f.ID).ID)
			require.Equal(t, "failed", b.Status)
			require.NotNil(t, b.FailedAt)
			require.NotNil(t, b.Errors)
			got := make([]lineError, len(b.Errors.Data))
			for i, e := range b.Errors.Data {
				got[i].code = e.Code
				if e.Line != nil {
					got[i].line = *e.Line
				}
				require.NotEmpty(t, e.Message)
			}
			require.Equal(t, tc.want, got)
			if tc.more > 0 {
				require.Contains(t, b.Errors.Data[len(b.Errors.Data)-1].Message, fmt.Sprintf("%d more", tc.more))
			}
			// Nothing half-written: no requests counted, no files, no
			// result objects.
			require.Equal(t, api.BatchRequestCounts{}, b.RequestCounts)
			require.Nil(t, b.OutputFileID)
			require.Nil(t, b.ErrorFileID)
			require.Nil(t, b.InProgressAt)
			require.Empty(t, objectKeys(t, c.env, "batches/"+b.ID+"/"))
		})
	}

	t.Run("blank lines and no final newline", func(t *testing.T) {
		t.Parallel()
		input := "\n" + chatLine("a") + "\n\n \t \n" + chatLine("b") + "\r\n\r\n" + chatLine("c")
		f := c.upload(t, "batch", "in.jsonl", []byte(input))
		b := c.waitStatus(t, c.createBatch(t, f.ID).ID)
		require.Equal(t, "completed", b.Status, "errors: %+v", b.Errors)
		require.Equal(t, api.BatchRequestCounts{Total: 3, Completed: 3}, b.RequestCounts)
		var ids []string
		for line := range bytes.Lines(c.content(t, *b.OutputFileID)) {
			var out struct {
				CustomID string `json:"custom_id"`
			}
			require.NoError(t, json.Unmarshal(line, &out))
			ids = append(ids, out.CustomID)
		}
		require.ElementsMatch(t, []string{"a", "b", "c"}, ids)
	})
}

func testBadRequests(t *testing.T, c *rawClient) {
	done := c.waitStatus(t, c.createBatch(t, c.upload(t, "batch", "in.jsonl", chatLines(2, 0)).ID).ID)
	require.Equal(t, "completed", done.Status)
	failed := c.waitStatus(t, c.createBatch(t, c.upload(t, "batch", "in.jsonl", []byte(chatLine("a")+"\n{oops\n")).ID).ID)
	require.Equal(t, "failed", failed.Status)

	t.Run("cancel finished", func(t *testing.T) {
		for _, b := range []api.Batch{done, failed} {
			e := requireAPIError(t, c.do(t, http.MethodPost, "/v1/batches/"+b.ID+"/cancel", nil), http.StatusConflict, "", "")
			require.Equal(t, "invalid_request_error", e.Type)
			require.Contains(t, e.Message, b.Status)
			require.Equal(t, b, c.batch(t, b.ID), "a refused cancel changed the batch")
		}
	})

	t.Run("unknown IDs", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/v1/batches/batch_01h000000000000000000000"},
			{"POST", "/v1/batches/batch_01h000000000000000000000/cancel"},
			{"GET", "/v1/batches/" + done.InputFileID}, // a file's ID is no batch's
			{"GET", "/v1/files/file-01h000000000000000000000"},
			{"GET", "/v1/files/file-01h000000000000000000000/content"},
			{"DELETE", "/v1/files/file-01h000000000000000000000"},
			{"GET", "/v1/files/" + done.ID}, // a batch's ID is no file's
		} {
			e := requireAPIError(t, c.do(t, tc.method, tc.path, nil), http.StatusNotFound, "", "")
			require.Equal(t, "invalid_request_error", e.Type)
		}
	})

	t.Run("missing or invalid key", func(t *testing.T) {
		for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer  ", "Basic " + c.env.Key, "Bearer sk-kiln-wrong", "Bearer " + c.env.Key + "x"} {
			for _, route := range []struct{ method, path string }{
				{"GET", "/v1/files"}, {"POST", "/v1/files"}, {"GET", "/v1/files/" + done.InputFileID},
				{"GET", "/v1/files/" + done.InputFileID + "/content"}, {"DELETE", "/v1/files/" + done.InputFileID},
				{"GET", "/v1/batches"}, {"POST", "/v1/batches"}, {"GET", "/v1/batches/" + done.ID},
				{"POST", "/v1/batches/" + done.ID + "/cancel"}, {"GET", "/v1/models"}, {"GET", "/v1/nope"},
			} {
				r := c.do(t, route.method, route.path, nil, "Authorization", auth)
				e := requireAPIError(t, r, http.StatusUnauthorized, "", "null")
				require.NotContains(t, e.Message, c.env.Key, "the key is echoed")
			}
		}
		// Nothing was deleted by the unauthorised DELETE.
		ok[api.File](t, c.do(t, http.MethodGet, "/v1/files/"+done.InputFileID, nil), "OpenAIFile")
	})
}
