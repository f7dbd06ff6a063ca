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
