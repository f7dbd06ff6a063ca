package provider_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestAcceptance drives every resource and data source through tofu
// against a live kiln, on both backends: create, read back with no drift,
// change in place and by replacement, drift made outside Terraform
// (a revoked key, a revoked curator, an edited endpoint) seen by plan and
// repaired by apply, import, and destroy. A key Terraform made really opens
// GET /v1/models.
func TestAcceptance(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s := newStack(t, backend)
			hook := receiver(t)
			var p struct{ ID string }
			s.admin(http.MethodPost, "/v1/organization/projects", map[string]any{"name": "tf"}, http.StatusOK, &p)

			s.write(stackConfig(p.ID, hook, "ci", "first", "one"))
			s.init()
			s.apply()
			t.Logf("%s: provider built in %s", backend, buildTime.Round(time.Millisecond))

			keyID, secret := s.output("key_id"), s.output("key_secret")
			require.Regexp(t, `^sk-kiln-`, secret)
			t.Run("a key made by Terraform opens /v1/models", func(t *testing.T) {
				var models struct{ Data []struct{ ID string } }
				kilntest.Call(t, s.kiln.Base(), secret, http.MethodGet, "/v1/models", nil, http.StatusOK, &models)
				require.NotEmpty(t, models.Data)
				require.Equal(t, models.Data[0].ID, strings.Split(s.output("model_ids"), ",")[0], "kiln_models read with the key")
				// api.read only: it writes nothing.
				kilntest.Call(t, s.kiln.Base(), secret, http.MethodPost, "/v1/files", nil, http.StatusUnauthorized, nil)
				require.Contains(t, s.output("conquest_ids"), ",", "kiln_conquest_types lists kiln's types")
			})

			hookID, hookSecret := s.output("hook_id"), s.output("hook_secret")
			require.Regexp(t, `^whsec_`, hookSecret)
			curatorID, curatorKey := s.output("curator_id"), s.output("curator_key")
			t.Run("created as configured", func(t *testing.T) {
				var k struct {
					Name   string
					Scopes []string
				}
				s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/api_keys/"+keyID, nil, http.StatusOK, &k)
				require.Equal(t, "ci", k.Name)
				require.Equal(t, []string{"api.read"}, k.Scopes)
				var e struct {
					URL, Name  string
					EventTypes []string `json:"event_types"`
				}
				s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/webhook_endpoints/"+hookID, nil, http.StatusOK, &e)
				require.Equal(t, hook, e.URL)
				require.Equal(t, "first", e.Name)
				require.ElementsMatch(t, []string{"batch.completed", "batch.failed"}, e.EventTypes)
				kilntest.Call(t, s.kiln.Base(), curatorKey, http.MethodGet, "/v1/curation/tasks", nil, http.StatusOK, nil)
				out, code := s.planCode()
				require.Equal(t, 0, code, "a fresh apply leaves nothing to do:\n%s", out)
			})

			t.Run("update in place and rotate", func(t *testing.T) {
				s.write(stackConfig(p.ID, hook, "ci", "second", "two"))
				out, code := s.planCode()
				require.Equal(t, 2, code)
				require.Contains(t, out, "kiln_webhook_endpoint.hook will be updated in-place")
				require.Contains(t, out, "0 to add, 1 to change, 0 to destroy")
				s.apply()
				require.Equal(t, hookID, s.output("hook_id"), "updated, not replaced")
				require.NotEqual(t, hookSecret, s.output("hook_secret"), "a new rotation_trigger rotates the secret")
				var e struct{ Name, SigningSecretHint string }
				s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/webhook_endpoints/"+hookID, nil, http.StatusOK, &e)
				require.Equal(t, "second", e.Name)
				hookSecret = s.output("hook_secret")
				require.True(t, strings.HasSuffix(hookSecret, strings.TrimPrefix(e.SigningSecretHint, "whsec_…")))
			})

			t.Run("a rename replaces the key", func(t *testing.T) {
				s.write(stackConfig(p.ID, hook, "ci-renamed", "second", "two"))
				out, _ := s.planCode()
				require.Contains(t, out, "must be replaced")
				s.apply()
				require.NotEqual(t, keyID, s.output("key_id"))
				s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/api_keys/"+keyID, nil, http.StatusNotFound, nil)
				kilntest.Call(t, s.kiln.Base(), secret, http.MethodGet, "/v1/models", nil, http.StatusUnauthorized, nil)
				keyID, secret = s.output("key_id"), s.output("key_secret")
				kilntest.Call(t, s.kiln.Base(), secret, http.MethodGet, "/v1/models", nil, http.StatusOK, nil)
			})

			t.Run("drift", func(t *testing.T) {
				s.admin(http.MethodDelete, "/v1/organization/projects/"+p.ID+"/api_keys/"+keyID, nil, http.StatusOK, nil)
				s.admin(http.MethodDelete, "/v1/organization/curators/"+curatorID, nil, http.StatusOK, nil)
				s.admin(http.MethodPost, "/v1/organization/projects/"+p.ID+"/webhook_endpoints/"+hookID,
					map[string]any{"name": "edited by hand"}, http.StatusOK, nil)
				out, code := s.planCode()
				require.Equal(t, 2, code, "a revoked key shows in the plan:\n%s", out)
				require.Contains(t, out, "kiln_api_key.ci will be created")
				require.Contains(t, out, "kiln_curator.ada will be created")
				require.Regexp(t, `~ name += "edited by hand" -> "second"`, out)
				s.apply()
				_, code = s.planCode()
				require.Equal(t, 0, code, "apply repairs the drift")
				require.NotEqual(t, keyID, s.output("key_id"))
				kilntest.Call(t, s.kiln.Base(), s.output("key_secret"), http.MethodGet, "/v1/models", nil, http.StatusOK, nil)
				kilntest.Call(t, s.kiln.Base(), curatorKey, http.MethodGet, "/v1/curation/tasks", nil, http.StatusUnauthorized, nil)
				kilntest.Call(t, s.kiln.Base(), s.output("curator_key"), http.MethodGet, "/v1/curation/tasks", nil, http.StatusOK, nil)
			})

			t.Run("import", func(t *testing.T) {
				var k struct{ ID string }
				s.admin(http.MethodPost, "/v1/organization/projects/"+p.ID+"/api_keys", map[string]any{"name": "made by hand", "scopes": []string{"api.batches"}}, http.StatusOK, &k)
				var e struct{ ID string }
				s.admin(http.MethodPost, "/v1/organization/projects/"+p.ID+"/webhook_endpoints", map[string]any{"url": hook, "name": "by hand"}, http.StatusOK, &e)
				var c struct{ ID string }
				s.admin(http.MethodPost, "/v1/organization/curators", map[string]any{"name": "grace", "role": "admin"}, http.StatusOK, &c)

				s.write(stackConfig(p.ID, hook, "ci-renamed", "second", "two") + fmt.Sprintf(`
resource "kiln_api_key" "imported" {
  project = %q
  name    = "made by hand"
  scopes  = ["api.batches"]
}

resource "kiln_webhook_endpoint" "imported" {
  project = %[1]q
  url     = %[2]q
  name    = "by hand"
}

resource "kiln_curator" "imported" {
  name = "grace"
  role = "admin"
}
`, p.ID, hook))
				s.must("import", "-no-color", "kiln_api_key.imported", p.ID+"/"+k.ID)
				s.must("import", "-no-color", "kiln_webhook_endpoint.imported", p.ID+"/"+e.ID)
				s.must("import", "-no-color", "kiln_curator.imported", c.ID)
				out, code := s.planCode()
				require.Equal(t, 0, code, "imported objects match their configuration:\n%s", out)
				state := s.must("state", "show", "-no-color", "kiln_api_key.imported")
				require.Contains(t, state, k.ID)
				_, code = s.run("import", "-no-color", "kiln_api_key.nothing", "a/b/c")
				require.NotEqual(t, 0, code, "a bad import ID is refused")
			})

			t.Run("destroy", func(t *testing.T) {
				keyID, hookID, curatorID := s.output("key_id"), s.output("hook_id"), s.output("curator_id")
				s.must("destroy", "-auto-approve", "-no-color")
				s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/api_keys/"+keyID, nil, http.StatusNotFound, nil)
				s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/webhook_endpoints/"+hookID, nil, http.StatusNotFound, nil)
				var c struct {
					RevokedAt *int64 `json:"revoked_at"`
				}
				s.admin(http.MethodGet, "/v1/organization/curators/"+curatorID, nil, http.StatusOK, &c)
				require.NotNil(t, c.RevokedAt)
			})
			t.Logf("%s: acceptance run took %s, %d API calls", backend, time.Since(start).Round(time.Millisecond), s.requests.Load())
		})
	}
}

// stackConfig is a configuration with one of each resource and data
// source.
func stackConfig(project, hook, keyName, hookName, rotation string) string {
	return fmt.Sprintf(`
resource "kiln_api_key" "ci" {
  project = %q
  name    = %q
  scopes  = ["api.read"]
}

resource "kiln_curator" "ada" {
  name = "ada@example.com"
}

resource "kiln_webhook_endpoint" "hook" {
  project          = %[1]q
  url              = %[3]q
  name             = %[4]q
  event_types      = ["batch.completed", "batch.failed"]
  rotation_trigger = %[5]q
}

data "kiln_models" "all" {
  api_key = kiln_api_key.ci.secret
}

data "kiln_conquest_types" "all" {
  api_key = kiln_api_key.ci.secret
}

output "key_id"       { value = kiln_api_key.ci.id }
output "key_secret" {
  value     = kiln_api_key.ci.secret
  sensitive = true
}
output "hook_id"      { value = kiln_webhook_endpoint.hook.id }
output "hook_secret" {
  value     = kiln_webhook_endpoint.hook.secret
  sensitive = true
}
output "curator_id"   { value = kiln_curator.ada.id }
output "curator_key" {
  value     = kiln_curator.ada.key
  sensitive = true
}
output "model_ids"    { value = join(",", data.kiln_models.all.ids) }
output "conquest_ids" { value = join(",", data.kiln_conquest_types.all.ids) }
`, project, keyName, hook, hookName, rotation)
}
