package curation

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/store"
)

// The session routes: signing in with a curator key, who is signed in, and
// signing out. The UI holds the session as a cookie.

func registerSession(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "curationLogin", Method: http.MethodPost, Path: "/v1/curation/session",
		Summary: "Sign in with a curator key", Tags: tags,
		Description: "Answers a session cookie (HttpOnly, SameSite=Strict) for the web UI.",
	}, d.login)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "curationSession", Method: http.MethodGet, Path: "/v1/curation/session",
		Summary: "The signed-in curator", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Who is signed in, the project this request works in, and every project of the curator's.",
	}), d.currentSession)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "curationSwitchProject", Method: http.MethodPost, Path: "/v1/curation/session/project",
		Summary: "Switch the session's project", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "The workbench session works in this project, one of the curator's, from now on. A curator key has no " +
			"session (400 no_session): it names its project with the " + ProjectHeader + " header.",
	}), d.switchProject)

	huma.Register(api, huma.Operation{
		OperationID: "curationLogout", Method: http.MethodDelete, Path: "/v1/curation/session",
		Summary: "Sign out", Tags: tags, Middlewares: huma.Middlewares{curatorIn(api, d.Store, false)},
	}, d.logout)
}

// CurationProject is a project a curator works in.
type CurationProject struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func projectsOf(ps []store.Project) []CurationProject {
	out := make([]CurationProject, len(ps))
	for i, p := range ps {
		out[i] = CurationProject{ID: p.ID, Name: p.Name}
	}
	return out
}

// sessionBody is who is signed in, and where they work.
type sessionBody struct {
	Curator struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Role string `json:"role"`
	} `json:"curator"`
	Project  CurationProject   `json:"project" doc:"The project this request works in: every task, export and count is this project's."`
	Projects []CurationProject `json:"projects" doc:"Every project the curator works in, by name; the workbench shows a switcher when there are several."`
}

func sessionOf(c caller) sessionBody {
	var b sessionBody
	b.Curator.ID, b.Curator.Name, b.Curator.Role = c.curator.ID, c.curator.Name, c.curator.Role
	b.Project = CurationProject{ID: c.project.ID, Name: c.project.Name}
	b.Projects = projectsOf(c.projects)
	return b
}

// sessionOutput answers sign-in and sign-out: the cookie, and who.
type sessionOutput struct {
	SetCookie http.Cookie `header:"Set-Cookie"`
	Body      sessionBody
}

// curationLoginRequest is named after its operation, as Huma names an
// anonymous body in the OpenAPI document.
type curationLoginRequest struct {
	Key string `json:"key" minLength:"1"`
}

type loginInput struct {
	Body curationLoginRequest
}

func (d Deps) login(ctx context.Context, in *loginInput) (*sessionOutput, error) {
	c, err := d.Store.CuratorByHash(ctx, apikey.Hash(strings.TrimSpace(in.Body.Key)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierror.New(http.StatusUnauthorized, "invalid_curator_key", "", "That is not a curator key.")
	}
	if err != nil {
		return nil, err
	}
	projects, err := d.Store.CuratorProjects(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	p, err := currentProject(projects, "", "")
	if err != nil {
		return nil, apierror.New(http.StatusForbidden, "no_project", "", noProjectMessage)
	}
	token := randomToken(32)
	exp := time.Now().Add(SessionTTL)
	if err := d.Store.SessionCreate(ctx, apikey.Hash(token), c.ID, exp); err != nil {
		return nil, err
	}
	return &sessionOutput{SetCookie: d.sessionCookie(token, exp), Body: sessionOf(caller{curator: c, project: p, projects: projects})}, nil
}

type currentSessionOutput struct {
	Body sessionBody
}

func (d Deps) currentSession(ctx context.Context, _ *struct{}) (*currentSessionOutput, error) {
	return &currentSessionOutput{sessionOf(callerOf(ctx))}, nil
}

// curationSwitchProjectRequest is named after its operation, as Huma names
// an anonymous body in the OpenAPI document.
type curationSwitchProjectRequest struct {
	ProjectID string `json:"project_id" minLength:"1" doc:"One of the curator's projects (GET /v1/curation/session lists them)."`
}

type switchProjectInput struct {
	Body curationSwitchProjectRequest
}

func (d Deps) switchProject(ctx context.Context, in *switchProjectInput) (*currentSessionOutput, error) {
	c := callerOf(ctx)
	if c.session == "" {
		return nil, apierror.InvalidCode("", "no_session",
			"A curator key has no session to remember a project in: send the "+ProjectHeader+" header with each request instead.")
	}
	p, err := currentProject(c.projects, in.Body.ProjectID, "")
	if err != nil {
		return nil, apierror.NotFoundParam("project_id", "project", in.Body.ProjectID)
	}
	err = d.Store.SessionSetProject(ctx, c.session, p.ID)
	if errors.Is(err, store.ErrNotFound) { // signed out meanwhile
		return nil, apierror.New(http.StatusUnauthorized, "", "", "The session ended: sign in again.")
	}
	if err != nil {
		return nil, err
	}
	c.project = p
	return &currentSessionOutput{sessionOf(c)}, nil
}

type logoutInput struct {
	Session http.Cookie `cookie:"kiln_curation"` // CookieName: a tag cannot name the constant
}

func (d Deps) logout(ctx context.Context, in *logoutInput) (*sessionOutput, error) {
	if in.Session.Value != "" {
		if err := d.Store.SessionDelete(ctx, apikey.Hash(in.Session.Value)); err != nil {
			return nil, err
		}
	}
	gone := d.sessionCookie("", time.Time{})
	gone.MaxAge = -1
	return &sessionOutput{SetCookie: gone}, nil
}

// sessionCookie is the UI's session cookie: HttpOnly, SameSite=Strict,
// and Secure when kiln is reached over https.
func (d Deps) sessionCookie(token string, expires time.Time) http.Cookie {
	return http.Cookie{Name: CookieName, Value: token, Path: "/", Expires: expires, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: d.SecureCookies}
}
