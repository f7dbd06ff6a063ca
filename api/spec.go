package api

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// Spec is the OpenAPI document of kiln's API, as YAML, with the routes that
// other packages add (routes registers them: the curation routes). It needs
// no database: the routes are registered against empty dependencies and
// never called.
func Spec(routes ...func(huma.API)) ([]byte, error) {
	_, api := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "v1",
		Extra: func(api huma.API, _ *http.ServeMux) {
			for _, r := range routes {
				r(api)
			}
		}})
	return api.OpenAPI().YAML()
}
