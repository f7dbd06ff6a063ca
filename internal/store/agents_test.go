package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testAgents(t *testing.T, setup setupFunc) {
	t.Run("HeartbeatListRemove", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		now := time.Now().Unix()
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "a", Hostname: "h", Models: []string{"m1"}, StartedAt: now, Synthetic: true}))
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "a", Hostname: "h", Models: []string{"m1", "m2"}, StartedAt: now, InFlight: 3}))
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "old", Hostname: "h", Models: []string{"m3"}, StartedAt: 1, HeartbeatAt: 1}))
		list, err := tb.st.AgentList(tb.ctx, now-60)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, []string{"m1", "m2"}, list[0].Models)
		require.EqualValues(t, 3, list[0].InFlight)
		require.False(t, list[0].Synthetic, "a heartbeat replaces what the agent reported")
		require.InDelta(t, now, list[0].HeartbeatAt, 60, "a heartbeat without a time is now")
		list, err = tb.st.AgentList(tb.ctx, 0)
		require.NoError(t, err)
		require.Len(t, list, 2, "an agent silent since long ago is listed from far enough back")
		require.NoError(t, tb.st.AgentRemove(tb.ctx, "a"))
		list, err = tb.st.AgentList(tb.ctx, now-60)
		require.NoError(t, err)
		require.Empty(t, list)
		require.NoError(t, tb.st.AgentRemove(tb.ctx, "a"), "removing an agent that is gone does nothing")
	})

	t.Run("ReportedFields", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		a := store.Agent{ID: "gpu-1", Hostname: "host", Models: []string{"m"}, Synthetic: true, LoadedModel: "m", State: "running",
			InFlight: 4, Concurrency: 16, RequestsPerSec: 2.5, TokensPerSec: 300.25, ModelSwitches: 2, StartedAt: 100, HeartbeatAt: 200}
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, a))
		list, err := tb.st.AgentList(tb.ctx, 200)
		require.NoError(t, err)
		require.Equal(t, []store.Agent{a}, list)
		list, err = tb.st.AgentList(tb.ctx, 201)
		require.NoError(t, err)
		require.Empty(t, list)
	})

	// The models agents declare make the catalogue, which outlives them.
	t.Run("Catalogue", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		known, err := tb.st.ModelKnown(tb.ctx, "m1")
		require.NoError(t, err)
		require.False(t, known)
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "a", Models: []string{"m1", "m2"}, Synthetic: true, HeartbeatAt: 100}))
		require.NoError(t, tb.st.AgentHeartbeat(tb.ctx, store.Agent{ID: "b", Models: []string{"m2"}, HeartbeatAt: 200}))
		require.NoError(t, tb.st.AgentRemove(tb.ctx, "a"))
		list, err := tb.st.ModelList(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, []store.CatalogModel{
			{ID: "m1", Synthetic: true, FirstSeenAt: 100, LastSeenAt: 100},
			{ID: "m2", Synthetic: false, FirstSeenAt: 100, LastSeenAt: 200},
		}, list, "a model stays after its agent goes")
		known, err = tb.st.ModelKnown(tb.ctx, "m1")
		require.NoError(t, err)
		require.True(t, known)
		require.NoError(t, tb.st.ModelForget(tb.ctx, "m1"))
		require.ErrorIs(t, tb.st.ModelForget(tb.ctx, "m1"), store.ErrNotFound)
		known, err = tb.st.ModelKnown(tb.ctx, "m1")
		require.NoError(t, err)
		require.False(t, known)
	})
}
