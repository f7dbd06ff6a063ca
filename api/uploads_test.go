package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/internal/cli"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/openaispec"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/testenv"
)

// startPresigning starts kiln on backend with a public URL that reaches it,
// so that the folder store's presigned URLs work: kilntest listens on a
// random port, which the default public URL (localhost and the port of
// Addr, here 0) cannot name.
func startPresigning(t *testing.T, backend string, configure func(*config.Config)) *kilntest.Env {
	t.Helper()
	addr := testenv.FreeAddr(t)
	return kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
		c.Addr = addr
		c.PublicURL = "http://" + addr
		if configure != nil {
			configure(c)
		}
	}})
}

// createUpload starts an upload of size bytes, validated against OpenAI's
// schema.
func (c *rawClient) createUpload(t *testing.T, purpose, filename string, size int) api.Upload {
	t.Helper()
	r := c.do(t, http.MethodPost, "/v1/uploads", jsonReader(t, map[string]any{
		"bytes": size, "filename": filename, "mime_type": "application/jsonl", "purpose": purpose,
	}), "Content-Type", "application/json")
	u := ok[api.Upload](t, r, "Upload")
	require.Equal(t, "upload", u.Object)
	require.Equal(t, "pending", u.Status)
	require.EqualValues(t, size, u.Bytes)
	require.Equal(t, filename, u.Filename)
	require.Equal(t, purpose, u.Purpose)
	require.Nil(t, u.File)
	require.Greater(t, u.ExpiresAt, u.CreatedAt)
	return u
}

// addPartRaw posts data as a part of an upload, in the multipart field
// "data".
func (c *rawClient) addPartRaw(t *testing.T, uploadID string, data []byte) rawResponse {
	t.Helper()
	ct, body := multipartBody(t, formPart{name: "data", filename: "blob", data: data})
	return c.do(t, http.MethodPost, "/v1/uploads/"+uploadID+"/parts", bytes.NewReader(body), "Content-Type", ct)
}

// addPart adds a part and returns it, validated against OpenAI's schema.
func (c *rawClient) addPart(t *testing.T, uploadID string, data []byte) api.UploadPart {
	t.Helper()
	p := ok[api.UploadPart](t, c.addPartRaw(t, uploadID, data), "UploadPart")
	require.Equal(t, "upload.part", p.Object)
	require.Equal(t, uploadID, p.UploadID)
	require.Nil(t, p.URL, "a direct part has no URL")
	return p
}

func (c *rawClient) presignRaw(t *testing.T, uploadID string, count int) rawResponse {
	t.Helper()
	return c.do(t, http.MethodPost, "/v1/uploads/"+uploadID+"/parts/presigned", jsonReader(t, map[string]any{"count": count}),
		"Content-Type", "application/json")
}

// presign makes count presigned parts; each validates against OpenAI's
// UploadPart, whose extra fields are kiln's extension.
func (c *rawClient) presign(t *testing.T, uploadID string, count int) []api.UploadPart {
	t.Helper()
	r := c.presignRaw(t, uploadID, count)
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	var raw struct {
		Object string
		Data   []json.RawMessage
	}
	require.NoError(t, json.Unmarshal(r.Body, &raw))
	require.Equal(t, "list", raw.Object)
	require.Len(t, raw.Data, count)
	parts := make([]api.UploadPart, count)
	for i, d := range raw.Data {
		openaispec.MustValidate(t, "UploadPart", d)
		require.NoError(t, json.Unmarshal(d, &parts[i]))
		p := parts[i]
		require.Equal(t, uploadID, p.UploadID)
		require.NotNil(t, p.URL)
		require.Equal(t, http.MethodPut, *p.Method)
		require.NotNil(t, p.ExpiresAt)
	}
	return parts
}

func (c *rawClient) completeRaw(t *testing.T, uploadID string, partIDs []string, sum string) rawResponse {
	t.Helper()
	body := map[string]any{"part_ids": partIDs}
	if sum != "" {
		body["md5"] = sum
	}
	return c.do(t, http.MethodPost, "/v1/uploads/"+uploadID+"/complete", jsonReader(t, body), "Content-Type", "application/json")
}

// complete completes an upload and checks that it made its file.
func (c *rawClient) complete(t *testing.T, uploadID string, partIDs []string, sum string) api.Upload {
	t.Helper()
	u := ok[api.Upload](t, c.completeRaw(t, uploadID, partIDs, sum), "Upload")
	require.Equal(t, "completed", u.Status)
	require.NotNil(t, u.File)
	require.EqualValues(t, u.Bytes, u.File.Bytes)
	require.Equal(t, u.Filename, u.File.Filename)
	require.Equal(t, u.Purpose, u.File.Purpose)
	return u
}

func (c *rawClient) cancelUpload(t *testing.T, uploadID string) rawResponse {
	t.Helper()
	return c.do(t, http.MethodPost, "/v1/uploads/"+uploadID+"/cancel", nil)
}

// put sends data to a presigned URL as a client would, without kiln's key.
func put(t *testing.T, url string, data []byte) rawResponse {
	t.Helper()
	r, err := sendTo(http.MethodPut, url, data, nil)
	require.NoError(t, err)
	return r
}

// sendTo sends one request with no API key and reads the answer whole,
// following no redirect. It fails only on transport errors, so goroutines
// may call it.
func sendTo(method, url string, body []byte, header http.Header) (rawResponse, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		return rawResponse{}, err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range header {
		req.Header[k] = v
	}
	hc := &http.Client{Timeout: 2 * time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func partIDs(parts ...api.UploadPart) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.ID
	}
	return out
}

// requireNoParts checks that nothing is left under an upload's prefix.
func requireNoParts(t *testing.T, env *kilntest.Env, uploadID string) {
	t.Helper()
	require.Empty(t, objectKeys(t, env, "uploads/"+uploadID+"/"), "parts of upload %s remain", uploadID)
}

// TestUploads drives the Uploads API, direct and presigned parts, through
// every way a large upload can go wrong; each gets OpenAI's error envelope
// and, once the upload is cancelled or completed, leaves no object behind.
// It checks ranged and redirected downloads too.
func TestUploads(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			const maxPart = 1 << 20
			env := startPresigning(t, backend, func(c *config.Config) { c.MaxPartBytes = maxPart })
			c := newRawClient(env)

			// The subtests run one after another: several compare the
			// files and objects before and after.
			t.Run("direct parts", func(t *testing.T) {
				data := chatLines(30, 0)
				third := len(data) / 3
				u := c.createUpload(t, "batch", "direct.jsonl", len(data))
				var parts []api.UploadPart
				for _, chunk := range [][]byte{data[:third], data[third : 2*third], data[2*third:]} {
					parts = append(parts, c.addPart(t, u.ID, chunk))
				}
				require.Len(t, objectKeys(t, env, "uploads/"+u.ID+"/"), 3)
				done := c.complete(t, u.ID, partIDs(parts...), md5Hex(data))
				require.Equal(t, u.ID, done.ID)
				require.Equal(t, "batch", done.File.Purpose)
				require.Equal(t, data, c.content(t, done.File.ID))
				requireNoParts(t, env, u.ID)

				// The file runs as a batch.
				b := c.createBatch(t, done.File.ID)
				sdk := sdkClient(env)
				end := waitBatch(t, sdk, b.ID)
				require.Equal(t, "completed", string(end.Status))
				requireExactlyOnce(t, end, 30, resultLines(t, sdk, end.OutputFileID), resultLines(t, sdk, end.ErrorFileID))
			})

			t.Run("presigned parts", func(t *testing.T) {
				data := chatLines(40, 0)
				half := len(data) / 2
				u := c.createUpload(t, "batch", "presigned.jsonl", len(data))
				parts := c.presign(t, u.ID, 2)
				require.NotEqual(t, parts[0].ID, parts[1].ID)
				require.LessOrEqual(t, *parts[0].ExpiresAt, u.ExpiresAt, "a part's URL dies with its upload")
				require.Greater(t, *parts[0].ExpiresAt, time.Now().Unix())
				// Both at once, straight to the object store.
				var wg sync.WaitGroup
				got := make([]rawResponse, 2)
				errs := make([]error, 2)
				for i, chunk := range [][]byte{data[:half], data[half:]} {
					wg.Go(func() { got[i], errs[i] = sendTo(http.MethodPut, *parts[i].URL, chunk, nil) })
				}
				wg.Wait()
				for i := range got {
					require.NoError(t, errs[i])
					require.Equal(t, http.StatusOK, got[i].Status, "%s", got[i])
				}
				done := c.complete(t, u.ID, partIDs(parts...), md5Hex(data))
				require.Equal(t, data, c.content(t, done.File.ID))
				requireNoParts(t, env, u.ID)

				b := c.createBatch(t, done.File.ID)
				sdk := sdkClient(env)
				end := waitBatch(t, sdk, b.ID)
				require.Equal(t, "completed", string(end.Status))
				requireExactlyOnce(t, end, 40, resultLines(t, sdk, end.OutputFileID), resultLines(t, sdk, end.ErrorFileID))
			})

			t.Run("complete errors", func(t *testing.T) { testCompleteErrors(t, env, c, maxPart) })
			t.Run("part too large", func(t *testing.T) {
				u := c.createUpload(t, "user_data", "big.bin", 2*maxPart)
				before := c.fileState(t)
				requireAPIError(t, c.addPartRaw(t, u.ID, bytes.Repeat([]byte("x"), maxPart+1)), http.StatusRequestEntityTooLarge, "part_too_large", "data")
				requireNoParts(t, env, u.ID)
				// The limit itself is fine.
				c.addPart(t, u.ID, bytes.Repeat([]byte("y"), maxPart))
				require.Len(t, objectKeys(t, env, "uploads/"+u.ID+"/"), 1)
				require.Equal(t, before, c.fileState(t))
				ok[api.Upload](t, c.cancelUpload(t, u.ID), "Upload")
				requireNoParts(t, env, u.ID)
			})
			t.Run("multipart part too large", func(t *testing.T) {
				// A multipart part's size is known only at completion.
				data := bytes.Repeat([]byte("z"), maxPart+1)
				u := c.createUpload(t, "user_data", "big.bin", len(data))
				before := c.fileState(t)
				parts := c.presignMultipart(t, u.ID, 1)
				r := putMD5(t, *parts[0].URL, data, data)
				require.Equal(t, http.StatusOK, r.Status, "%s", r)
				requireAPIError(t, c.completeRaw(t, u.ID, []string{parts[0].ID}, ""), http.StatusRequestEntityTooLarge, "part_too_large", "part_ids")
				require.Equal(t, before, c.fileState(t))
				ok[api.Upload](t, c.cancelUpload(t, u.ID), "Upload")
				requireNoParts(t, env, u.ID)
			})
			t.Run("cancel", func(t *testing.T) { testUploadCancel(t, env, c) })
			t.Run("complete or cancel", func(t *testing.T) { testCompleteCancelRace(t, env, c) })
			t.Run("tampered URLs", func(t *testing.T) {
				a := c.createUpload(t, "user_data", "a.bin", 10)
				b := c.createUpload(t, "user_data", "b.bin", 10)
				pa, pb := c.presign(t, a.ID, 1)[0], c.presign(t, b.ID, 1)[0]
				for name, url := range map[string]string{
					// a's signature on b's part, and on a part of a's that
					// kiln never made.
					"another upload's part": strings.Replace(*pa.URL, "/uploads/"+a.ID+"/"+pa.ID, "/uploads/"+b.ID+"/"+pb.ID, 1),
					"another upload":        strings.Replace(*pa.URL, "/uploads/"+a.ID+"/", "/uploads/"+b.ID+"/", 1),
					"another part":          strings.Replace(*pa.URL, pa.ID, pa.ID+"x", 1),
				} {
					require.NotEqual(t, *pa.URL, url, name)
					r := put(t, url, []byte("0123456789"))
					require.Equal(t, http.StatusForbidden, r.Status, "%s: %s", name, r)
				}
				// A PUT URL does not read.
				r, err := sendTo(http.MethodGet, *pa.URL, nil, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusForbidden, r.Status, "%s", r)
				requireNoParts(t, env, a.ID)
				requireNoParts(t, env, b.ID)
				for _, u := range []api.Upload{a, b} {
					ok[api.Upload](t, c.cancelUpload(t, u.ID), "Upload")
				}
			})
			t.Run("downloads", func(t *testing.T) { testDownloads(t, env, c) })
			t.Run("kiln batch submit, over 1000 parts", func(t *testing.T) {
				// The server presigns at most 1,000 parts a call.
				const n, partSize = 800, 128
				data := chatLines(n, 0)
				require.Greater(t, len(data), 1000*partSize)
				path := filepath.Join(t.TempDir(), "many.jsonl")
				require.NoError(t, os.WriteFile(path, data, 0o600))
				id := runCLI(t, env, "batch", "submit", path, "--part-size", strconv.Itoa(partSize), "--parallel", "8", "--wait")
				b := c.batch(t, id)
				require.Equal(t, "completed", b.Status, "errors: %+v", b.Errors)
				require.Equal(t, data, c.content(t, b.InputFileID))
				require.Equal(t, api.BatchRequestCounts{Total: n, Completed: n}, b.RequestCounts)
			})

			// Every upload above ended completed or cancelled: no part is
			// left, and every object under files/ is a listed file.
			require.Empty(t, objectKeys(t, env, "uploads/"))
			state := c.fileState(t)
			require.ElementsMatch(t, filesKeys(state.Files), state.Objects)
		})
	}
}

func filesKeys(ids []string) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, "files/"+id)
	}
	return out
}

// testCompleteErrors completes one upload wrongly in every way, then right:
// each wrong attempt leaves the upload pending and makes no file, and the
// right one, with the parts out of their creation order, assembles them in
// the order given and removes every part, used or not.
func testCompleteErrors(t *testing.T, env *kilntest.Env, c *rawClient, maxPart int) {
	a, b, cc := []byte("AAAAAAAAAA"), []byte("BBBBBBB"), []byte("CCCC")
	size := len(a) + len(b) + len(cc)
	u := c.createUpload(t, "user_data", "parts.bin", size)
	pa, pb, pc := c.addPart(t, u.ID, a), c.addPart(t, u.ID, b), c.addPart(t, u.ID, cc)
	presigned := c.presign(t, u.ID, 3)
	tooBig, never, extra := presigned[0], presigned[1], presigned[2]
	require.Equal(t, http.StatusOK, put(t, *tooBig.URL, bytes.Repeat([]byte("z"), maxPart+1)).Status)
	require.Equal(t, http.StatusOK, put(t, *extra.URL, []byte("E")).Status)
	other := c.createUpload(t, "user_data", "other.bin", 1)
	po := c.addPart(t, other.ID, []byte("O"))
	want := append(append(append([]byte{}, cc...), a...), b...)

	for _, tc := range []struct {
		name   string
		parts  []string
		md5    string
		status int
		code   string
		param  string
	}{
		{name: "no parts", parts: []string{}, status: 400, param: "part_ids"},
		{name: "unknown part", parts: []string{pa.ID, "part_nope"}, status: 400, param: "part_ids"},
		{name: "part of another upload", parts: []string{pc.ID, pa.ID, po.ID}, status: 400, param: "part_ids"},
		{name: "part twice", parts: []string{pc.ID, pa.ID, pa.ID}, status: 400, param: "part_ids"},
		{name: "presigned part never put", parts: []string{pc.ID, pa.ID, pb.ID, never.ID}, status: 400, param: "part_ids"},
		{name: "presigned part too large", parts: []string{tooBig.ID}, status: 413, code: "part_too_large", param: "part_ids"},
		{name: "part missing", parts: []string{pc.ID, pa.ID}, status: 400, param: "part_ids"},
		{name: "bytes over", parts: []string{pc.ID, pa.ID, pb.ID, extra.ID}, status: 400, param: "part_ids"},
		{name: "md5 mismatch", parts: []string{pc.ID, pa.ID, pb.ID}, md5: md5Hex([]byte("something else")), status: 400, param: "md5"},
		{name: "md5 of another order", parts: []string{pc.ID, pa.ID, pb.ID}, md5: md5Hex(append(append(append([]byte{}, a...), b...), cc...)), status: 400, param: "md5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.fileState(t)
			requireAPIError(t, c.completeRaw(t, u.ID, tc.parts, tc.md5), tc.status, tc.code, tc.param)
			require.Equal(t, before, c.fileState(t), "a failed completion leaves no file")
		})
	}

	done := c.complete(t, u.ID, []string{pc.ID, pa.ID, pb.ID}, md5Hex(want))
	require.Equal(t, want, c.content(t, done.File.ID), "the file is its parts in part_ids order")
	requireNoParts(t, env, u.ID)
	requireAPIError(t, c.completeRaw(t, u.ID, []string{pc.ID, pa.ID, pb.ID}, ""), http.StatusConflict, "upload_not_pending", "")
	requireAPIError(t, c.cancelUpload(t, u.ID), http.StatusConflict, "upload_not_pending", "")
	requireAPIError(t, c.addPartRaw(t, u.ID, a), http.StatusConflict, "upload_not_pending", "")
	requireAPIError(t, c.presignRaw(t, u.ID, 1), http.StatusConflict, "upload_not_pending", "")

	// The other upload kept its part, which cancelling removes.
	require.Len(t, objectKeys(t, env, "uploads/"+other.ID+"/"), 1)
	ok[api.Upload](t, c.cancelUpload(t, other.ID), "Upload")
	requireNoParts(t, env, other.ID)

	for _, tc := range []struct {
		name, path  string
		body        any
		status      int
		code, param string
	}{
		{name: "unknown upload", path: "/v1/uploads/upload_nope/complete", body: map[string]any{"part_ids": []string{"part_x"}}, status: 404},
		{name: "parts of unknown upload", path: "/v1/uploads/upload_nope/parts/presigned", body: map[string]any{"count": 1}, status: 404},
		{name: "cancel unknown upload", path: "/v1/uploads/upload_nope/cancel", status: 404},
		{name: "no presigned parts", path: "/v1/uploads/" + other.ID + "/parts/presigned", body: map[string]any{"count": 0}, status: 400, param: "count"},
		{name: "too many presigned parts", path: "/v1/uploads/" + other.ID + "/parts/presigned", body: map[string]any{"count": 1001}, status: 400, param: "count"},
		{name: "upload bytes zero", path: "/v1/uploads", body: map[string]any{"bytes": 0, "filename": "x", "mime_type": "text/plain", "purpose": "batch"}, status: 400},
		{name: "upload bad purpose", path: "/v1/uploads", body: map[string]any{"bytes": 1, "filename": "x", "mime_type": "text/plain", "purpose": "nope"}, status: 400, param: "purpose"},
		{name: "upload too large", path: "/v1/uploads", body: map[string]any{"bytes": env.App.Cfg.MaxFileBytes + 1, "filename": "x", "mime_type": "text/plain", "purpose": "batch"}, status: 413, code: "file_too_large", param: "bytes"},
		{name: "filename of 100,000 characters", path: "/v1/uploads", body: map[string]any{"bytes": 1, "filename": strings.Repeat("x", 100_000), "mime_type": "text/plain", "purpose": "batch"}, status: 400, param: "filename"},
		{name: "MIME type of 100,000 characters", path: "/v1/uploads", body: map[string]any{"bytes": 1, "filename": "x", "mime_type": strings.Repeat("x", 100_000), "purpose": "batch"}, status: 400, param: "mime_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				body = jsonReader(t, tc.body)
			}
			requireAPIError(t, c.do(t, http.MethodPost, tc.path, body, "Content-Type", "application/json"), tc.status, tc.code, tc.param)
		})
	}

	t.Run("batch file not JSONL", func(t *testing.T) {
		data := []byte("not JSON\n")
		u := c.createUpload(t, "batch", "bad.jsonl", len(data))
		p := c.addPart(t, u.ID, data)
		before := c.fileState(t)
		requireAPIError(t, c.completeRaw(t, u.ID, []string{p.ID}, ""), http.StatusBadRequest, "invalid_file_format", "")
		require.Equal(t, before, c.fileState(t))
		ok[api.Upload](t, c.cancelUpload(t, u.ID), "Upload")
		requireNoParts(t, env, u.ID)
	})
}

// testUploadCancel cancels an upload with parts of both kinds.
func testUploadCancel(t *testing.T, env *kilntest.Env, c *rawClient) {
	before := c.fileState(t)
	u := c.createUpload(t, "batch", "cancel.jsonl", 100)
	p := c.addPart(t, u.ID, chatLines(1, 0))
	ps := c.presign(t, u.ID, 2)
	require.Equal(t, http.StatusOK, put(t, *ps[0].URL, chatLines(1, 0)).Status)
	require.Len(t, objectKeys(t, env, "uploads/"+u.ID+"/"), 2)

	got := ok[api.Upload](t, c.cancelUpload(t, u.ID), "Upload")
	require.Equal(t, "cancelled", got.Status)
	require.Nil(t, got.File)
	requireNoParts(t, env, u.ID)
	require.Equal(t, before, c.fileState(t))

	requireAPIError(t, c.cancelUpload(t, u.ID), http.StatusConflict, "upload_not_pending", "")
	requireAPIError(t, c.completeRaw(t, u.ID, []string{p.ID, ps[0].ID}, ""), http.StatusConflict, "upload_not_pending", "")
	requireAPIError(t, c.addPartRaw(t, u.ID, []byte("x")), http.StatusConflict, "upload_not_pending", "")
	requireAPIError(t, c.presignRaw(t, u.ID, 1), http.StatusConflict, "upload_not_pending", "")
	requireNoParts(t, env, u.ID)
}

// testCompleteCancelRace completes and cancels uploads at the same moment:
// exactly one call wins and the other gets 409, and the upload ends either
// completed with its file and no parts or cancelled with neither.
func testCompleteCancelRace(t *testing.T, env *kilntest.Env, c *rawClient) {
	const rounds = 20
	ctx := context.Background()
	data := chatLines(200, 0)
	half := len(data) / 2
	filesBefore := len(objectKeys(t, env, "files/"))
	var completed, cancelled int
	for round := range rounds {
		u := c.createUpload(t, "batch", "race.jsonl", len(data))
		p1 := c.addPart(t, u.ID, data[:half])
		p2 := c.presign(t, u.ID, 1)[0]
		require.Equal(t, http.StatusOK, put(t, *p2.URL, data[half:]).Status)

		completeBody, err := json.Marshal(map[string]any{"part_ids": []string{p1.ID, p2.ID}, "md5": md5Hex(data)})
		require.NoError(t, err)
		jsonHeader := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + env.Key}}
		var (
			start          = make(chan struct{})
			wg             sync.WaitGroup
			complete, canc rawResponse
			errComplete    error
			errCancel      error
		)
		wg.Go(func() {
			<-start
			complete, errComplete = sendTo(http.MethodPost, c.root+"/v1/uploads/"+u.ID+"/complete", completeBody, jsonHeader)
		})
		wg.Go(func() {
			<-start
			canc, errCancel = sendTo(http.MethodPost, c.root+"/v1/uploads/"+u.ID+"/cancel", nil, jsonHeader)
		})
		close(start)
		wg.Wait()
		require.NoError(t, errComplete)
		require.NoError(t, errCancel)

		final, err := env.App.Store.UploadGet(ctx, u.ID)
		require.NoError(t, err)
		switch {
		case complete.Status == http.StatusOK:
			completed++
			requireAPIError(t, canc, http.StatusConflict, "", "")
			got := ok[api.Upload](t, complete, "Upload")
			require.Equal(t, "completed", got.Status)
			require.NotNil(t, got.File)
			require.Equal(t, store.UploadCompleted, final.Status)
			require.Equal(t, got.File.ID, *final.FileID)
			require.Equal(t, data, c.content(t, got.File.ID))
		case canc.Status == http.StatusOK:
			cancelled++
			requireAPIError(t, complete, http.StatusConflict, "upload_not_pending", "")
			got := ok[api.Upload](t, canc, "Upload")
			require.Equal(t, "cancelled", got.Status)
			require.Nil(t, got.File)
			require.Equal(t, store.UploadCancelled, final.Status)
			require.Nil(t, final.FileID)
		default:
			t.Fatalf("round %d: neither won: complete %s, cancel %s", round, complete, canc)
		}
		requireNoParts(t, env, u.ID)
	}
	t.Logf("%d rounds: complete won %d, cancel won %d", rounds, completed, cancelled)
	require.Len(t, objectKeys(t, env, "files/"), filesBefore+completed, "one file per completed upload and none per cancelled one")
	requireNoStrayObjects(t, env)
}

// testDownloads reads a file by ranges and through a redirect to its
// presigned URL.
func testDownloads(t *testing.T, env *kilntest.Env, c *rawClient) {
	data := []byte("abcdefghijklmnopqrstuvwxyz")
	f := c.upload(t, "user_data", "letters.txt", data)
	path := "/v1/files/" + f.ID + "/content"

	whole := c.do(t, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, whole.Status, "%s", whole)
	require.Equal(t, data, whole.Body)
	require.Equal(t, "bytes", whole.Header.Get("Accept-Ranges"))

	for _, tc := range []struct {
		rng, body, contentRange string
	}{
		{"bytes=0-9", "abcdefghij", "bytes 0-9/26"},
		{"bytes=10-", "klmnopqrstuvwxyz", "bytes 10-25/26"},
		{"bytes=-5", "vwxyz", "bytes 21-25/26"},
		{"bytes=20-99", "uvwxyz", "bytes 20-25/26"},
		{"bytes=-100", string(data), "bytes 0-25/26"},
		{"bytes=25-25", "z", "bytes 25-25/26"},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			r := c.do(t, http.MethodGet, path, nil, "Range", tc.rng)
			require.Equal(t, http.StatusPartialContent, r.Status, "%s", r)
			require.Equal(t, tc.body, string(r.Body))
			require.Equal(t, tc.contentRange, r.Header.Get("Content-Range"))
			require.Equal(t, strconv.Itoa(len(tc.body)), r.Header.Get("Content-Length"))
		})
	}
	for _, rng := range []string{"bytes=26-", "bytes=30-40", "bytes=9-3", "bytes=-0", "bytes=0-1,4-5", "items=0-9", "bytes=a-b", "bytes=5", "0-9"} {
		t.Run("invalid "+rng, func(t *testing.T) {
			requireAPIError(t, c.do(t, http.MethodGet, path, nil, "Range", rng), http.StatusRequestedRangeNotSatisfiable, "invalid_range", "Range")
		})
	}

	t.Run("redirect", func(t *testing.T) {
		auth := http.Header{"Authorization": {"Bearer " + env.Key}}
		r, err := sendTo(http.MethodGet, c.root+path+"?redirect=true", nil, auth)
		require.NoError(t, err)
		require.Equal(t, http.StatusTemporaryRedirect, r.Status, "%s", r)
		loc := r.Header.Get("Location")
		require.NotEmpty(t, loc)
		require.False(t, strings.HasPrefix(loc, c.root+"/v1/"), "the redirect leaves the API: %s", loc)
		if env.Backend == "sqlite" { // a folder's URLs are served by kiln
			require.True(t, strings.HasPrefix(loc, c.root+"/objects/"), "%s", loc)
		}

		// The URL is the credential: no API key.
		got, err := sendTo(http.MethodGet, loc, nil, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, got.Status, "%s", got)
		require.Equal(t, data, got.Body)
		require.Contains(t, got.Header.Get("Content-Disposition"), "letters.txt")
		part, err := sendTo(http.MethodGet, loc, nil, http.Header{"Range": {"bytes=-5"}})
		require.NoError(t, err)
		require.Equal(t, http.StatusPartialContent, part.Status, "%s", part)
		require.Equal(t, "vwxyz", string(part.Body))
		// The URL reads this file only.
		bad, err := sendTo(http.MethodGet, strings.Replace(loc, f.ID, f.ID+"x", 1), nil, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, bad.Status, "%s", bad)

		// A Range is served by kiln itself, redirect or not.
		r = c.do(t, http.MethodGet, path+"?redirect=true", nil, "Range", "bytes=0-9")
		require.Equal(t, http.StatusPartialContent, r.Status, "%s", r)
		require.Equal(t, "abcdefghij", string(r.Body))
		requireAPIError(t, c.do(t, http.MethodGet, "/v1/files/file-nope/content?redirect=true", nil), http.StatusNotFound, "", "")
	})
}

// TestUploadExpiry lets uploads expire: completing one, adding or
// presigning parts, and PUTting to a part's URL afterwards all fail, and the
// expiry job marks abandoned uploads expired and removes their parts.
func TestUploadExpiry(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			// Long enough to add and presign parts, whose URLs die in
			// whole seconds before the upload does.
			const ttl = 5 * time.Second
			env := startPresigning(t, backend, func(c *config.Config) { c.UploadTTL = ttl })
			c := newRawClient(env)
			ctx := context.Background()
			data := chatLines(4, 0)
			half := len(data) / 2

			// Abandoned halfway: one part added, one put at its URL, one
			// URL never used.
			abandoned := c.createUpload(t, "batch", "abandoned.jsonl", len(data))
			c.addPart(t, abandoned.ID, data[:half])
			ps := c.presign(t, abandoned.ID, 2)
			require.Equal(t, http.StatusOK, put(t, *ps[0].URL, data[half:]).Status)
			require.Len(t, objectKeys(t, env, "uploads/"+abandoned.ID+"/"), 2)

			// Complete, every part there, but too late.
			late := c.createUpload(t, "batch", "late.jsonl", len(data))
			lateParts := []string{c.addPart(t, late.ID, data).ID}

			// A part URL used only after the upload expired.
			unused := c.createUpload(t, "batch", "unused.jsonl", len(data))
			url := c.presign(t, unused.ID, 1)[0]
			require.LessOrEqual(t, *url.ExpiresAt, unused.ExpiresAt)

			expires := time.Unix(max(abandoned.ExpiresAt, late.ExpiresAt, unused.ExpiresAt), 0)
			for time.Now().Before(expires) {
				pause(50 * time.Millisecond)
			}

			requireAPIError(t, c.completeRaw(t, late.ID, lateParts, md5Hex(data)), http.StatusConflict, "upload_not_pending", "")
			requireAPIError(t, c.addPartRaw(t, late.ID, data), http.StatusConflict, "upload_not_pending", "")
			requireAPIError(t, c.presignRaw(t, late.ID, 1), http.StatusConflict, "upload_not_pending", "")
			r := put(t, *url.URL, data)
			require.Equal(t, http.StatusForbidden, r.Status, "a part URL works after its upload expired: %s", r)
			require.Contains(t, string(r.Body), "AccessDenied")

			// The expiry job marks each upload expired and removes its
			// parts.
			deadline := time.Now().Add(time.Minute)
			for _, u := range []api.Upload{abandoned, late, unused} {
				for {
					got, err := env.App.Store.UploadGet(ctx, u.ID)
					require.NoError(t, err)
					if got.Status == store.UploadExpired && len(objectKeys(t, env, "uploads/"+u.ID+"/")) == 0 {
						require.Nil(t, got.FileID)
						break
					}
					require.True(t, time.Now().Before(deadline), "upload %s is %s with parts %v a minute after it expired",
						u.ID, got.Status, objectKeys(t, env, "uploads/"+u.ID+"/"))
					pause(50 * time.Millisecond)
				}
			}
			requireAPIError(t, c.cancelUpload(t, abandoned.ID), http.StatusConflict, "upload_not_pending", "")
			require.Empty(t, objectKeys(t, env, "uploads/"))
			require.Empty(t, objectKeys(t, env, "files/"))
			require.Empty(t, fileIDs(c.fileList(t, "")))
			requireNoStrayObjects(t, env)
		})
	}
}

// largeInputBytes is the size of TestUploadLarge's input: 300 MiB of
// 10 KiB requests.
const (
	largeLineBytes  = 10 << 10
	largeInputBytes = 300 << 20
	largeRequests   = largeInputBytes / largeLineBytes
)

// writeLargeInput writes TestUploadLarge's input to a file, one request of
// exactly largeLineBytes a line, and never holds more than one line.
func writeLargeInput(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	filler := strings.Repeat("lorem ipsum dolor sit amet ", largeLineBytes/27+1)
	for i := range largeRequests {
		head := fmt.Sprintf(`{"custom_id":"req-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","max_tokens":1,"messages":[{"role":"user","content":"Request %d: `, i, i)
		const tail = "\"}]}}\n"
		_, err := w.WriteString(head + filler[:largeLineBytes-len(head)-len(tail)] + tail)
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.EqualValues(t, largeInputBytes, st.Size())
}

// runCLI runs the kiln command line in-process against env.
func runCLI(t *testing.T, env *kilntest.Env, args ...string) (stdout string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--url", strings.TrimSuffix(env.URL, "/v1"), "--key", env.Key)
	code := cli.Main(args, &out, &errOut)
	require.Zero(t, code, "kiln %s: %s", strings.Join(args, " "), errOut.String())
	return strings.TrimSpace(out.String())
}

// TestUploadLarge is the done-when test of large files: a 300 MiB batch
// file goes up in parallel presigned parts with `kiln batch submit`, is
// completed with its MD5, validated and run; `kiln batch download` fetches
// the output, whose custom_ids are counted streaming, never held whole.
func TestUploadLarge(t *testing.T) {
	t.Parallel()
	input := filepath.Join(t.TempDir(), "large.jsonl")
	writeLargeInput(t, input)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			start := time.Now()
			env := startPresigning(t, backend, nil)
			c := newRawClient(env)

			id := runCLI(t, env, "batch", "submit", input, "--part-size", strconv.Itoa(32<<20), "--parallel", "4", "--wait")
			t.Logf("%s: submitted and ran in %s", backend, time.Since(start).Round(time.Millisecond))
			b := c.batch(t, id)
			require.Equal(t, "completed", b.Status, "errors: %+v", b.Errors)
			require.Equal(t, api.BatchRequestCounts{Total: largeRequests, Completed: largeRequests}, b.RequestCounts)
			require.Nil(t, b.ErrorFileID)
			require.NotNil(t, b.OutputFileID)
			in := ok[api.File](t, c.do(t, http.MethodGet, "/v1/files/"+b.InputFileID, nil), "OpenAIFile")
			require.EqualValues(t, largeInputBytes, in.Bytes)
			require.Equal(t, "large.jsonl", in.Filename)
			require.Empty(t, objectKeys(t, env, "uploads/"), "the upload's parts are gone")

			dir := t.TempDir()
			paths := strings.Fields(runCLI(t, env, "batch", "download", id, "--dir", dir))
			require.Equal(t, []string{filepath.Join(dir, id+"_output.jsonl")}, paths)
			requireEachOnce(t, paths[0], largeRequests)
			t.Logf("%s: %s in all", backend, time.Since(start).Round(time.Millisecond))
		})
	}
}

// requireEachOnce streams an output file and checks that req-0 to req-(n-1)
// each answer exactly once, keeping one bit per request.
func requireEachOnce(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	seen := make([]bool, n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var l struct {
			CustomID string `json:"custom_id"`
			Response struct {
				StatusCode int `json:"status_code"`
			} `json:"response"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %d: %q", lines, sc.Bytes()[:min(len(sc.Bytes()), 300)])
		if lines == 1 {
			openaispec.MustValidate(t, "BatchRequestOutput", sc.Bytes())
		}
		require.Equal(t, http.StatusOK, l.Response.StatusCode, "line %d", lines)
		i, err := strconv.Atoi(strings.TrimPrefix(l.CustomID, "req-"))
		require.NoError(t, err, "line %d: custom_id %q", lines, l.CustomID)
		require.True(t, i >= 0 && i < n, "line %d: custom_id %q", lines, l.CustomID)
		require.False(t, seen[i], "custom_id %q twice", l.CustomID)
		seen[i] = true
	}
	require.NoError(t, sc.Err())
	require.Equal(t, n, lines)
}

// presignMultipart makes count multipart presigned parts (kiln extension).
func (c *rawClient) presignMultipart(t *testing.T, uploadID string, count int) []api.UploadPart {
	t.Helper()
	r := c.do(t, http.MethodPost, "/v1/uploads/"+uploadID+"/parts/presigned",
		jsonReader(t, map[string]any{"count": count, "multipart": true}), "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	var out api.PresignedParts
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.Len(t, out.Data, count)
	return out.Data
}

func putMD5(t *testing.T, url string, data, sumOf []byte) rawResponse {
	t.Helper()
	sum := md5.Sum(sumOf)
	r, err := sendTo(http.MethodPut, url, data, http.Header{"Content-Md5": {base64.StdEncoding.EncodeToString(sum[:])}})
	require.NoError(t, err)
	return r
}

// TestUploadMultipart completes presigned parts of one multipart upload in
// object storage: numbered across presign calls, checked against their
// Content-MD5 as they arrive, completed only all together in order, and
// discarded by a cancel.
func TestUploadMultipart(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startPresigning(t, backend, nil)
			c := newRawClient(env)
			line := chatLines(1, 0)
			data := bytes.Repeat(line, (5<<20)/len(line)+1)
			first, last := data[:5<<20], data[5<<20:]

			u := c.createUpload(t, "batch", "multipart.jsonl", len(data))
			p1 := c.presignMultipart(t, u.ID, 1)[0]
			p2 := c.presignMultipart(t, u.ID, 1)[0]
			require.Equal(t, 1, *p1.PartNumber)
			require.Equal(t, 2, *p2.PartNumber, "numbered across calls")
			direct := c.addPart(t, u.ID, []byte("x"))

			r := putMD5(t, *p2.URL, last, []byte("something else"))
			require.Equal(t, http.StatusBadRequest, r.Status, "a part that does not match its Content-MD5: %s", r)
			require.Equal(t, http.StatusOK, putMD5(t, *p2.URL, last, last).Status)
			before := c.fileState(t)
			requireAPIError(t, c.completeRaw(t, u.ID, []string{p1.ID, p2.ID}, ""), http.StatusBadRequest, "", "part_ids")
			require.Equal(t, http.StatusOK, putMD5(t, *p1.URL, first, first).Status)
			for name, parts := range map[string][]string{
				"out of order": {p2.ID, p1.ID},
				"one missing":  {p1.ID},
				"mixed":        {p1.ID, p2.ID, direct.ID},
			} {
				requireAPIError(t, c.completeRaw(t, u.ID, parts, ""), http.StatusBadRequest, "", "part_ids")
				require.Equal(t, before, c.fileState(t), name)
			}
			done := c.complete(t, u.ID, []string{p1.ID, p2.ID}, md5Hex(data))
			require.Equal(t, data, c.content(t, done.File.ID))
			requireNoParts(t, env, u.ID)
			requireNoStrayObjects(t, env)

			// Cancelling discards the multipart upload's parts.
			v := c.createUpload(t, "batch", "cancelled.jsonl", len(data))
			q := c.presignMultipart(t, v.ID, 2)
			require.Equal(t, http.StatusOK, putMD5(t, *q[0].URL, first, first).Status)
			ok[api.Upload](t, c.cancelUpload(t, v.ID), "Upload")
			requireNoParts(t, env, v.ID)
			requireNoStrayObjects(t, env)
		})
	}
}
