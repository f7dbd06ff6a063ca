// Package auth is who a request acts for: the principal an API key
// resolves to (its project and scopes), carried in the request's context
// from the API's authentication to the domain, which scopes every read and
// write to the principal's project. Work that no request started (jobs, the
// inbox) acts for the default project.
package auth

import (
	"context"
	"slices"
	"strings"
)

// DefaultProject holds everything made without a project: what existed
// before projects, the inbox's imports, KILN_API_KEY's work. Its ID is
// store.DefaultProject's.
const DefaultProject = "proj_default"

// Scopes a project key may be limited to. A key with no scopes has them
// all.
const (
	// ScopeRead reads: GET on the project's /v1 routes.
	ScopeRead = "api.read"
	// ScopeBatches writes files, uploads and batches (and reads them).
	ScopeBatches = "api.batches"
	// ScopeAgent is for a kiln agent on another host: it runs no route of
	// the public API today (agents reach the database directly).
	ScopeAgent = "api.agent"
)

// Scopes are the scopes there are.
var Scopes = []string{ScopeRead, ScopeBatches, ScopeAgent}

// Principal is who a request acts for.
type Principal struct {
	// KeyID is the API key's ID; "" for KILN_API_KEY.
	KeyID string
	// ProjectID is the project the key belongs to.
	ProjectID string
	// Scopes limit the key; none means every scope.
	Scopes []string
}

type principalKey struct{}

// NewContext is ctx acting for p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext is the principal ctx acts for, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Project is the project ctx acts for: its principal's, or the default
// project for work that no request started.
func Project(ctx context.Context) string {
	if p, ok := FromContext(ctx); ok && p.ProjectID != "" {
		return p.ProjectID
	}
	return DefaultProject
}

// Sees reports whether ctx may see a resource of project: a request sees
// its own project's resources only (anything else is "not found", as
// OpenAI answers, so that IDs do not leak); work that no request started
// (jobs, the agent) sees every project's.
func Sees(ctx context.Context, project string) bool {
	p, ok := FromContext(ctx)
	return !ok || p.ProjectID == project
}

// Allows reports whether a key with scopes may call method on path (a /v1
// route).
func Allows(scopes []string, method, path string) bool {
	if len(scopes) == 0 {
		return true
	}
	read := method == "GET" || method == "HEAD"
	if read && slices.Contains(scopes, ScopeRead) {
		return true
	}
	if slices.Contains(scopes, ScopeBatches) {
		for _, p := range []string{"/v1/files", "/v1/uploads", "/v1/batches", "/v1/models"} {
			if path == p || strings.HasPrefix(path, p+"/") {
				return true
			}
		}
	}
	return false
}

// ValidScopes reports the first scope that is not one of Scopes.
func ValidScopes(scopes []string) (string, bool) {
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return s, false
		}
	}
	return "", true
}
