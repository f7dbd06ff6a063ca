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

	huma.Register(api, huma.Operation{
		OperationID: "curationSession", Method: http.MethodGet, Path: "/v1/curation/session",
		Summary: "The signed-in curator", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}, d.currentSession)

	huma.Register(api, huma.Operation{
		OperationID: "curationLogout", Method: http.MethodDelete, Path: "/v1/curation/session",
		Summary: "Sign out", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}, d.logout)
}

// sessionBody is who is signed in.
type sessionBody struct {
	Curator struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Role string `json:"role"`
	} `json:"curator"`
}

func sessionOf(c store.Curator) sessionBody {
	var b sessionBody
	b.Curator.ID, b.Curator.Name, b.Curator.Role = c.ID, c.Name, c.Role
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
	token := randomToken(32)
	exp := time.Now().Add(SessionTTL)
	if err := d.Store.SessionCreate(ctx, apikey.Hash(token), c.ID, exp); err != nil {
		return nil, err
	}
	return &sessionOutput{SetCookie: d.sessionCookie(token, exp), Body: sessionOf(c)}, nil
}

type currentSessionOutput struct {
	Body sessionBody
}

func (d Deps) currentSession(ctx context.Context, _ *struct{}) (*currentSessionOutput, error) {
	return &currentSessionOutput{sessionOf(curatorOf(ctx))}, nil
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
