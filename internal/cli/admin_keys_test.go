package cli

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// TestAdminKeys: kiln admin-keys create makes a key that opens the
// Administration API and no /v1 route; list shows it; revoke stops it at
// once. What the command line changes is in the audit log, as the system
// user's who ran it.
func TestAdminKeys(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
			db := "--database-url=" + env.App.Cfg.DatabaseURL
			code, secret, errOut := kiln(t, "admin-keys", "create", "--name", "ops", db)
			require.Equal(t, 0, code, errOut)
			secret = strings.TrimSpace(secret)
			require.True(t, strings.HasPrefix(secret, apikey.AdminPrefix))
			id := regexp.MustCompile(`key_admin_\w+`).FindString(errOut)
			require.NotEmpty(t, id, errOut)
			require.Equal(t, http.StatusOK, status(t, env, secret, "/v1/organization/projects"))
			require.Equal(t, http.StatusUnauthorized, status(t, env, secret, "/v1/batches"), "an admin key opens no /v1 route")

			code, out, errOut := kiln(t, "admin-keys", "list", db)
			require.Equal(t, 0, code, errOut)
			require.Regexp(t, `(?m)^`+id+`\s+ops\s+sk-kiln-admin-\S+…\s+\S+\s+\S+\s+active`, out)

			code, out, errOut = kiln(t, "admin-keys", "revoke", id, db)
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "revoked admin key "+id)
			require.Equal(t, http.StatusUnauthorized, status(t, env, secret, "/v1/organization/projects"), "at once")
			code, _, errOut = kiln(t, "admin-keys", "revoke", id, db)
			require.Equal(t, 1, code)
			require.Contains(t, errOut, "no live admin key")

			code, _, errOut = kiln(t, "keys", "create", "--name", "from-cli", db)
			require.Equal(t, 0, code, errOut)
			logs, _, err := env.App.Store.AuditLogList(context.Background(), store.AuditLogFilter{ActorIDs: []string{cliActor().ID}})
			require.NoError(t, err)
			var types []string
			for _, l := range logs {
				require.Equal(t, cliActor(), l.Actor)
				types = append(types, l.Type)
			}
			require.Equal(t, []string{store.AuditAPIKeyCreated, store.AuditAdminKeyDeleted, store.AuditAdminKeyCreated}, types, "newest first")
		})
	}
}
