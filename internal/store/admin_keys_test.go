package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testAdminKeys(t *testing.T, setup setupFunc) {
	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		k := store.AdminKey{ID: ids.New(ids.AdminKey), Name: "ops", Prefix: "sk-kiln-admin-ab", Hash: "ah1"}
		require.NoError(t, tb.st.AdminKeyCreate(tb.ctx, k))
		got, err := tb.st.AdminKeyByHash(tb.ctx, "ah1")
		require.NoError(t, err)
		require.Equal(t, k.ID, got.ID)
		require.Equal(t, "ops", got.Name)
		require.NotZero(t, got.CreatedAt)
		require.Nil(t, got.LastUsedAt)
		require.NoError(t, tb.st.AdminKeyTouch(tb.ctx, k.ID))
		got, err = tb.st.AdminKeyByHash(tb.ctx, "ah1")
		require.NoError(t, err)
		require.NotNil(t, got.LastUsedAt)

		_, err = tb.st.KeyByHash(tb.ctx, "ah1")
		require.ErrorIs(t, err, store.ErrNotFound, "an admin key is no API key")
		_, err = tb.st.AdminKeyByHash(tb.ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)

		require.NoError(t, tb.st.AdminKeyRevoke(tb.ctx, k.ID))
		require.ErrorIs(t, tb.st.AdminKeyRevoke(tb.ctx, k.ID), store.ErrNotFound, "revoking twice")
		_, err = tb.st.AdminKeyByHash(tb.ctx, "ah1")
		require.ErrorIs(t, err, store.ErrNotFound, "a revoked admin key stops at once")
		list, err := tb.st.AdminKeyList(tb.ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.NotNil(t, list[0].RevokedAt)

		logs, _, err := tb.st.AuditLogList(tb.ctx, store.AuditLogFilter{Types: []string{store.AuditAdminKeyCreated, store.AuditAdminKeyDeleted}})
		require.NoError(t, err)
		require.Len(t, logs, 2)
		require.Equal(t, store.AuditAdminKeyDeleted, logs[0].Type, "newest first")
		require.Empty(t, logs[0].ProjectID, "admin keys belong to no project")
	})
}
