package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testAuditLogs(t *testing.T, setup setupFunc) {
	t.Run("EveryChangeWithItsActor", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		require.Equal(t, store.Actor{Type: store.ActorSystem}, store.ActorFrom(tb.ctx), "no actor named: kiln itself")
		admin := store.Actor{Type: store.ActorAdminKey, ID: "key_admin_1"}
		ctx := store.WithActor(tb.ctx, admin)
		require.Equal(t, admin, store.ActorFrom(ctx))

		p := store.Project{ID: ids.New(ids.Project), Name: "Aris"}
		require.NoError(t, tb.st.ProjectCreate(ctx, p))
		_, err := tb.st.ProjectRename(ctx, p.ID, "Aris web")
		require.NoError(t, err)
		k := store.APIKey{ID: ids.New(ids.Key), Name: "ci", Prefix: "p", Hash: "h1", ProjectID: p.ID, Scopes: []string{"api.read"}}
		require.NoError(t, tb.st.KeyCreate(ctx, k))
		next, err := tb.st.KeyRotate(ctx, k.ID, store.APIKey{ID: ids.New(ids.Key), Prefix: "p", Hash: "h2"}, time.Hour)
		require.NoError(t, err)
		require.NoError(t, tb.st.KeyRevoke(ctx, next.ID))
		_, err = tb.st.RateLimitPut(ctx, store.RateLimit{ID: "rl_m", ProjectID: p.ID, Model: "m", MaxRequestsPer1Minute: 60})
		require.NoError(t, err)
		_, err = tb.st.ProjectArchive(ctx, p.ID)
		require.NoError(t, err)
		_, err = tb.st.ProjectArchive(ctx, p.ID)
		require.NoError(t, err, "archiving twice records nothing more")

		cli := store.WithActor(tb.ctx, store.Actor{Type: store.ActorCLI, ID: "alice"})
		require.NoError(t, tb.st.KeyCreate(cli, store.APIKey{ID: ids.New(ids.Key), Name: "from the CLI", Prefix: "p", Hash: "h3"}))

		logs, more, err := tb.st.AuditLogList(tb.ctx, store.AuditLogFilter{Limit: 100})
		require.NoError(t, err)
		require.False(t, more)
		var types []string
		for _, l := range logs {
			types = append(types, l.Type)
		}
		require.Equal(t, []string{
			store.AuditAPIKeyCreated, store.AuditProjectArchived, store.AuditRateLimitUpdated, store.AuditAPIKeyDeleted,
			store.AuditAPIKeyUpdated, store.AuditAPIKeyCreated, store.AuditAPIKeyCreated, store.AuditProjectUpdated,
			store.AuditProjectCreated,
		}, types, "newest first")
		require.Equal(t, store.Actor{Type: store.ActorCLI, ID: "alice"}, logs[0].Actor)
		require.Equal(t, store.DefaultProject, logs[0].ProjectID)
		for _, l := range logs[1:] {
			require.Equal(t, admin, l.Actor, l.Type)
			require.Equal(t, p.ID, l.ProjectID, l.Type)
			require.Equal(t, "Aris web", l.ProjectName, "the project's name now")
			require.NotZero(t, l.EffectiveAt)
		}
		var created struct {
			ID   string `json:"id"`
			Data struct {
				Name string `json:"name"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(logs[8].Details, &created))
		require.Equal(t, p.ID, created.ID)
		require.Equal(t, "Aris", created.Data.Name)
		var keyMade struct {
			ID   string `json:"id"`
			Data struct {
				Scopes []string `json:"scopes"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(logs[6].Details, &keyMade))
		require.Equal(t, k.ID, keyMade.ID)
		require.Equal(t, []string{"api.read"}, keyMade.Data.Scopes)
		require.Contains(t, string(logs[4].Details), `"rotated_to":"`+next.ID+`"`)
	})

	t.Run("FiltersAndPages", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		a, b := newProject(t, tb, "a"), newProject(t, tb, "b")
		ctx := store.WithActor(tb.ctx, store.Actor{Type: store.ActorAdminKey, ID: "key_admin_x"})
		_, err := tb.st.ProjectRename(ctx, a.ID, "a2")
		require.NoError(t, err)
		require.NoError(t, tb.st.ExecForTest(tb.ctx, `UPDATE audit_logs SET effective_at = 100 WHERE project_id = '`+b.ID+`'`))

		list := func(f store.AuditLogFilter) []store.AuditLog {
			t.Helper()
			logs, _, err := tb.st.AuditLogList(tb.ctx, f)
			require.NoError(t, err)
			return logs
		}
		require.Len(t, list(store.AuditLogFilter{ProjectIDs: []string{a.ID}}), 2)
		require.Len(t, list(store.AuditLogFilter{ProjectIDs: []string{a.ID, b.ID}}), 3)
		require.Len(t, list(store.AuditLogFilter{Types: []string{store.AuditProjectCreated}}), 2)
		require.Len(t, list(store.AuditLogFilter{ActorIDs: []string{"key_admin_x"}}), 1)
		require.Empty(t, list(store.AuditLogFilter{ActorIDs: []string{"nobody"}}))
		at := func(v int64) *int64 { return &v }
		require.Len(t, list(store.AuditLogFilter{EffectiveUntil: at(100)}), 1)
		require.Len(t, list(store.AuditLogFilter{EffectiveBefore: at(100)}), 0)
		require.Len(t, list(store.AuditLogFilter{EffectiveFrom: at(100), EffectiveAfter: at(99)}), 3)
		require.Len(t, list(store.AuditLogFilter{EffectiveAfter: at(100)}), 2)

		all := list(store.AuditLogFilter{})
		require.Len(t, all, 3)
		page, more, err := tb.st.AuditLogList(tb.ctx, store.AuditLogFilter{Limit: 2})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, all[:2], page)
		page, more, err = tb.st.AuditLogList(tb.ctx, store.AuditLogFilter{Limit: 2, After: all[1].ID})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, all[2:], page)
		page, more, err = tb.st.AuditLogList(tb.ctx, store.AuditLogFilter{Limit: 1, Before: all[2].ID})
		require.NoError(t, err)
		require.True(t, more, "a newer one is left")
		require.Equal(t, all[1:2], page, "the nearest newer one")
		page, _, err = tb.st.AuditLogList(tb.ctx, store.AuditLogFilter{Limit: 5, Before: all[2].ID})
		require.NoError(t, err)
		require.Equal(t, all[:2], page, "newest first")
	})
}
