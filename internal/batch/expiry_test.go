package batch_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/config"
)

// TestFilePurposesAgree: KILN_FILE_RETENTION names the purposes files
// have.
func TestFilePurposesAgree(t *testing.T) {
	t.Parallel()
	want := append(slices.Clone(batch.UploadPurposes), batch.PurposeBatchOutput)
	require.ElementsMatch(t, want, config.FilePurposes)
}

// TestExpiresAfterBounds: a policy out of OpenAI's bounds is a 400 naming
// the field at fault, and leaves no file behind.
func TestExpiresAfterBounds(t *testing.T) {
	t.Parallel()
	env := batchtest.New(t, "sqlite", batch.Limits{})
	for _, tt := range []struct {
		name   string
		after  batch.ExpiresAfter
		param  string
		code   string
		accept bool
	}{
		{"min", batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: batch.ExpiresAfterMinSeconds}, "", "", true},
		{"max", batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: batch.ExpiresAfterMaxSeconds}, "", "", true},
		{"below", batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: 3599}, "expires_after.seconds", "integer_below_min_value", false},
		{"above", batch.ExpiresAfter{Anchor: batch.AnchorCreatedAt, Seconds: 2592001}, "expires_after.seconds", "integer_above_max_value", false},
		{"anchor", batch.ExpiresAfter{Anchor: "last_active_at", Seconds: 3600}, "expires_after.anchor", "invalid_value", false},
		{"no anchor", batch.ExpiresAfter{Seconds: 3600}, "expires_after.anchor", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := env.Batches.PutFile(t.Context(), "f.txt", strings.NewReader("x"), "file")
			require.NoError(t, err)
			f, err := d.Commit(t.Context(), "user_data", &tt.after)
			if tt.accept {
				require.NoError(t, err)
				require.Equal(t, f.CreatedAt+tt.after.Seconds, *f.ExpiresAt)
				return
			}
			e, ok := apierror.As(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, 400, e.Status)
			require.Equal(t, tt.param, e.Param)
			require.Equal(t, tt.code, e.Code)
			_, err = env.Bucket.Stat(t.Context(), d.File.ObjectKey)
			require.Error(t, err, "the bytes are removed")
		})
	}
}
