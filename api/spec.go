package api

import (
	"io"
	"log/slog"
)

// Spec is the OpenAPI document of kiln's API, as YAML. It needs no database:
// the routes are registered against empty dependencies and never called.
func Spec() ([]byte, error) {
	_, api := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "v1"})
	return api.OpenAPI().YAML()
}
