package curation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// signIn signs in with a curator key and returns the session cookie.
func signIn(t *testing.T, base, key string) *http.Cookie {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"key": key})
	resp, err := http.Post(base+"/v1/curation/session", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, c := range resp.Cookies() {
		if c.Name == curation.CookieName {
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

// withCookie answers the status of GET path with a session cookie.
func withCookie(t *testing.T, base, path string, c *http.Cookie) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

type curatorList struct {
	Data []map[string]any `json:"data"`
}

// TestCurationCurators: admins list curators and revoke one; the revoked
// curator's key and every session of theirs stop working at once, and
// others' do not. Curators who are not admins may do neither.
func TestCurationCurators(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
			base := env.Base()
			ctx := context.Background()
			ada, adaKey, err := curation.CreateCurator(ctx, env.App.Store, "Ada", curation.RoleCurator)
			require.NoError(t, err)
			_, graceKey, err := curation.CreateCurator(ctx, env.App.Store, "Grace", curation.RoleCurator)
			require.NoError(t, err)
			root, rootKey, err := curation.CreateCurator(ctx, env.App.Store, "Root", curation.RoleAdmin)
			require.NoError(t, err)
			admin := client{t: t, base: base, token: rootKey}
			cur := client{t: t, base: base, token: adaKey}

			// Curators who are not admins, and API keys, may not.
			var e struct {
				Error struct {
					Message string `json:"message"`
					Code    *string
				} `json:"error"`
			}
			cur.do(http.MethodGet, "/v1/curation/curators", nil, http.StatusForbidden, &e)
			require.Contains(t, e.Error.Message, "Only a curation admin may manage curators")
			cur.do(http.MethodPost, "/v1/curation/curators/"+root.ID+"/revoke", nil, http.StatusForbidden, nil)
			client{t: t, base: base, token: env.Key}.do(http.MethodGet, "/v1/curation/curators", nil, http.StatusUnauthorized, nil)

			var list curatorList
			admin.do(http.MethodGet, "/v1/curation/curators", nil, http.StatusOK, &list)
			var names []string
			for _, c := range list.Data {
				names = append(names, c["name"].(string))
				require.Equal(t, "curation.curator", c["object"])
				require.True(t, strings.HasPrefix(c["key_prefix"].(string), curation.KeyPrefix))
				require.Nil(t, c["revoked_at"])
				require.NotContains(t, c, "hash")
			}
			require.Subset(t, names, []string{"Ada", "Grace", "Root"})

			adaSession, adaSession2 := signIn(t, base, adaKey), signIn(t, base, adaKey)
			graceSession := signIn(t, base, graceKey)
			require.Equal(t, http.StatusOK, withCookie(t, base, "/v1/curation/session", adaSession))

			var revoked map[string]any
			admin.do(http.MethodPost, "/v1/curation/curators/"+ada.ID+"/revoke", nil, http.StatusOK, &revoked)
			require.Equal(t, ada.ID, revoked["id"])
			require.Equal(t, "curator", revoked["role"])
			require.NotNil(t, revoked["revoked_at"])

			// At once: no wait.
			cur.do(http.MethodGet, "/v1/curation/tasks", nil, http.StatusUnauthorized, nil)
			require.Equal(t, http.StatusUnauthorized, withCookie(t, base, "/v1/curation/session", adaSession))
			require.Equal(t, http.StatusUnauthorized, withCookie(t, base, "/v1/curation/tasks", adaSession2))
			client{t: t, base: base}.do(http.MethodPost, "/v1/curation/session", map[string]string{"key": adaKey}, http.StatusUnauthorized, nil)
			require.Equal(t, http.StatusOK, withCookie(t, base, "/v1/curation/session", graceSession), "others keep theirs")
			client{t: t, base: base, token: graceKey}.do(http.MethodGet, "/v1/curation/tasks", nil, http.StatusOK, nil)

			admin.do(http.MethodPost, "/v1/curation/curators/"+ada.ID+"/revoke", nil, http.StatusConflict, &e)
			require.Equal(t, "curator_revoked", *e.Error.Code)
			admin.do(http.MethodPost, "/v1/curation/curators/cur_nope/revoke", nil, http.StatusNotFound, nil)
			admin.do(http.MethodGet, "/v1/curation/curators", nil, http.StatusOK, &list)
			for _, c := range list.Data {
				if c["id"] == ada.ID {
					require.Equal(t, revoked["revoked_at"], c["revoked_at"], "listed, as revoked")
				}
			}

			// An admin who revokes themselves is signed out too.
			admin.do(http.MethodPost, "/v1/curation/curators/"+root.ID+"/revoke", nil, http.StatusOK, nil)
			admin.do(http.MethodGet, "/v1/curation/curators", nil, http.StatusUnauthorized, nil)
		})
	}
}
