package objectstore_test

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/testenv"
)

func TestNormalizeOrigin(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://app.example.com":      "https://app.example.com",
		"HTTPS://App.Example.COM":      "https://app.example.com",
		"https://app.example.com:443":  "https://app.example.com",
		"http://app.example.com:80":    "http://app.example.com",
		"http://127.0.0.1:3000":        "http://127.0.0.1:3000",
		"http://[::1]:3000":            "http://[::1]:3000",
		"https://app.example.com:8443": "https://app.example.com:8443",
	} {
		got, err := objectstore.NormalizeOrigin(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "null", "*", "app.example.com", "ftp://app.example.com", "https://app.example.com/",
		"https://app.example.com/path", "https://app.example.com?q=1", "https://*.example.com", "https://user@app.example.com"} {
		_, err := objectstore.NormalizeOrigin(bad)
		require.Error(t, err, bad)
	}
}

// TestHandlerCORS covers the folder's answers to pages of other origins:
// preflights, and the CORS headers of the answers, for the configured
// origins only.
func TestHandlerCORS(t *testing.T) {
	t.Parallel()

	const allowed, other = "https://app.example.com", "https://evil.example.com"
	type testBundle struct {
		b       objectstore.Bucket
		handler http.Handler
	}
	setup := func(t *testing.T, origins ...string) *testBundle {
		t.Helper()
		b, err := objectstore.OpenWith(t.Context(), "file://"+t.TempDir(), objectstore.Options{PublicURL: "http://kiln.test:4080/", CORSOrigins: origins})
		require.NoError(t, err)
		_, err = b.Put(t.Context(), "dir/key", strings.NewReader("0123456789"), 10)
		require.NoError(t, err)
		return &testBundle{b: b, handler: objectstore.Handler(b)}
	}
	serve := func(h http.Handler, method, target, body string, header ...string) *http.Response {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	presignPut := func(t *testing.T, b objectstore.Bucket, key string) string {
		t.Helper()
		u, err := b.PresignPut(t.Context(), key, time.Hour)
		require.NoError(t, err)
		return u
	}

	t.Run("Preflight", func(t *testing.T) {
		t.Parallel()
		// Configured as written; browsers send the normalized form.
		tb := setup(t, "HTTPS://App.Example.com:443")
		u := presignPut(t, tb.b, "dir/new")

		resp := serve(tb.handler, http.MethodOptions, u, "", "Origin", allowed,
			"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "content-md5,content-type")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, allowed, resp.Header.Get("Access-Control-Allow-Origin"))
		require.Equal(t, "GET, HEAD, PUT", resp.Header.Get("Access-Control-Allow-Methods"))
		require.Equal(t, "content-md5, content-type", resp.Header.Get("Access-Control-Allow-Headers"))
		require.Equal(t, "3600", resp.Header.Get("Access-Control-Max-Age"))
		require.Contains(t, resp.Header.Values("Vary"), "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
		_, err := tb.b.Stat(t.Context(), "dir/new")
		require.ErrorIs(t, err, objectstore.ErrNotExist, "a preflight writes nothing")

		for _, tt := range []struct {
			name   string
			header []string
		}{
			{"OtherOrigin", []string{"Origin", other, "Access-Control-Request-Method", "PUT"}},
			{"NullOrigin", []string{"Origin", "null", "Access-Control-Request-Method", "PUT"}},
			{"Method", []string{"Origin", allowed, "Access-Control-Request-Method", "DELETE"}},
			{"Header", []string{"Origin", allowed, "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "content-md5,x-custom"}},
		} {
			resp := serve(tb.handler, http.MethodOptions, u, "", tt.header...)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, tt.name)
			require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), tt.name)
		}
	})

	t.Run("Answers", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, allowed)
		u := presignPut(t, tb.b, "dir/new")

		// A PUT from the allowed origin: the page may read the ETag.
		resp := serve(tb.handler, http.MethodPut, u, "hello", "Origin", allowed)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, allowed, resp.Header.Get("Access-Control-Allow-Origin"))
		require.Equal(t, "ETag, Content-Length, Content-Range, Content-Disposition, Accept-Ranges, Last-Modified", resp.Header.Get("Access-Control-Expose-Headers"))
		require.NotEmpty(t, resp.Header.Get("ETag"))
		require.Equal(t, []string{"Origin"}, resp.Header.Values("Vary"))

		// From another origin the server still answers (only browsers
		// enforce CORS), without CORS headers: the browser refuses the page.
		resp = serve(tb.handler, http.MethodPut, u, "hello", "Origin", other)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		require.Empty(t, resp.Header.Get("Access-Control-Expose-Headers"))
		require.Equal(t, []string{"Origin"}, resp.Header.Values("Vary"))

		// A ranged GET, and an error, which the page may read too.
		g, err := tb.b.PresignGet(t.Context(), "dir/key", time.Hour, "")
		require.NoError(t, err)
		resp = serve(tb.handler, http.MethodGet, g, "", "Origin", allowed, "Range", "bytes=2-4")
		require.Equal(t, http.StatusPartialContent, resp.StatusCode)
		require.Equal(t, allowed, resp.Header.Get("Access-Control-Allow-Origin"))
		resp = serve(tb.handler, http.MethodGet, g+"x", "", "Origin", allowed)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Equal(t, allowed, resp.Header.Get("Access-Control-Allow-Origin"))

		// A multipart part answers its MD5 as ETag, as S3 does.
		id, err := tb.b.CreateMultipart(t.Context(), "dir/parts")
		require.NoError(t, err)
		p, err := tb.b.PresignPart(t.Context(), "dir/parts", id, 1, time.Hour)
		require.NoError(t, err)
		resp = serve(tb.handler, http.MethodPut, p, "part one", "Origin", allowed)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, allowed, resp.Header.Get("Access-Control-Allow-Origin"))
		sum := md5.Sum([]byte("part one"))
		require.Equal(t, `"`+hex.EncodeToString(sum[:])+`"`, resp.Header.Get("ETag"))
		require.NoError(t, tb.b.AbortMultipart(t.Context(), "dir/parts", id))
	})

	t.Run("Off", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		u := presignPut(t, tb.b, "dir/new")
		resp := serve(tb.handler, http.MethodOptions, u, "", "Origin", allowed, "Access-Control-Request-Method", "PUT")
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		resp = serve(tb.handler, http.MethodPut, u, "hello", "Origin", allowed)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		require.Empty(t, resp.Header.Values("Vary"))
	})

	t.Run("InvalidOrigins", func(t *testing.T) {
		t.Parallel()
		_, err := objectstore.OpenWith(t.Context(), "file://"+t.TempDir(), objectstore.Options{CORSOrigins: []string{"https://app.example.com/"}})
		require.ErrorContains(t, err, "CORSOrigins")
	})
}

// TestCheckCORS covers SetCORS and CheckCORS on both stores: a folder
// checks its configuration; S3 is asked, as a browser would ask it.
func TestCheckCORS(t *testing.T) {
	t.Parallel()
	const allowed, other = "https://app.example.com", "https://evil.example.com"

	t.Run("Folder", func(t *testing.T) {
		t.Parallel()
		b, err := objectstore.OpenWith(t.Context(), "file://"+t.TempDir(), objectstore.Options{PublicURL: "http://kiln.test:4080", CORSOrigins: []string{allowed}})
		require.NoError(t, err)
		require.NoError(t, objectstore.CheckCORS(t.Context(), b, []string{allowed}))
		require.NoError(t, objectstore.SetCORS(t.Context(), b, []string{"HTTPS://app.example.com"}))
		require.NoError(t, objectstore.CheckCORS(t.Context(), b, nil))
		err = objectstore.CheckCORS(t.Context(), b, []string{allowed, other})
		require.ErrorContains(t, err, "origin "+other+": not among the folder store's CORS origins")
		require.NotContains(t, err.Error(), "origin "+allowed)
		require.Error(t, objectstore.SetCORS(t.Context(), b, []string{other}))
		require.ErrorContains(t, objectstore.CheckCORS(t.Context(), b, []string{"https://app.example.com/"}), "no trailing slash")
	})

	// MinIO has no per-bucket CORS (PutBucketCors answers NotImplemented);
	// its server-wide setting allows every origin by default, which
	// SetCORS finds and accepts.
	t.Run("MinIO", func(t *testing.T) {
		t.Parallel()
		b := openS3(t, testenv.S3URL(t))
		require.NoError(t, objectstore.SetCORS(t.Context(), b, []string{allowed, other}))
		require.NoError(t, objectstore.CheckCORS(t.Context(), b, []string{allowed}))
		_, err := b.Stat(t.Context(), objectstore.CORSProbeKey)
		require.ErrorIs(t, err, objectstore.ErrNotExist, "the probe is removed")
	})

	// A MinIO that allows one origin only: the other is reported, and
	// SetCORS, which cannot set rules there, says so.
	t.Run("MinIORestricted", func(t *testing.T) {
		t.Parallel()
		m := testenv.StartMinIOWith(t, testenv.MinIOOptions{Env: []string{"MINIO_API_CORS_ALLOW_ORIGIN=" + allowed}})
		b := openS3(t, m.URL())
		require.NoError(t, objectstore.CheckCORS(t.Context(), b, []string{allowed}))
		require.NoError(t, objectstore.SetCORS(t.Context(), b, []string{allowed}))

		err := objectstore.CheckCORS(t.Context(), b, []string{allowed, other})
		require.ErrorContains(t, err, "origin "+other+": preflight")
		require.NotContains(t, err.Error(), "origin "+allowed)
		err = objectstore.SetCORS(t.Context(), b, []string{other})
		require.ErrorContains(t, err, "set the CORS rules of bucket")
		require.ErrorContains(t, err, "origin "+other)
		_, err = b.Stat(t.Context(), objectstore.CORSProbeKey)
		require.ErrorIs(t, err, objectstore.ErrNotExist, "the probe is removed")
	})
}

// TestCORSRules covers the rules SetCORS puts in an S3 bucket that keeps
// them (AWS): kiln's own rule, beside the owner's.
func TestCORSRules(t *testing.T) {
	t.Parallel()
	origins := []string{"https://app.example.com"}
	owners := cors.Rule{ID: "website", AllowedOrigin: []string{"https://www.example.com"}, AllowedMethod: []string{"GET"}}

	cfg := objectstore.CORSWithRule(nil, origins)
	require.Len(t, cfg.CORSRules, 1)
	require.True(t, objectstore.CORSRulesAllow(cfg.CORSRules, origins))
	require.False(t, objectstore.CORSRulesAllow(cfg.CORSRules, []string{"https://evil.example.com"}))

	// An earlier rule of kiln's is replaced; the owner's stay first.
	old := objectstore.CORSWithRule(nil, []string{"https://old.example.com"})
	cfg = objectstore.CORSWithRule(cors.NewConfig(append([]cors.Rule{owners}, old.CORSRules...)), origins)
	require.Len(t, cfg.CORSRules, 2)
	require.Equal(t, owners, cfg.CORSRules[0])
	require.Equal(t, origins, cfg.CORSRules[1].AllowedOrigin)
	require.Equal(t, []string{"GET", "HEAD", "PUT"}, cfg.CORSRules[1].AllowedMethod)
	require.Contains(t, cfg.CORSRules[1].ExposeHeader, "ETag")

	// The owner's rules may allow the origins already: then SetCORS writes
	// nothing.
	for _, tt := range []struct {
		name string
		rule cors.Rule
		want bool
	}{
		{"Wildcards", cors.Rule{AllowedOrigin: []string{"https://*.example.com"}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"*"}, ExposeHeader: []string{"etag"}}, true},
		{"NoETag", cors.Rule{AllowedOrigin: []string{"*"}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"*"}}, false},
		{"NoPut", cors.Rule{AllowedOrigin: []string{"*"}, AllowedMethod: []string{"GET"}, AllowedHeader: []string{"*"}, ExposeHeader: []string{"ETag"}}, false},
		{"FewHeaders", cors.Rule{AllowedOrigin: []string{"*"}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"Content-Type"}, ExposeHeader: []string{"ETag"}}, false},
		{"OtherOrigin", cors.Rule{AllowedOrigin: []string{"https://www.example.com"}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"*"}, ExposeHeader: []string{"ETag"}}, false},
	} {
		require.Equal(t, tt.want, objectstore.CORSRulesAllow([]cors.Rule{tt.rule}, origins), tt.name)
	}
}
