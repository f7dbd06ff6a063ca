package curation

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// The import routes, for admins: a batch's outputs now (as the import
// function does when it ends, see import.go), and external outputs as
// JSONL or as a Label Studio export (parsed in bulk.go).

func registerImports(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "importCurationBatch", Method: http.MethodPost, Path: "/v1/curation/imports/batches/{batch_id}",
		Summary: "Import a batch now", Tags: tags, Middlewares: adminsOnly(api, d.Store),
		Description: "Imports an ended batch of the project's outputs (as the import function does when it ends); a batch imported before " +
			"adds nothing; another project's batch is 404.",
	}), d.importBatch)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "importCurationJSONL", Method: http.MethodPost, Path: "/v1/curation/imports",
		Summary: "Import external outputs (JSONL)", Tags: tags, Middlewares: adminsOnly(api, d.Store), SkipValidateBody: true,
		Description: "Each line: {`type`, `key`?, `messages`: [...], `model`, `output`: string or JSON, `source`?}. " +
			"Outputs of conquest types are checked against their schema. Bad lines are listed with their number; the rest are imported; " +
			"importing a line twice adds nothing.",
	}), d.importJSONL)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "importLabelStudio", Method: http.MethodPost, Path: "/v1/curation/imports/label_studio",
		Summary: "Import a Label Studio JSON export", Tags: tags, Middlewares: adminsOnly(api, d.Store), SkipValidateBody: true,
		Description: "Label Studio's JSON export: each task's data (prompt, or messages) is the prompt, its predictions the outputs " +
			"(model_version names the model), and an annotation with ground_truth becomes the gold star. Query type names the tasks' type.",
	}), d.importLabelStudio)
}

// ImportResult answers an import.
type ImportResult struct {
	Object  string        `json:"object" enum:"curation.import"`
	Tasks   int64         `json:"tasks" doc:"New tasks."`
	Outputs int64         `json:"outputs" doc:"New outputs."`
	Already bool          `json:"already_imported"`
	Errors  []importError `json:"errors,omitempty"`
}

// importError is a line or task that was not imported. It is an alias of
// an unnamed struct because the OpenAPI document names the schema of an
// unnamed one (Item); a named type would rename it.
type importError = struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

type importOutput struct {
	Body ImportResult
}

type importBatchInput struct {
	BatchID string `path:"batch_id"`
}

func (d Deps) importBatch(ctx context.Context, in *importBatchInput) (*importOutput, error) {
	b, err := d.Store.BatchGet(ctx, in.BatchID)
	if err == nil && b.ProjectID != projectOf(ctx) {
		err = store.ErrNotFound // another project's: as if there were none
	}
	var res store.ImportResult
	if err == nil {
		res, err = d.Importer.ImportBatch(ctx, in.BatchID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierror.NotFound("batch", in.BatchID)
	}
	if err != nil {
		return nil, err
	}
	return &importOutput{ImportResult{Object: "curation.import", Tasks: res.Tasks, Outputs: res.Outputs, Already: res.Already}}, nil
}

type jsonlImportInput struct {
	RawBody []byte `contentType:"application/jsonl"`
}

func (d Deps) importJSONL(ctx context.Context, in *jsonlImportInput) (*importOutput, error) {
	items, res := d.parseBulk(projectOf(ctx), in.RawBody)
	r, err := d.Store.CurationImport(ctx, "", items)
	if err != nil {
		return nil, err
	}
	res.Tasks, res.Outputs = r.Tasks, r.Outputs
	return &importOutput{res}, nil
}

type labelStudioImportInput struct {
	Type    string `query:"type" doc:"The tasks' type (default label_studio)."`
	RawBody []byte `contentType:"application/json"`
}

func (d Deps) importLabelStudio(ctx context.Context, in *labelStudioImportInput) (*importOutput, error) {
	typ := in.Type
	if typ == "" {
		typ = "label_studio"
	}
	if err := checkTaskType(typ); err != nil {
		return nil, apierror.Invalid("type", apierror.Sentence(err))
	}
	res, err := d.importLabelStudioTasks(ctx, typ, in.RawBody)
	if err != nil {
		return nil, err
	}
	return &importOutput{res}, nil
}
