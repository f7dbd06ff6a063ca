package api_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/curation"
)

// TestOpenAPIUpToDate fails when the committed openapi.yaml differs from the
// routes: run `make openapi` and commit the result.
func TestOpenAPIUpToDate(t *testing.T) {
	t.Parallel()
	want, err := api.Spec(curation.SpecRoutes)
	require.NoError(t, err)
	got, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "api/openapi.yaml is stale: run `make openapi`")
}
