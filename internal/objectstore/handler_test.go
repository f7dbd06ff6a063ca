package objectstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/testenv"
)

// The conformance suite covers what both stores do with presigned URLs;
// these cover what only the folder's Handler does.
func TestHandler(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		b       objectstore.Bucket
		handler http.Handler
		dir     string
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		dir := t.TempDir()
		b, err := objectstore.OpenWith(t.Context(), "file://"+dir, objectstore.Options{PublicURL: "http://kiln.test:4080/"})
		require.NoError(t, err)
		_, err = b.Put(t.Context(), "dir/key", strings.NewReader("0123456789"), 10)
		require.NoError(t, err)
		return &testBundle{b: b, handler: objectstore.Handler(b), dir: dir}
	}
	// serve runs a request through the handler, without a server.
	serve := func(h http.Handler, method, target string, body io.Reader, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, body)
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	presign := func(t *testing.T, b objectstore.Bucket, method, key string) string {
		t.Helper()
		var u string
		var err error
		if method == http.MethodPut {
			u, err = b.PresignPut(t.Context(), key, time.Hour)
		} else {
			u, err = b.PresignGet(t.Context(), key, time.Hour, "")
		}
		require.NoError(t, err)
		return u
	}

	t.Run("URLForm", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		u, err := bundle.b.PresignGet(t.Context(), "dir/a b+c?é", time.Hour, "out.jsonl")
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(u, "http://kiln.test:4080/objects/dir/a%20b+c%3F%C3%A9?X-Kiln-Method=GET&X-Kiln-Expires="), u)
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		q := parsed.Query()
		require.Equal(t, "out.jsonl", q.Get("X-Kiln-Filename"))
		require.NotEmpty(t, q.Get("X-Kiln-Signature"))
		expires, err := strconv.ParseInt(q.Get("X-Kiln-Expires"), 10, 64)
		require.NoError(t, err)
		require.WithinRange(t, time.Unix(expires, 0), time.Now().Add(59*time.Minute), time.Now().Add(61*time.Minute))
	})

	t.Run("Head", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		rec := serve(bundle.handler, http.MethodHead, presign(t, bundle.b, http.MethodGet, "dir/key"), nil, nil)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "10", rec.Header().Get("Content-Length"))
		require.NotEmpty(t, rec.Header().Get("ETag"))
		require.NotEmpty(t, rec.Header().Get("Last-Modified"))
		require.Empty(t, rec.Body.String())

		rec = serve(bundle.handler, http.MethodHead, presign(t, bundle.b, http.MethodPut, "dir/key"), nil, nil)
		require.Equal(t, http.StatusForbidden, rec.Code)
	})

	t.Run("ETagMatchesStat", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		stat, err := bundle.b.Stat(t.Context(), "dir/key")
		require.NoError(t, err)
		rec := serve(bundle.handler, http.MethodGet, presign(t, bundle.b, http.MethodGet, "dir/key"), nil, nil)
		require.Equal(t, strconv.Quote(stat.ETag), rec.Header().Get("ETag"))
		require.Equal(t, "application/octet-stream", rec.Header().Get("Content-Type"))

		rec = serve(bundle.handler, http.MethodPut, presign(t, bundle.b, http.MethodPut, "dir/new"), strings.NewReader("abc"), nil)
		require.Equal(t, http.StatusOK, rec.Code)
		stat, err = bundle.b.Stat(t.Context(), "dir/new")
		require.NoError(t, err)
		require.Equal(t, strconv.Quote(stat.ETag), rec.Header().Get("ETag"))
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		getURL := presign(t, bundle.b, http.MethodGet, "dir/key")
		putURL := presign(t, bundle.b, http.MethodPut, "dir/key")
		withQuery := func(u string, edit func(q url.Values)) string {
			parsed, err := url.Parse(u)
			require.NoError(t, err)
			q := parsed.Query()
			edit(q)
			parsed.RawQuery = q.Encode()
			return parsed.String()
		}
		later := func(q url.Values) {
			n, err := strconv.ParseInt(q.Get("X-Kiln-Expires"), 10, 64)
			require.NoError(t, err)
			q.Set("X-Kiln-Expires", strconv.FormatInt(n+3600, 10))
		}

		for _, tt := range []struct {
			name   string
			method string
			target string
			status int
			code   string
		}{
			{"NotSigned", http.MethodGet, "/objects/dir/key", http.StatusForbidden, "AccessDenied"},
			{"LaterExpiry", http.MethodGet, withQuery(getURL, later), http.StatusForbidden, "AccessDenied"},
			{"BadSignature", http.MethodGet, withQuery(getURL, func(q url.Values) { q.Set("X-Kiln-Signature", "AAAA") }), http.StatusForbidden, "AccessDenied"},
			{"SignatureNotBase64", http.MethodGet, withQuery(getURL, func(q url.Values) { q.Set("X-Kiln-Signature", "!!") }), http.StatusForbidden, "AccessDenied"},
			{"NoSignature", http.MethodGet, withQuery(getURL, func(q url.Values) { q.Del("X-Kiln-Signature") }), http.StatusForbidden, "AccessDenied"},
			{"MethodParamChanged", http.MethodPut, withQuery(getURL, func(q url.Values) { q.Set("X-Kiln-Method", "PUT") }), http.StatusForbidden, "AccessDenied"},
			{"FilenameAdded", http.MethodGet, withQuery(getURL, func(q url.Values) { q.Set("X-Kiln-Filename", "x.exe") }), http.StatusForbidden, "AccessDenied"},
			{"PrefixOfKey", http.MethodGet, strings.Replace(getURL, "/dir/key?", "/dir?", 1), http.StatusForbidden, "AccessDenied"},
			{"Post", http.MethodPost, putURL, http.StatusMethodNotAllowed, "MethodNotAllowed"},
			{"Delete", http.MethodDelete, putURL, http.StatusMethodNotAllowed, "MethodNotAllowed"},
			{"OutsideSignedPath", http.MethodGet, strings.Replace(getURL, "/objects/", "/other/", 1), http.StatusNotFound, "NoSuchKey"},
		} {
			var body io.Reader
			if tt.method == http.MethodPut {
				body = strings.NewReader("changed!!!")
			}
			rec := serve(bundle.handler, tt.method, tt.target, body, nil)
			require.Equal(t, tt.status, rec.Code, "%s: %s", tt.name, rec.Body)
			require.Equal(t, "application/xml", rec.Header().Get("Content-Type"), tt.name)
			require.Contains(t, rec.Body.String(), "<Code>"+tt.code+"</Code>", tt.name)
		}
		rec := serve(bundle.handler, http.MethodGet, getURL, nil, nil)
		require.Equal(t, "0123456789", rec.Body.String(), "changed by a refused request")
	})

	t.Run("Authorize", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		type ask struct{ method, key string }
		var asked []ask
		h := objectstore.HandlerWith(bundle.b, &objectstore.HandlerOpts{Authorize: func(_ context.Context, method, key string) error {
			asked = append(asked, ask{method, key})
			switch {
			case method == http.MethodPut && strings.HasPrefix(key, "ended/"):
				return fmt.Errorf("wrapped: %w", &objectstore.DeniedError{Reason: "The upload has ended."})
			case strings.HasPrefix(key, "broken/"):
				return errors.New("the database is down")
			}
			return nil
		}})

		rec := serve(h, http.MethodPut, presign(t, bundle.b, http.MethodPut, "ended/part"), strings.NewReader("late"), nil)
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Equal(t, "application/xml", rec.Header().Get("Content-Type"))
		require.Contains(t, rec.Body.String(), "<Code>AccessDenied</Code>")
		require.Contains(t, rec.Body.String(), "<Message>The upload has ended.</Message>")
		_, err := bundle.b.Stat(t.Context(), "ended/part")
		require.ErrorIs(t, err, objectstore.ErrNotExist, "a refused PUT writes nothing")

		rec = serve(h, http.MethodPut, presign(t, bundle.b, http.MethodPut, "broken/part"), strings.NewReader("x"), nil)
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		require.NotContains(t, rec.Body.String(), "database", "the cause is logged, not sent")

		rec = serve(h, http.MethodPut, presign(t, bundle.b, http.MethodPut, "open/part"), strings.NewReader("on time"), nil)
		require.Equal(t, http.StatusOK, rec.Code)
		rec = serve(h, http.MethodHead, presign(t, bundle.b, http.MethodGet, "ended/part"), nil, nil)
		require.Equal(t, http.StatusNotFound, rec.Code, "allowed, and missing")

		// A multipart part's PUT is asked about its upload's key.
		id, err := bundle.b.CreateMultipart(t.Context(), "ended/mp")
		require.NoError(t, err)
		partURL, err := bundle.b.PresignPart(t.Context(), "ended/mp", id, 1, time.Hour)
		require.NoError(t, err)
		rec = serve(h, http.MethodPut, partURL, strings.NewReader("late"), nil)
		require.Equal(t, http.StatusForbidden, rec.Code)

		// Only valid URLs are asked about.
		rec = serve(h, http.MethodPut, "/objects/open/unsigned", strings.NewReader("x"), nil)
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Equal(t, []ask{
			{http.MethodPut, "ended/part"}, {http.MethodPut, "broken/part"}, {http.MethodPut, "open/part"},
			{http.MethodGet, "ended/part"}, {http.MethodPut, "ended/mp"},
		}, asked)
	})

	t.Run("PutSize", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		putURL := presign(t, bundle.b, http.MethodPut, "dir/key")

		req := httptest.NewRequest(http.MethodPut, putURL, strings.NewReader("abc"))
		req.ContentLength = -1 // chunked
		rec := httptest.NewRecorder()
		bundle.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusLengthRequired, rec.Code, rec.Body.String())

		req = httptest.NewRequest(http.MethodPut, putURL, strings.NewReader("abc"))
		req.ContentLength = objectstore.MaxPutSize + 1
		rec = httptest.NewRecorder()
		bundle.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
		require.Contains(t, rec.Body.String(), "EntityTooLarge")

		// A body shorter than its Content-Length, as when a client stops.
		req = httptest.NewRequest(http.MethodPut, putURL, strings.NewReader("abc"))
		req.ContentLength = 10
		rec = httptest.NewRecorder()
		bundle.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
		require.Contains(t, rec.Body.String(), "IncompleteBody")

		rec = serve(bundle.handler, http.MethodGet, presign(t, bundle.b, http.MethodGet, "dir/key"), nil, nil)
		require.Equal(t, "0123456789", rec.Body.String(), "changed by a refused PUT")
	})

	t.Run("SigningKey", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		key := []byte(strings.Repeat("k", 32))
		open := func(signingKey []byte) objectstore.Bucket {
			b, err := objectstore.OpenWith(t.Context(), "file://"+dir, objectstore.Options{PublicURL: "http://kiln.test", SigningKey: signingKey})
			require.NoError(t, err)
			return b
		}
		one, two, other, dflt1, dflt2 := open(key), open(key), open([]byte(strings.Repeat("o", 32))), open(nil), open(nil)
		_, err := one.Put(t.Context(), "key", strings.NewReader("x"), 1)
		require.NoError(t, err)

		// Processes that share the key accept each other's URLs.
		rec := serve(objectstore.Handler(two), http.MethodGet, presign(t, one, http.MethodGet, "key"), nil, nil)
		require.Equal(t, http.StatusOK, rec.Code)
		rec = serve(objectstore.Handler(other), http.MethodGet, presign(t, one, http.MethodGet, "key"), nil, nil)
		require.Equal(t, http.StatusForbidden, rec.Code)
		rec = serve(objectstore.Handler(dflt1), http.MethodGet, presign(t, one, http.MethodGet, "key"), nil, nil)
		require.Equal(t, http.StatusForbidden, rec.Code)
		// The default key is the process's.
		rec = serve(objectstore.Handler(dflt2), http.MethodGet, presign(t, dflt1, http.MethodGet, "key"), nil, nil)
		require.Equal(t, http.StatusOK, rec.Code)
	})

	t.Run("PublicURLWithPath", func(t *testing.T) {
		t.Parallel()
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		b, err := objectstore.OpenWith(t.Context(), "file://"+t.TempDir(), objectstore.Options{PublicURL: srv.URL + "/kiln"})
		require.NoError(t, err)
		mux.Handle("/kiln"+objectstore.SignedPath, http.StripPrefix("/kiln", objectstore.Handler(b)))

		u := presign(t, b, http.MethodPut, "a/b")
		require.True(t, strings.HasPrefix(u, srv.URL+"/kiln/objects/a/b?"), u)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u, strings.NewReader("hi"))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		rc, err := b.Get(t.Context(), "a/b")
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.Equal(t, "hi", string(got))
	})
}

func TestFilePresignUnsupported(t *testing.T) {
	t.Parallel()
	b, err := objectstore.Open(t.Context(), "file://"+t.TempDir())
	require.NoError(t, err)
	_, err = b.PresignPut(t.Context(), "key", time.Hour)
	require.ErrorIs(t, err, objectstore.ErrPresignUnsupported)
	_, err = b.PresignGet(t.Context(), "key", time.Hour, "")
	require.ErrorIs(t, err, objectstore.ErrPresignUnsupported)
	// Compose needs no URL.
	_, err = b.Compose(t.Context(), "key", nil)
	require.NoError(t, err)
}

func TestOpenWithRejects(t *testing.T) {
	t.Parallel()
	for _, o := range []objectstore.Options{
		{PublicURL: "localhost:4080"},
		{PublicURL: "ftp://host"},
		{PublicURL: "http://"},
		{PublicURL: "http://host/?q=1"},
		{PublicURL: "http://host/#frag"},
		{PublicURL: "http://user:pw@host"},
		{SigningKey: []byte("short")},
		{SigningKey: []byte{}},
	} {
		_, err := objectstore.OpenWith(t.Context(), "file://"+t.TempDir(), o)
		require.Error(t, err, "%+v", o)
	}
	for _, o := range []objectstore.Options{
		{PublicURL: "http://localhost:4080"},
		{PublicURL: "https://kiln.example.com/prefix/"},
		{SigningKey: make([]byte, 32)},
	} {
		_, err := objectstore.OpenWith(t.Context(), "file://"+t.TempDir(), o)
		require.NoError(t, err, "%+v", o)
	}
}

// S3 serves its own presigned URLs.
func TestHandlerNotFile(t *testing.T) {
	t.Parallel()
	b := openS3(t, testenv.S3URL(t))
	u, err := b.PresignGet(t.Context(), "key", time.Hour, "")
	require.NoError(t, err)
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	objectstore.Handler(b).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/objects/key?"+parsed.RawQuery, nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
}
