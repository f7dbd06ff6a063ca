// Package api is kiln's HTTP interface: OpenAI's Files, Batches and Models
// routes under /v1 on Huma v2, with OpenAI's error envelope everywhere, plus
// kiln's documented extensions. The generated openapi.yaml beside this file
// is committed; `kiln openapi` prints it.
package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Deps are what the routes need.
type Deps struct {
	// Batches is the lifecycle of batches, files and uploads.
	Batches *batch.Service
	Store   *store.Store
	Bucket  objectstore.Bucket
	Keys    *apikey.Checker
	Log     *slog.Logger
	// Version is kiln's version, shown in the OpenAPI document.
	Version string
	// MaxFileBytes bounds an upload through POST /v1/files.
	MaxFileBytes int64
	// MaxLineBytes bounds a batch input line.
	MaxLineBytes int
	// MaxPartBytes bounds one upload part.
	MaxPartBytes int64
	// UploadTTL is how long an upload takes parts before it expires.
	UploadTTL time.Duration
	// DownloadRedirect answers file downloads with a redirect to a
	// presigned URL of the object store.
	DownloadRedirect bool
	// BodyIdleTimeout and BodyMinRate pace request bodies (guardBodies);
	// an idle timeout of 0 turns the guard off.
	BodyIdleTimeout time.Duration
	BodyMinRate     int
	// Conquests are the conquest type definitions.
	Conquests *conquest.Registry
	// Webhooks and Inbox are the functions the API manages.
	Webhooks *functions.Webhooks
	Inbox    *functions.Inbox
	// WebhookAllowPrivate accepts webhook URLs on private addresses.
	WebhookAllowPrivate bool
	// Extra registers more routes on the same API and mux (metrics, UI).
	Extra func(api huma.API, mux *http.ServeMux)
	// RiverUI is River UI's handler, served to admins at RiverUIPrefix
	// (river_ui.go). Default: none.
	RiverUI       http.Handler
	RiverUIPrefix string
	// Admin checks the admin keys of the Administration API
	// (/v1/organization/..., organization.go). Default: the stored admin
	// keys of Store.
	Admin *apikey.AdminChecker
	// KeyRotationGrace is how long a key rotated through the
	// Administration API keeps working beside its successor.
	KeyRotationGrace time.Duration
}

// New builds the HTTP handler and the Huma API (for the OpenAPI document).
func New(d Deps) (http.Handler, huma.API) {
	mux := http.NewServeMux()
	cfg := Config(d.Version)
	install := useOpenAIErrors(&cfg, d.Log)
	api := humago.New(mux, cfg)
	install(api)
	registerFiles(api, d)
	registerUploads(api, d)
	registerBatches(api, d)
	registerBatchExtensions(api, d)
	registerModels(api, d)
	registerAgents(api, d)
	registerWebhooks(api, d)
	registerEvents(api, d)
	registerFunctionInvocations(api, d)
	registerObjectEvents(api, d)
	registerConquests(api, d)
	registerOrganization(api, d)
	if d.Extra != nil {
		d.Extra(api, mux)
	}
	documentErrors(api)
	registerDocs(mux)
	registerRiverUI(mux, d)
	// The folder object store's presigned URLs: the signature is the
	// credential, so no API key; a part's URL dies with its upload.
	mux.Handle(objectstore.SignedPath, objectstore.HandlerWith(d.Bucket, &objectstore.HandlerOpts{Authorize: d.Batches.AuthorizeObject}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/docs", http.StatusFound)
			return
		}
		apierror.Write(w, apierror.New(http.StatusNotFound, "unknown_url", "", "Invalid URL ("+r.Method+" "+r.URL.Path+")"))
	})
	return withRequestID(authenticate(d, guardBodies(mux, d.BodyIdleTimeout, d.BodyMinRate))), api
}

// Config is the Huma configuration: OpenAPI 3.1, docs at /docs, the
// document at /openapi.yaml, bearer auth, and no $schema links in bodies
// (OpenAI's clients do not expect them).
func Config(version string) huma.Config {
	cfg := huma.DefaultConfig("kiln", version)
	cfg.CreateHooks = nil
	cfg.DocsPath = "" // served from the binary instead of a CDN: docs.go
	cfg.Info.Description = "kiln: an OpenAI-compatible Batch API for local LLMs. " +
		"Routes under /v1 follow OpenAI's API; kiln's extensions are marked as such."
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An API key made by `kiln keys create`."},
	}
	cfg.Security = []map[string][]string{{"bearer": {}}}
	return cfg
}

// authenticate requires a live API key on every /v1 route.
func authenticate(d Deps, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Curation routes take curator keys and sessions, not API keys:
		// they check them themselves.
		if (!strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/v1") || strings.HasPrefix(r.URL.Path, "/v1/curation/") {
			next.ServeHTTP(w, r)
			return
		}
		// The Administration API takes admin keys only (organization.go).
		if isOrganization(r.URL.Path) {
			d.authenticateAdmin(w, r, next)
			return
		}
		// The scheme is case-insensitive (RFC 7235).
		scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			apierror.Write(w, apierror.New(http.StatusUnauthorized, "missing_api_key", "", "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'."))
			return
		}
		who, err := d.Keys.Check(r.Context(), strings.TrimSpace(secret))
		switch {
		case err == nil && !auth.Allows(who.Scopes, r.Method, r.URL.Path):
			apierror.Write(w, apierror.New(http.StatusUnauthorized, "insufficient_scope", "",
				fmt.Sprintf("You have insufficient permissions for this operation: the key's scopes are %s.", strings.Join(who.Scopes, ", "))))
		case err == nil:
			next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), who)))
		case err == apikey.ErrInvalid:
			apierror.Write(w, apierror.New(http.StatusUnauthorized, "invalid_api_key", "", "Incorrect API key provided: "+masked(secret)+"."))
		default:
			apierror.Write(w, internalError(r, d.Log, err))
		}
	})
}

func masked(s string) string {
	if len(s) <= 8 {
		return "****"
	}
	return s[:8] + "****" + s[len(s)-4:]
}
