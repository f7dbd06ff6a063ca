package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// Project is OpenAI's Project object of the Administration API.
type Project struct {
	ID         string `json:"id"`
	Object     string `json:"object" enum:"organization.project"`
	Name       string `json:"name"`
	CreatedAt  int64  `json:"created_at"`
	ArchivedAt *int64 `json:"archived_at"`
	Status     string `json:"status" enum:"active,archived"`
}

func projectOf(p store.Project) Project {
	status := "active"
	if p.ArchivedAt != nil {
		status = "archived"
	}
	return Project{ID: p.ID, Object: "organization.project", Name: p.Name, CreatedAt: p.CreatedAt, ArchivedAt: p.ArchivedAt, Status: status}
}

// ProjectListResponse is OpenAI's list of projects.
type ProjectListResponse struct {
	Object  string    `json:"object" enum:"list"`
	Data    []Project `json:"data"`
	FirstID *string   `json:"first_id"`
	LastID  *string   `json:"last_id"`
	HasMore bool      `json:"has_more"`
}

type projectOutput struct{ Body Project }

type projectListOutput struct{ Body ProjectListResponse }

type projectIDInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
}

type projectListInput struct {
	PageParams
	IncludeArchived bool `query:"include_archived" doc:"List archived projects too."`
}

type projectCreateInput struct {
	Body struct {
		_             struct{} `additionalProperties:"true"`
		Name          string   `json:"name" minLength:"1" maxLength:"256" doc:"The project's name; kiln keeps names unique (kiln keys create --project takes one)."`
		ExternalKeyID *string  `json:"external_key_id,omitempty" doc:"Accepted for compatibility; kiln has no external keys."`
	}
}

type projectModifyInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	Body      struct {
		_    struct{} `additionalProperties:"true"`
		Name string   `json:"name" minLength:"1" maxLength:"256" doc:"The project's new name."`
	}
}

func registerProjects(api huma.API, d Deps) {
	tags := []string{"Projects"}
	huma.Register(api, huma.Operation{
		OperationID: "listProjects", Method: http.MethodGet, Path: "/v1/organization/projects",
		Summary: "List projects", Tags: tags, Security: adminSecurity,
		Description: "Oldest first; archived projects only with include_archived=true. Takes an admin key.",
	}, d.listProjects)
	huma.Register(api, huma.Operation{
		OperationID: "createProject", Method: http.MethodPost, Path: "/v1/organization/projects",
		Summary: "Create a project", Tags: tags, Security: adminSecurity,
		Description: "Projects can be created and archived, not deleted. Every file, upload, batch, webhook endpoint and event belongs to one; a key sees only its project's.",
	}, d.createProject)
	huma.Register(api, huma.Operation{
		OperationID: "retrieveProject", Method: http.MethodGet, Path: "/v1/organization/projects/{project_id}",
		Summary: "Retrieve a project", Tags: tags, Security: adminSecurity,
	}, d.retrieveProject)
	huma.Register(api, huma.Operation{
		OperationID: "modifyProject", Method: http.MethodPost, Path: "/v1/organization/projects/{project_id}",
		Summary: "Modify a project", Tags: tags, Security: adminSecurity,
		Description: "Renames a project. An archived project cannot be changed.",
	}, d.modifyProject)
	huma.Register(api, huma.Operation{
		OperationID: "archiveProject", Method: http.MethodPost, Path: "/v1/organization/projects/{project_id}/archive",
		Summary: "Archive a project", Tags: tags, Security: adminSecurity,
		Description: "Its keys stop working at once; its data stays. The default project cannot be archived.",
	}, d.archiveProject)
}

func (d Deps) listProjects(ctx context.Context, in *projectListInput) (*projectListOutput, error) {
	list, more, err := d.Store.ProjectList(ctx, in.After, in.Limit, in.IncludeArchived)
	if err != nil {
		return nil, err
	}
	out := ProjectListResponse{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, projectOf, func(p store.Project) string { return p.ID })
	return &projectListOutput{Body: out}, nil
}

func (d Deps) createProject(ctx context.Context, in *projectCreateInput) (*projectOutput, error) {
	if err := d.uniqueProjectName(ctx, in.Body.Name, ""); err != nil {
		return nil, err
	}
	p := store.Project{ID: ids.New(ids.Project), Name: in.Body.Name}
	if err := d.Store.ProjectCreate(ctx, p); err != nil {
		return nil, err
	}
	return d.retrieveProject(ctx, &projectIDInput{ProjectID: p.ID})
}

func (d Deps) retrieveProject(ctx context.Context, in *projectIDInput) (*projectOutput, error) {
	p, err := d.project(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	return &projectOutput{Body: projectOf(p)}, nil
}

func (d Deps) modifyProject(ctx context.Context, in *projectModifyInput) (*projectOutput, error) {
	if _, err := d.liveProject(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	if err := d.uniqueProjectName(ctx, in.Body.Name, in.ProjectID); err != nil {
		return nil, err
	}
	p, err := d.Store.ProjectRename(ctx, in.ProjectID, in.Body.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, archivedProject(in.ProjectID) // archived meanwhile
	}
	if err != nil {
		return nil, err
	}
	return &projectOutput{Body: projectOf(p)}, nil
}

func (d Deps) archiveProject(ctx context.Context, in *projectIDInput) (*projectOutput, error) {
	if _, err := d.project(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	p, err := d.Store.ProjectArchive(ctx, in.ProjectID)
	if errors.Is(err, store.ErrConflict) {
		return nil, apierror.Invalid("project_id", "The default project cannot be archived.")
	}
	if err != nil {
		return nil, err
	}
	return &projectOutput{Body: projectOf(p)}, nil
}

// project is the project of a path, archived or not: 404 when there is
// none.
func (d Deps) project(ctx context.Context, id string) (store.Project, error) {
	p, err := d.Store.ProjectGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, apierror.NotFoundParam("project_id", "project", id)
	}
	return p, err
}

// liveProject is the project of a path that may be changed: 404 when there
// is none, 400 when it is archived (archived projects cannot be used or
// updated, as OpenAI says).
func (d Deps) liveProject(ctx context.Context, id string) (store.Project, error) {
	p, err := d.project(ctx, id)
	if err == nil && p.ArchivedAt != nil {
		err = archivedProject(id)
	}
	return p, err
}

func archivedProject(id string) error {
	return apierror.InvalidCode("project_id", "project_archived", "Project '"+id+"' is archived: it cannot be used or updated.")
}

// uniqueProjectName refuses a name that another project than self has.
func (d Deps) uniqueProjectName(ctx context.Context, name, self string) error {
	other, err := d.Store.ProjectByName(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case other.ID != self:
		return apierror.Invalid("name", "A project named '"+name+"' exists already ("+other.ID+").")
	}
	return nil
}
