package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

func testKeys(t *testing.T, setup setupFunc) {
	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		k := store.APIKey{ID: ids.New(ids.Key), Name: "ci", Prefix: "sk-kiln-ab", Hash: "h1"}
		require.NoError(t, tb.st.KeyCreate(tb.ctx, k))
		got, err := tb.st.KeyByHash(tb.ctx, "h1")
		require.NoError(t, err)
		require.Equal(t, "ci", got.Name)
		require.Equal(t, k.ID, got.ID)
		require.Equal(t, "sk-kiln-ab", got.Prefix)
		require.NotZero(t, got.CreatedAt, "a key without a creation time is created now")
		require.Nil(t, got.LastUsedAt)
		require.NoError(t, tb.st.KeyTouch(tb.ctx, k.ID))
		got, err = tb.st.KeyByHash(tb.ctx, "h1")
		require.NoError(t, err)
		require.NotNil(t, got.LastUsedAt)
		require.InDelta(t, time.Now().Unix(), *got.LastUsedAt, 5)
		n, err := tb.st.KeyCount(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, tb.st.KeyRevoke(tb.ctx, k.ID))
		require.ErrorIs(t, tb.st.KeyRevoke(tb.ctx, k.ID), store.ErrNotFound)
		_, err = tb.st.KeyByHash(tb.ctx, "h1")
		require.ErrorIs(t, err, store.ErrNotFound)
		n, err = tb.st.KeyCount(tb.ctx)
		require.NoError(t, err)
		require.Zero(t, n, "revoked keys do not count")
		list, err := tb.st.KeyList(tb.ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.NotNil(t, list[0].RevokedAt)
		require.NotNil(t, list[0].LastUsedAt)
	})

	t.Run("TouchAtMostOnceAMinute", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		recent := time.Now().Unix() - 30
		old := time.Now().Unix() - 120
		fresh := store.APIKey{ID: ids.New(ids.Key), Name: "fresh", Prefix: "p1", Hash: "h1", CreatedAt: 1, LastUsedAt: &recent}
		stale := store.APIKey{ID: ids.New(ids.Key), Name: "stale", Prefix: "p2", Hash: "h2", CreatedAt: 1, LastUsedAt: &old}
		require.NoError(t, tb.st.KeyCreate(tb.ctx, fresh))
		require.NoError(t, tb.st.KeyCreate(tb.ctx, stale))
		require.NoError(t, tb.st.KeyTouch(tb.ctx, fresh.ID))
		require.NoError(t, tb.st.KeyTouch(tb.ctx, stale.ID))
		list, err := tb.st.KeyList(tb.ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, recent, *list[0].LastUsedAt, "used less than a minute ago: left as it is")
		require.Greater(t, *list[1].LastUsedAt, old)
		require.EqualValues(t, 1, list[0].CreatedAt)
	})

	t.Run("ListOldestFirst", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		var made []string
		for i, h := range []string{"h1", "h2", "h3"} {
			k := store.APIKey{ID: ids.New(ids.Key), Name: h, Prefix: "p", Hash: h}
			require.NoError(t, tb.st.KeyCreate(tb.ctx, k), i)
			made = append(made, k.ID)
		}
		list, err := tb.st.KeyList(tb.ctx)
		require.NoError(t, err)
		require.Len(t, list, 3)
		for i, k := range list {
			require.Equal(t, made[i], k.ID)
		}
	})

	t.Run("UnknownAndDuplicate", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		_, err := tb.st.KeyByHash(tb.ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tb.st.KeyRevoke(tb.ctx, "key_nope"), store.ErrNotFound)
		require.NoError(t, tb.st.KeyCreate(tb.ctx, store.APIKey{ID: ids.New(ids.Key), Name: "a", Prefix: "p", Hash: "same"}))
		require.Error(t, tb.st.KeyCreate(tb.ctx, store.APIKey{ID: ids.New(ids.Key), Name: "b", Prefix: "p", Hash: "same"}),
			"two keys never share a secret's hash")
	})

	t.Run("WatchRevocations", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// Two stores on one database: the second stands for another process.
		url := storetest.URL(t, tb.backend)
		st, err := store.Open(tb.ctx, url, testLog())
		require.NoError(t, err)
		defer st.Close()
		other, err := store.Open(tb.ctx, url, testLog())
		require.NoError(t, err)
		defer other.Close()
		revokeNew := func(through *store.Store) (string, error) {
			k := store.APIKey{ID: ids.New(ids.Key), Name: "k", Prefix: "p", Hash: ids.New("hash_")}
			if err := through.KeyCreate(tb.ctx, k); err != nil {
				return "", err
			}
			return k.ID, through.KeyRevoke(tb.ctx, k.ID)
		}

		ctx, cancel := context.WithCancel(tb.ctx)
		defer cancel()
		heard, otherHeard := &heard{}, &heard{}
		crossProcess := st.KeyWatch(ctx, heard.fn)
		require.Equal(t, tb.backend == "postgres", crossProcess, "only Postgres notifies other stores")
		require.Equal(t, crossProcess, other.KeyWatch(tb.ctx, otherHeard.fn))
		if crossProcess {
			// Each listener says "drop everything" once its LISTEN is in
			// place; from then on no revocation goes unheard.
			heard.wait(t, "")
			otherHeard.wait(t, "")
		}

		id, err := revokeNew(st)
		require.NoError(t, err)
		require.Contains(t, heard.ids(), id, "the revoking store's watchers hear of it before KeyRevoke returns")
		if crossProcess {
			otherHeard.wait(t, id)
		} else {
			require.NotContains(t, otherHeard.ids(), id, "SQLite tells no other store")
		}
		id, err = revokeNew(other)
		require.NoError(t, err)
		require.Contains(t, otherHeard.ids(), id)
		if crossProcess {
			heard.wait(t, id)
		}
		require.ErrorIs(t, st.KeyRevoke(tb.ctx, id), store.ErrNotFound, "revoked already, through the other store")

		// A watch whose context ended hears no more (it ends just after).
		cancel()
		require.Eventually(t, func() bool {
			id, err := revokeNew(st)
			return err == nil && !slices.Contains(heard.ids(), id)
		}, 10*time.Second, 10*time.Millisecond, "the watch to end")
	})
}

// heard collects what a KeyWatch watcher is told.
type heard struct {
	mu  sync.Mutex
	got []string
}

func (h *heard) fn(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, id)
}

func (h *heard) ids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// wait waits until the watcher was told id.
func (h *heard) wait(t *testing.T, id string) {
	t.Helper()
	require.Eventually(t, func() bool { return slices.Contains(h.ids(), id) }, 10*time.Second, 5*time.Millisecond, "the watcher to hear %q", id)
}
