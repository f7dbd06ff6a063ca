package batch_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/store"
)

// TestCovers: a URL falls under an endpoint's when its path is the
// endpoint's or below it, segment by segment once normalised; a path that a
// server could read as another (dot segments, escaped or not, encoded
// slashes, backslashes) never does.
func TestCovers(t *testing.T) {
	t.Parallel()
	const ep = "https://h/hooks/a"
	tests := []struct {
		endpoint, target string
		covers           bool
	}{
		{ep, "https://h/hooks/a", true},
		{ep, "https://h/hooks/a/", true},
		{ep, "https://h/hooks/a/b/c?token=x", true},
		{ep, "HTTPS://H:443/hooks/a/b", true},
		{ep, "https://h/hooks/%61/b", true},
		{"https://h/hooks/a/", "https://h/hooks/a", true},
		{"https://h", "https://h/anything", true},
		{"https://h/", "https://h/anything", true},

		{ep, "https://h/hooks/ab", false},
		{ep, "https://h/hooks", false},
		{ep, "https://h/hooks/b", false},
		{ep, "http://h/hooks/a", false},
		{ep, "https://h:8443/hooks/a", false},
		{ep, "https://g/hooks/a", false},
		{ep, "https://u@h/hooks/a", false},
		// Dot segments, in every spelling.
		{ep, "https://h/hooks/a/../b", false},
		{ep, "https://h/hooks/a/../../admin", false},
		{ep, "https://h/hooks/a/./b", false},
		{ep, "https://h/hooks/a/%2e%2e/b", false},
		{ep, "https://h/hooks/a/%2E%2E/b", false},
		{ep, "https://h/hooks/a/%2e%2E/b", false},
		{ep, "https://h/hooks/a/.%2e/b", false},
		{ep, "https://h/hooks/a/%2e./b", false},
		{ep, "https://h/hooks/a/%2e/b", false},
		{ep, "https://h/hooks/a/..;/b", false},
		// Encoded slashes and backslashes.
		{ep, "https://h/hooks/a%2f..%2fb", false},
		{ep, "https://h/hooks/a/x%2F..%2F..%2Fb", false},
		{ep, `https://h/hooks/a/..\b`, false},
		{ep, "https://h/hooks/a/..%5cb", false},
		// An endpoint with such a path covers nothing.
		{"https://h/hooks/a/../b", "https://h/hooks/a/../b", false},
		{"https://h/hooks/%2e%2e", "https://h/hooks/%2e%2e/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint+" "+tt.target, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.covers, batch.Covers(tt.endpoint, tt.target))
		})
	}
}

func TestCoveringEndpoint(t *testing.T) {
	t.Parallel()
	eps := []store.WebhookEndpoint{
		{ID: "outer", URL: "https://h/hooks"},
		{ID: "inner", URL: "https://h/hooks/a"},
	}
	e, ok := batch.CoveringEndpoint(eps, "https://h/hooks/a/b")
	require.True(t, ok)
	require.Equal(t, "inner", e.ID, "the closest endpoint signs")
	e, ok = batch.CoveringEndpoint(eps, "https://h/hooks/b")
	require.True(t, ok)
	require.Equal(t, "outer", e.ID)
	_, ok = batch.CoveringEndpoint(eps, "https://h/hooks/a/%2e%2e/%2e%2e/admin")
	require.False(t, ok)
}
