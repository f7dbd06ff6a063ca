package store_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testEventLookups(t *testing.T, setup setupFunc) {
	t.Run("InvocationOf", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		tb.st.SetDispatcher(dispatcher{store.EventObjectCreated: {"f", "g"}})
		ev := &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{}`)}
		_, err := tb.st.EventEmit(tb.ctx, ev)
		require.NoError(t, err)

		inv, err := tb.st.InvocationOf(tb.ctx, ev.ID, "g")
		require.NoError(t, err)
		require.Equal(t, ev.ID, inv.EventID)
		require.Equal(t, "g", inv.Function)
		require.Equal(t, store.InvocationPending, inv.Status)
		require.NoError(t, tb.st.InvocationRecord(tb.ctx, inv.ID, 1, store.InvocationDead, "boom"))
		inv, err = tb.st.InvocationOf(tb.ctx, ev.ID, "g")
		require.NoError(t, err)
		require.Equal(t, store.InvocationDead, inv.Status)
		require.Equal(t, "boom", inv.LastError)

		_, err = tb.st.InvocationOf(tb.ctx, ev.ID, "h")
		require.ErrorIs(t, err, store.ErrNotFound, "no such function")
		tb.st.SetDispatcher(nil)
		other := &store.Event{Type: store.EventObjectCreated, Data: json.RawMessage(`{}`)}
		_, err = tb.st.EventEmit(tb.ctx, other)
		require.NoError(t, err)
		_, err = tb.st.InvocationOf(tb.ctx, other.ID, "f")
		require.ErrorIs(t, err, store.ErrNotFound, "written without a dispatcher")
	})
}
