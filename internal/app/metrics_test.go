package app_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestMetricsToken: with KILN_METRICS_TOKEN set, /metrics answers only a
// request with that bearer token; API keys do not open it.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	const token = "metrics-secret-token"
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true, Configure: func(c *config.Config) { c.MetricsToken = token }})
	get := func(auth string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, env.Base()+"/metrics", nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + env.Key, token} {
		status, _ := get(auth)
		require.Equal(t, http.StatusUnauthorized, status, "Authorization: %q", auth)
	}
	status, body := get("Bearer " + token)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "kiln_db_connections")
}

// TestPprofAddr: with KILN_PPROF_ADDR set, Go's profiles are served there,
// and never on the API's address, which stays behind its keys.
func TestPprofAddr(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true, Configure: func(c *config.Config) { c.PprofAddr = "127.0.0.1:0" }})
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	status, body := get("http://" + env.App.PprofAddr() + "/debug/pprof/heap?debug=1")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "heap profile:")
	status, _ = get(env.Base() + "/debug/pprof/heap?debug=1")
	require.NotEqual(t, http.StatusOK, status, "the API's address serves no profiles")

	off := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	require.Empty(t, off.App.PprofAddr(), "no profiles unless asked for")
}
