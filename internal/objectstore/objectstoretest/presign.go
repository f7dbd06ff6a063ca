package objectstoretest

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
)

// expiryWait bounds the wait for a one-second URL to expire.
const expiryWait = 30 * time.Second

func testPresign(t *testing.T, setup func(t *testing.T) (objectstore.Bucket, context.Context)) {
	t.Run("PresignPut", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		const existing = "url chars/a+b%20c?d=e&f#g"
		put(t, b, existing, "previous")

		for _, key := range []string{"dir/new object é.jsonl", existing} {
			u, err := b.PresignPut(ctx, key, time.Hour)
			require.NoError(t, err)
			// The URL can be used again until it expires.
			for _, content := range []string{"first upload to " + key, "second"} {
				resp := do(t, http.MethodPut, u, strings.NewReader(content), nil)
				require.Equal(t, http.StatusOK, resp.status, "PUT %s: %s", key, resp.body)
				requireContent(t, b, key, strings.NewReader(content))
			}
			stat, err := b.Stat(ctx, key)
			require.NoError(t, err)
			require.Equal(t, int64(len("second")), stat.Size)
		}

		u, err := b.PresignPut(ctx, "empty", time.Hour)
		require.NoError(t, err)
		resp := do(t, http.MethodPut, u, strings.NewReader(""), nil)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		requireContent(t, b, "empty", strings.NewReader(""))
	})

	t.Run("PresignPutLarge", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		u, err := b.PresignPut(ctx, "large", time.Hour)
		require.NoError(t, err)
		// Streamed from a generator: the server must not need it all at once.
		resp := doSized(t, http.MethodPut, u, Generate(4, LargeSize), LargeSize, nil)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		requireContent(t, b, "large", Generate(4, LargeSize))
	})

	t.Run("PresignGet", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		const key = "dir/out file é.jsonl"
		const content = "0123456789abcdefghijklmnopqrstuvwxyz"
		put(t, b, key, content)

		for _, filename := range []string{"report.jsonl", "batch output é 🙂.jsonl", `quote".jsonl`} {
			u, err := b.PresignGet(ctx, key, time.Hour, filename)
			require.NoError(t, err)

			resp := do(t, http.MethodGet, u, nil, nil)
			require.Equal(t, http.StatusOK, resp.status, resp.body)
			require.Equal(t, content, resp.body)
			typ, params, err := mime.ParseMediaType(resp.header.Get("Content-Disposition"))
			require.NoError(t, err, "Content-Disposition %q", resp.header.Get("Content-Disposition"))
			require.Equal(t, "attachment", typ)
			require.Equal(t, filename, params["filename"])

			for rng, want := range map[string]string{
				"bytes=10-14":  "abcde",
				"bytes=30-":    "uvwxyz",
				"bytes=-3":     "xyz",
				"bytes=35-100": "z",
			} {
				resp := do(t, http.MethodGet, u, nil, http.Header{"Range": {rng}})
				require.Equal(t, http.StatusPartialContent, resp.status, "%s: %s", rng, resp.body)
				require.Equal(t, want, resp.body, rng)
			}
			resp = do(t, http.MethodGet, u, nil, http.Header{"Range": {"bytes=10-14"}})
			require.Equal(t, "bytes 10-14/36", resp.header.Get("Content-Range"))
		}

		u, err := b.PresignGet(ctx, key, time.Hour, "")
		require.NoError(t, err)
		resp := do(t, http.MethodGet, u, nil, nil)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		require.Equal(t, content, resp.body)
		require.Empty(t, resp.header.Get("Content-Disposition"))

		// A URL for an object that does not exist yet.
		u, err = b.PresignGet(ctx, "later", time.Hour, "later.jsonl")
		require.NoError(t, err)
		resp = do(t, http.MethodGet, u, nil, nil)
		require.Equal(t, http.StatusNotFound, resp.status, resp.body)
		put(t, b, "later", "now")
		resp = do(t, http.MethodGet, u, nil, nil)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		require.Equal(t, "now", resp.body)
	})

	t.Run("PresignExpired", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "key", "previous")
		// S3 signs the time in whole seconds, so its URLs may live up to a
		// second less than asked: 2s leaves at least one.
		const expiry = 2 * time.Second
		start := time.Now()
		getURL, err := b.PresignGet(ctx, "key", expiry, "")
		require.NoError(t, err)
		putURL, err := b.PresignPut(ctx, "key", expiry)
		require.NoError(t, err)

		// The URLs work at first, unless this machine is so slow that they
		// may already have expired.
		getStatus := tryStatus(http.MethodGet, getURL, "")
		putStatus := tryStatus(http.MethodPut, putURL, "previous")
		if elapsed := time.Since(start); elapsed < expiry-time.Second {
			require.Equal(t, http.StatusOK, getStatus, "GET URL refused after %v", elapsed)
			require.Equal(t, http.StatusOK, putStatus, "PUT URL refused after %v", elapsed)
		}

		// Then they stop. The PUT writes what is there already, so it
		// changes nothing meanwhile.
		require.Eventually(t, func() bool {
			return tryStatus(http.MethodGet, getURL, "") == http.StatusForbidden
		}, expiryWait, 50*time.Millisecond, "GET URL did not expire")
		require.Eventually(t, func() bool {
			return tryStatus(http.MethodPut, putURL, "previous") == http.StatusForbidden
		}, expiryWait, 50*time.Millisecond, "PUT URL did not expire")
		require.GreaterOrEqual(t, time.Since(start), expiry-time.Second, "URLs expired early")

		resp := do(t, http.MethodPut, putURL, strings.NewReader("changed"), nil)
		require.Equal(t, http.StatusForbidden, resp.status, resp.body)
		requireContent(t, b, "key", strings.NewReader("previous"))
	})

	t.Run("PresignTampered", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "tamper/a", "content of a")
		put(t, b, "tamper/c", "content of c")
		putURL, err := b.PresignPut(ctx, "tamper/a", time.Hour)
		require.NoError(t, err)
		getURL, err := b.PresignGet(ctx, "tamper/a", time.Hour, "report.jsonl")
		require.NoError(t, err)

		otherKey := func(u string) string {
			require.Contains(t, u, "/tamper/a?")
			return strings.Replace(u, "/tamper/a?", "/tamper/b?", 1)
		}
		readKey := func(u string) string {
			require.Contains(t, u, "/tamper/a?")
			return strings.Replace(u, "/tamper/a?", "/tamper/c?", 1)
		}
		for _, tt := range []struct {
			name   string
			method string
			url    string
		}{
			{"PutOtherKey", http.MethodPut, otherKey(putURL)},
			{"PutWithGetURL", http.MethodPut, getURL},
			{"GetWithPutURL", http.MethodGet, putURL},
			{"GetOtherKey", http.MethodGet, readKey(getURL)},
			{"GetOtherFilename", http.MethodGet, strings.Replace(getURL, "report.jsonl", "reprot.jsonl", 1)},
		} {
			var body io.Reader
			if tt.method == http.MethodPut {
				body = strings.NewReader("tampered")
			}
			resp := do(t, tt.method, tt.url, body, nil)
			require.Equal(t, http.StatusForbidden, resp.status, "%s: %s", tt.name, resp.body)
			require.NotContains(t, resp.body, "content of", tt.name)
		}
		requireContent(t, b, "tamper/a", strings.NewReader("content of a"))
		requireContent(t, b, "tamper/c", strings.NewReader("content of c"))
		require.Equal(t, []string{"tamper/a", "tamper/c"}, listKeys(t, b, ""))

		// The untampered URLs still work.
		resp := do(t, http.MethodGet, getURL, nil, nil)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		require.Equal(t, "content of a", resp.body)
	})

	t.Run("PresignInvalid", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		for _, key := range []string{"", "/abs", "trailing/", "a//b", "..", "a/../b", "bad-utf8-\xff"} {
			_, err := b.PresignPut(ctx, key, time.Hour)
			require.Error(t, err, "PresignPut %q", key)
			require.NotErrorIs(t, err, objectstore.ErrPresignUnsupported)
			_, err = b.PresignGet(ctx, key, time.Hour, "")
			require.Error(t, err, "PresignGet %q", key)
		}
		for _, expiry := range []time.Duration{-time.Hour, 0, 500 * time.Millisecond, objectstore.PresignMaxExpiry + time.Second} {
			_, err := b.PresignPut(ctx, "key", expiry)
			require.Error(t, err, "PresignPut expiry %v", expiry)
			_, err = b.PresignGet(ctx, "key", expiry, "")
			require.Error(t, err, "PresignGet expiry %v", expiry)
		}
		_, err := b.PresignPut(ctx, "key", objectstore.PresignMaxExpiry)
		require.NoError(t, err)
		_, err = b.PresignGet(ctx, "key", objectstore.PresignMaxExpiry, "")
		require.NoError(t, err)
	})
}

type response struct {
	status int
	header http.Header
	body   string // up to 1 MiB of it
}

// do sends a request with plain net/http, as a client handed a presigned
// URL would.
func do(t *testing.T, method, rawURL string, body io.Reader, header http.Header) response {
	t.Helper()
	size := int64(-1)
	if body == nil {
		size = 0
	} else if l, ok := body.(interface{ Len() int }); ok {
		size = int64(l.Len())
	}
	return doSized(t, method, rawURL, body, size, header)
}

func doSized(t *testing.T, method, rawURL string, body io.Reader, size int64, header http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, body)
	require.NoError(t, err)
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", method, rawURL)
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// tryStatus sends a request and returns its status, or 0 when it fails. It
// may run off the test's goroutine, so it does not fail the test.
func tryStatus(method, rawURL, body string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r io.Reader
	if method == http.MethodPut {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, r)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0
	}
	return resp.StatusCode
}
