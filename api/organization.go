package api

import (
	"errors"
	"net/http"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/store"
)

// The Administration API, on OpenAI's shape (/v1/organization/...): its
// routes take admin keys only, and API keys never open them. Each request
// acts for its admin key: the store records the key as the actor of every
// change it makes (store.WithActor), in the audit log.

// adminSecurity is the security requirement of every Administration API
// route: an admin key, not an API key.
var adminSecurity = []map[string][]string{{"admin": {}}}

// registerOrganization registers the Administration API's routes.
func registerOrganization(api huma.API, d Deps) {
	api.OpenAPI().Components.SecuritySchemes["admin"] = &huma.SecurityScheme{
		Type: "http", Scheme: "bearer",
		Description: "An admin key: KILN_ADMIN_KEY or one made by `kiln admin-keys create`. It opens /v1/organization/... and nothing else.",
	}
	registerProjects(api, d)
	registerServiceAccounts(api, d)
	registerProjectAPIKeys(api, d)
	registerRateLimits(api, d)
	registerAuditLogs(api, d)
	registerUsage(api, d)
	registerAdminExtensions(api, d)
}

// isOrganization reports whether path is one of the Administration API's.
func isOrganization(path string) bool {
	return path == "/v1/organization" || strings.HasPrefix(path, "/v1/organization/")
}

// authenticateAdmin requires a live admin key, and serves next acting for
// it. An API key, a curator key or anything else is refused with 401, as
// OpenAI refuses a project key on its Administration API.
func (d Deps) authenticateAdmin(w http.ResponseWriter, r *http.Request, next http.Handler) {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		apierror.Write(w, apierror.New(http.StatusUnauthorized, "missing_api_key", "",
			"You didn't provide an API key. Provide an admin key in the Authorization header as 'Bearer YOUR_ADMIN_KEY'."))
		return
	}
	admin := d.Admin
	if admin == nil {
		admin = apikey.NewAdminChecker(d.Store, "")
	}
	who, err := admin.Check(r.Context(), secret)
	switch {
	case err == nil:
		next.ServeHTTP(w, r.WithContext(store.WithActor(r.Context(), who)))
	case errors.Is(err, apikey.ErrInvalid):
		if d.Keys != nil {
			if _, kerr := d.Keys.Check(r.Context(), secret); kerr == nil {
				apierror.Write(w, apierror.New(http.StatusUnauthorized, "", "",
					"You have insufficient permissions for this operation. Missing scopes: api.management.read. "+
						"The Administration API takes an admin key (KILN_ADMIN_KEY, or kiln admin-keys create), not an API key."))
				return
			}
		}
		apierror.Write(w, apierror.New(http.StatusUnauthorized, "invalid_api_key", "", "Incorrect API key provided: "+masked(secret)+"."))
	default:
		apierror.Write(w, internalError(r, d.Log, err))
	}
}

// optionalParam is a query parameter that may be absent, telling absent
// from zero (Huma's documented wrapper).
type optionalParam[T any] struct {
	Value T
	IsSet bool
}

func (o optionalParam[T]) Schema(r huma.Registry) *huma.Schema {
	return huma.SchemaFromType(r, reflect.TypeOf(o.Value))
}

func (o *optionalParam[T]) Receiver() reflect.Value { return reflect.ValueOf(o).Elem().Field(0) }

func (o *optionalParam[T]) OnParamSet(isSet bool, _ any) { o.IsSet = isSet }

// ptr is v's address, or nil when the parameter was absent.
func (o optionalParam[T]) ptr() *T {
	if !o.IsSet {
		return nil
	}
	return &o.Value
}
