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

// CreateCurator stores a curator and returns their key, shown only once.
func CreateCurator(ctx context.Context, st *store.Store, name, role string) (store.Curator, string, error) {
	if role != RoleCurator && role != RoleAdmin {
		return store.Curator{}, "", fmt.Errorf("curation: role %q: want curator or admin", role)
	}
	secret := KeyPrefix + randomToken(24)
	c := store.Curator{ID: ids.New(ids.Curator), Name: name, Role: role, Prefix: secret[:len(KeyPrefix)+4],
		Hash: apikey.Hash(secret), CreatedAt: time.Now().Unix()}
	if err := st.CuratorCreate(ctx, c); err != nil {
		return store.Curator{}, "", err
	}
	return c, secret, nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

type curatorKey struct{}

// curatorOf returns the signed-in curator of a request's context.
func curatorOf(ctx context.Context) store.Curator {
	c, _ := ctx.Value(curatorKey{}).(store.Curator)
	return c
}

// authenticate finds the request's curator: a session cookie, or a
// curator key as a bearer token.
func authenticate(ctx context.Context, st *store.Store, r interface {
	Header(string) string
}, cookie string) (store.Curator, error) {
	if cookie != "" {
		c, err := st.SessionCurator(ctx, apikey.Hash(cookie))
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return c, err
		}
	}
	scheme, secret, ok := strings.Cut(r.Header("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(strings.TrimSpace(secret), KeyPrefix) {
		return st.CuratorByHash(ctx, apikey.Hash(strings.TrimSpace(secret)))
	}
	return store.Curator{}, store.ErrNotFound
}

// requireCurator is the Huma middleware of every curation route but the
// login: without a session or a curator key the answer is 401.
func requireCurator(api huma.API, st *store.Store) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		cookie := ""
		if ck, err := huma.ReadCookie(ctx, CookieName); err == nil {
			cookie = ck.Value
		}
		c, err := authenticate(ctx.Context(), st, ctx, cookie)
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
		next(huma.WithValue(ctx, curatorKey{}, c))
	}
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
