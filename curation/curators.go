package curation

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// The curator routes, for admins: who has a curator key in the project,
// revoking one, and the projects a curator works in. Keys are made with
// kiln curators create, which alone shows the secret. An admin sees and
// manages the curators of the project they work in, and gives only
// projects of their own.

func registerCurators(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurators", Method: http.MethodGet, Path: "/v1/curation/curators",
		Summary: "List curators", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "manage curators"),
		Description: "The project's curators, revoked ones too, oldest first; a key shows only its start (key_prefix).",
	}), d.listCurators)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "revokeCurator", Method: http.MethodPost, Path: "/v1/curation/curators/{curator_id}/revoke",
		Summary: "Revoke a curator's key", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "manage curators"),
		Description: "The key and every session signed in with it stop working at once. A revoked curator's annotations stay. " +
			"Revoking twice is 409 curator_revoked.",
	}), d.revokeCurator)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "addCuratorProject", Method: http.MethodPost, Path: "/v1/curation/curators/{curator_id}/projects",
		Summary: "Give a curator a project", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "manage curators"),
		Description: "The curator (one of the project's) works in this project too, one of the admin's own. Only an admin curator " +
			"works in several projects: a second one for a curator is 409 one_project. Giving it twice does nothing.",
	}), d.addCuratorProject)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "removeCuratorProject", Method: http.MethodDelete, Path: "/v1/curation/curators/{curator_id}/projects/{project_id}",
		Summary: "Take a project from a curator", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "manage curators"),
		Description: "The curator no longer sees the project's tasks and exports. A curator keeps one project at least: taking " +
			"the last is 409 last_project.",
	}), d.removeCuratorProject)
}

// curatorRoles are the roles, listed once: the schema's enum comes from
// here.
var curatorRoles = []string{RoleCurator, RoleAdmin}

// curatorRole is a curator's role.
type curatorRole string

// TransformSchema lists curatorRoles as the schema's enum.
func (curatorRole) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, curatorRoles...)
}

// Curator is a curator as admins see them: their key never, only its
// start.
type Curator struct {
	ID        string      `json:"id"`
	Object    string      `json:"object" enum:"curation.curator"`
	Name      string      `json:"name"`
	Role      curatorRole `json:"role"`
	KeyPrefix string      `json:"key_prefix" doc:"The start of the curator's key (ck-…), to tell keys apart."`
	Projects  []string    `json:"projects" doc:"The IDs of the curator's projects that the admin works in too."`
	CreatedAt int64       `json:"created_at"`
	RevokedAt *int64      `json:"revoked_at" doc:"When the key was revoked; null while it works."`
}

// curatorFor is a curator as the request's admin sees them, with the
// projects the two share.
func (d Deps) curatorFor(ctx context.Context, c store.Curator) (Curator, error) {
	theirs, err := d.Store.CuratorProjects(ctx, c.ID)
	if err != nil {
		return Curator{}, err
	}
	out := Curator{ID: c.ID, Object: "curation.curator", Name: c.Name, Role: curatorRole(c.Role), KeyPrefix: c.Prefix,
		Projects: []string{}, CreatedAt: c.CreatedAt, RevokedAt: c.RevokedAt}
	for _, p := range theirs {
		if admins(ctx, p.ID) {
			out.Projects = append(out.Projects, p.ID)
		}
	}
	return out, nil
}

// admins reports whether the request's admin works in a project.
func admins(ctx context.Context, projectID string) bool {
	return slices.ContainsFunc(callerOf(ctx).projects, func(p store.Project) bool { return p.ID == projectID })
}

type curatorListOutput struct {
	Body listOf[Curator]
}

func (d Deps) listCurators(ctx context.Context, _ *struct{}) (*curatorListOutput, error) {
	list, err := d.Store.CuratorListByProject(ctx, projectOf(ctx))
	if err != nil {
		return nil, err
	}
	out := &curatorListOutput{}
	out.Body.Data = make([]Curator, 0, len(list))
	for _, c := range list {
		x, err := d.curatorFor(ctx, c)
		if err != nil {
			return nil, err
		}
		out.Body.Data = append(out.Body.Data, x)
	}
	return out, nil
}

type curatorInput struct {
	CuratorID string `path:"curator_id"`
}

type curatorOutput struct {
	Body Curator
}

// projectCurator is a curator of the request's project; another project's
// is not found, as one that does not exist.
func (d Deps) projectCurator(ctx context.Context, id string) (store.Curator, error) {
	c, err := d.Store.CuratorGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, apierror.NotFound("curator", id)
	}
	if err != nil {
		return c, err
	}
	theirs, err := d.Store.CuratorProjects(ctx, c.ID)
	if err != nil {
		return c, err
	}
	if !slices.ContainsFunc(theirs, func(p store.Project) bool { return p.ID == projectOf(ctx) }) {
		return c, apierror.NotFound("curator", id)
	}
	return c, nil
}

func (d Deps) revokeCurator(ctx context.Context, in *curatorInput) (*curatorOutput, error) {
	if _, err := d.projectCurator(ctx, in.CuratorID); err != nil {
		return nil, err
	}
	c, err := d.Store.CuratorRevoke(ctx, in.CuratorID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, apierror.NotFound("curator", in.CuratorID)
	case errors.Is(err, store.ErrConflict):
		return nil, apierror.Conflict("curator_revoked", "The curator's key is revoked already.")
	case err != nil:
		return nil, err
	}
	out, err := d.curatorFor(ctx, c)
	if err != nil {
		return nil, err
	}
	return &curatorOutput{out}, nil
}

// addCuratorProjectRequest is named after its operation, as Huma names an
// anonymous body in the OpenAPI document.
type addCuratorProjectRequest struct {
	ProjectID string `json:"project_id" minLength:"1" doc:"A project the admin works in."`
}

type addCuratorProjectInput struct {
	CuratorID string `path:"curator_id"`
	Body      addCuratorProjectRequest
}

func (d Deps) addCuratorProject(ctx context.Context, in *addCuratorProjectInput) (*curatorOutput, error) {
	c, err := d.projectCurator(ctx, in.CuratorID)
	if err != nil {
		return nil, err
	}
	if !admins(ctx, in.Body.ProjectID) {
		return nil, apierror.NotFoundParam("project_id", "project", in.Body.ProjectID)
	}
	err = GiveProject(ctx, d.Store, c.ID, in.Body.ProjectID)
	switch {
	case errors.Is(err, ErrOneProject):
		return nil, apierror.Conflict("one_project", "Only an admin curator works in several projects; this curator works in another already.")
	case errors.Is(err, store.ErrNotFound): // archived meanwhile
		return nil, apierror.NotFoundParam("project_id", "project", in.Body.ProjectID)
	case err != nil:
		return nil, err
	}
	out, err := d.curatorFor(ctx, c)
	if err != nil {
		return nil, err
	}
	return &curatorOutput{out}, nil
}

type curatorProjectInput struct {
	CuratorID string `path:"curator_id"`
	ProjectID string `path:"project_id"`
}

func (d Deps) removeCuratorProject(ctx context.Context, in *curatorProjectInput) (*curatorOutput, error) {
	c, err := d.projectCurator(ctx, in.CuratorID)
	if err != nil {
		return nil, err
	}
	if !admins(ctx, in.ProjectID) {
		return nil, apierror.NotFoundParam("project_id", "project", in.ProjectID)
	}
	err = d.Store.CuratorProjectRemove(ctx, c.ID, in.ProjectID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, apierror.NotFoundParam("project_id", "project", in.ProjectID)
	case errors.Is(err, store.ErrConflict):
		return nil, apierror.Conflict("last_project", "A curator keeps one project at least: give them another first, or revoke their key.")
	case err != nil:
		return nil, err
	}
	out, err := d.curatorFor(ctx, c)
	if err != nil {
		return nil, err
	}
	return &curatorOutput{out}, nil
}
