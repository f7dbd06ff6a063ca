package auth_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/auth"
)

func TestProject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	require.Equal(t, auth.DefaultProject, auth.Project(ctx), "work no request started")
	ctx = auth.NewContext(ctx, auth.Principal{KeyID: "key_1", ProjectID: "proj_a"})
	require.Equal(t, "proj_a", auth.Project(ctx))
	p, ok := auth.FromContext(ctx)
	require.True(t, ok)
	require.Equal(t, "key_1", p.KeyID)
}

func TestAllows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scopes       []string
		method, path string
		want         bool
	}{
		{nil, "POST", "/v1/batches", true},
		{[]string{auth.ScopeRead}, "GET", "/v1/batches/batch_1", true},
		{[]string{auth.ScopeRead}, "POST", "/v1/batches", false},
		{[]string{auth.ScopeRead}, "DELETE", "/v1/files/file-1", false},
		{[]string{auth.ScopeBatches}, "POST", "/v1/files", true},
		{[]string{auth.ScopeBatches}, "POST", "/v1/batches/batch_1/cancel", true},
		{[]string{auth.ScopeBatches}, "POST", "/v1/webhook_endpoints", false},
		{[]string{auth.ScopeBatches}, "GET", "/v1/events", false},
		{[]string{auth.ScopeBatches}, "GET", "/v1/filesystem", false},
		{[]string{auth.ScopeAgent}, "GET", "/v1/batches", false},
	} {
		require.Equal(t, tc.want, auth.Allows(tc.scopes, tc.method, tc.path), "%v %s %s", tc.scopes, tc.method, tc.path)
	}
	_, ok := auth.ValidScopes([]string{auth.ScopeRead, auth.ScopeBatches})
	require.True(t, ok)
	bad, ok := auth.ValidScopes([]string{"api.read", "root"})
	require.False(t, ok)
	require.Equal(t, "root", bad)
}
