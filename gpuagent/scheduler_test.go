package gpuagent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func TestChooseModel(t *testing.T) {
	t.Parallel()
	now := time.Unix(10_000, 0)
	ago := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	all := map[string]bool{"a": true, "b": true, "c": true}
	const bound = 5 * time.Minute
	for _, tc := range []struct {
		name    string
		loaded  string
		backlog []store.Backlog
		want    string
	}{
		{"Nothing", "a", nil, ""},
		{"KeepLoaded", "a", []store.Backlog{{Model: "a", OldestReadyAt: ago(time.Second)}, {Model: "b", OldestReadyAt: ago(time.Minute)}}, "a"},
		{"KeepLoadedDespitePriority", "a", []store.Backlog{{Model: "a", OldestReadyAt: ago(time.Second)}, {Model: "b", Priority: 9, OldestReadyAt: ago(time.Minute)}}, "a"},
		{"SwitchWhenStarving", "a", []store.Backlog{{Model: "a", OldestReadyAt: ago(time.Second)}, {Model: "b", OldestReadyAt: ago(6 * time.Minute)}}, "b"},
		{"LoadedEmptyTakesPriority", "a", []store.Backlog{{Model: "b", OldestReadyAt: ago(time.Minute)}, {Model: "c", Priority: 2, OldestReadyAt: ago(time.Second)}}, "c"},
		{"LoadedEmptyTakesOldest", "a", []store.Backlog{{Model: "b", OldestReadyAt: ago(time.Second)}, {Model: "c", OldestReadyAt: ago(time.Minute)}}, "c"},
		{"StarvingBeatsPriority", "", []store.Backlog{{Model: "b", Priority: 5, OldestReadyAt: ago(time.Second)}, {Model: "c", OldestReadyAt: ago(10 * time.Minute)}}, "c"},
		{"FirstLoad", "", []store.Backlog{{Model: "b", OldestReadyAt: ago(time.Second)}}, "b"},
		{"UnservableIgnored", "a", []store.Backlog{{Model: "x", OldestReadyAt: ago(time.Hour)}, {Model: "a", OldestReadyAt: ago(time.Second)}}, "a"},
		{"OnlyUnservable", "a", []store.Backlog{{Model: "x", OldestReadyAt: ago(time.Hour)}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, chooseModel(tc.loaded, tc.backlog, all, now, bound))
		})
	}
}

func TestLimiterAIMD(t *testing.T) {
	t.Parallel()
	l := newLimiter(8, 1, 0)
	for range 8 {
		require.True(t, l.tryAcquire())
	}
	require.False(t, l.tryAcquire())
	l.overloaded()
	_, limit := l.stats()
	require.Equal(t, 4, limit)
	// With 7 in flight and a limit of 4, nothing new starts.
	require.False(t, l.tryAcquire())
	for range 7 {
		l.succeeded()
	}
	inFlight, limit := l.stats()
	require.Equal(t, 0, inFlight)
	require.Equal(t, 5, limit, "additive increase: about one slot per window of answers")
	for range 200 {
		require.True(t, l.tryAcquire())
		l.succeeded()
	}
	_, limit = l.stats()
	require.Equal(t, 8, limit, "never above the engine's capacity")
	for range 10 {
		require.True(t, l.tryAcquire())
		l.overloaded()
	}
	_, limit = l.stats()
	require.Equal(t, 1, limit, "never below the minimum")
}
