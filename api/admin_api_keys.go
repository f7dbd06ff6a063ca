package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/store"
)

// The Administration API's extensions for provisioning tools (the
// Terraform provider, terraform/provider): what `kiln keys create`,
// `kiln curators create` and a project key's /v1/webhook_endpoints do, over
// HTTP with an admin key. OpenAI makes project keys only in its dashboard;
// these routes are kiln's own and say so.

// registerAdminExtensions registers the provisioning routes of the
// Administration API.
func registerAdminExtensions(api huma.API, d Deps) {
	registerAdminAPIKeys(api, d)
	registerAdminWebhooks(api, d)
	registerAdminCurators(api, d)
}

// ProjectAPIKeyCreateResponse is a new project key, with its secret.
type ProjectAPIKeyCreateResponse struct {
	ProjectAPIKey
	Value string `json:"value" doc:"The key's secret, shown only this once."`
}

type projectAPIKeyCreateInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	Body      struct {
		_      struct{} `additionalProperties:"true"`
		Name   string   `json:"name" minLength:"1" maxLength:"256" doc:"The key's name."`
		Scopes []string `json:"scopes,omitempty" doc:"Limit the key to these scopes: api.read (GET on the project's /v1 routes), api.batches (files, uploads, batches and models), api.agent. Default: every scope."`
	}
}

type projectAPIKeyCreateOutput struct {
	Body ProjectAPIKeyCreateResponse
}

func registerAdminAPIKeys(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "createProjectApiKey", Method: http.MethodPost, Path: "/v1/organization/projects/{project_id}/api_keys",
		Summary: "Create a project API key", Tags: []string{"Projects"}, Security: adminSecurity,
		Description: "kiln extension: makes a key of the project owned by a user, as `kiln keys create --project` does, " +
			"and returns its secret in value, shown only this once.",
	}, d.createProjectAPIKey)
}

func (d Deps) createProjectAPIKey(ctx context.Context, in *projectAPIKeyCreateInput) (*projectAPIKeyCreateOutput, error) {
	if _, err := d.liveProject(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	if bad, ok := auth.ValidScopes(in.Body.Scopes); !ok {
		return nil, apierror.Invalid("scopes", "Unknown scope '"+bad+"': the scopes are "+strings.Join(auth.Scopes, ", ")+".")
	}
	k, secret, err := apikey.New(ctx, d.Store, store.APIKey{Name: in.Body.Name, ProjectID: in.ProjectID, Scopes: in.Body.Scopes})
	if errors.Is(err, store.ErrNotFound) {
		return nil, archivedProject(in.ProjectID) // archived meanwhile
	}
	if err != nil {
		return nil, err
	}
	view, err := d.projectAPIKeyOf(ctx, k)
	if err != nil {
		return nil, err
	}
	return &projectAPIKeyCreateOutput{Body: ProjectAPIKeyCreateResponse{ProjectAPIKey: view, Value: secret}}, nil
}
