package faulttest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// The invariant checks of the fault tests find what they look for: a
// check that passes whatever happens would make every chaos run pass.
func TestInvariantChecks(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	c := client(env)
	ctx := context.Background()
	b := waitBatch(t, c, createBatch(t, c, 20))
	st, bucket := env.App.Store, env.App.Bucket
	require.Empty(t, checkBatch(ctx, c, *b, 20, checkOpts{chat: true}))
	// Finalize removes the chunks just after the batch ends.
	poll(t, "the chunks' removal", func() (bool, error) { return len(checkObjects(ctx, st, bucket)) == 0, nil })

	// The batch's files hold 20 requests, not 21, nor 19.
	require.NotEmpty(t, checkBatch(ctx, c, *b, 21, checkOpts{}))
	require.NotEmpty(t, checkBatch(ctx, c, *b, 19, checkOpts{}))

	put := func(key string) {
		_, err := bucket.Put(ctx, key, strings.NewReader("x"), 1)
		require.NoError(t, err)
	}
	for _, key := range []string{"files/file-nobody", batch.ChunkKey(b.ID, 0, 7), "uploads/upload-nobody/part", "elsewhere/x"} {
		put(key)
		problems := checkObjects(ctx, st, bucket)
		require.Len(t, problems, 1, key)
		require.Contains(t, problems[0], key)
		require.NoError(t, bucket.Delete(ctx, key))
	}
	in, err := st.FileGet(ctx, b.OutputFileID)
	require.NoError(t, err)
	require.NoError(t, bucket.Delete(ctx, in.ObjectKey))
	problems := checkObjects(ctx, st, bucket)
	require.Len(t, problems, 1)
	require.Contains(t, problems[0], "has no object")
}
