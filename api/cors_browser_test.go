package api_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/browsertest"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// webAppPage is a web app's page (Aris's) that sends its user's file
// straight to object storage: its server hands it presigned part URLs, and
// it PUTs each part's bytes with fetch. It makes nothing itself.
const webAppPage = `<!doctype html>
<meta charset="utf-8">
<title>Upload</title>
<script>
// putParts PUTs every part at once and says, per part, what the browser let
// the page see: the status and ETag, or why fetch failed.
async function putParts(parts) {
  const results = await Promise.all(parts.map(async (p) => {
    try {
      const resp = await fetch(p.url, {method: 'PUT', body: new Blob([p.data]), headers: {'Content-MD5': p.md5}});
      return {status: resp.status, etag: resp.headers.get('ETag') || '', body: resp.ok ? '' : await resp.text()};
    } catch (e) {
      return {error: String(e)};
    }
  }));
  return JSON.stringify(results);
}
</script>`

// TestBrowserUpload uploads a batch input file from a page of another
// origin, through presigned part URLs, with kiln on both deployments: the
// folder store serves the URLs and its CORS itself; MinIO (which has no
// per-bucket CORS rules) allows the web app's origin server-wide. A page of
// an origin not configured is refused, and its bytes never arrive.
func TestBrowserUpload(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setupBrowserUpload(t, backend)
			for _, multipart := range []bool{false, true} {
				t.Run(fmt.Sprintf("multipart=%v", multipart), func(t *testing.T) {
					parts := 3
					if multipart && backend == "postgres" {
						parts = 1 // on S3 every part but the last is 5 MiB or more
					}
					tb.uploadAndRun(t, multipart, parts)
				})
			}
			t.Run("OtherOrigin", tb.refused)
		})
	}
}

type browserUploadBundle struct {
	env     *kilntest.Env
	browser context.Context
	allowed string // the web app's origin, in KILN_CORS_ORIGINS
	other   string // an origin that is not
}

func setupBrowserUpload(t *testing.T, backend string) *browserUploadBundle {
	t.Helper()
	serve := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, webAppPage)
	}
	allowed := httptest.NewServer(http.HandlerFunc(serve))
	t.Cleanup(allowed.Close)
	other := httptest.NewServer(http.HandlerFunc(serve))
	t.Cleanup(other.Close)

	var objectStore string
	if backend == "postgres" {
		// A MinIO of its own: the shared one allows every origin.
		objectStore = testenv.StartMinIOWith(t, testenv.MinIOOptions{Env: []string{"MINIO_API_CORS_ALLOW_ORIGIN=" + allowed.URL}}).URL()
	}
	env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
		c.CORSOrigins = []string{allowed.URL}
		if objectStore != "" {
			c.ObjectStore = objectStore
		}
	}})
	return &browserUploadBundle{env: env, browser: browsertest.New(t, browsertest.Options{}).Context(), allowed: allowed.URL, other: other.URL}
}

// uploadAndRun is Aris's flow: its server creates the upload and the part
// URLs, the page PUTs the parts, the server completes the upload and runs a
// batch on the file.
func (tb *browserUploadBundle) uploadAndRun(t *testing.T, multipart bool, parts int) {
	const lines = 30
	data := kilntest.ChatLines(lines, 0)
	uploadID, presigned := tb.createUpload(t, len(data), parts, multipart)

	// Each part a run of whole lines, as a page may cut it; the last takes
	// the rest.
	chunks := make([][]byte, parts)
	rest := data
	for i := range parts - 1 {
		cut := bytes.IndexByte(rest[len(rest)/(parts-i):], '\n') + len(rest)/(parts-i) + 1
		chunks[i], rest = rest[:cut], rest[cut:]
	}
	chunks[parts-1] = rest
	results := tb.putParts(t, tb.allowed, presigned, chunks)
	ids := make([]string, parts)
	for i, r := range results {
		require.Empty(t, r.Error, "part %d", i)
		require.Equal(t, http.StatusOK, r.Status, "part %d: %s", i, r.Body)
		// The page reads the ETag (an S3 client collects multipart parts'):
		// a multipart part's is its MD5 on both stores.
		require.NotEmpty(t, r.ETag, "part %d", i)
		if multipart {
			sum := md5.Sum(chunks[i])
			require.Equal(t, fmt.Sprintf(`"%x"`, sum), r.ETag, "part %d", i)
		}
		ids[i] = presigned[i].ID
	}

	var upload struct {
		Status string `json:"status"`
		File   struct {
			ID    string `json:"id"`
			Bytes int    `json:"bytes"`
		} `json:"file"`
	}
	sum := md5.Sum(data)
	kilntest.Call(t, tb.env.Base(), tb.env.Key, http.MethodPost, "/v1/uploads/"+uploadID+"/complete",
		map[string]any{"part_ids": ids, "md5": fmt.Sprintf("%x", sum)}, http.StatusOK, &upload)
	require.Equal(t, "completed", upload.Status)
	require.Equal(t, len(data), upload.File.Bytes)

	c := tb.env.Client()
	b, err := c.Batches.New(t.Context(), openai.BatchNewParams{
		InputFileID:      upload.File.ID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	require.NoError(t, err)
	b = kilntest.WaitBatch(t, c, b.ID)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.Equal(t, int64(lines), b.RequestCounts.Completed)
	out := kilntest.ResultLines(t, c, b.OutputFileID)
	require.Len(t, out, lines)
	seen := map[any]bool{}
	for _, line := range out {
		seen[line["custom_id"]] = true
	}
	require.Len(t, seen, lines, "every custom_id once")
}

// refused: a page of an origin that is not configured cannot PUT: the
// preflight gets no CORS headers, fetch fails, and no byte arrives.
func (tb *browserUploadBundle) refused(t *testing.T) {
	data := kilntest.ChatLines(3, 0)
	uploadID, presigned := tb.createUpload(t, len(data), 1, false)
	results := tb.putParts(t, tb.other, presigned, [][]byte{data})
	require.Contains(t, results[0].Error, "Failed to fetch")

	var apiErr struct {
		Error struct {
			Param string `json:"param"`
		} `json:"error"`
	}
	kilntest.Call(t, tb.env.Base(), tb.env.Key, http.MethodPost, "/v1/uploads/"+uploadID+"/complete",
		map[string]any{"part_ids": []string{presigned[0].ID}}, http.StatusBadRequest, &apiErr)
	require.Equal(t, "part_ids", apiErr.Error.Param, "the part never arrived")
}

type presignedPart struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// createUpload is the web app's server: it creates an upload and its part
// URLs with kiln's API and key, which the page never sees.
func (tb *browserUploadBundle) createUpload(t *testing.T, size, parts int, multipart bool) (string, []presignedPart) {
	t.Helper()
	var upload struct {
		ID string `json:"id"`
	}
	kilntest.Call(t, tb.env.Base(), tb.env.Key, http.MethodPost, "/v1/uploads",
		map[string]any{"bytes": size, "filename": "requests.jsonl", "mime_type": "application/jsonl", "purpose": "batch"}, http.StatusOK, &upload)
	var list struct {
		Data []presignedPart `json:"data"`
	}
	kilntest.Call(t, tb.env.Base(), tb.env.Key, http.MethodPost, "/v1/uploads/"+upload.ID+"/parts/presigned",
		map[string]any{"count": parts, "multipart": multipart}, http.StatusOK, &list)
	require.Len(t, list.Data, parts)
	return upload.ID, list.Data
}

type partResult struct {
	Status int    `json:"status"`
	ETag   string `json:"etag"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// putParts opens the page of origin in a new tab and has it PUT chunks to
// the parts' URLs.
func (tb *browserUploadBundle) putParts(t *testing.T, origin string, parts []presignedPart, chunks [][]byte) []partResult {
	t.Helper()
	type part struct {
		URL  string `json:"url"`
		Data string `json:"data"`
		MD5  string `json:"md5"`
	}
	in := make([]part, len(parts))
	for i, p := range parts {
		sum := md5.Sum(chunks[i])
		in[i] = part{URL: p.URL, Data: string(chunks[i]), MD5: base64.StdEncoding.EncodeToString(sum[:])}
	}
	arg, err := json.Marshal(in)
	require.NoError(t, err)

	tab, cancel := chromedp.NewContext(tb.browser)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(tab, time.Minute)
	defer cancelTimeout()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(origin+"/upload")))
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string]("putParts("+string(arg)+")", chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	var results []partResult
	require.NoError(t, json.Unmarshal([]byte(out), &results), out)
	require.Len(t, results, len(parts))
	return results
}
