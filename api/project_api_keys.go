package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/store"
)

// ProjectAPIKey is OpenAI's project API key, redacted, with kiln's
// extensions.
type ProjectAPIKey struct {
	Object             string             `json:"object" enum:"organization.project.api_key"`
	RedactedValue      string             `json:"redacted_value"`
	Name               string             `json:"name"`
	CreatedAt          int64              `json:"created_at"`
	LastUsedAt         *int64             `json:"last_used_at"`
	ID                 string             `json:"id"`
	OwnerProjectAccess string             `json:"owner_project_access" enum:"active,inactive"`
	Owner              ProjectAPIKeyOwner `json:"owner"`
	Scopes             []string           `json:"scopes" doc:"kiln extension: the scopes the key is limited to; empty: every scope."`
	ExpiresAt          *int64             `json:"expires_at" doc:"kiln extension: when a rotated key stops working (the end of its grace period); null for a key that was not rotated."`
}

// ProjectAPIKeyOwner is who owns a key: a user (kiln keys create; kiln has
// no user accounts, so no user object follows) or a service account.
type ProjectAPIKeyOwner struct {
	Type           string                            `json:"type" enum:"user,service_account"`
	ServiceAccount *ProjectAPIKeyOwnerServiceAccount `json:"service_account,omitempty"`
}

// ProjectAPIKeyOwnerServiceAccount is the service account that owns a key.
type ProjectAPIKeyOwnerServiceAccount struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	Role      string `json:"role"`
}

// ProjectAPIKeyListResponse is OpenAI's list of a project's keys.
type ProjectAPIKeyListResponse struct {
	Object  string          `json:"object" enum:"list"`
	Data    []ProjectAPIKey `json:"data"`
	FirstID *string         `json:"first_id"`
	LastID  *string         `json:"last_id"`
	HasMore bool            `json:"has_more"`
}

// ProjectAPIKeyDeleteResponse is OpenAI's answer to a deletion.
type ProjectAPIKeyDeleteResponse struct {
	Object  string `json:"object" enum:"organization.project.api_key.deleted"`
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// ProjectAPIKeyRotateResponse is a kiln extension: the key that replaces a
// rotated one, with its secret.
type ProjectAPIKeyRotateResponse struct {
	ProjectAPIKey
	Value       string               `json:"value" doc:"The new key's secret, shown only this once."`
	RotatedFrom ProjectAPIKeyRotated `json:"rotated_from" doc:"The key it replaces, which works until expires_at."`
}

// ProjectAPIKeyRotated is the key a rotation replaced.
type ProjectAPIKeyRotated struct {
	ID        string `json:"id"`
	ExpiresAt int64  `json:"expires_at" doc:"When the old key stops working: now plus KILN_KEY_ROTATION_GRACE."`
}

type projectAPIKeyIDInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	KeyID     string `path:"api_key_id" doc:"The API key's ID."`
}

type projectAPIKeyListInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	PageParams
}

type projectAPIKeyOutput struct{ Body ProjectAPIKey }

type projectAPIKeyListOutput struct {
	Body ProjectAPIKeyListResponse
}

type projectAPIKeyDeleteOutput struct {
	Body ProjectAPIKeyDeleteResponse
}

type projectAPIKeyRotateOutput struct {
	Body ProjectAPIKeyRotateResponse
}

func registerProjectAPIKeys(api huma.API, d Deps) {
	tags := []string{"Projects"}
	huma.Register(api, huma.Operation{
		OperationID: "listProjectApiKeys", Method: http.MethodGet, Path: "/v1/organization/projects/{project_id}/api_keys",
		Summary: "List a project's API keys", Tags: tags, Security: adminSecurity,
		Description: "The keys that work: not revoked, and not past a rotation's grace period. Oldest first; values are redacted.",
	}, d.listProjectAPIKeys)
	huma.Register(api, huma.Operation{
		OperationID: "retrieveProjectApiKey", Method: http.MethodGet, Path: "/v1/organization/projects/{project_id}/api_keys/{api_key_id}",
		Summary: "Retrieve a project API key", Tags: tags, Security: adminSecurity,
	}, d.retrieveProjectAPIKey)
	huma.Register(api, huma.Operation{
		OperationID: "deleteProjectApiKey", Method: http.MethodDelete, Path: "/v1/organization/projects/{project_id}/api_keys/{api_key_id}",
		Summary: "Delete a project API key", Tags: tags, Security: adminSecurity,
		Description: "The key stops working at once. A service account's key is deleted with its account, as OpenAI does: deleting it here is an error.",
	}, d.deleteProjectAPIKey)
	huma.Register(api, huma.Operation{
		OperationID: "rotateProjectApiKey", Method: http.MethodPost, Path: "/v1/organization/projects/{project_id}/api_keys/{api_key_id}/rotate",
		Summary: "Rotate a project API key", Tags: tags, Security: adminSecurity,
		Description: "kiln extension: makes a new key with the old one's name, owner and scopes, and returns its secret once. " +
			"The old key keeps working for KILN_KEY_ROTATION_GRACE (default 24h), then stops.",
	}, d.rotateProjectAPIKey)
}

func (d Deps) listProjectAPIKeys(ctx context.Context, in *projectAPIKeyListInput) (*projectAPIKeyListOutput, error) {
	if _, err := d.project(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	list, more, err := d.Store.KeyListByProject(ctx, in.ProjectID, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := ProjectAPIKeyListResponse{Object: "list", HasMore: more, Data: make([]ProjectAPIKey, len(list))}
	for i, k := range list {
		if out.Data[i], err = d.projectAPIKeyOf(ctx, k); err != nil {
			return nil, err
		}
	}
	if len(list) > 0 {
		out.FirstID, out.LastID = &list[0].ID, &list[len(list)-1].ID
	}
	return &projectAPIKeyListOutput{Body: out}, nil
}

func (d Deps) retrieveProjectAPIKey(ctx context.Context, in *projectAPIKeyIDInput) (*projectAPIKeyOutput, error) {
	k, err := d.projectAPIKey(ctx, in.ProjectID, in.KeyID)
	if err != nil {
		return nil, err
	}
	out, err := d.projectAPIKeyOf(ctx, k)
	if err != nil {
		return nil, err
	}
	return &projectAPIKeyOutput{Body: out}, nil
}

func (d Deps) deleteProjectAPIKey(ctx context.Context, in *projectAPIKeyIDInput) (*projectAPIKeyDeleteOutput, error) {
	k, err := d.projectAPIKey(ctx, in.ProjectID, in.KeyID)
	if err != nil {
		return nil, err
	}
	if k.OwnerType == store.KeyOwnerServiceAccount {
		return nil, apierror.Invalid("api_key_id", "The key '"+k.ID+"' belongs to a service account: delete the service account to delete its keys.")
	}
	err = d.Store.KeyRevoke(ctx, k.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierror.NotFoundParam("api_key_id", "API key", in.KeyID) // revoked meanwhile
	}
	if err != nil {
		return nil, err
	}
	return &projectAPIKeyDeleteOutput{Body: ProjectAPIKeyDeleteResponse{Object: "organization.project.api_key.deleted", ID: k.ID, Deleted: true}}, nil
}

func (d Deps) rotateProjectAPIKey(ctx context.Context, in *projectAPIKeyIDInput) (*projectAPIKeyRotateOutput, error) {
	if _, err := d.liveProject(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	old, err := d.projectAPIKey(ctx, in.ProjectID, in.KeyID)
	if err != nil {
		return nil, err
	}
	next, secret, err := apikey.Rotate(ctx, d.Store, old.ID, d.KeyRotationGrace)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierror.NotFoundParam("api_key_id", "API key", in.KeyID) // revoked or rotated meanwhile
	}
	if err != nil {
		return nil, err
	}
	old, err = d.Store.KeyGet(ctx, old.ID)
	if err != nil {
		return nil, err
	}
	view, err := d.projectAPIKeyOf(ctx, next)
	if err != nil {
		return nil, err
	}
	out := ProjectAPIKeyRotateResponse{ProjectAPIKey: view, Value: secret, RotatedFrom: ProjectAPIKeyRotated{ID: old.ID}}
	if old.ExpiresAt != nil {
		out.RotatedFrom.ExpiresAt = *old.ExpiresAt
	}
	return &projectAPIKeyRotateOutput{Body: out}, nil
}

// projectAPIKey is a project's key that works: 404 when the project or the
// key is not there, the key belongs to another project, or it no longer
// works (revoked, or past a rotation's grace).
func (d Deps) projectAPIKey(ctx context.Context, project, id string) (store.APIKey, error) {
	if _, err := d.project(ctx, project); err != nil {
		return store.APIKey{}, err
	}
	k, err := d.Store.KeyGet(ctx, id)
	if err == nil && (k.ProjectID != project || k.RevokedAt != nil || (k.ExpiresAt != nil && *k.ExpiresAt <= time.Now().Unix())) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return k, apierror.NotFoundParam("api_key_id", "API key", id)
	}
	return k, err
}

// projectAPIKeyOf is k as the Administration API shows it.
func (d Deps) projectAPIKeyOf(ctx context.Context, k store.APIKey) (ProjectAPIKey, error) {
	out := ProjectAPIKey{Object: "organization.project.api_key", RedactedValue: k.Prefix + "...", Name: k.Name, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, ID: k.ID, OwnerProjectAccess: "active", Owner: ProjectAPIKeyOwner{Type: k.OwnerType},
		Scopes: scopesOf(k.Scopes), ExpiresAt: k.ExpiresAt}
	if out.Owner.Type == "" {
		out.Owner.Type = store.KeyOwnerUser
	}
	if k.ServiceAccountID != nil {
		a, err := d.Store.ServiceAccountGet(ctx, k.ProjectID, *k.ServiceAccountID)
		if errors.Is(err, store.ErrNotFound) {
			out.OwnerProjectAccess = "inactive" // the account is deleted
			return out, nil
		}
		if err != nil {
			return ProjectAPIKey{}, err
		}
		out.Owner.ServiceAccount = &ProjectAPIKeyOwnerServiceAccount{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt, Role: a.Role}
	}
	return out, nil
}
