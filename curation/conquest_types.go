package curation

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// The conquest types route: the types the workbench filters tasks by.

func registerConquestTypes(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "curationTypes", Method: http.MethodGet, Path: "/v1/curation/types",
		Summary: "Conquest types", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.listConquestTypes)
}

// ConquestType is a conquest type as the workbench lists it.
type ConquestType struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Version int    `json:"version"`
}

type conquestTypeListOutput struct {
	Body listOf[ConquestType]
}

func (d Deps) listConquestTypes(_ context.Context, _ *struct{}) (*conquestTypeListOutput, error) {
	out := &conquestTypeListOutput{}
	for _, def := range d.Schemas.Latest() {
		out.Body.Data = append(out.Body.Data, ConquestType{ID: def.ID, Title: def.Title, Version: def.Version})
	}
	return out, nil
}
