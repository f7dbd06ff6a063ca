package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/internal/browsertest"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestDocsHandler: /docs and its files come from the binary, under a policy
// that lets the page reach kiln's own origin only.
func TestDocsHandler(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")
	for _, c := range []struct{ path, ctype string }{
		{"/docs", "text/html; charset=utf-8"},
		{"/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
		{"/docs/swagger-ui.css", "text/css; charset=utf-8"},
		{"/docs/init.js", "text/javascript; charset=utf-8"},
		{"/docs/favicon-32x32.png", "image/png"},
		{"/docs/LICENSE", "text/plain; charset=utf-8"},
	} {
		resp, err := http.Get(origin + c.path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, c.path)
		require.Equal(t, c.ctype, resp.Header.Get("Content-Type"), c.path)
		require.Equal(t, api.DocsPolicy, resp.Header.Get("Content-Security-Policy"), c.path)
		require.NotEmpty(t, resp.Header.Get("ETag"), c.path)
		require.NotEmpty(t, body, c.path)
		if c.path == "/docs" || c.path == "/docs/init.js" {
			require.NotRegexp(t, regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`), string(body), "%s loads nothing from elsewhere", c.path)
		}
	}
	for _, directive := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'"} {
		require.Contains(t, api.DocsPolicy, directive)
	}
	require.NotContains(t, api.DocsPolicy, "unsafe-eval")
	require.NotContains(t, api.DocsPolicy, "http")
}

// TestDocsOffline loads /docs in Chromium with every request that would
// leave the machine blocked: the page needs none, and it lists every
// operation of the OpenAPI document.
func TestDocsOffline(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")

	resp, err := http.Get(origin + "/openapi.json")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	resp.Body.Close()
	var want []string
	for _, ops := range doc.Paths {
		for _, op := range ops {
			if op.OperationID != "" {
				want = append(want, op.OperationID)
			}
		}
	}
	sort.Strings(want)
	require.Greater(t, len(want), 20, "the document lists kiln's operations")

	tab := browsertest.New(t, browsertest.Options{Offline: true})
	tab.Navigate("open the docs", origin+"/docs")
	tab.Wait("the operations are listed", `document.querySelectorAll('.opblock-summary-operation-id').length >= `+strconv.Itoa(len(want)))
	tab.Shot("docs")
	var got []string
	require.NoError(t, json.Unmarshal([]byte(tab.Str(`JSON.stringify([...new Set([...document.querySelectorAll('.opblock-summary-operation-id')].map(e => e.textContent.trim()))].sort())`)), &got))
	sort.Strings(got)
	require.Equal(t, want, got, "every operation of /openapi.json is on the page")
	require.Contains(t, tab.Str(`document.querySelector('.info .title').textContent`), "kiln")
	require.Empty(t, tab.Blocked(), "the page asked for nothing off the machine")
}
