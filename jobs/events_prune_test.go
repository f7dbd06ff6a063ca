package jobs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

func TestEventsPruneWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			old := &store.Event{Type: store.EventFileCreated, CreatedAt: time.Now().Add(-2 * time.Hour).Unix(), Data: json.RawMessage(`{"id":"file-old"}`)}
			recent := &store.Event{Type: store.EventFileCreated, Data: json.RawMessage(`{"id":"file-new"}`)}
			for _, ev := range []*store.Event{old, recent} {
				_, err := tb.Store.EventEmit(tb.ctx, ev)
				require.NoError(t, err)
			}

			require.NoError(t, (&EventsPruneWorker{d: tb.deps}).Work(tb.ctx, job(EventsPruneArgs{})))
			_, err := tb.Store.EventGet(tb.ctx, old.ID)
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = tb.Store.EventGet(tb.ctx, recent.ID)
			require.NoError(t, err)

			// With no retention, nothing goes, however old.
			older := &store.Event{Type: store.EventFileCreated, CreatedAt: time.Now().Add(-48 * time.Hour).Unix(), Data: json.RawMessage(`{"id":"file-older"}`)}
			_, err = tb.Store.EventEmit(tb.ctx, older)
			require.NoError(t, err)
			keep := tb.deps
			keep.EventRetention = 0
			require.NoError(t, (&EventsPruneWorker{d: keep}).Work(tb.ctx, job(EventsPruneArgs{})))
			_, err = tb.Store.EventGet(tb.ctx, older.ID)
			require.NoError(t, err)
		})
	}
}
