package curation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// The export routes: start an export (a job, see export.go), follow its
// progress and download it, and list recent ones.

func registerExports(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "createCurationExport", Method: http.MethodPost, Path: "/v1/curation/exports",
		Summary: "Start an export", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Exports the project's tasks. Runs as a job; poll GET /v1/curation/exports/{id} for its progress and, once completed, a presigned download_url.",
	}), d.createExport)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "retrieveCurationExport", Method: http.MethodGet, Path: "/v1/curation/exports/{export_id}",
		Summary: "An export's progress and download link", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.getExport)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurationExports", Method: http.MethodGet, Path: "/v1/curation/exports",
		Summary: "Recent exports", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.listExports)
}

// exportFormat is an export's format, one of Formats.
type exportFormat string

// TransformSchema lists Formats as the schema's enum.
func (exportFormat) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, Formats...)
}

// exportStatuses are an export's statuses, listed once: the schema's enum
// comes from here.
var exportStatuses = []string{store.ExportQueued, store.ExportRunning, store.ExportCompleted, store.ExportFailed}

// exportStatus is an export's status.
type exportStatus string

// TransformSchema lists exportStatuses as the schema's enum.
func (exportStatus) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, exportStatuses...)
}

// Export is an export as the API shows it.
type Export struct {
	ID          string       `json:"id"`
	Object      string       `json:"object" enum:"curation.export"`
	Format      string       `json:"format"`
	Status      exportStatus `json:"status"`
	Done        int64        `json:"done" doc:"Tasks read so far."`
	Total       int64        `json:"total" doc:"Tasks to read."`
	Rows        int64        `json:"rows" doc:"Examples written."`
	FileID      *string      `json:"file_id"`
	DownloadURL *string      `json:"download_url" doc:"A presigned URL of the file, valid 15 minutes; null until completed."`
	Error       string       `json:"error"`
	CreatedAt   int64        `json:"created_at"`
	CompletedAt *int64       `json:"completed_at"`
}

func (d Deps) exportOf(ctx context.Context, e store.CurationExport) Export {
	out := Export{ID: e.ID, Object: "curation.export", Format: e.Format, Status: exportStatus(e.Status), Done: e.Done, Total: e.Total, Rows: e.Rows,
		FileID: e.FileID, Error: e.Error, CreatedAt: e.CreatedAt, CompletedAt: e.CompletedAt}
	if e.FileID != nil {
		if f, err := d.Store.FileGet(ctx, *e.FileID); err == nil {
			if u, err := d.Bucket.PresignGet(ctx, f.ObjectKey, 15*time.Minute, f.Filename); err == nil {
				out.DownloadURL = &u
			}
		}
	}
	return out
}

// createCurationExportRequest is named after its operation, as Huma names
// an anonymous body in the OpenAPI document.
type createCurationExportRequest struct {
	Format  exportFormat `json:"format"`
	Type    string       `json:"type,omitempty"`
	Source  string       `json:"source,omitempty" enum:"gold,corrected,both,"`
	PerType int          `json:"per_type,omitempty" minimum:"0" maximum:"1000"`
	Dedupe  bool         `json:"dedupe,omitempty" doc:"Keep one task of each cluster of near-duplicate inputs (the first)."`
	// FileFormat: parquet is one Parquet file of typed rows (not for label_studio).
	FileFormat fileFormat `json:"file_format,omitempty" doc:"jsonl (default) or parquet."`
}

type createExportInput struct {
	Body createCurationExportRequest
}

type exportOutput struct {
	Body Export
}

func (d Deps) createExport(ctx context.Context, in *createExportInput) (*exportOutput, error) {
	o := ExportOptions{Format: string(in.Body.Format), Type: in.Body.Type, Source: in.Body.Source, PerType: in.Body.PerType,
		Dedupe: in.Body.Dedupe, FileFormat: string(in.Body.FileFormat)}
	if err := checkFileFormat(o); err != nil {
		return nil, err
	}
	if err := d.exportable(ctx, o); err != nil {
		return nil, err
	}
	opts, _ := json.Marshal(o)
	e := store.CurationExport{ID: ids.New(ids.Export), ProjectID: projectOf(ctx), Format: o.Format, Options: opts, Status: store.ExportQueued,
		Curator: curatorOf(ctx).Name, CreatedAt: time.Now().Unix()}
	if err := d.Store.ExportCreate(ctx, e, store.Job{Args: ExportArgs{ExportID: e.ID}, Opts: &river.InsertOpts{}}); err != nil {
		return nil, err
	}
	return &exportOutput{d.exportOf(ctx, e)}, nil
}

type exportInput struct {
	ExportID string `path:"export_id"`
}

func (d Deps) getExport(ctx context.Context, in *exportInput) (*exportOutput, error) {
	e, err := d.Store.ExportGet(ctx, in.ExportID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && e.ProjectID != projectOf(ctx)) {
		return nil, apierror.NotFound("export", in.ExportID)
	}
	if err != nil {
		return nil, err
	}
	return &exportOutput{d.exportOf(ctx, e)}, nil
}

type exportListOutput struct {
	Body listOf[Export]
}

func (d Deps) listExports(ctx context.Context, _ *struct{}) (*exportListOutput, error) {
	list, err := d.Store.ExportList(ctx, projectOf(ctx), 50)
	if err != nil {
		return nil, err
	}
	out := &exportListOutput{}
	out.Body.Data = []Export{}
	for _, e := range list {
		out.Body.Data = append(out.Body.Data, d.exportOf(ctx, e))
	}
	return out, nil
}

// errFound stops a look for an exportable task at the first.
var errFound = errors.New("found")

// exportable refuses at once, with 400 empty_export, an export whose
// selection gives its format no row: openai_sft without a gold or
// corrected output, a preference format without a pair of differently
// rated outputs, icl without gold. It asks the store for the fewest tasks
// that could qualify and stops at the first that does.
func (d Deps) exportable(ctx context.Context, o ExportOptions) error {
	f := store.TaskFilter{Project: projectOf(ctx), Type: o.Type}
	yes := true
	why := "The selection holds no task: there is nothing to export."
	switch {
	case o.Format == FormatICL || (o.Format == FormatSFT && o.Source == "gold"):
		f.Gold = &yes
		why = "No task of the selection has a gold output: star the best output of some tasks first."
	case o.Format == FormatSFT && o.Source == "corrected":
		why = "No task of the selection has a corrected output: correct some outputs first."
	case o.Format == FormatSFT:
		why = "No task of the selection has a gold or corrected output: star or correct some outputs first."
	case o.Format == FormatDPO || o.Format == FormatTRL:
		prefs, err := preferred(ctx, d.Store, projectOf(ctx), o)
		if err != nil || len(prefs) > 0 {
			return err
		}
		f.Rated = &yes
		why = "No task of the selection has a pairwise verdict for one output or two outputs rated differently: compare outputs " +
			"in pairs, or rate at least two outputs of a task, one higher than the other."
	}
	n, err := d.Store.CurationCount(ctx, f)
	if err != nil {
		return err
	}
	if n > 0 && (o.Format == FormatLabelStudio || f.Gold != nil || (o.Format == FormatSFT && o.Source != "corrected" && d.anyGold(ctx, f))) {
		return nil
	}
	if n > 0 {
		w := newWriter(io.Discard, o)
		err = d.Store.CurationEach(ctx, f, func(t store.CurationTask, outs []store.CurationOutput) error {
			if rows, err := w.task(t, outs); err != nil || rows > 0 {
				return cmp.Or(err, errFound)
			}
			return nil
		})
		if errors.Is(err, errFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return apierror.InvalidCode("", "empty_export", why)
}

// anyGold reports whether a task of f has a gold output (which openai_sft
// takes by default); an error counts as no, and the slower look follows.
func (d Deps) anyGold(ctx context.Context, f store.TaskFilter) bool {
	yes := true
	f.Gold = &yes
	n, err := d.Store.CurationCount(ctx, f)
	return err == nil && n > 0
}
