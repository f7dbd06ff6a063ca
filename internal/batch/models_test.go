package batch_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

// TestModelCatalogue: a batch naming a model kiln does not know fails
// validation at once with model_not_found, on the line that names it; one
// naming a model an agent has declared (though no agent is live now) or
// the configuration names waits for an agent; AcceptAnyModel takes any.
// Both backends.
func TestModelCatalogue(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env := batchtest.New(t, backend, batch.Limits{Models: []string{"configured"}})
			validate := func(env *batchtest.Env, input string) store.Batch {
				t.Helper()
				b := env.CreateBatch(t, input)
				require.NoError(t, env.Batches.Validate(ctx, b.ID))
				b, err := env.Store.BatchGet(ctx, b.ID)
				require.NoError(t, err)
				return b
			}

			b := validate(env, "\n"+batchtest.ChatLines("typo-model", 3))
			require.Equal(t, store.BatchFailed, b.Status)
			require.Len(t, b.Errors, 1)
			e := b.Errors[0]
			require.Equal(t, batch.CodeModelNotFound, e.Code)
			require.Equal(t, "body.model", *e.Param)
			require.Equal(t, 2, *e.Line, "the first request's line (after a blank one)")
			require.Contains(t, e.Message, "typo-model")
			require.Equal(t, "typo-model", b.Model, "the Batch object still names the model")

			// An agent declared it once and has gone: the batch waits.
			require.NoError(t, env.Store.AgentHeartbeat(ctx, store.Agent{ID: "gone", Models: []string{"declared"}, HeartbeatAt: 1}))
			require.NoError(t, env.Store.AgentRemove(ctx, "gone"))
			require.Equal(t, store.BatchInProgress, validate(env, batchtest.ChatLines("declared", 3)).Status)
			require.Equal(t, store.BatchInProgress, validate(env, batchtest.ChatLines("configured", 3)).Status)

			anyModel := batchtest.New(t, backend, batch.Limits{AcceptAnyModel: true, Models: []string{}})
			require.Equal(t, store.BatchInProgress, validate(anyModel, batchtest.ChatLines("typo-model", 3)).Status)
		})
	}
}
