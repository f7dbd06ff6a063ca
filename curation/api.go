package curation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Deps are what the curation API needs.
type Deps struct {
	Store    *store.Store
	Bucket   objectstore.Bucket
	Schemas  *conquest.Registry
	Importer *Importer
	Log      *slog.Logger
}

// TaskSummary is a task in a list.
type TaskSummary struct {
	ID              string  `json:"id"`
	Type            string  `json:"type"`
	ConquestVersion int64   `json:"conquest_version"`
	Key             string  `json:"key"`
	Status          string  `json:"status" enum:"pending,reviewed,skipped"`
	GoldOutputID    *string `json:"gold_output_id"`
	Outputs         int64   `json:"outputs"`
	Preview         string  `json:"preview" doc:"The start of the prompt's last message."`
	Version         int64   `json:"version"`
	UpdatedAt       int64   `json:"updated_at"`
}

// TaskList is a page of tasks.
type TaskList struct {
	Object  string        `json:"object" enum:"list"`
	Data    []TaskSummary `json:"data"`
	HasMore bool          `json:"has_more"`
	LastID  *string       `json:"last_id"`
}

// Output is one model's answer as curators see it.
type Output struct {
	ID               string  `json:"id"`
	Model            string  `json:"model"`
	BatchID          string  `json:"batch_id"`
	Content          string  `json:"content"`
	Parsed           any     `json:"parsed" doc:"The answer as JSON; null when it is not JSON."`
	Valid            bool    `json:"valid"`
	Reason           string  `json:"reason"`
	Message          string  `json:"message"`
	InputTokens      int64   `json:"input_tokens"`
	OutputTokens     int64   `json:"output_tokens"`
	LatencyMS        *int64  `json:"latency_ms" doc:"How long the model took to answer; null when unknown (imports from elsewhere)."`
	Rating           *int64  `json:"rating"`
	Corrected        *string `json:"corrected"`
	CorrectedValid   *bool   `json:"corrected_valid" doc:"false: saved although it does not match the schema."`
	CorrectedMessage string  `json:"corrected_message"`
}

// History is one change of a task.
type History struct {
	ID      string          `json:"id"`
	Curator string          `json:"curator"`
	Action  string          `json:"action"`
	Detail  json.RawMessage `json:"detail"`
	At      int64           `json:"at"`
}

// Task is a task with its outputs side by side.
type Task struct {
	TaskSummary
	Notes     string              `json:"notes"`
	Input     json.RawMessage     `json:"input"`
	Data      map[string]any      `json:"data" doc:"The data record, when known; null otherwise."`
	Outputs   []Output            `json:"outputs"`
	History   []History           `json:"history"`
	Rendering *conquest.Rendering `json:"rendering" doc:"The conquest type's hints for curators; null for other types."`
}

func preview(input json.RawMessage) string {
	var in struct {
		Messages []struct {
			Content any `json:"content"`
		} `json:"messages"`
	}
	_ = json.Unmarshal(input, &in)
	if len(in.Messages) == 0 {
		return ""
	}
	s, _ := in.Messages[len(in.Messages)-1].Content.(string)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

func summaryOf(t store.CurationTask) TaskSummary {
	return TaskSummary{ID: t.ID, Type: t.ConquestType, ConquestVersion: t.ConquestVersion, Key: t.Key, Status: t.Status,
		GoldOutputID: t.GoldOutputID, Outputs: t.Outputs, Preview: preview(t.Input), Version: t.Version, UpdatedAt: t.UpdatedAt}
}

func (d Deps) taskOf(t store.CurationTask, outs []store.CurationOutput, hist []store.HistoryEntry) Task {
	out := Task{TaskSummary: summaryOf(t), Notes: t.Notes, Input: t.Input, Outputs: make([]Output, len(outs)), History: make([]History, len(hist))}
	for i, o := range outs {
		var parsed any
		if json.Unmarshal([]byte(o.Content), &parsed) != nil {
			parsed = nil
		}
		out.Outputs[i] = Output{ID: o.ID, Model: o.Model, BatchID: o.BatchID, Content: o.Content, Parsed: parsed, Valid: o.Valid,
			Reason: o.Reason, Message: o.Message, InputTokens: o.InputTokens, OutputTokens: o.OutputTokens, LatencyMS: o.LatencyMS, Rating: o.Rating,
			Corrected: o.Corrected, CorrectedValid: o.CorrectedValid, CorrectedMessage: o.CorrectedMessage}
	}
	for i, h := range hist {
		out.History[i] = History{ID: h.ID, Curator: h.Curator, Action: h.Action, Detail: h.Detail, At: h.At}
	}
	if def, err := d.Schemas.Get(t.ConquestType, int(t.ConquestVersion)); err == nil {
		out.Rendering = &def.Rendering
	}
	return out
}

// withData adds the task's data record, when its requests were built
// through the API.
func (d Deps) withData(ctx context.Context, t Task) Task {
	raw, err := d.Store.ConquestRecordGet(ctx, t.Type, t.Key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			d.Log.WarnContext(ctx, "conquest record", "task", t.ID, "err", err)
		}
		return t
	}
	_ = json.Unmarshal(raw, &t.Data)
	return t
}

// Export is an export as the API shows it.
type Export struct {
	ID          string  `json:"id"`
	Object      string  `json:"object" enum:"curation.export"`
	Format      string  `json:"format"`
	Status      string  `json:"status" enum:"queued,running,completed,failed"`
	Done        int64   `json:"done" doc:"Tasks read so far."`
	Total       int64   `json:"total" doc:"Tasks to read."`
	Rows        int64   `json:"rows" doc:"Examples written."`
	FileID      *string `json:"file_id"`
	DownloadURL *string `json:"download_url" doc:"A presigned URL of the file, valid 15 minutes; null until completed."`
	Error       string  `json:"error"`
	CreatedAt   int64   `json:"created_at"`
	CompletedAt *int64  `json:"completed_at"`
}

func (d Deps) exportOf(ctx context.Context, e store.CurationExport) Export {
	out := Export{ID: e.ID, Object: "curation.export", Format: e.Format, Status: e.Status, Done: e.Done, Total: e.Total, Rows: e.Rows,
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

func notFound(kind, id string) error { return apierror.NotFound(kind, id) }

func withCode(status int, code, msg string) error { return apierror.New(status, code, "", msg) }

type boolQuery string

func (b boolQuery) ptr() *bool {
	switch b {
	case "true":
		v := true
		return &v
	case "false":
		v := false
		return &v
	}
	return nil
}

// ConquestType is a conquest type as the workbench lists it.
type ConquestType struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Version int    `json:"version"`
}

// listOf is a plain list answer.
type listOf[T any] struct {
	Data []T `json:"data"`
}

// sessionCookie is the UI's session cookie: HttpOnly, SameSite=Strict.
func sessionCookie(token string, expires time.Time) http.Cookie {
	return http.Cookie{Name: CookieName, Value: token, Path: "/", Expires: expires, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// Register adds the curation routes to api. Every route but the login
// needs a curator (a session cookie or a curator key).
func Register(api huma.API, d Deps) {
	tags := []string{"Curation (kiln extension)"}
	auth := huma.Middlewares{requireCurator(api, d.Store)}
	admin := huma.Middlewares{requireCurator(api, d.Store), requireAdmin(api)}

	type sessionBody struct {
		Curator struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Role string `json:"role"`
		} `json:"curator"`
	}
	sessionOf := func(c store.Curator) sessionBody {
		var b sessionBody
		b.Curator.ID, b.Curator.Name, b.Curator.Role = c.ID, c.Name, c.Role
		return b
	}
	// sessionOutput answers sign-in and sign-out: the cookie, and who.
	type sessionOutput struct {
		SetCookie http.Cookie `header:"Set-Cookie"`
		Body      sessionBody
	}
	huma.Register(api, huma.Operation{
		OperationID: "curationLogin", Method: http.MethodPost, Path: "/v1/curation/session",
		Summary: "Sign in with a curator key", Tags: tags,
		Description: "Answers a session cookie (HttpOnly, SameSite=Strict) for the web UI.",
	}, func(ctx context.Context, in *struct {
		Body struct {
			Key string `json:"key" minLength:"1"`
		}
	}) (*sessionOutput, error) {
		c, err := d.Store.CuratorByHash(ctx, apikey.Hash(strings.TrimSpace(in.Body.Key)))
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierror.New(http.StatusUnauthorized, "invalid_curator_key", "", "That is not a curator key.")
		}
		if err != nil {
			return nil, err
		}
		token := randomToken(32)
		exp := time.Now().Add(SessionTTL)
		if err := d.Store.SessionCreate(ctx, apikey.Hash(token), c.ID, exp); err != nil {
			return nil, err
		}
		return &sessionOutput{SetCookie: sessionCookie(token, exp), Body: sessionOf(c)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "curationSession", Method: http.MethodGet, Path: "/v1/curation/session",
		Summary: "The signed-in curator", Tags: tags, Middlewares: auth,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body sessionBody }, error) {
		return &struct{ Body sessionBody }{sessionOf(curatorOf(ctx))}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "curationLogout", Method: http.MethodDelete, Path: "/v1/curation/session",
		Summary: "Sign out", Tags: tags, Middlewares: auth,
	}, func(ctx context.Context, in *struct {
		Session http.Cookie `cookie:"kiln_curation"`
	}) (*sessionOutput, error) {
		if in.Session.Value != "" {
			if err := d.Store.SessionDelete(ctx, apikey.Hash(in.Session.Value)); err != nil {
				return nil, err
			}
		}
		gone := sessionCookie("", time.Time{})
		gone.MaxAge = -1
		return &sessionOutput{SetCookie: gone}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "curationTypes", Method: http.MethodGet, Path: "/v1/curation/types",
		Summary: "Conquest types", Tags: tags, Middlewares: auth,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body listOf[ConquestType] }, error) {
		out := &struct{ Body listOf[ConquestType] }{}
		for _, def := range d.Schemas.Latest() {
			out.Body.Data = append(out.Body.Data, ConquestType{ID: def.ID, Title: def.Title, Version: def.Version})
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listCurationTasks", Method: http.MethodGet, Path: "/v1/curation/tasks",
		Summary: "List tasks", Tags: tags, Middlewares: auth,
		Description: "Newest first, with keyset pagination (after = the last task ID of the previous page).",
	}, func(ctx context.Context, in *struct {
		Type    string    `query:"type"`
		Model   string    `query:"model"`
		Status  string    `query:"status" enum:"pending,reviewed,skipped,"`
		Gold    boolQuery `query:"gold" enum:"true,false,"`
		Rated   boolQuery `query:"rated" enum:"true,false,"`
		Invalid boolQuery `query:"invalid" enum:"true,false," doc:"true: tasks with an output that is not valid against the schema."`
		Q       string    `query:"q" maxLength:"200" doc:"Text to find in the prompt."`
		After   string    `query:"after"`
		Limit   int       `query:"limit" minimum:"1" maximum:"200" default:"50"`
	}) (*struct{ Body TaskList }, error) {
		f := store.TaskFilter{Type: in.Type, Model: in.Model, Status: in.Status, Gold: in.Gold.ptr(), Rated: in.Rated.ptr(),
			Invalid: in.Invalid.ptr(), Text: in.Q}
		list, more, err := d.Store.CurationTaskList(ctx, f, in.After, in.Limit)
		if err != nil {
			return nil, err
		}
		out := TaskList{Object: "list", Data: make([]TaskSummary, len(list)), HasMore: more}
		for i, t := range list {
			out.Data[i] = summaryOf(t)
		}
		if len(list) > 0 {
			out.LastID = &list[len(list)-1].ID
		}
		return &struct{ Body TaskList }{out}, nil
	})

	type taskID struct {
		TaskID string `path:"task_id"`
	}
	huma.Register(api, huma.Operation{
		OperationID: "retrieveCurationTask", Method: http.MethodGet, Path: "/v1/curation/tasks/{task_id}",
		Summary: "A task with its outputs side by side", Tags: tags, Middlewares: auth,
	}, func(ctx context.Context, in *taskID) (*struct{ Body Task }, error) {
		t, outs, hist, err := d.Store.CurationTaskGet(ctx, in.TaskID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("task", in.TaskID)
		}
		if err != nil {
			return nil, err
		}
		return &struct{ Body Task }{d.withData(ctx, d.taskOf(t, outs, hist))}, nil
	})

	type outputAnnotation struct {
		ID              string  `json:"id"`
		Rating          *int64  `json:"rating,omitempty" minimum:"1" maximum:"5"`
		ClearRating     bool    `json:"clear_rating,omitempty"`
		Corrected       *string `json:"corrected,omitempty" maxLength:"8388608" doc:"The corrected answer (JSON text for conquest types)."`
		Force           bool    `json:"force,omitempty" doc:"Save a correction that does not match the schema; it is marked."`
		ClearCorrection bool    `json:"clear_correction,omitempty"`
	}
	huma.Register(api, huma.Operation{
		OperationID: "annotateCurationTask", Method: http.MethodPost, Path: "/v1/curation/tasks/{task_id}/annotations",
		Summary: "Annotate a task", Tags: tags, Middlewares: auth,
		Description: "Rates and corrects outputs, sets the gold star (at most one per task), notes and status. `version` must be " +
			"the task's version as read: a stale one is 409 stale_task, so no one's update is lost. A correction that does not match " +
			"the schema is 400 correction_invalid unless `force` is set.",
	}, func(ctx context.Context, in *struct {
		TaskID string `path:"task_id"`
		Body   struct {
			Version int64              `json:"version" minimum:"1"`
			Status  *string            `json:"status,omitempty" enum:"pending,reviewed,skipped"`
			Notes   *string            `json:"notes,omitempty" maxLength:"20000"`
			Gold    *string            `json:"gold_output_id,omitempty" doc:"An output ID, or \"\" to clear the gold star."`
			Outputs []outputAnnotation `json:"outputs,omitempty" maxItems:"100"`
		}
	}) (*struct{ Body Task }, error) {
		t, _, _, err := d.Store.CurationTaskGet(ctx, in.TaskID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("task", in.TaskID)
		}
		if err != nil {
			return nil, err
		}
		def, _ := d.Schemas.Get(t.ConquestType, int(t.ConquestVersion))
		a := store.Annotation{Status: in.Body.Status, Notes: in.Body.Notes, Gold: in.Body.Gold}
		for _, o := range in.Body.Outputs {
			oa := store.OutputAnnotation{ID: o.ID, Rating: o.Rating, ClearRating: o.ClearRating, Corrected: o.Corrected, ClearCorrection: o.ClearCorrection}
			if o.Corrected != nil {
				oa.CorrectedValid = true
				if def != nil {
					if _, e := def.CheckOutput(*o.Corrected, "stop"); e != nil {
						if !o.Force {
							return nil, withCode(http.StatusBadRequest, "correction_invalid",
								fmt.Sprintf("The correction of output %s does not match the %s schema: %s. Send force: true to save it anyway.", o.ID, def.ID, e.Error()))
						}
						oa.CorrectedValid, oa.CorrectedMessage = false, e.Error()
					}
				}
			}
			a.Outputs = append(a.Outputs, oa)
		}
		err = d.Store.CurationAnnotate(ctx, in.TaskID, in.Body.Version, curatorOf(ctx).Name, a)
		switch {
		case errors.Is(err, store.ErrStale):
			return nil, withCode(http.StatusConflict, "stale_task", "Someone saved this task after you opened it; reload it and apply your changes again.")
		case errors.Is(err, store.ErrNotFound):
			return nil, withCode(http.StatusBadRequest, "unknown_output", "An output named is not one of this task's.")
		case err != nil:
			return nil, err
		}
		t, outs, hist, err := d.Store.CurationTaskGet(ctx, in.TaskID)
		if err != nil {
			return nil, err
		}
		return &struct{ Body Task }{d.withData(ctx, d.taskOf(t, outs, hist))}, nil
	})

	type stat struct {
		Type         string   `json:"type"`
		Model        string   `json:"model"`
		Outputs      int64    `json:"outputs"`
		Valid        int64    `json:"valid"`
		ValidityRate float64  `json:"validity_rate"`
		Rated        int64    `json:"rated"`
		MeanRating   *float64 `json:"mean_rating"`
		Gold         int64    `json:"gold"`
		Corrected    int64    `json:"corrected"`
	}
	type taskCount struct {
		Type     string `json:"type"`
		Total    int64  `json:"total"`
		Pending  int64  `json:"pending"`
		Reviewed int64  `json:"reviewed"`
		Skipped  int64  `json:"skipped"`
	}
	type statsBody struct {
		Data  []stat      `json:"data" doc:"Outputs per type and model."`
		Tasks []taskCount `json:"tasks" doc:"Tasks per type, by status."`
	}
	huma.Register(api, huma.Operation{
		OperationID: "curationStats", Method: http.MethodGet, Path: "/v1/curation/stats",
		Summary: "Counts per conquest type and model", Tags: tags, Middlewares: auth,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body statsBody }, error) {
		st, err := d.Store.CurationStats(ctx)
		if err != nil {
			return nil, err
		}
		counts, err := d.Store.CurationStatusCounts(ctx)
		if err != nil {
			return nil, err
		}
		out := &struct{ Body statsBody }{}
		out.Body.Data, out.Body.Tasks = []stat{}, []taskCount{}
		for _, c := range counts { // ordered by type
			if n := len(out.Body.Tasks); n == 0 || out.Body.Tasks[n-1].Type != c.Type {
				out.Body.Tasks = append(out.Body.Tasks, taskCount{Type: c.Type})
			}
			tc := &out.Body.Tasks[len(out.Body.Tasks)-1]
			switch c.Status {
			case store.TaskPending:
				tc.Pending = c.Tasks
			case store.TaskReviewed:
				tc.Reviewed = c.Tasks
			case store.TaskSkipped:
				tc.Skipped = c.Tasks
			}
			tc.Total += c.Tasks
		}
		for _, s := range st {
			x := stat{Type: s.Type, Model: s.Model, Outputs: s.Outputs, Valid: s.Valid, Rated: s.Rated, MeanRating: s.MeanRating, Gold: s.Gold, Corrected: s.Corrected}
			if s.Outputs > 0 {
				x.ValidityRate = float64(s.Valid) / float64(s.Outputs)
			}
			out.Body.Data = append(out.Body.Data, x)
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "createCurationExport", Method: http.MethodPost, Path: "/v1/curation/exports",
		Summary: "Start an export", Tags: tags, Middlewares: auth,
		Description: "Runs as a job; poll GET /v1/curation/exports/{id} for its progress and, once completed, a presigned download_url.",
	}, func(ctx context.Context, in *struct {
		Body struct {
			Format  string `json:"format" enum:"openai_sft,openai_dpo,trl,icl,label_studio"`
			Type    string `json:"type,omitempty"`
			Source  string `json:"source,omitempty" enum:"gold,corrected,both,"`
			PerType int    `json:"per_type,omitempty" minimum:"0" maximum:"1000"`
		}
	}) (*struct{ Body Export }, error) {
		o := ExportOptions{Format: in.Body.Format, Type: in.Body.Type, Source: in.Body.Source, PerType: in.Body.PerType}
		filter := store.TaskFilter{Type: o.Type}
		n, err := d.Store.CurationCount(ctx, filter)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, withCode(http.StatusBadRequest, "empty_export", "The selection holds no task: there is nothing to export.")
		}
		opts, _ := json.Marshal(o)
		e := store.CurationExport{ID: ids.New(ids.Export), Format: o.Format, Options: opts, Status: store.ExportQueued,
			Curator: curatorOf(ctx).Name, CreatedAt: time.Now().Unix()}
		if err := d.Store.ExportCreate(ctx, e, store.Job{Args: ExportArgs{ExportID: e.ID}, Opts: &river.InsertOpts{}}); err != nil {
			return nil, err
		}
		return &struct{ Body Export }{d.exportOf(ctx, e)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "retrieveCurationExport", Method: http.MethodGet, Path: "/v1/curation/exports/{export_id}",
		Summary: "An export's progress and download link", Tags: tags, Middlewares: auth,
	}, func(ctx context.Context, in *struct {
		ExportID string `path:"export_id"`
	}) (*struct{ Body Export }, error) {
		e, err := d.Store.ExportGet(ctx, in.ExportID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("export", in.ExportID)
		}
		if err != nil {
			return nil, err
		}
		return &struct{ Body Export }{d.exportOf(ctx, e)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listCurationExports", Method: http.MethodGet, Path: "/v1/curation/exports",
		Summary: "Recent exports", Tags: tags, Middlewares: auth,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body listOf[Export] }, error) {
		list, err := d.Store.ExportList(ctx, 50)
		if err != nil {
			return nil, err
		}
		out := &struct{ Body listOf[Export] }{}
		out.Body.Data = []Export{}
		for _, e := range list {
			out.Body.Data = append(out.Body.Data, d.exportOf(ctx, e))
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "importCurationBatch", Method: http.MethodPost, Path: "/v1/curation/imports/batches/{batch_id}",
		Summary: "Import a batch now", Tags: tags, Middlewares: admin,
		Description: "Imports an ended batch's outputs (as the import function does when it ends); a batch imported before adds nothing.",
	}, func(ctx context.Context, in *struct {
		BatchID string `path:"batch_id"`
	}) (*struct{ Body ImportResult }, error) {
		res, err := d.Importer.ImportBatch(ctx, in.BatchID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("batch", in.BatchID)
		}
		if err != nil {
			return nil, err
		}
		return &struct{ Body ImportResult }{ImportResult{Object: "curation.import", Tasks: res.Tasks, Outputs: res.Outputs, Already: res.Already}}, nil
	})

	registerBulkImport(api, d, tags, admin)
}

// ImportResult answers an import.
type ImportResult struct {
	Object  string `json:"object" enum:"curation.import"`
	Tasks   int64  `json:"tasks" doc:"New tasks."`
	Outputs int64  `json:"outputs" doc:"New outputs."`
	Already bool   `json:"already_imported"`
	Errors  []struct {
		Line    int    `json:"line"`
		Message string `json:"message"`
	} `json:"errors,omitempty"`
}

// SpecRoutes registers the curation routes for the OpenAPI document only:
// their dependencies are empty.
func SpecRoutes(api huma.API) { Register(api, Deps{}) }
