package curation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// The task routes: list tasks, read one with its outputs side by side, and
// annotate it (ratings, corrections, the gold star, notes and status).

func registerTasks(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurationTasks", Method: http.MethodGet, Path: "/v1/curation/tasks",
		Summary: "List tasks", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Newest first, with keyset pagination (after = the last task ID of the previous page).",
	}), d.listTasks)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "retrieveCurationTask", Method: http.MethodGet, Path: "/v1/curation/tasks/{task_id}",
		Summary: "A task with its outputs side by side", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.getTask)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "annotateCurationTask", Method: http.MethodPost, Path: "/v1/curation/tasks/{task_id}/annotations",
		Summary: "Annotate a task", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Rates and corrects outputs, sets the gold star (at most one per task), notes and status. `version` must be " +
			"the task's version as read: a stale one is 409 stale_task, so no one's update is lost. A correction that does not match " +
			"the schema is 400 correction_invalid unless `force` is set.",
	}), d.annotateTask)
}

// taskStatuses are a task's statuses, listed once: the schemas' enums
// come from here.
var taskStatuses = []string{store.TaskPending, store.TaskReviewed, store.TaskSkipped}

// taskStatus is a task's status.
type taskStatus string

// TransformSchema lists taskStatuses as the schema's enum.
func (taskStatus) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, taskStatuses...)
}

// taskStatusFilter is a task's status, or "" for any.
type taskStatusFilter string

// TransformSchema lists taskStatuses and "" as the schema's enum.
func (taskStatusFilter) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, slices.Concat(taskStatuses, []string{""})...)
}

// boolQuery is a query parameter that is true, false or "" (either).
type boolQuery string

// TransformSchema lists the values as the schema's enum.
func (boolQuery) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, "true", "false", "")
}

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

// TaskSummary is a task in a list.
type TaskSummary struct {
	ID              string     `json:"id"`
	Type            string     `json:"type"`
	ConquestVersion int64      `json:"conquest_version"`
	Key             string     `json:"key"`
	Status          taskStatus `json:"status"`
	GoldOutputID    *string    `json:"gold_output_id"`
	Outputs         int64      `json:"outputs"`
	Preview         string     `json:"preview" doc:"What tells the task apart: the type's preview fields of its data record, else the first line of its prompt after the type's header."`
	Valid           int64      `json:"valid" doc:"Outputs valid against the schema (in a list; 0 in a task, which lists its outputs)."`
	Rated           int64      `json:"rated" doc:"Outputs rated (in a list; 0 in a task, which lists its outputs)."`
	Version         int64      `json:"version"`
	UpdatedAt       int64      `json:"updated_at"`
	NearDuplicateOf *string    `json:"near_duplicate_of" doc:"The first task of its type whose input this one's nearly repeats (SimHash); null when none (in a list)."`
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
	// Prelabels are the model judges' answers on the task's outputs.
	Prelabels       []Prelabel `json:"prelabels" doc:"The model judges' answers (GET /v1/curation/judges) on this task's outputs."`
	PrelabelsHidden int        `json:"prelabels_hidden" doc:"Pre-labels left out in blind review until the caller decides their units."`
}

func summaryOf(t store.CurationTask) TaskSummary {
	return TaskSummary{ID: t.ID, Type: t.ConquestType, ConquestVersion: t.ConquestVersion, Key: t.Key, Status: taskStatus(t.Status),
		GoldOutputID: t.GoldOutputID, Outputs: t.Outputs, Preview: promptPreview(t.Input, ""), Version: t.Version, UpdatedAt: t.UpdatedAt}
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
		out.Preview = promptPreview(t.Input, def.Description)
	}
	return out
}

// withData adds the task's data record, when its requests were built
// through the API.
func (d Deps) withData(ctx context.Context, t Task) Task {
	raw, err := d.Store.ConquestRecordGet(ctx, projectOf(ctx), t.Type, t.Key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			d.Log.WarnContext(ctx, "conquest record", "task", t.ID, "err", err)
		}
		return t
	}
	_ = json.Unmarshal(raw, &t.Data)
	if t.Rendering != nil {
		t.Preview = cmp.Or(dataPreview(t.Data, t.Rendering.Preview), t.Preview)
	}
	return t
}

type taskListInput struct {
	Type    string           `query:"type"`
	Model   string           `query:"model"`
	Status  taskStatusFilter `query:"status"`
	Gold    boolQuery        `query:"gold"`
	Rated   boolQuery        `query:"rated"`
	Invalid boolQuery        `query:"invalid" doc:"true: tasks with an output that is not valid against the schema."`
	Q       string           `query:"q" maxLength:"200" doc:"Text to find in the prompt."`
	After   string           `query:"after"`
	Limit   int              `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type taskListOutput struct {
	Body TaskList
}

// searchMinChars is the shortest text a task search (q) takes: the
// trigram indexes serve three characters or more, and a shorter text,
// rare, would read every task (seconds at a million).
const searchMinChars = 3

func (d Deps) listTasks(ctx context.Context, in *taskListInput) (*taskListOutput, error) {
	if in.Q != "" && utf8.RuneCountInString(in.Q) < searchMinChars {
		return nil, apierror.Invalid("q", fmt.Sprintf("Search for %d characters or more.", searchMinChars))
	}
	f := store.TaskFilter{Project: projectOf(ctx), Type: in.Type, Model: in.Model, Status: string(in.Status), Gold: in.Gold.ptr(), Rated: in.Rated.ptr(),
		Invalid: in.Invalid.ptr(), Text: in.Q}
	list, more, err := d.Store.CurationTaskList(ctx, f, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := TaskList{Object: "list", Data: make([]TaskSummary, len(list)), HasMore: more}
	for i, t := range list {
		out.Data[i] = summaryOf(t)
	}
	if err := d.withPreviews(ctx, out.Data); err != nil {
		return nil, err
	}
	if err := d.withNearDups(ctx, in.Type, out.Data); err != nil {
		return nil, err
	}
	if len(list) > 0 {
		out.LastID = &list[len(list)-1].ID
	}
	return &taskListOutput{out}, nil
}

type taskInput struct {
	TaskID string `path:"task_id"`
	Blind  bool   `query:"blind" doc:"Blind review: leave out the judges' pre-labels of what the caller has not decided yet."`
}

type taskOutput struct {
	Body Task
}

// taskGet is a task of the request's project, with its outputs and
// history; another project's is not found, as one that does not exist.
func (d Deps) taskGet(ctx context.Context, id string) (store.CurationTask, []store.CurationOutput, []store.HistoryEntry, error) {
	t, outs, hist, err := d.Store.CurationTaskGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.ProjectID != projectOf(ctx)) {
		return t, nil, nil, apierror.NotFound("task", id)
	}
	return t, outs, hist, err
}

func (d Deps) getTask(ctx context.Context, in *taskInput) (*taskOutput, error) {
	t, outs, hist, err := d.taskGet(ctx, in.TaskID)
	if err != nil {
		return nil, err
	}
	view := d.withData(ctx, d.taskOf(t, outs, hist))
	if view.Prelabels, view.PrelabelsHidden, err = d.prelabelsOf(ctx, t.ID, curatorOf(ctx).ID, in.Blind); err != nil {
		return nil, err
	}
	return &taskOutput{view}, nil
}

// annotateCurationTaskRequest is named after its operation, as Huma names
// an anonymous body in the OpenAPI document.
type annotateCurationTaskRequest struct {
	Version int64              `json:"version" minimum:"1"`
	Status  *taskStatus        `json:"status,omitempty"`
	Notes   *string            `json:"notes,omitempty" maxLength:"20000"`
	Gold    *string            `json:"gold_output_id,omitempty" doc:"An output ID, or \"\" to clear the gold star."`
	Outputs []outputAnnotation `json:"outputs,omitempty" maxItems:"100"`
}

type outputAnnotation struct {
	ID              string  `json:"id"`
	Rating          *int64  `json:"rating,omitempty" minimum:"1" maximum:"5"`
	ClearRating     bool    `json:"clear_rating,omitempty"`
	Corrected       *string `json:"corrected,omitempty" maxLength:"8388608" doc:"The corrected answer (JSON text for conquest types)."`
	Force           bool    `json:"force,omitempty" doc:"Save a correction that does not match the schema; it is marked."`
	ClearCorrection bool    `json:"clear_correction,omitempty"`
}

type annotateInput struct {
	TaskID string `path:"task_id"`
	Blind  bool   `query:"blind" doc:"As for GET: the pre-labels in the answer are those of what the caller has decided."`
	Body   annotateCurationTaskRequest
}

func (d Deps) annotateTask(ctx context.Context, in *annotateInput) (*taskOutput, error) {
	t, _, _, err := d.taskGet(ctx, in.TaskID)
	if err != nil {
		return nil, err
	}
	def, _ := d.Schemas.Get(t.ConquestType, int(t.ConquestVersion))
	a := store.Annotation{Status: (*string)(in.Body.Status), Notes: in.Body.Notes, Gold: in.Body.Gold, CuratorID: curatorOf(ctx).ID}
	for _, o := range in.Body.Outputs {
		oa, err := checkAnnotation(def, o)
		if err != nil {
			return nil, err
		}
		a.Outputs = append(a.Outputs, oa)
	}
	err = d.Store.CurationAnnotate(ctx, in.TaskID, in.Body.Version, curatorOf(ctx).Name, a)
	switch {
	case errors.Is(err, store.ErrStale):
		return nil, apierror.Conflict("stale_task", "Someone saved this task after you opened it; reload it and apply your changes again.")
	case errors.Is(err, store.ErrNotFound):
		return nil, apierror.InvalidCode("", "unknown_output", "An output named is not one of this task's.")
	case err != nil:
		return nil, err
	}
	t, outs, hist, err := d.Store.CurationTaskGet(ctx, in.TaskID)
	if err != nil {
		return nil, err
	}
	view := d.withData(ctx, d.taskOf(t, outs, hist))
	if view.Prelabels, view.PrelabelsHidden, err = d.prelabelsOf(ctx, t.ID, curatorOf(ctx).ID, in.Blind); err != nil {
		return nil, err
	}
	return &taskOutput{view}, nil
}

// checkAnnotation checks an output's correction against the conquest
// type's schema (def, nil for other types): one that does not match is
// 400 correction_invalid, or saved and marked when forced.
func checkAnnotation(def *conquest.Definition, o outputAnnotation) (store.OutputAnnotation, error) {
	oa := store.OutputAnnotation{ID: o.ID, Rating: o.Rating, ClearRating: o.ClearRating, Corrected: o.Corrected, ClearCorrection: o.ClearCorrection}
	if o.Corrected == nil {
		return oa, nil
	}
	oa.CorrectedValid = true
	if def == nil {
		return oa, nil
	}
	if _, e := def.CheckOutput(*o.Corrected, "stop"); e != nil {
		if !o.Force {
			return oa, apierror.InvalidCode("", "correction_invalid",
				fmt.Sprintf("The correction of output %s does not match the %s schema: %s. Send force: true to save it anyway.", o.ID, def.ID, e.Error()))
		}
		oa.CorrectedValid, oa.CorrectedMessage = false, e.Error()
	}
	return oa, nil
}
