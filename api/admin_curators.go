package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// Curators managed with an admin key, as `kiln curators create`, `list` and
// `revoke` manage them on the database: the workbench's own routes
// (/v1/curation/curators) take a curator admin's key and see one project,
// while these see every curator.

// OrganizationCurator is a curator as the Administration API shows them:
// their key never, only its start.
type OrganizationCurator struct {
	ID        string   `json:"id"`
	Object    string   `json:"object" enum:"organization.curator"`
	Name      string   `json:"name"`
	Role      string   `json:"role" enum:"curator,admin"`
	KeyPrefix string   `json:"key_prefix" doc:"The start of the curator's key (ck-…), to tell keys apart."`
	Projects  []string `json:"projects" doc:"The IDs of the projects the curator works in."`
	CreatedAt int64    `json:"created_at"`
	RevokedAt *int64   `json:"revoked_at" doc:"When the key was revoked; null while it works."`
}

// OrganizationCuratorCreateResponse is a new curator, with their key.
type OrganizationCuratorCreateResponse struct {
	OrganizationCurator
	Key string `json:"key" doc:"The curator's key (ck-…), shown only this once: they sign in to /curation/ with it."`
}

// OrganizationCuratorList is every curator.
type OrganizationCuratorList struct {
	Object string                `json:"object" enum:"list"`
	Data   []OrganizationCurator `json:"data"`
}

type orgCuratorCreateInput struct {
	Body struct {
		_        struct{} `additionalProperties:"true"`
		Name     string   `json:"name" minLength:"1" maxLength:"256" doc:"Who the curator is (a name or an email address)."`
		Role     string   `json:"role,omitempty" enum:"curator,admin" default:"curator" doc:"curator, or admin (manages the workbench and may work in several projects)."`
		Projects []string `json:"projects,omitempty" doc:"The IDs of the projects the curator works in; one only for a curator. Default: the default project."`
	}
}

type orgCuratorIDInput struct {
	CuratorID string `path:"curator_id" doc:"The curator's ID (cur_…)."`
}

type orgCuratorOutput struct{ Body OrganizationCurator }

type orgCuratorCreateOutput struct {
	Body OrganizationCuratorCreateResponse
}

type orgCuratorListOutput struct{ Body OrganizationCuratorList }

func registerAdminCurators(api huma.API, d Deps) {
	tags := []string{"Curators (kiln extension)"}
	huma.Register(api, huma.Operation{
		OperationID: "createOrganizationCurator", Method: http.MethodPost, Path: "/v1/organization/curators",
		Summary: "Create a curator", Tags: tags, Security: adminSecurity,
		Description: "kiln extension: makes a curator key, as `kiln curators create` does, and returns it in key, shown only this once.",
	}, d.createOrgCurator)
	huma.Register(api, huma.Operation{
		OperationID: "listOrganizationCurators", Method: http.MethodGet, Path: "/v1/organization/curators",
		Summary: "List curators", Tags: tags, Security: adminSecurity,
		Description: "kiln extension: every curator, revoked ones too, oldest first.",
	}, d.listOrgCurators)
	huma.Register(api, huma.Operation{
		OperationID: "retrieveOrganizationCurator", Method: http.MethodGet, Path: "/v1/organization/curators/{curator_id}",
		Summary: "Retrieve a curator", Tags: tags, Security: adminSecurity,
		Description: "kiln extension: a revoked curator is still shown, with revoked_at.",
	}, d.retrieveOrgCurator)
	huma.Register(api, huma.Operation{
		OperationID: "revokeOrganizationCurator", Method: http.MethodDelete, Path: "/v1/organization/curators/{curator_id}",
		Summary: "Revoke a curator's key", Tags: tags, Security: adminSecurity,
		Description: "kiln extension: the key and its sessions stop working at once; the curator's annotations stay. " +
			"Revoking twice is 409 curator_revoked.",
	}, d.revokeOrgCurator)
}

func (d Deps) createOrgCurator(ctx context.Context, in *orgCuratorCreateInput) (*orgCuratorCreateOutput, error) {
	b := in.Body
	if b.Role == "" {
		b.Role = curation.RoleCurator
	}
	for _, p := range b.Projects {
		if _, err := d.liveProject(ctx, p); err != nil {
			return nil, err
		}
	}
	c, secret, err := curation.CreateCurator(ctx, d.Store, b.Name, b.Role, b.Projects...)
	switch {
	case errors.Is(err, curation.ErrOneProject):
		return nil, apierror.Invalid("projects", "A curator works in one project; only an admin (role admin) works in several.")
	case errors.Is(err, store.ErrNotFound): // archived meanwhile
		return nil, apierror.Invalid("projects", "A project given is archived.")
	case err != nil:
		return nil, err
	}
	view, err := d.orgCuratorOf(ctx, c)
	if err != nil {
		return nil, err
	}
	return &orgCuratorCreateOutput{Body: OrganizationCuratorCreateResponse{OrganizationCurator: view, Key: secret}}, nil
}

func (d Deps) listOrgCurators(ctx context.Context, _ *struct{}) (*orgCuratorListOutput, error) {
	list, err := d.Store.CuratorList(ctx)
	if err != nil {
		return nil, err
	}
	out := OrganizationCuratorList{Object: "list", Data: make([]OrganizationCurator, len(list))}
	for i, c := range list {
		if out.Data[i], err = d.orgCuratorOf(ctx, c); err != nil {
			return nil, err
		}
	}
	return &orgCuratorListOutput{Body: out}, nil
}

func (d Deps) retrieveOrgCurator(ctx context.Context, in *orgCuratorIDInput) (*orgCuratorOutput, error) {
	c, err := d.Store.CuratorGet(ctx, in.CuratorID)
	if err != nil {
		return nil, notFoundOr(err, "curator", in.CuratorID)
	}
	view, err := d.orgCuratorOf(ctx, c)
	if err != nil {
		return nil, err
	}
	return &orgCuratorOutput{Body: view}, nil
}

func (d Deps) revokeOrgCurator(ctx context.Context, in *orgCuratorIDInput) (*orgCuratorOutput, error) {
	c, err := d.Store.CuratorRevoke(ctx, in.CuratorID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, apierror.NotFound("curator", in.CuratorID)
	case errors.Is(err, store.ErrConflict):
		return nil, apierror.Conflict("curator_revoked", "The curator's key is revoked already.")
	case err != nil:
		return nil, err
	}
	view, err := d.orgCuratorOf(ctx, c)
	if err != nil {
		return nil, err
	}
	return &orgCuratorOutput{Body: view}, nil
}

// orgCuratorOf is c as the Administration API shows them.
func (d Deps) orgCuratorOf(ctx context.Context, c store.Curator) (OrganizationCurator, error) {
	theirs, err := d.Store.CuratorProjects(ctx, c.ID)
	if err != nil {
		return OrganizationCurator{}, err
	}
	out := OrganizationCurator{ID: c.ID, Object: "organization.curator", Name: c.Name, Role: c.Role, KeyPrefix: c.Prefix,
		Projects: make([]string, len(theirs)), CreatedAt: c.CreatedAt, RevokedAt: c.RevokedAt}
	for i, p := range theirs {
		out.Projects[i] = p.ID
	}
	return out, nil
}
