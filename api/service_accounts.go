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
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// ProjectServiceAccount is OpenAI's project service account.
type ProjectServiceAccount struct {
	Object    string `json:"object" enum:"organization.project.service_account"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Role      string `json:"role" enum:"owner,member,none"`
	CreatedAt int64  `json:"created_at"`
}

func serviceAccountOf(a store.ServiceAccount) ProjectServiceAccount {
	return ProjectServiceAccount{Object: "organization.project.service_account", ID: a.ID, Name: a.Name, Role: a.Role, CreatedAt: a.CreatedAt}
}

// ProjectServiceAccountCreateResponse is OpenAI's answer to a new service
// account: the account with its key, whose secret is shown only here.
type ProjectServiceAccountCreateResponse struct {
	ProjectServiceAccount
	APIKey *ProjectServiceAccountAPIKey `json:"api_key" doc:"The account's key; null with create_service_account_only."`
}

// ProjectServiceAccountAPIKey is a new service account's key, with its
// secret.
type ProjectServiceAccountAPIKey struct {
	Object    string   `json:"object" enum:"organization.project.service_account.api_key"`
	Value     string   `json:"value" doc:"The key's secret, shown only this once."`
	Name      string   `json:"name"`
	CreatedAt int64    `json:"created_at"`
	ID        string   `json:"id"`
	Scopes    []string `json:"scopes" doc:"kiln extension: the scopes the key is limited to; empty: every scope."`
}

// ProjectServiceAccountListResponse is OpenAI's list of service accounts.
type ProjectServiceAccountListResponse struct {
	Object  string                  `json:"object" enum:"list"`
	Data    []ProjectServiceAccount `json:"data"`
	FirstID *string                 `json:"first_id"`
	LastID  *string                 `json:"last_id"`
	HasMore bool                    `json:"has_more"`
}

// ProjectServiceAccountDeleteResponse is OpenAI's answer to a deletion.
type ProjectServiceAccountDeleteResponse struct {
	Object  string `json:"object" enum:"organization.project.service_account.deleted"`
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

type serviceAccountIDInput struct {
	ProjectID        string `path:"project_id" doc:"The project's ID."`
	ServiceAccountID string `path:"service_account_id" doc:"The service account's ID."`
}

type serviceAccountListInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	PageParams
}

type serviceAccountCreateInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	Body      struct {
		_                        struct{} `additionalProperties:"true"`
		Name                     string   `json:"name" minLength:"1" maxLength:"256" doc:"The service account's name."`
		CreateServiceAccountOnly bool     `json:"create_service_account_only,omitempty" doc:"Make the account without a key (its role is then none)."`
		Scopes                   []string `json:"scopes,omitempty" doc:"kiln extension: limit the account's key to these scopes: api.read (GET on the project's /v1 routes), api.batches (files, uploads, batches and models), api.agent. Default: every scope."`
	}
}

type serviceAccountOutput struct{ Body ProjectServiceAccount }

type serviceAccountCreateOutput struct {
	Body ProjectServiceAccountCreateResponse
}

type serviceAccountListOutput struct {
	Body ProjectServiceAccountListResponse
}

type serviceAccountDeleteOutput struct {
	Body ProjectServiceAccountDeleteResponse
}

func registerServiceAccounts(api huma.API, d Deps) {
	tags := []string{"Projects"}
	huma.Register(api, huma.Operation{
		OperationID: "listProjectServiceAccounts", Method: http.MethodGet, Path: "/v1/organization/projects/{project_id}/service_accounts",
		Summary: "List a project's service accounts", Tags: tags, Security: adminSecurity,
		Description: "Oldest first.",
	}, d.listServiceAccounts)
	huma.Register(api, huma.Operation{
		OperationID: "createProjectServiceAccount", Method: http.MethodPost, Path: "/v1/organization/projects/{project_id}/service_accounts",
		Summary: "Create a service account", Tags: tags, Security: adminSecurity,
		Description: "Makes a service account of the project and its API key, whose secret is in api_key.value, shown only this once. " +
			"kiln extension: scopes limits the key.",
	}, d.createServiceAccount)
	huma.Register(api, huma.Operation{
		OperationID: "retrieveProjectServiceAccount", Method: http.MethodGet, Path: "/v1/organization/projects/{project_id}/service_accounts/{service_account_id}",
		Summary: "Retrieve a service account", Tags: tags, Security: adminSecurity,
	}, d.retrieveServiceAccount)
	huma.Register(api, huma.Operation{
		OperationID: "deleteProjectServiceAccount", Method: http.MethodDelete, Path: "/v1/organization/projects/{project_id}/service_accounts/{service_account_id}",
		Summary: "Delete a service account", Tags: tags, Security: adminSecurity,
		Description: "Its keys stop working at once.",
	}, d.deleteServiceAccount)
}

func (d Deps) listServiceAccounts(ctx context.Context, in *serviceAccountListInput) (*serviceAccountListOutput, error) {
	if _, err := d.project(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	list, more, err := d.Store.ServiceAccountList(ctx, in.ProjectID, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := ProjectServiceAccountListResponse{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, serviceAccountOf, func(a store.ServiceAccount) string { return a.ID })
	return &serviceAccountListOutput{Body: out}, nil
}

func (d Deps) createServiceAccount(ctx context.Context, in *serviceAccountCreateInput) (*serviceAccountCreateOutput, error) {
	if _, err := d.liveProject(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	body := in.Body
	if bad, ok := auth.ValidScopes(body.Scopes); !ok {
		return nil, apierror.Invalid("scopes", "Unknown scope '"+bad+"': the scopes are "+strings.Join(auth.Scopes, ", ")+".")
	}
	if body.CreateServiceAccountOnly && len(body.Scopes) > 0 {
		return nil, apierror.Invalid("scopes", "Scopes limit the account's key, and create_service_account_only makes none.")
	}
	a := store.ServiceAccount{ID: ids.New(ids.ServiceAccount), ProjectID: in.ProjectID, Name: body.Name, Role: store.ServiceAccountMember}
	if body.CreateServiceAccountOnly {
		a.Role = store.ServiceAccountNone
	}
	k, secret, err := apikey.NewServiceAccount(ctx, d.Store, a, body.Scopes, body.CreateServiceAccountOnly)
	if errors.Is(err, store.ErrNotFound) {
		return nil, archivedProject(in.ProjectID) // archived meanwhile
	}
	if err != nil {
		return nil, err
	}
	a, err = d.Store.ServiceAccountGet(ctx, in.ProjectID, a.ID)
	if err != nil {
		return nil, err
	}
	out := ProjectServiceAccountCreateResponse{ProjectServiceAccount: serviceAccountOf(a)}
	if k != nil {
		out.APIKey = &ProjectServiceAccountAPIKey{Object: "organization.project.service_account.api_key", Value: secret, Name: k.Name,
			CreatedAt: k.CreatedAt, ID: k.ID, Scopes: scopesOf(k.Scopes)}
	}
	return &serviceAccountCreateOutput{Body: out}, nil
}

func (d Deps) retrieveServiceAccount(ctx context.Context, in *serviceAccountIDInput) (*serviceAccountOutput, error) {
	a, err := d.serviceAccount(ctx, in.ProjectID, in.ServiceAccountID)
	if err != nil {
		return nil, err
	}
	return &serviceAccountOutput{Body: serviceAccountOf(a)}, nil
}

func (d Deps) deleteServiceAccount(ctx context.Context, in *serviceAccountIDInput) (*serviceAccountDeleteOutput, error) {
	if _, err := d.liveProject(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	err := d.Store.ServiceAccountDelete(ctx, in.ProjectID, in.ServiceAccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierror.NotFoundParam("service_account_id", "service account", in.ServiceAccountID)
	}
	if err != nil {
		return nil, err
	}
	return &serviceAccountDeleteOutput{Body: ProjectServiceAccountDeleteResponse{
		Object: "organization.project.service_account.deleted", ID: in.ServiceAccountID, Deleted: true}}, nil
}

// serviceAccount is a project's service account: 404 when the project or
// the account is not there.
func (d Deps) serviceAccount(ctx context.Context, project, id string) (store.ServiceAccount, error) {
	if _, err := d.project(ctx, project); err != nil {
		return store.ServiceAccount{}, err
	}
	a, err := d.Store.ServiceAccountGet(ctx, project, id)
	if errors.Is(err, store.ErrNotFound) {
		return a, apierror.NotFoundParam("service_account_id", "service account", id)
	}
	return a, err
}

// scopesOf is a key's scopes for JSON: [] rather than null for every
// scope.
func scopesOf(scopes []string) []string {
	if scopes == nil {
		return []string{}
	}
	return scopes
}
