package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestAdminProvisioning drives the Administration API's provisioning
// extensions with an admin key: a project key made over HTTP works at
// once, with its scopes, and stops when deleted; a project's webhook
// endpoint is made, changed, rotated and deleted without one of its keys;
// a curator is made with their key, shown once, and revoked. API keys
// open none of these routes.
func TestAdminProvisioning(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startAdmin(t, backend, func(c *config.Config) { c.WebhookAllowPrivate = true })
			var p struct{ ID string }
			adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/projects", map[string]any{"name": "provisioned"}, http.StatusOK, &p)

			t.Run("api keys", func(t *testing.T) {
				var k struct {
					ID, Name, Value string
					RedactedValue   string `json:"redacted_value"`
					Scopes          []string
				}
				raw := adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/projects/"+p.ID+"/api_keys",
					map[string]any{"name": "ci", "scopes": []string{"api.read"}}, http.StatusOK, &k)
				require.Contains(t, string(raw), `"object":"organization.project.api_key"`)
				require.Equal(t, "ci", k.Name)
				require.Equal(t, []string{"api.read"}, k.Scopes)
				require.Regexp(t, `^sk-kiln-`, k.Value)
				kilntest.Call(t, env.Base(), k.Value, http.MethodGet, "/v1/models", nil, http.StatusOK, nil)
				kilntest.Call(t, env.Base(), k.Value, http.MethodPost, "/v1/files", nil, http.StatusUnauthorized, nil) // api.read only
				adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/projects/"+p.ID+"/api_keys/"+k.ID, http.StatusOK, nil)

				adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/projects/"+p.ID+"/api_keys",
					map[string]any{"name": "bad", "scopes": []string{"api.everything"}}, http.StatusBadRequest, nil)
				adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/projects/proj_nope/api_keys",
					map[string]any{"name": "x"}, http.StatusNotFound, nil)
				adminCall(t, env, env.Key, http.MethodPost, "/v1/organization/projects/"+p.ID+"/api_keys",
					map[string]any{"name": "x"}, http.StatusUnauthorized, nil)

				adminCall(t, env, adminKey, http.MethodDelete, "/v1/organization/projects/"+p.ID+"/api_keys/"+k.ID, http.StatusOK, nil)
				kilntest.Call(t, env.Base(), k.Value, http.MethodGet, "/v1/models", nil, http.StatusUnauthorized, nil)
			})

			t.Run("webhook endpoints", func(t *testing.T) {
				base := "/v1/organization/projects/" + p.ID + "/webhook_endpoints"
				type endpoint struct {
					ID, URL, Name string
					SigningSecret string   `json:"signing_secret"`
					EventTypes    []string `json:"event_types"`
				}
				var e endpoint
				adminCall(t, env, adminKey, http.MethodPost, base, map[string]any{"url": "http://127.0.0.1:9/hook", "name": "a"}, http.StatusOK, &e)
				require.Regexp(t, `^whsec_`, e.SigningSecret)
				require.Len(t, e.EventTypes, 4)

				var got endpoint
				adminCall(t, env, adminKey, http.MethodGet, base+"/"+e.ID, http.StatusOK, &got)
				require.Empty(t, got.SigningSecret, "the secret is shown once")
				require.Equal(t, "a", got.Name)
				// The project's own key sees it; another project's does not.
				kilntest.Call(t, env.Base(), env.Key, http.MethodGet, "/v1/webhook_endpoints/"+e.ID, nil, http.StatusNotFound, nil)
				adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/projects/proj_default/webhook_endpoints/"+e.ID, http.StatusNotFound, nil)

				adminCall(t, env, adminKey, http.MethodPost, base+"/"+e.ID, map[string]any{"event_types": []string{"batch.completed"}, "name": "b"}, http.StatusOK, &got)
				require.Equal(t, []string{"batch.completed"}, got.EventTypes)
				require.Equal(t, "b", got.Name)
				var rotated endpoint
				adminCall(t, env, adminKey, http.MethodPost, base+"/"+e.ID+"/rotate_secret", nil, http.StatusOK, &rotated)
				require.NotEqual(t, e.SigningSecret, rotated.SigningSecret)

				var list struct{ Data []endpoint }
				adminCall(t, env, adminKey, http.MethodGet, base, http.StatusOK, &list)
				require.Len(t, list.Data, 1)
				adminCall(t, env, adminKey, http.MethodDelete, base+"/"+e.ID, http.StatusOK, nil)
				adminCall(t, env, adminKey, http.MethodGet, base+"/"+e.ID, http.StatusNotFound, nil)
			})

			t.Run("curators", func(t *testing.T) {
				type curator struct {
					ID, Name, Role, Key string
					Projects            []string
					RevokedAt           *int64 `json:"revoked_at"`
				}
				var c curator
				adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/curators", map[string]any{"name": "ada@example.com"}, http.StatusOK, &c)
				require.Equal(t, "curator", c.Role)
				require.Equal(t, []string{"proj_default"}, c.Projects)
				require.Regexp(t, `^ck-`, c.Key)
				kilntest.Call(t, env.Base(), c.Key, http.MethodGet, "/v1/curation/tasks", nil, http.StatusOK, nil)

				var admin curator
				adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/curators",
					map[string]any{"name": "root", "role": "admin", "projects": []string{"proj_default", p.ID}}, http.StatusOK, &admin)
				require.ElementsMatch(t, []string{"proj_default", p.ID}, admin.Projects)
				adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/curators",
					map[string]any{"name": "two", "projects": []string{"proj_default", p.ID}}, http.StatusBadRequest, nil)

				var got curator
				adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/curators/"+c.ID, http.StatusOK, &got)
				require.Empty(t, got.Key)
				require.Nil(t, got.RevokedAt)
				adminCall(t, env, adminKey, http.MethodDelete, "/v1/organization/curators/"+c.ID, http.StatusOK, &got)
				require.NotNil(t, got.RevokedAt)
				adminCall(t, env, adminKey, http.MethodDelete, "/v1/organization/curators/"+c.ID, http.StatusConflict, nil)
				kilntest.Call(t, env.Base(), c.Key, http.MethodGet, "/v1/curation/tasks", nil, http.StatusUnauthorized, nil)
				adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/curators/cur_nope", http.StatusNotFound, nil)

				var list struct{ Data []curator }
				adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/curators", http.StatusOK, &list)
				require.Len(t, list.Data, 2)
			})
		})
	}
}
