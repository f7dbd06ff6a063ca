package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testProjects(t *testing.T, setup setupFunc) {
	t.Run("CreateListRenameArchive", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		def, err := tb.st.ProjectGet(tb.ctx, store.DefaultProject)
		require.NoError(t, err, "the default project exists from the start")
		require.Nil(t, def.ArchivedAt)

		a := store.Project{ID: ids.New(ids.Project), Name: "Aris"}
		require.NoError(t, tb.st.ProjectCreate(tb.ctx, a))
		got, err := tb.st.ProjectByName(tb.ctx, "Aris")
		require.NoError(t, err)
		require.Equal(t, a.ID, got.ID)
		require.NotZero(t, got.CreatedAt)
		_, err = tb.st.ProjectByName(tb.ctx, "nobody")
		require.ErrorIs(t, err, store.ErrNotFound)

		renamed, err := tb.st.ProjectRename(tb.ctx, a.ID, "Aris web")
		require.NoError(t, err)
		require.Equal(t, "Aris web", renamed.Name)
		_, err = tb.st.ProjectRename(tb.ctx, "proj_nope", "x")
		require.ErrorIs(t, err, store.ErrNotFound)

		list, more, err := tb.st.ProjectList(tb.ctx, "", 10, false)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, list, 2)

		archived, err := tb.st.ProjectArchive(tb.ctx, a.ID)
		require.NoError(t, err)
		require.NotNil(t, archived.ArchivedAt)
		_, err = tb.st.ProjectArchive(tb.ctx, a.ID)
		require.NoError(t, err, "archiving twice is a no-op")
		list, _, err = tb.st.ProjectList(tb.ctx, "", 10, false)
		require.NoError(t, err)
		require.Len(t, list, 1, "archived projects are left out unless asked for")
		list, _, err = tb.st.ProjectList(tb.ctx, "", 1, true)
		require.NoError(t, err)
		require.Len(t, list, 1)
		_, err = tb.st.ProjectRename(tb.ctx, a.ID, "y")
		require.ErrorIs(t, err, store.ErrNotFound, "an archived project is not renamed")
		_, err = tb.st.ProjectArchive(tb.ctx, store.DefaultProject)
		require.ErrorIs(t, err, store.ErrConflict)
	})
	t.Run("ArchiveStopsKeys", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		p := store.Project{ID: ids.New(ids.Project), Name: "B"}
		require.NoError(t, tb.st.ProjectCreate(tb.ctx, p))
		k := store.APIKey{ID: ids.New(ids.Key), Name: "b", Prefix: "sk-kiln-b", Hash: "hash-b", ProjectID: p.ID, Scopes: []string{"api.read"}}
		require.NoError(t, tb.st.KeyCreate(tb.ctx, k))
		got, err := tb.st.KeyByHash(tb.ctx, "hash-b")
		require.NoError(t, err)
		require.Equal(t, p.ID, got.ProjectID)
		require.Equal(t, []string{"api.read"}, got.Scopes)
		require.Equal(t, store.KeyOwnerUser, got.OwnerType)

		heard := make(chan string, 4)
		tb.st.KeyWatch(tb.ctx, func(id string) { heard <- id })
		_, err = tb.st.ProjectArchive(tb.ctx, p.ID)
		require.NoError(t, err)
		_, err = tb.st.KeyByHash(tb.ctx, "hash-b")
		require.ErrorIs(t, err, store.ErrNotFound, "an archived project's keys stop")
		require.Contains(t, drain(heard), "", "caches are told to drop every key")
		require.ErrorIs(t, tb.st.KeyCreate(tb.ctx, store.APIKey{ID: ids.New(ids.Key), Hash: "hash-c", ProjectID: p.ID}), store.ErrNotFound,
			"no new key in an archived project")
	})
	t.Run("Rotate", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		old := store.APIKey{ID: ids.New(ids.Key), Name: "ci", Prefix: "sk-kiln-o", Hash: "hash-old", Scopes: []string{"api.batches"}}
		require.NoError(t, tb.st.KeyCreate(tb.ctx, old))
		next, err := tb.st.KeyRotate(tb.ctx, old.ID, store.APIKey{ID: ids.New(ids.Key), Prefix: "sk-kiln-n", Hash: "hash-new"}, time.Hour)
		require.NoError(t, err)
		require.Equal(t, "ci", next.Name, "the successor keeps the name")
		require.Equal(t, []string{"api.batches"}, next.Scopes)
		_, err = tb.st.KeyByHash(tb.ctx, "hash-old")
		require.NoError(t, err, "within the grace period")
		got, err := tb.st.KeyGet(tb.ctx, old.ID)
		require.NoError(t, err)
		require.NotNil(t, got.ExpiresAt)

		// No grace: the old key stops at once (expires_at is now).
		third, err := tb.st.KeyRotate(tb.ctx, next.ID, store.APIKey{ID: ids.New(ids.Key), Prefix: "sk-kiln-t", Hash: "hash-third"}, 0)
		require.NoError(t, err)
		_, err = tb.st.KeyByHash(tb.ctx, "hash-new")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.KeyByHash(tb.ctx, "hash-third")
		require.NoError(t, err)
		_, err = tb.st.KeyRotate(tb.ctx, next.ID, store.APIKey{ID: ids.New(ids.Key), Hash: "hash-4"}, 0)
		require.ErrorIs(t, err, store.ErrNotFound, "a key past its grace is not rotated again")
		_, err = tb.st.KeyGet(tb.ctx, "key_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.Equal(t, third.ProjectID, store.DefaultProject)
	})
}

// drain is what ch holds now.
func drain(ch chan string) []string {
	var out []string
	for {
		select {
		case s := <-ch:
			out = append(out, s)
		default:
			return out
		}
	}
}
