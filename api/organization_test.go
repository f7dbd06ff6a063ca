package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/openaispec"
	"github.com/kilnhq/kiln/internal/store"
)

// adminKey is the KILN_ADMIN_KEY of the tests' kilns.
const adminKey = "sk-kiln-admin-test-key"

// startAdmin starts a kiln with adminKey, and edits its config further
// with configure, if not nil.
func startAdmin(t *testing.T, backend string, configure func(*config.Config)) *kilntest.Env {
	t.Helper()
	return kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
		c.AdminKey = adminKey
		if configure != nil {
			configure(c)
		}
	}})
}

// adminClient is the OpenAI SDK with an admin key, as OpenAI's
// Administration API takes it.
func adminClient(env *kilntest.Env, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAdminAPIKey(key), option.WithMaxRetries(0))
}

// keyClient is the OpenAI SDK with a project's API key.
func keyClient(env *kilntest.Env, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// statusOf is the HTTP status of an SDK error (0 for none).
func statusOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	openaispec.MustValidate(t, "Error", []byte(apiErr.RawJSON())) // the SDK keeps the envelope's inside
	return apiErr.StatusCode
}

// TestAdminAPIEndToEnd drives the Administration API with the OpenAI SDK's
// admin calls and an admin key: it makes a project and a service account,
// whose key runs a batch and sees nothing of the default project; it sets
// rate limits, reads usage and the audit log; archiving the project stops
// the key at once. Every answer validates against OpenAI's schemas.
func TestAdminAPIEndToEnd(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startAdmin(t, backend, nil)
			ctx := context.Background()
			admin := adminClient(env, adminKey).Admin.Organization
			start := time.Now().Unix()

			// The default project's batch, which the new project must not see.
			def := createBatch(t, env.Client(), chatLines(3, 0), "24h")

			p, err := admin.Projects.New(ctx, openai.AdminOrganizationProjectNewParams{Name: "Aris"})
			require.NoError(t, err)
			openaispec.MustValidate(t, "Project", []byte(p.RawJSON()))
			require.Equal(t, "Aris", p.Name)
			require.True(t, strings.HasPrefix(p.ID, "proj_"))
			_, err = admin.Projects.New(ctx, openai.AdminOrganizationProjectNewParams{Name: "Aris"})
			require.Equal(t, http.StatusBadRequest, statusOf(t, err), "names are unique")
			p, err = admin.Projects.Update(ctx, p.ID, openai.AdminOrganizationProjectUpdateParams{Name: openai.String("Aris web")})
			require.NoError(t, err)
			require.Equal(t, "Aris web", p.Name)
			got, err := admin.Projects.Get(ctx, p.ID)
			require.NoError(t, err)
			openaispec.MustValidate(t, "Project", []byte(got.RawJSON()))
			require.Equal(t, "active", got.Status)
			projects, err := admin.Projects.List(ctx, openai.AdminOrganizationProjectListParams{})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectListResponse", []byte(projects.RawJSON()))
			require.Len(t, projects.Data, 2, "the default project and Aris")
			_, err = admin.Projects.Get(ctx, "proj_nope")
			require.Equal(t, http.StatusNotFound, statusOf(t, err))

			sa, err := admin.Projects.ServiceAccounts.New(ctx, p.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "ci"})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectServiceAccountCreateResponse", []byte(sa.RawJSON()))
			require.Equal(t, "member", string(sa.Role))
			secret := sa.APIKey.Value
			require.True(t, strings.HasPrefix(secret, apikey.Prefix), "the key's secret, once")
			sas, err := admin.Projects.ServiceAccounts.List(ctx, p.ID, openai.AdminOrganizationProjectServiceAccountListParams{})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectServiceAccountListResponse", []byte(sas.RawJSON()))
			require.Len(t, sas.Data, 1)
			one, err := admin.Projects.ServiceAccounts.Get(ctx, p.ID, sa.ID)
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectServiceAccount", []byte(one.RawJSON()))

			// The service account's key runs a batch in its project...
			c := keyClient(env, secret)
			b := createBatch(t, c, chatLines(20, 0), "24h")
			b = kilntest.WaitBatch(t, c, b.ID)
			require.Equal(t, openai.BatchStatusCompleted, b.Status, "errors: %v", b.Errors)
			require.Positive(t, b.Usage.InputTokens)
			// ... and sees nothing of the default project.
			_, err = c.Batches.Get(ctx, def.ID)
			require.Equal(t, http.StatusNotFound, statusOf(t, err))
			_, err = c.Files.Get(ctx, def.InputFileID)
			require.Equal(t, http.StatusNotFound, statusOf(t, err))
			list, err := c.Batches.List(ctx, openai.BatchListParams{})
			require.NoError(t, err)
			require.Len(t, list.Data, 1)
			require.Equal(t, b.ID, list.Data[0].ID)
			files, err := c.Files.List(ctx, openai.FileListParams{})
			require.NoError(t, err)
			for _, f := range files.Data {
				require.NotEqual(t, def.InputFileID, f.ID)
			}

			// Its key, redacted.
			keys, err := admin.Projects.APIKeys.List(ctx, p.ID, openai.AdminOrganizationProjectAPIKeyListParams{})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectApiKeyListResponse", []byte(keys.RawJSON()))
			require.Len(t, keys.Data, 1)
			require.Equal(t, sa.APIKey.ID, keys.Data[0].ID)
			require.NotContains(t, keys.RawJSON(), secret)
			require.Equal(t, "service_account", string(keys.Data[0].Owner.Type))
			require.Equal(t, sa.ID, keys.Data[0].Owner.ServiceAccount.ID)
			k, err := admin.Projects.APIKeys.Get(ctx, p.ID, sa.APIKey.ID)
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectApiKey", []byte(k.RawJSON()))
			_, err = admin.Projects.APIKeys.Get(ctx, "proj_default", sa.APIKey.ID)
			require.Equal(t, http.StatusNotFound, statusOf(t, err), "another project's key")
			_, err = admin.Projects.APIKeys.Delete(ctx, p.ID, sa.APIKey.ID)
			require.Equal(t, http.StatusBadRequest, statusOf(t, err), "a service account's key goes with its account, as OpenAI's")

			// Rate limits: one per model an agent serves, and rl_* for the rest.
			limits, err := admin.Projects.RateLimits.ListRateLimits(ctx, p.ID, openai.AdminOrganizationProjectRateLimitListRateLimitsParams{})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectRateLimitListResponse", []byte(limits.RawJSON()))
			var ids []string
			for _, l := range limits.Data {
				ids = append(ids, l.ID)
			}
			require.Equal(t, "rl_*", ids[0])
			require.Contains(t, ids, "rl_sim-model")
			l, err := admin.Projects.RateLimits.UpdateRateLimit(ctx, p.ID, "rl_sim-model", openai.AdminOrganizationProjectRateLimitUpdateRateLimitParams{
				MaxRequestsPer1Minute: openai.Int(600), Batch1DayMaxInputTokens: openai.Int(1_000_000)})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectRateLimit", []byte(l.RawJSON()))
			require.EqualValues(t, 600, l.MaxRequestsPer1Minute)
			require.EqualValues(t, 1_000_000, l.Batch1DayMaxInputTokens)
			l, err = admin.Projects.RateLimits.UpdateRateLimit(ctx, p.ID, "rl_*", openai.AdminOrganizationProjectRateLimitUpdateRateLimitParams{},
				option.WithJSONSet("max_pending_uploads", 3))
			require.NoError(t, err)
			require.Contains(t, l.RawJSON(), `"max_pending_uploads":3`)
			_, err = admin.Projects.RateLimits.UpdateRateLimit(ctx, p.ID, "rl_sim-model", openai.AdminOrganizationProjectRateLimitUpdateRateLimitParams{
				MaxTokensPer1Minute: openai.Int(100)})
			require.Equal(t, http.StatusBadRequest, statusOf(t, err), "kiln does not limit tokens per minute")
			for _, model := range []string{"sim-model", ""} {
				lim, err := env.App.Store.RateLimitFor(ctx, p.ID, model)
				require.NoError(t, err)
				if model == "" {
					require.EqualValues(t, 3, lim.MaxPendingUploads)
				} else {
					require.EqualValues(t, 600, lim.MaxRequestsPer1Minute, "the limit the agents apply")
				}
			}

			// Usage: the batch's tokens, by project and model, today.
			usage, err := admin.Usage.Completions(ctx, openai.AdminOrganizationUsageCompletionsParams{
				StartTime: start - 3600, BucketWidth: "1d", GroupBy: []string{"project_id", "model"}})
			require.NoError(t, err)
			openaispec.MustValidate(t, "UsageResponse", []byte(usage.RawJSON()))
			require.Len(t, usage.Data, 1)
			var found bool
			for _, r := range usage.Data[0].Results {
				if r.ProjectID == p.ID && r.Model == "sim-model" {
					found = true
					require.Equal(t, b.Usage.InputTokens, r.InputTokens)
					require.Equal(t, b.Usage.OutputTokens, r.OutputTokens)
					require.EqualValues(t, 20, r.NumModelRequests)
				}
			}
			require.True(t, found, "the project's usage: %s", usage.RawJSON())
			// Ungrouped: one sum per bucket, of every project; pages of buckets.
			var page struct {
				Data []struct {
					StartTime int64 `json:"start_time"`
					EndTime   int64 `json:"end_time"`
					Results   []struct {
						ProjectID   *string `json:"project_id"`
						InputTokens int64   `json:"input_tokens"`
					} `json:"results"`
				} `json:"data"`
				HasMore  bool    `json:"has_more"`
				NextPage *string `json:"next_page"`
			}
			from := strconv.FormatInt(start-2*3600, 10)
			raw := adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/usage/completions?bucket_width=1h&limit=2&start_time="+from, http.StatusOK, &page)
			openaispec.MustValidate(t, "UsageResponse", raw)
			require.Len(t, page.Data, 2)
			require.True(t, page.HasMore)
			require.Empty(t, page.Data[0].Results)
			require.Equal(t, page.Data[0].EndTime, page.Data[1].StartTime)
			raw = adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/usage/completions?bucket_width=1h&limit=2&start_time="+from+"&page="+*page.NextPage, http.StatusOK, &page)
			openaispec.MustValidate(t, "UsageResponse", raw)
			require.False(t, page.HasMore)
			require.Len(t, page.Data, 1)
			require.Len(t, page.Data[0].Results, 1)
			require.Nil(t, page.Data[0].Results[0].ProjectID, "not grouped")
			require.Greater(t, page.Data[0].Results[0].InputTokens, b.Usage.InputTokens, "both projects' batches")
			adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/usage/completions?batch=false&start_time="+from, http.StatusOK, &page)
			require.Empty(t, page.Data[0].Results, "kiln runs batches only")
			adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/usage/completions?group_by=user_id&start_time="+from, http.StatusBadRequest, nil)
			adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/usage/completions", http.StatusBadRequest, nil)

			// The audit log: every change above, by KILN_ADMIN_KEY.
			logs, err := admin.AuditLogs.List(ctx, openai.AdminOrganizationAuditLogListParams{ProjectIDs: []string{p.ID}, Limit: openai.Int(100)})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ListAuditLogsResponse", []byte(logs.RawJSON()))
			var types []string
			for _, e := range logs.Data {
				types = append(types, string(e.Type))
				require.Equal(t, p.ID, e.Project.ID)
				require.Equal(t, "api_key", string(e.Actor.Type))
				require.Equal(t, apikey.StaticAdminKeyID, e.Actor.APIKey.ID)
			}
			slices.Reverse(types)
			require.Equal(t, []string{"project.created", "project.updated", "service_account.created", "api_key.created",
				"rate_limit.updated", "rate_limit.updated"}, types)

			// Archiving the project stops its key at once.
			p, err = admin.Projects.Archive(ctx, p.ID)
			require.NoError(t, err)
			require.Equal(t, "archived", p.Status)
			_, err = c.Batches.List(ctx, openai.BatchListParams{})
			require.Equal(t, http.StatusUnauthorized, statusOf(t, err), "the next request after archiving")
			_, err = admin.Projects.ServiceAccounts.New(ctx, p.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "late"})
			require.Equal(t, http.StatusBadRequest, statusOf(t, err), "an archived project cannot be used")
			_, err = admin.Projects.Archive(ctx, "proj_default")
			require.Equal(t, http.StatusBadRequest, statusOf(t, err), "the default project stays")
			projects, err = admin.Projects.List(ctx, openai.AdminOrganizationProjectListParams{})
			require.NoError(t, err)
			require.Len(t, projects.Data, 1, "archived projects are listed only when asked")
			projects, err = admin.Projects.List(ctx, openai.AdminOrganizationProjectListParams{IncludeArchived: openai.Bool(true)})
			require.NoError(t, err)
			require.Len(t, projects.Data, 2)
		})
	}
}

// TestAdminServiceAccounts: scopes limit a service account's key (a kiln
// extension, checked against the scopes there are); deleting the account
// stops its key at once; an account may be made without a key.
func TestAdminServiceAccounts(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startAdmin(t, backend, nil)
			ctx := context.Background()
			admin := adminClient(env, adminKey).Admin.Organization
			p, err := admin.Projects.New(ctx, openai.AdminOrganizationProjectNewParams{Name: "scoped"})
			require.NoError(t, err)

			_, err = admin.Projects.ServiceAccounts.New(ctx, p.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "bad"},
				option.WithJSONSet("scopes", []string{"api.root"}))
			require.Equal(t, http.StatusBadRequest, statusOf(t, err))
			sa, err := admin.Projects.ServiceAccounts.New(ctx, p.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "reader"},
				option.WithJSONSet("scopes", []string{"api.read"}))
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectServiceAccountCreateResponse", []byte(sa.RawJSON()))
			require.Contains(t, sa.APIKey.RawJSON(), `"scopes":["api.read"]`)
			c := keyClient(env, sa.APIKey.Value)
			_, err = c.Batches.List(ctx, openai.BatchListParams{})
			require.NoError(t, err, "api.read reads")
			_, err = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: "file-x", Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
				CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
			require.Equal(t, http.StatusUnauthorized, statusOf(t, err), "and writes nothing")

			bare, err := admin.Projects.ServiceAccounts.New(ctx, p.ID, openai.AdminOrganizationProjectServiceAccountNewParams{
				Name: "bare", CreateServiceAccountOnly: openai.Bool(true)})
			require.NoError(t, err)
			openaispec.MustValidate(t, "ProjectServiceAccountCreateResponse", []byte(bare.RawJSON()))
			require.Equal(t, "none", string(bare.Role))
			require.Contains(t, bare.RawJSON(), `"api_key":null`)

			del, err := admin.Projects.ServiceAccounts.Delete(ctx, p.ID, sa.ID)
			require.NoError(t, err)
			require.True(t, del.Deleted)
			_, err = c.Batches.List(ctx, openai.BatchListParams{})
			require.Equal(t, http.StatusUnauthorized, statusOf(t, err), "the account's key stops at once")
			_, err = admin.Projects.ServiceAccounts.Get(ctx, p.ID, sa.ID)
			require.Equal(t, http.StatusNotFound, statusOf(t, err))
			_, err = admin.Projects.ServiceAccounts.Delete(ctx, p.ID, sa.ID)
			require.Equal(t, http.StatusNotFound, statusOf(t, err))

			// A user's key (kiln keys create) is deleted through api_keys.
			k, userSecret, err := apikey.New(ctx, env.App.Store, store.APIKey{Name: "user", ProjectID: p.ID})
			require.NoError(t, err)
			got, err := admin.Projects.APIKeys.Get(ctx, p.ID, k.ID)
			require.NoError(t, err)
			require.Equal(t, "user", string(got.Owner.Type))
			deleted, err := admin.Projects.APIKeys.Delete(ctx, p.ID, k.ID)
			require.NoError(t, err)
			require.Contains(t, deleted.RawJSON(), `"object":"organization.project.api_key.deleted"`)
			user := keyClient(env, userSecret)
			_, err = user.Batches.List(ctx, openai.BatchListParams{})
			require.Equal(t, http.StatusUnauthorized, statusOf(t, err))
		})
	}
}

// TestAdminKeyRotation: rotating a key gives a new secret once; the old
// key keeps working within KILN_KEY_ROTATION_GRACE and not after it.
func TestAdminKeyRotation(t *testing.T) {
	t.Parallel()
	// Expiry is kept in whole seconds, so a grace of g leaves the old key
	// between g-1 and g seconds: 3s leaves at least 2.
	const grace = 3 * time.Second
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startAdmin(t, backend, func(c *config.Config) { c.KeyRotationGrace = grace })
			ctx := context.Background()
			admin := adminClient(env, adminKey).Admin.Organization
			p, err := admin.Projects.New(ctx, openai.AdminOrganizationProjectNewParams{Name: "rotating"})
			require.NoError(t, err)
			sa, err := admin.Projects.ServiceAccounts.New(ctx, p.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "ci"})
			require.NoError(t, err)
			old := keyClient(env, sa.APIKey.Value)
			_, err = old.Batches.List(ctx, openai.BatchListParams{})
			require.NoError(t, err)

			var rotated struct {
				ID          string   `json:"id"`
				Object      string   `json:"object"`
				Value       string   `json:"value"`
				Scopes      []string `json:"scopes"`
				RotatedFrom struct {
					ID        string `json:"id"`
					ExpiresAt int64  `json:"expires_at"`
				} `json:"rotated_from"`
			}
			before := time.Now()
			raw := adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/projects/"+p.ID+"/api_keys/"+sa.APIKey.ID+"/rotate", http.StatusOK, &rotated)
			openaispec.MustValidate(t, "ProjectApiKey", raw)
			require.Equal(t, sa.APIKey.ID, rotated.RotatedFrom.ID)
			require.NotEqual(t, sa.APIKey.ID, rotated.ID)
			require.InDelta(t, before.Add(grace).Unix(), rotated.RotatedFrom.ExpiresAt, 1)
			next := keyClient(env, rotated.Value)
			_, err = next.Batches.List(ctx, openai.BatchListParams{})
			require.NoError(t, err, "the new key works")
			_, err = old.Batches.List(ctx, openai.BatchListParams{})
			require.NoError(t, err, "the old key works within the grace period")
			keys, err := admin.Projects.APIKeys.List(ctx, p.ID, openai.AdminOrganizationProjectAPIKeyListParams{})
			require.NoError(t, err)
			require.Len(t, keys.Data, 2, "both work for now")

			kilntest.Eventually(t, 10*grace, func() bool {
				_, err := old.Batches.List(ctx, openai.BatchListParams{})
				return statusOf(t, err) == http.StatusUnauthorized
			}, "the old key to stop after the grace period")
			require.GreaterOrEqual(t, time.Now().Unix(), rotated.RotatedFrom.ExpiresAt, "not before its end")
			_, err = next.Batches.List(ctx, openai.BatchListParams{})
			require.NoError(t, err, "the new key works on")
			keys, err = admin.Projects.APIKeys.List(ctx, p.ID, openai.AdminOrganizationProjectAPIKeyListParams{})
			require.NoError(t, err)
			require.Len(t, keys.Data, 1)
			require.Equal(t, rotated.ID, keys.Data[0].ID)
			adminCall(t, env, adminKey, http.MethodPost, "/v1/organization/projects/"+p.ID+"/api_keys/"+sa.APIKey.ID+"/rotate", http.StatusNotFound, nil)

			logs, err := admin.AuditLogs.List(ctx, openai.AdminOrganizationAuditLogListParams{
				EventTypes: []string{"api_key.updated"}, ProjectIDs: []string{p.ID}})
			require.NoError(t, err)
			require.Len(t, logs.Data, 1)
			require.Equal(t, sa.APIKey.ID, logs.Data[0].APIKeyUpdated.ID)
		})
	}
}

// TestAdminKeysOpenOnlyTheAdministrationAPI: an admin key opens
// /v1/organization/... and nothing else; an API key never opens it; a
// stored admin key is the actor of what it changes, and stops at once when
// revoked.
func TestAdminKeysOpenOnlyTheAdministrationAPI(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startAdmin(t, backend, nil)
			ctx := context.Background()
			stored, storedSecret, err := apikey.NewAdmin(ctx, env.App.Store, "ops")
			require.NoError(t, err)
			for _, key := range []string{adminKey, storedSecret} {
				for _, path := range []string{"/v1/models", "/v1/batches", "/v1/files", "/v1/events"} {
					raw := adminCall(t, env, key, http.MethodGet, path, http.StatusUnauthorized, nil)
					require.Contains(t, string(raw), "invalid_api_key", path)
				}
				adminCall(t, env, key, http.MethodGet, "/v1/organization/projects", http.StatusOK, nil)
			}
			for _, key := range []string{env.Key, "sk-kiln-nope", "ck-nope"} {
				for _, path := range []string{"/v1/organization/projects", "/v1/organization/audit_logs", "/v1/organization/projects/proj_default/api_keys"} {
					adminCall(t, env, key, http.MethodGet, path, http.StatusUnauthorized, nil)
				}
			}
			raw := adminCall(t, env, env.Key, http.MethodGet, "/v1/organization/projects", http.StatusUnauthorized, nil)
			require.Contains(t, string(raw), "insufficient permissions", "an API key is told it is not an admin key")
			raw = adminCall(t, env, "", http.MethodGet, "/v1/organization/projects", http.StatusUnauthorized, nil)
			require.Contains(t, string(raw), "missing_api_key")

			// A stored key is the actor of its changes.
			var p struct {
				ID string `json:"id"`
			}
			adminCall(t, env, storedSecret, http.MethodPost, "/v1/organization/projects", map[string]any{"name": "by ops"}, http.StatusOK, &p)
			var logs struct {
				Data []struct {
					Type  string `json:"type"`
					Actor struct {
						APIKey struct {
							ID string `json:"id"`
						} `json:"api_key"`
					} `json:"actor"`
				} `json:"data"`
			}
			q := url.Values{"actor_ids[]": {stored.ID}, "event_types[]": {"project.created"}}
			raw = adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/audit_logs?"+q.Encode(), http.StatusOK, &logs)
			openaispec.MustValidate(t, "ListAuditLogsResponse", raw)
			require.Len(t, logs.Data, 1)
			require.Equal(t, stored.ID, logs.Data[0].Actor.APIKey.ID)
			raw = adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/audit_logs?effective_at[gt]=4102444800", http.StatusOK, &logs)
			require.Empty(t, logs.Data, "nothing after 2100: %s", raw)

			require.NoError(t, env.App.Store.AdminKeyRevoke(ctx, stored.ID))
			adminCall(t, env, storedSecret, http.MethodGet, "/v1/organization/projects", http.StatusUnauthorized, nil)
			adminCall(t, env, adminKey, http.MethodGet, "/v1/organization/projects", http.StatusOK, nil)
		})
	}
}

// adminCall calls env with key as the bearer and an optional JSON body
// (args: [body,] want, into), fails unless the answer has status want,
// validates an error answer against OpenAI's envelope, and returns the
// answer's body.
func adminCall(t *testing.T, env *kilntest.Env, key, method, path string, args ...any) []byte {
	t.Helper()
	var body any
	if len(args) == 3 {
		body, args = args[0], args[1:]
	}
	want, into := args[0].(int), args[1]
	var raw json.RawMessage
	kilntest.Call(t, env.Base(), key, method, path, body, want, &raw)
	if want >= 400 {
		openaispec.MustValidate(t, "ErrorResponse", raw)
	}
	if into != nil {
		require.NoError(t, json.Unmarshal(raw, into))
	}
	return raw
}
