// Package curation is kiln's curation workbench: batch outputs of conquest
// types become tasks that curators compare side by side, correct, rate and
// star, and export as training datasets. It holds the import function, the
// curation API (under /v1/curation, with curator keys and sessions apart
// from the batch API's keys), the export jobs and the embedded web UI.
package curation

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// KeyPrefix starts every curator key, so that it is never mistaken for a
// batch API key.
const KeyPrefix = "ck-"

// Roles.
const (
	RoleCurator = "curator"
	RoleAdmin   = "admin"
)

// CookieName is the session cookie the UI holds.
const CookieName = "kiln_curation"

// SessionTTL is how long a session lasts.
const SessionTTL = 12 * time.Hour

// ProjectHeader names the project a request works in, among its curator's,
// as OpenAI's API names a key's project. Without it, a workbench session
// works in the project chosen in its switcher, and anything else in the
// curator's first project (by name).
const ProjectHeader = "OpenAI-Project"

// ErrOneProject is a second project for a curator who is not an admin:
// only an admin curator works in several.
var ErrOneProject = errors.New("curation: only an admin curator works in several projects")

// CreateCurator stores a curator who works in projects (IDs; none: the
// default project) and returns their key, shown only once. A curator who is
// not an admin works in one project (ErrOneProject); a project that does
// not exist or is archived is store.ErrNotFound.
func CreateCurator(ctx context.Context, st *store.Store, name, role string, projects ...string) (store.Curator, string, error) {
	if role != RoleCurator && role != RoleAdmin {
		return store.Curator{}, "", fmt.Errorf("curation: role %q: want curator or admin", role)
	}
	slices.Sort(projects)
	projects = slices.Compact(projects)
	if role != RoleAdmin && len(projects) > 1 {
		return store.Curator{}, "", ErrOneProject
	}
	secret := KeyPrefix + randomToken(24)
	c := store.Curator{ID: ids.New(ids.Curator), Name: name, Role: role, Prefix: secret[:len(KeyPrefix)+4],
		Hash: apikey.Hash(secret), CreatedAt: time.Now().Unix()}
	if err := st.CuratorCreate(ctx, c, projects...); err != nil {
		return store.Curator{}, "", err
	}
	return c, secret, nil
}

// GiveProject gives a curator a project to work in, as kiln curators
// add-project and the admins' route do. A curator who is not an admin and
// works in another project is ErrOneProject; an unknown curator, or a
// project that does not exist or is archived, is store.ErrNotFound.
func GiveProject(ctx context.Context, st *store.Store, curatorID, projectID string) error {
	c, err := st.CuratorGet(ctx, curatorID)
	if err != nil {
		return err
	}
	if c.Role != RoleAdmin {
		has, err := st.CuratorProjects(ctx, c.ID)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(has, func(p store.Project) bool { return p.ID != projectID }) {
			return ErrOneProject
		}
	}
	return st.CuratorProjectAdd(ctx, c.ID, projectID)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// caller is who a curation request comes from, and the project it works
// in.
type caller struct {
	curator store.Curator
	// session is the hash of the session's token; "" for a curator key.
	session string
	// project is the project the request works in: every task, export and
	// count it reads or writes is this project's.
	project store.Project
	// projects are every project the curator works in, by name.
	projects []store.Project
}

type callerKey struct{}

// callerOf returns the caller of a request's context.
func callerOf(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// curatorOf returns the signed-in curator of a request's context.
func curatorOf(ctx context.Context) store.Curator { return callerOf(ctx).curator }

// projectOf returns the ID of the project a request works in.
func projectOf(ctx context.Context) string { return callerOf(ctx).project.ID }

// signedIn is a request's curator, and their session's if any.
type signedIn struct {
	curator store.Curator
	// session is the hash of the session's token; "" for a curator key.
	session string
	// sessionProject is the project chosen in the session; "" for none.
	sessionProject string
}

// signIn finds the request's curator: a session cookie, or a curator key
// as a bearer token.
func signIn(ctx context.Context, st *store.Store, r interface {
	Header(string) string
}, cookie string) (signedIn, error) {
	if cookie != "" {
		hash := apikey.Hash(cookie)
		s, err := st.SessionGet(ctx, hash)
		if err == nil {
			return signedIn{curator: s.Curator, session: hash, sessionProject: s.ProjectID}, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return signedIn{}, err
		}
	}
	scheme, secret, ok := strings.Cut(r.Header("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(strings.TrimSpace(secret), KeyPrefix) {
		c, err := st.CuratorByHash(ctx, apikey.Hash(strings.TrimSpace(secret)))
		return signedIn{curator: c}, err
	}
	return signedIn{}, store.ErrNotFound
}

// authenticate finds the request's curator: a session cookie, or a
// curator key as a bearer token.
func authenticate(ctx context.Context, st *store.Store, r interface {
	Header(string) string
}, cookie string) (store.Curator, error) {
	s, err := signIn(ctx, st, r, cookie)
	return s.curator, err
}

// errNoProject is a curator whose every project is archived (or taken
// from them).
var errNoProject = errors.New("no project")

// currentProject is the project a request works in, among projects (the
// curator's): the one asked for by ID (ProjectHeader), else the session's
// choice, else the first. One asked for that is not among them is
// store.ErrNotFound, as for anything of another project, so that IDs do
// not leak; none at all is errNoProject.
func currentProject(projects []store.Project, asked, chosen string) (store.Project, error) {
	find := func(id string) (store.Project, bool) {
		i := slices.IndexFunc(projects, func(p store.Project) bool { return p.ID == id })
		if i < 0 {
			return store.Project{}, false
		}
		return projects[i], true
	}
	if asked != "" {
		if p, ok := find(asked); ok {
			return p, nil
		}
		return store.Project{}, store.ErrNotFound
	}
	if p, ok := find(chosen); ok && chosen != "" {
		return p, nil
	}
	if len(projects) == 0 {
		return store.Project{}, errNoProject
	}
	return projects[0], nil
}

// noProjectMessage answers a curator who works in no live project.
const noProjectMessage = "Your curator key works in no project (its projects were archived or taken away): an admin gives it one with kiln curators add-project."

// requireCurator is the Huma middleware of every curation route but the
// login: without a session or a curator key the answer is 401. It finds the
// project the request works in (currentProject): a project of someone
// else's named in ProjectHeader is 404, and a curator with no project left
// is 403.
func requireCurator(api huma.API, st *store.Store) func(huma.Context, func(huma.Context)) {
	return curatorIn(api, st, true)
}

// curatorIn is requireCurator; without needProject, a curator with no
// project left passes too (to sign out).
func curatorIn(api huma.API, st *store.Store, needProject bool) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		cookie := ""
		if ck, err := huma.ReadCookie(ctx, CookieName); err == nil {
			cookie = ck.Value
		}
		s, err := signIn(ctx.Context(), st, ctx, cookie)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_ = huma.WriteErr(api, ctx, http.StatusUnauthorized,
				"Sign in: a curator key (ck-…) as 'Authorization: Bearer', or a session from POST /v1/curation/session. Batch API keys are not curator keys.")
			return
		case err != nil:
			// The API's renderer logs err with the request's ID and sends
			// only the ID.
			_ = huma.WriteErr(api, ctx, http.StatusInternalServerError, "authenticate a curator", err)
			return
		}
		projects, err := st.CuratorProjects(ctx.Context(), s.curator.ID)
		if err != nil {
			_ = huma.WriteErr(api, ctx, http.StatusInternalServerError, "find a curator's projects", err)
			return
		}
		asked := strings.TrimSpace(ctx.Header(ProjectHeader))
		p, err := currentProject(projects, asked, s.sessionProject)
		switch {
		case err == nil || !needProject:
		case errors.Is(err, store.ErrNotFound):
			_ = huma.WriteErr(api, ctx, http.StatusNotFound, fmt.Sprintf("No project found with id '%s'.", asked))
			return
		default:
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, noProjectMessage)
			return
		}
		next(huma.WithValue(ctx, callerKey{}, caller{curator: s.curator, session: s.session, project: p, projects: projects}))
	}
}

// inProject documents ProjectHeader on a curator route's operation.
func inProject(op huma.Operation) huma.Operation {
	op.Parameters = append(op.Parameters, &huma.Param{Name: ProjectHeader, In: "header", Schema: &huma.Schema{Type: "string"},
		Description: "The project (ID) to work in, among the curator's; default: the one chosen in the workbench session, else the " +
			"curator's first. Another project's is 404."})
	return op
}

// requireAdmin is the Huma middleware of routes for admins only: without
// the role, the answer is 403, saying that only an admin may do what.
func requireAdmin(api huma.API, what string) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if curatorOf(ctx.Context()).Role != RoleAdmin {
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "Only a curation admin may "+what+".")
			return
		}
		next(ctx)
	}
}

// curatorsOnly are the middlewares of every route but the login.
func curatorsOnly(api huma.API, st *store.Store) huma.Middlewares {
	return huma.Middlewares{requireCurator(api, st)}
}

// adminsOnly are the middlewares of the routes that change what is
// curated (imports).
func adminsOnly(api huma.API, st *store.Store) huma.Middlewares {
	return adminsOnlyTo(api, st, "import")
}

// adminsOnlyTo are the middlewares of routes for admins only, which do
// what (in the 403's message).
func adminsOnlyTo(api huma.API, st *store.Store, what string) huma.Middlewares {
	return huma.Middlewares{requireCurator(api, st), requireAdmin(api, what)}
}

// Admin is the curator admin a request comes from: a session cookie of the
// workbench or a curator key as a bearer token, of a curator whose role is
// admin. It is store.ErrNotFound when the request carries neither, and
// ErrNotAdmin when its curator is not an admin. Pages outside the curation
// API that admins alone may see (River UI) check their requests with it.
func Admin(r *http.Request, st *store.Store) (store.Curator, error) {
	cookie := ""
	if ck, err := r.Cookie(CookieName); err == nil {
		cookie = ck.Value
	}
	c, err := authenticate(r.Context(), st, requestHeader{r}, cookie)
	if err != nil {
		return store.Curator{}, err
	}
	if c.Role != RoleAdmin {
		return c, ErrNotAdmin
	}
	return c, nil
}

// ErrNotAdmin is a signed-in curator who is not an admin.
var ErrNotAdmin = errors.New("curation: the curator is not an admin")

// requestHeader gives authenticate a plain request's headers.
type requestHeader struct{ r *http.Request }

func (h requestHeader) Header(name string) string { return h.r.Header.Get(name) }
