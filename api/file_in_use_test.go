package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestDeleteInputOfRunningBatch: a batch's input file cannot be deleted
// while the batch runs (409 file_in_use), and nothing stalls: the batch
// and the next batch of its model complete, after which the file deletes.
// (Deleting it used to leave the batch waiting for good, and every batch
// of its model behind it.)
func TestDeleteInputOfRunningBatch(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{Sim: slowSim()})
			c := sdkClient(env)
			ctx := context.Background()

			const n = 100
			first := createBatch(t, c, chatLines(n, 0), "24h")
			waitProgress(t, c, first.ID, 1)
			_, err := c.Files.Delete(ctx, first.InputFileID)
			var apiErr *openai.Error
			require.True(t, errors.As(err, &apiErr), "want an API error, got %v", err)
			require.Equal(t, http.StatusConflict, apiErr.StatusCode)
			require.Equal(t, "file_in_use", apiErr.Code)
			_, err = c.Files.Get(ctx, first.InputFileID)
			require.NoError(t, err, "the refused delete left the file")

			second := createBatch(t, c, chatLines(n, 0), "24h")
			for _, id := range []string{first.ID, second.ID} {
				b := kilntest.WaitBatch(t, c, id)
				require.Equal(t, openai.BatchStatusCompleted, b.Status)
				require.EqualValues(t, n, b.RequestCounts.Completed)
			}

			// Ended, the batch no longer needs its input.
			deleted, err := c.Files.Delete(ctx, first.InputFileID)
			require.NoError(t, err)
			require.True(t, deleted.Deleted)
		})
	}
}
