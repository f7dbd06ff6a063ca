package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/stretchr/testify/require"
)

// TestSchemas has the framework check every schema (as Terraform's
// GetProviderSchema call does: a default on an attribute that is not
// computed, say, is an error) and checks that every secret is sensitive
// and every secret and ID is kept across plans.
func TestSchemas(t *testing.T) {
	t.Parallel()
	srv, err := providerserver.NewProtocol6WithError(New("test")())()
	require.NoError(t, err)
	resp, err := srv.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	require.NoError(t, err)
	for _, d := range resp.Diagnostics {
		t.Errorf("%s: %s: %s", d.Severity, d.Summary, d.Detail)
	}
	require.ElementsMatch(t, []string{"kiln_api_key", "kiln_curator", "kiln_webhook_endpoint"}, keys(resp.ResourceSchemas))
	require.ElementsMatch(t, []string{"kiln_models", "kiln_conquest_types"}, keys(resp.DataSourceSchemas))

	sensitive := map[string]string{"kiln_api_key": "secret", "kiln_curator": "key", "kiln_webhook_endpoint": "secret"}
	for typ, name := range sensitive {
		var found bool
		for _, a := range resp.ResourceSchemas[typ].Block.Attributes {
			if a.Name == name {
				found = true
				require.True(t, a.Sensitive, "%s.%s is sensitive", typ, name)
				require.True(t, a.Computed && !a.Optional && !a.Required, "%s.%s is kiln's to set", typ, name)
			}
		}
		require.True(t, found, "%s has %s", typ, name)
	}
	for _, a := range resp.Provider.Block.Attributes {
		if a.Name == "admin_key" || a.Name == "api_key" {
			require.True(t, a.Sensitive, "provider %s is sensitive", a.Name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNormalizeBaseURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:4080":       "http://127.0.0.1:4080",
		"http://127.0.0.1:4080/":      "http://127.0.0.1:4080",
		"http://127.0.0.1:4080/v1":    "http://127.0.0.1:4080",
		"https://kiln.example/v1/":    "https://kiln.example",
		"https://example.com/kiln/v1": "https://example.com/kiln",
	} {
		got, err := NormalizeBaseURL(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "127.0.0.1:4080", "ftp://x", "http://"} {
		_, err := NormalizeBaseURL(bad)
		require.Error(t, err, bad)
	}
}

func TestSplitImportID(t *testing.T) {
	t.Parallel()
	p, id, err := splitImportID("key_1")
	require.NoError(t, err)
	require.Equal(t, [2]string{defaultProject, "key_1"}, [2]string{p, id})
	p, id, err = splitImportID("proj_x/we_1")
	require.NoError(t, err)
	require.Equal(t, [2]string{"proj_x", "we_1"}, [2]string{p, id})
	for _, bad := range []string{"", "/x", "p/", "a/b/c"} {
		_, _, err := splitImportID(bad)
		require.Error(t, err, bad)
	}
}

// TestClient checks the client against a fake kiln: it sends the admin
// key as a bearer token, decodes answers, and reads OpenAI's error
// envelope into an APIError whose status Read and Delete test.
func TestClient(t *testing.T) {
	t.Parallel()
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "Bearer admin", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/organization/curators/cur_1":
			_, _ = w.Write([]byte(`{"id":"cur_1","name":"ada","role":"curator","projects":["proj_default"],"revoked_at":null}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"message":"No curator found with id 'cur_2'.","type":"invalid_request_error","code":"not_found"}}`))
		}
	}))
	t.Cleanup(fake.Close)
	c := &Client{BaseURL: fake.URL, AdminKey: "admin"}
	ctx := context.Background()

	var got curator
	require.NoError(t, c.admin(ctx, http.MethodGet, curatorPath("cur_1"), nil, &got))
	require.Equal(t, curator{ID: "cur_1", Name: "ada", Role: "curator", Projects: []string{"proj_default"}}, got)

	err := c.admin(ctx, http.MethodGet, curatorPath("cur_2"), nil, &got)
	require.True(t, isStatus(err, http.StatusNotFound), "%v", err)
	require.ErrorContains(t, err, "No curator found with id 'cur_2'.")
	require.False(t, isStatus(err, http.StatusConflict))

	err = (&Client{BaseURL: fake.URL}).admin(ctx, http.MethodGet, "/", nil, nil)
	require.ErrorContains(t, err, "KILN_ADMIN_KEY")
	require.ErrorIs(t, c.project(ctx, nullString, http.MethodGet, "/v1/models", nil), errNoAPIKey)
}

var nullString = types.StringNull()
