package cli

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// status answers the status of GET path on env with a bearer token.
func status(t *testing.T, env *kilntest.Env, token, path string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.Base()+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestCuratorsRevoke: kiln curators revoke, from another store on a
// running kiln's database, stops the curator's key at once (curator keys
// are not cached), and says so; revoking twice or an unknown ID fails.
func TestCuratorsRevoke(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
			db := "--database-url=" + env.App.Cfg.DatabaseURL
			code, secret, errOut := kiln(t, "curators", "create", "--name", "Ada", db)
			require.Equal(t, 0, code, errOut)
			secret = strings.TrimSpace(secret)
			require.True(t, strings.HasPrefix(secret, curation.KeyPrefix))
			id := regexp.MustCompile(`cur_\w+`).FindString(errOut)
			require.NotEmpty(t, id, errOut)
			require.Equal(t, http.StatusOK, status(t, env, secret, "/v1/curation/session"))

			code, out, errOut := kiln(t, "curators", "revoke", id, db)
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "revoked curator "+id+" (Ada)")
			require.Equal(t, http.StatusUnauthorized, status(t, env, secret, "/v1/curation/session"), "at once")

			code, out, _ = kiln(t, "curators", "list", db)
			require.Equal(t, 0, code)
			require.Regexp(t, `(?m)^`+id+`\s+Ada\s+curator\s+ck-\S+…\s+\S+\s+\d{4}-`, out, "listed with its revocation time")

			code, _, errOut = kiln(t, "curators", "revoke", id, db)
			require.Equal(t, 1, code)
			require.Contains(t, errOut, "revoked already")
			code, _, errOut = kiln(t, "curators", "revoke", "cur_nope", db)
			require.Equal(t, 1, code)
			require.Contains(t, errOut, "no curator cur_nope")
		})
	}
}

// TestKeysRevoke: a key revoked through the serving kiln's store fails the
// very next request; one revoked by kiln keys revoke (another store, as
// another process) fails at once on Postgres (LISTEN/NOTIFY) and within
// the Checker's TTL on SQLite.
func TestKeysRevoke(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
			db := "--database-url=" + env.App.Cfg.DatabaseURL

			// Through the serving kiln's own store: no wait.
			k, secret, err := apikey.Create(t.Context(), env.App.Store, "in-process")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status(t, env, secret, "/v1/batches"))
			require.NoError(t, env.App.Store.KeyRevoke(t.Context(), k.ID))
			require.Equal(t, http.StatusUnauthorized, status(t, env, secret, "/v1/batches"), "the next request")

			// Through kiln keys revoke.
			code, secret, errOut := kiln(t, "keys", "create", "--name", "ci", db)
			require.Equal(t, 0, code, errOut)
			secret = strings.TrimSpace(secret)
			id := regexp.MustCompile(`key_\w+`).FindString(errOut)
			require.NotEmpty(t, id, errOut)
			require.Equal(t, http.StatusOK, status(t, env, secret, "/v1/batches"))
			code, out, errOut := kiln(t, "keys", "revoke", id, db)
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "revoked "+id)
			revoked := time.Now()
			kilntest.Eventually(t, 10*time.Second, func() bool { return status(t, env, secret, "/v1/batches") == http.StatusUnauthorized },
				"the revocation to reach the serving kiln")
			t.Logf("%s: refused %s after kiln keys revoke", backend, time.Since(revoked).Round(time.Millisecond))

			code, out, _ = kiln(t, "keys", "list", db)
			require.Equal(t, 0, code)
			require.Regexp(t, `(?m)^`+id+`\s+ci\s+.*revoked \d{4}-`, out)
			code, _, errOut = kiln(t, "keys", "revoke", id, db)
			require.Equal(t, 1, code)
			require.Contains(t, errOut, "no live key "+id)
		})
	}
}
