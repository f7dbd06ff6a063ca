package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testServiceAccounts(t *testing.T, setup setupFunc) {
	t.Run("CreateListDelete", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		p := newProject(t, tb, "svc")
		a := store.ServiceAccount{ID: ids.New(ids.ServiceAccount), ProjectID: p.ID, Name: "ci", Role: store.ServiceAccountMember}
		k := store.APIKey{ID: ids.New(ids.Key), Name: "Secret Key", Prefix: "sk-kiln-s", Hash: "hash-svc", Scopes: []string{"api.batches"}}
		require.NoError(t, tb.st.ServiceAccountCreate(tb.ctx, a, &k))
		got, err := tb.st.KeyByHash(tb.ctx, "hash-svc")
		require.NoError(t, err)
		require.Equal(t, p.ID, got.ProjectID, "the key opens the account's project")
		require.Equal(t, store.KeyOwnerServiceAccount, got.OwnerType)
		require.Equal(t, a.ID, *got.ServiceAccountID)
		require.Equal(t, []string{"api.batches"}, got.Scopes)

		bare := store.ServiceAccount{ID: ids.New(ids.ServiceAccount), ProjectID: p.ID, Name: "bare", Role: store.ServiceAccountNone}
		require.NoError(t, tb.st.ServiceAccountCreate(tb.ctx, bare, nil))
		list, more, err := tb.st.ServiceAccountList(tb.ctx, p.ID, "", 1)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{a.ID}, accountIDs(list))
		list, more, err = tb.st.ServiceAccountList(tb.ctx, p.ID, a.ID, 10)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{bare.ID}, accountIDs(list))
		one, err := tb.st.ServiceAccountGet(tb.ctx, p.ID, a.ID)
		require.NoError(t, err)
		require.Equal(t, "ci", one.Name)
		require.NotZero(t, one.CreatedAt)
		_, err = tb.st.ServiceAccountGet(tb.ctx, store.DefaultProject, a.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "another project's account is not found")

		heard := make(chan string, 4)
		tb.st.KeyWatch(tb.ctx, func(id string) { heard <- id })
		require.NoError(t, tb.st.ServiceAccountDelete(tb.ctx, p.ID, a.ID))
		require.Contains(t, drain(heard), k.ID, "caches hear of the revoked key")
		_, err = tb.st.KeyByHash(tb.ctx, "hash-svc")
		require.ErrorIs(t, err, store.ErrNotFound, "deleting the account revokes its keys")
		_, err = tb.st.ServiceAccountGet(tb.ctx, p.ID, a.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tb.st.ServiceAccountDelete(tb.ctx, p.ID, a.ID), store.ErrNotFound, "deleting twice")

		_, err = tb.st.ProjectArchive(tb.ctx, p.ID)
		require.NoError(t, err)
		err = tb.st.ServiceAccountCreate(tb.ctx, store.ServiceAccount{ID: ids.New(ids.ServiceAccount), ProjectID: p.ID, Name: "late", Role: store.ServiceAccountNone}, nil)
		require.ErrorIs(t, err, store.ErrNotFound, "no account in an archived project")
	})

	t.Run("KeyListByProject", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		p := newProject(t, tb, "keys")
		var made []string
		for _, h := range []string{"h1", "h2", "h3"} {
			k := store.APIKey{ID: ids.New(ids.Key), Name: h, Prefix: "p", Hash: h, ProjectID: p.ID}
			require.NoError(t, tb.st.KeyCreate(tb.ctx, k))
			made = append(made, k.ID)
		}
		require.NoError(t, tb.st.KeyCreate(tb.ctx, store.APIKey{ID: ids.New(ids.Key), Name: "elsewhere", Prefix: "p", Hash: "h4"}))
		require.NoError(t, tb.st.KeyRevoke(tb.ctx, made[1]))
		_, err := tb.st.KeyRotate(tb.ctx, made[2], store.APIKey{ID: ids.New(ids.Key), Prefix: "p", Hash: "h5"}, 0)
		require.NoError(t, err)

		list, more, err := tb.st.KeyListByProject(tb.ctx, p.ID, "", 10)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, list, 2, "revoked keys and keys past their grace are left out")
		require.Equal(t, made[0], list[0].ID)
		require.Equal(t, "h3", list[1].Name, "the successor of a rotated key")
		list, more, err = tb.st.KeyListByProject(tb.ctx, p.ID, "", 1)
		require.NoError(t, err)
		require.True(t, more)
		require.Len(t, list, 1)
		list, _, err = tb.st.KeyListByProject(tb.ctx, p.ID, list[0].ID, 1)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.NotEqual(t, made[0], list[0].ID)
	})
}

func accountIDs(list []store.ServiceAccount) []string {
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.ID
	}
	return out
}

// newProject makes a live project.
func newProject(t *testing.T, tb *testBundle, name string) store.Project {
	t.Helper()
	p := store.Project{ID: ids.New(ids.Project), Name: name, CreatedAt: time.Now().Unix()}
	require.NoError(t, tb.st.ProjectCreate(tb.ctx, p))
	return p
}
