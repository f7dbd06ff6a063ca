package provider_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestApplyMany measures one apply that makes 100 API keys and 20 webhook
// endpoints, and the destroy after it: the time each takes and the HTTP
// calls the provider makes to kiln (counted by the test's proxy in front
// of kiln). It logs the figures and asserts only the outcome and the
// calls, which do not depend on the machine.
func TestApplyMany(t *testing.T) {
	t.Parallel()
	const keys, endpoints = 100, 20
	s := newStack(t, "sqlite")
	var p struct{ ID string }
	s.admin(http.MethodPost, "/v1/organization/projects", map[string]any{"name": "many"}, http.StatusOK, &p)
	s.write(fmt.Sprintf(`
resource "kiln_api_key" "many" {
  count   = %d
  project = %q
  name    = "key-${count.index}"
  scopes  = ["api.read"]
}

resource "kiln_webhook_endpoint" "many" {
  count   = %d
  project = %[2]q
  url     = "%[4]s/${count.index}"
  name    = "endpoint-${count.index}"
}
`, keys, p.ID, endpoints, receiver(t)))
	s.init()

	s.requests.Store(0)
	start := time.Now()
	s.apply()
	applyTime, applyCalls := time.Since(start), s.requests.Load()

	var list struct {
		Data    []struct{ ID string }
		HasMore bool `json:"has_more"`
	}
	s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/api_keys?limit=100", nil, http.StatusOK, &list)
	require.Len(t, list.Data, keys)
	require.False(t, list.HasMore)
	s.admin(http.MethodGet, "/v1/organization/projects/"+p.ID+"/webhook_endpoints?limit=100", nil, http.StatusOK, &list)
	require.Len(t, list.Data, endpoints)

	s.requests.Store(0)
	start = time.Now()
	_, code := s.planCode()
	planTime, planCalls := time.Since(start), s.requests.Load()
	require.Equal(t, 0, code)

	s.requests.Store(0)
	start = time.Now()
	s.must("destroy", "-auto-approve", "-no-color")
	destroyTime, destroyCalls := time.Since(start), s.requests.Load()

	t.Logf("apply of %d API keys + %d webhook endpoints: %s, %d API calls", keys, endpoints, applyTime.Round(time.Millisecond), applyCalls)
	t.Logf("plan (refresh) of the same: %s, %d API calls", planTime.Round(time.Millisecond), planCalls)
	t.Logf("destroy: %s, %d API calls", destroyTime.Round(time.Millisecond), destroyCalls)
	// One create per object; a refresh reads each once; a destroy
	// refreshes, then deletes each.
	require.Equal(t, int64(keys+endpoints), applyCalls)
	require.Equal(t, int64(keys+endpoints), planCalls)
	require.Equal(t, int64(2*(keys+endpoints)), destroyCalls)
}
