package batch_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

// readResults pages through a batch's results from the start, limit lines
// at a time, and returns the lines and whether the last page said done.
func readResults(t *testing.T, env *batchtest.Env, id string, limit int64) ([]string, bool) {
	t.Helper()
	var lines []string
	after := batch.Cursor{}
	for {
		r, err := env.Batches.Results(context.Background(), id, after, limit, 0)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, r.Write(context.Background(), &buf))
		page := splitAfter(buf.String())
		require.Len(t, page, int(r.Lines))
		if limit > 0 {
			require.LessOrEqual(t, r.Lines, limit)
		}
		lines = append(lines, page...)
		if r.Done || r.Lines == 0 {
			return lines, r.Done
		}
		next, err := batch.ParseCursor(r.Next.String())
		require.NoError(t, err)
		require.Equal(t, r.Next, next, "a cursor reads back as itself")
		after = next
	}
}

func splitAfter(s string) []string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestResults: a running batch's results are its committed chunks' lines,
// a page at a time; once it has ended and its chunks are gone, the same
// lines come from its files in the same order, each once, and together
// they are the files' lines, byte for byte. Both backends.
func TestResults(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env := batchtest.New(t, backend, batch.Limits{ShardSize: 3})
			b := env.CreateBatch(t, batchtest.ChatLines("m", 10))

			r, err := env.Batches.Results(ctx, b.ID, batch.Cursor{}, 0, 0)
			require.NoError(t, err)
			require.Zero(t, r.Lines, "no result before validation")
			require.False(t, r.Done)

			require.NoError(t, env.Batches.Validate(ctx, b.ID))
			require.Equal(t, 4, env.RunShards(t, "m", func(line int) bool { return line%4 != 0 }))
			running, done := readResults(t, env, b.ID, 4)
			require.False(t, done, "the batch is finalizing, not ended")
			require.Len(t, running, 10)

			// A page made before finalize removes the chunks is still
			// written whole: from the files.
			early, err := env.Batches.Results(ctx, b.ID, batch.Cursor{}, 0, 0)
			require.NoError(t, err)
			require.NoError(t, env.Batches.Finalize(ctx, b.ID))
			var buf bytes.Buffer
			require.NoError(t, early.Write(ctx, &buf))
			require.Equal(t, running, splitAfter(buf.String()))

			ended, done := readResults(t, env, b.ID, 3)
			require.True(t, done)
			require.Equal(t, running, ended, "the same lines, in the same order, once the batch has ended")

			b, err = env.Store.BatchGet(ctx, b.ID)
			require.NoError(t, err)
			files := env.ReadFile(t, *b.OutputFileID) + env.ReadFile(t, *b.ErrorFileID)
			require.ElementsMatch(t, splitAfter(files), ended)

			// Past the end: nothing, and done.
			r, err = env.Batches.Results(ctx, b.ID, batch.Cursor{Ord: 99}, 0, 0)
			require.NoError(t, err)
			require.Zero(t, r.Lines)
			require.True(t, r.Done)
		})
	}
}

// TestResultsOfStoppedBatch: the requests that never ran, as finalize
// writes them (batch_cancelled here), come after the chunks' lines.
func TestResultsOfStoppedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := batchtest.New(t, "sqlite", batch.Limits{ShardSize: 5})
	b := env.CreateBatch(t, batchtest.ChatLines("m", 10))
	require.NoError(t, env.Batches.Validate(ctx, b.ID))
	require.Equal(t, 1, env.RunShardsUpTo(t, "m", 1, nil))
	_, err := env.Batches.Cancel(ctx, b.ID)
	require.NoError(t, err)
	require.NoError(t, env.Batches.Finalize(ctx, b.ID))
	lines, done := readResults(t, env, b.ID, 4)
	require.True(t, done)
	require.Len(t, lines, 10)
	for i, l := range lines {
		if i < 5 {
			require.Contains(t, l, `"status_code":200`, "the shard that ran comes first")
		} else {
			require.Contains(t, l, `"code":"batch_cancelled"`)
		}
	}
}

// TestResultsBadInput: a cursor that is not one is a 400 naming after; a
// batch that never ran has no results and is done.
func TestResultsBadInput(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"x", "1", "1.", ".1", "-1.0", "1.-2", "1.2.3"} {
		_, err := batch.ParseCursor(bad)
		e, ok := apierror.As(err)
		require.True(t, ok, bad)
		require.Equal(t, 400, e.Status)
		require.Equal(t, "after", e.Param)
	}
	ctx := context.Background()
	env := batchtest.New(t, "sqlite", batch.Limits{})
	b := env.CreateBatch(t, `{"custom_id":"a"}`+"\n")
	require.NoError(t, env.Batches.Validate(ctx, b.ID))
	r, err := env.Batches.Results(ctx, b.ID, batch.Cursor{}, 0, 0)
	require.NoError(t, err)
	require.Equal(t, store.BatchFailed, r.Batch.Status)
	require.True(t, r.Done)
	require.Zero(t, r.Lines)
	_, err = env.Batches.Results(ctx, "batch_nope", batch.Cursor{}, 0, 0)
	e, ok := apierror.As(err)
	require.True(t, ok)
	require.Equal(t, 404, e.Status)
}
