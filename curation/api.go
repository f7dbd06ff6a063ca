package curation

import (
	"log/slog"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Deps are what the curation API needs.
type Deps struct {
	Store    *store.Store
	Bucket   objectstore.Bucket
	Schemas  *conquest.Registry
	Importer *Importer
	// Batches runs the judges' batches; nil leaves judges out.
	Batches *batch.Service
	Log     *slog.Logger
	// SecureCookies marks the session cookie Secure: kiln is reached over
	// https (its public URL says so).
	SecureCookies bool
}

// Register adds the curation routes to api, one resource per file. Every
// route but the login needs a curator (a session cookie or a curator key).
func Register(api huma.API, d Deps) {
	registerSession(api, d)
	registerConquestTypes(api, d)
	registerTasks(api, d)
	registerStats(api, d)
	registerExports(api, d)
	registerImports(api, d)
	registerCurators(api, d)
	registerPairwise(api, d)
	registerLeaderboard(api, d)
	registerAssignment(api, d)
	registerAgreement(api, d)
	registerDatasets(api, d)
	registerJudges(api, d)
}

// SpecRoutes registers the curation routes for the OpenAPI document only:
// their dependencies are empty.
func SpecRoutes(api huma.API) { Register(api, Deps{}) }

// tags are every curation operation's tags.
var tags = []string{"Curation (kiln extension)"}

// listOf is a plain list answer.
type listOf[T any] struct {
	Data []T `json:"data"`
}

// withEnum sets s's enum to values. Types whose values are Go constants
// use it in their TransformSchema, so that the values are listed once.
func withEnum(s *huma.Schema, values ...string) *huma.Schema {
	s.Enum = make([]any, len(values))
	for i, v := range values {
		s.Enum[i] = v
	}
	return s
}
