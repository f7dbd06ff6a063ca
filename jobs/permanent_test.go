package jobs

import (
	"errors"
	"testing"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch/batchtest"
)

// TestStopIfPermanent: an error the database gives again on every try (a
// broken constraint) cancels the job, recording the error; any other
// error is retried as River does.
func TestStopIfPermanent(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			err := tb.Store.ExecForTest(tb.ctx, `INSERT INTO kiln_migrations (version, applied_at) VALUES (1, 0)`)
			require.Error(t, err)
			var cancel *rivertype.JobCancelError
			require.True(t, errors.As(stopIfPermanent(err), &cancel), "a constraint error cancels the job")
			require.ErrorIs(t, stopIfPermanent(err), err)

			transient := errors.New("connection refused")
			require.Equal(t, transient, stopIfPermanent(transient))
			require.NoError(t, stopIfPermanent(nil))
		})
	}
}
