package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/batch"
)

// ConquestSummary is a conquest type in GET /v1/conquests.
type ConquestSummary struct {
	ID          string `json:"id"`
	Object      string `json:"object" enum:"conquest"`
	Version     int    `json:"version" doc:"The newest version."`
	Versions    []int  `json:"versions" doc:"Every version kiln knows; older ones stay readable."`
	Title       string `json:"title"`
	Description string `json:"description"`
}

// Conquest is one version of a conquest type, whole.
type Conquest struct {
	ConquestSummary
	Data         []conquest.Field    `json:"data"`
	Questions    []conquest.Question `json:"questions"`
	OutputSchema map[string]any      `json:"output_schema"`
	Prompt       conquest.Prompt     `json:"prompt"`
	Rendering    conquest.Rendering  `json:"rendering"`
}

// ConquestRequests answers POST /v1/conquests/{type}/requests.
type ConquestRequests struct {
	Object   string                 `json:"object" enum:"conquest.requests"`
	Type     string                 `json:"type"`
	Version  int                    `json:"version"`
	Requests []map[string]any       `json:"requests" doc:"Batch input lines for the endpoint asked for (default /v1/chat/completions), in record order."`
	Errors   []conquest.RecordError `json:"errors" doc:"Records left out, with their line (the record's position, from 1) and why."`
	FileID   *string                `json:"file_id" doc:"With file: true, the uploaded batch input file (purpose batch) holding the requests."`
}

// ConquestOutput is one output's validity.
type ConquestOutput struct {
	CustomID string `json:"custom_id"`
	Line     int64  `json:"line" doc:"The line of the output file, from 1."`
	Valid    bool   `json:"valid"`
	Reason   string `json:"reason,omitempty" enum:"not_json,truncated,schema_violation,no_answer,request_failed," doc:"Why the output is invalid."`
	Message  string `json:"message,omitempty"`
}

// ConquestOutputList is a page of output validities.
type ConquestOutputList struct {
	Object  string           `json:"object" enum:"list"`
	Data    []ConquestOutput `json:"data"`
	HasMore bool             `json:"has_more"`
}

func summaryOf(r *conquest.Registry, d *conquest.Definition) ConquestSummary {
	return ConquestSummary{ID: d.ID, Object: "conquest", Version: d.Version, Versions: r.Versions(d.ID), Title: d.Title, Description: d.Description}
}

// conquestError maps a registry lookup error to the API's.
func conquestError(err error) error {
	switch {
	case errors.Is(err, conquest.ErrUnknownType):
		return apierror.New(http.StatusNotFound, "unknown_conquest_type", "type", apierror.Sentence(err))
	case errors.Is(err, conquest.ErrUnknownVersion):
		return apierror.New(http.StatusNotFound, "unknown_conquest_version", "version", apierror.Sentence(err))
	}
	return err
}

// ListConquestsResponse answers GET /v1/conquests. It has the name Huma
// gave its schema when it was an anonymous type, so openapi.yaml keeps it.
type ListConquestsResponse struct {
	Object string            `json:"object" enum:"list"`
	Data   []ConquestSummary `json:"data"`
}

type conquestListOutput struct{ Body ListConquestsResponse }

type conquestInput struct {
	Type    string `path:"type"`
	Version int    `query:"version" minimum:"0" doc:"A version; default the newest."`
}

type conquestOutput struct{ Body Conquest }

// requestsInput keeps its name: its body's schema is RequestsInputBody.
type requestsInput struct {
	Type string `path:"type"`
	Body struct {
		_           struct{}         `additionalProperties:"true"`
		Records     []map[string]any `json:"records" maxItems:"100000" doc:"Data records: the type's fields, and optionally custom_id."`
		Model       string           `json:"model" minLength:"1" doc:"The model every request names."`
		Version     int              `json:"version,omitempty" minimum:"0" doc:"The type's version; default the newest."`
		MaxTokens   int              `json:"max_tokens,omitempty" minimum:"0"`
		Temperature *float64         `json:"temperature,omitempty" minimum:"0" maximum:"2"`
		File        bool             `json:"file,omitempty" doc:"Also upload the requests as a batch input file, ready for POST /v1/batches."`
		Endpoint    string           `json:"endpoint,omitempty" enum:"/v1/chat/completions,/v1/responses" doc:"The endpoint the requests call (default /v1/chat/completions): for /v1/responses the schema goes in text.format and max_tokens becomes max_output_tokens."`
	}
}

type conquestRequestsOutput struct{ Body ConquestRequests }

type conquestOutputListInput struct {
	BatchID string `path:"batch_id"`
	Valid   string `query:"valid" enum:"true,false," doc:"Only valid (true) or invalid (false) outputs."`
	After   int64  `query:"after" minimum:"0" doc:"An output line: list the ones after it."`
	Limit   int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

type conquestOutputListOutput struct{ Body ConquestOutputList }

func registerConquests(api huma.API, d Deps) {
	tags := []string{"Conquests (kiln extension)"}
	huma.Register(api, huma.Operation{
		OperationID: "listConquests", Method: http.MethodGet, Path: "/v1/conquests",
		Summary: "List conquest types", Tags: tags,
	}, d.listConquests)

	huma.Register(api, huma.Operation{
		OperationID: "retrieveConquest", Method: http.MethodGet, Path: "/v1/conquests/{type}",
		Summary: "Retrieve a conquest type", Tags: tags,
		Description: "The definition: data fields, questions, output JSON Schema, prompt templates and rendering hints.",
	}, d.retrieveConquest)

	huma.Register(api, huma.Operation{
		OperationID: "buildConquestRequests", Method: http.MethodPost, Path: "/v1/conquests/{type}/requests",
		Summary: "Build batch requests from data records", Tags: tags,
		Description: "Renders each record through the type's prompt templates into a /v1/chat/completions request whose " +
			"response_format is the type's output schema (json_schema, strict), or with endpoint /v1/responses a Responses API request whose text.format is. Bad records are left out and listed with their position; " +
			"a batch of these requests records its conquest type, and its outputs are checked against the schema when it ends.",
	}, d.buildConquestRequests)

	huma.Register(api, huma.Operation{
		OperationID: "listConquestOutputs", Method: http.MethodGet, Path: "/v1/batches/{batch_id}/conquest_outputs",
		Summary: "List a conquest batch's output validity", Tags: tags,
		Description: "Each output line of the batch, checked against its conquest type's schema when the batch ended, in output-file order.",
	}, d.listConquestOutputs)
}

func (d Deps) listConquests(ctx context.Context, _ *struct{}) (*conquestListOutput, error) {
	out := ListConquestsResponse{Object: "list"}
	for _, def := range d.Conquests.Latest() {
		out.Data = append(out.Data, summaryOf(d.Conquests, def))
	}
	return &conquestListOutput{Body: out}, nil
}

func (d Deps) retrieveConquest(ctx context.Context, in *conquestInput) (*conquestOutput, error) {
	def, err := d.Conquests.Get(in.Type, in.Version)
	if err != nil {
		return nil, conquestError(err)
	}
	out := Conquest{ConquestSummary: summaryOf(d.Conquests, def), Data: def.Data, Questions: def.Questions,
		Prompt: def.Prompt, Rendering: def.Rendering}
	out.Version = def.Version
	if err := json.Unmarshal(def.OutputSchema, &out.OutputSchema); err != nil {
		return nil, err
	}
	return &conquestOutput{Body: out}, nil
}

func (d Deps) buildConquestRequests(ctx context.Context, in *requestsInput) (*conquestRequestsOutput, error) {
	def, err := d.Conquests.Get(in.Type, in.Body.Version)
	if err != nil {
		return nil, conquestError(err)
	}
	built, rep, kept, err := d.buildRequests(def, in)
	if err != nil {
		return nil, err
	}
	if err := d.Store.ConquestRecordsPut(ctx, auth.Project(ctx), def.ID, kept); err != nil { // curators of the project see them
		return nil, err
	}
	out := ConquestRequests{Object: "conquest.requests", Type: def.ID, Version: def.Version, Errors: rep.Errors}
	if out.Errors == nil {
		out.Errors = []conquest.RecordError{}
	}
	if out.Requests, err = requestLines(built); err != nil {
		return nil, err
	}
	if in.Body.File {
		name := fmt.Sprintf("%s-v%d-%s.jsonl", def.ID, def.Version, strconv.FormatInt(time.Now().Unix(), 10))
		f, err := d.Batches.CreateFile(ctx, batch.PurposeBatch, name, bytes.NewReader(built))
		if err != nil {
			return nil, err
		}
		out.FileID = &f.ID
	}
	return &conquestRequestsOutput{Body: out}, nil
}

// buildRequests renders the input's records through def into batch input
// lines, and keeps each request's record (less its custom_id) by custom_id,
// so that curators see each task's fields.
func (d Deps) buildRequests(def *conquest.Definition, in *requestsInput) (built []byte, rep conquest.BuildReport, kept map[string]json.RawMessage, err error) {
	var src bytes.Buffer
	for _, rec := range in.Body.Records {
		line, err := json.Marshal(rec)
		if err != nil {
			return nil, rep, nil, apierror.Invalid("records", err.Error())
		}
		src.Write(line)
		src.WriteByte('\n')
	}
	var out bytes.Buffer
	kept = map[string]json.RawMessage{}
	rep, err = def.Build(&src, &out, conquest.BuildOptions{Model: in.Body.Model, MaxTokens: in.Body.MaxTokens, Temperature: in.Body.Temperature, Endpoint: in.Body.Endpoint,
		OnRequest: func(id string, rec map[string]any) {
			data := make(map[string]any, len(rec))
			for k, v := range rec {
				if k != conquest.CustomIDField {
					data[k] = v
				}
			}
			kept[id], _ = json.Marshal(data)
		}}, d.MaxLineBytes)
	if err != nil {
		return nil, rep, nil, apierror.Invalid("records", apierror.Sentence(err))
	}
	if rep.Requests == 0 {
		msg := "No record could become a request."
		if len(rep.Errors) > 0 {
			msg = fmt.Sprintf("No record could become a request; the first problem: %s.", rep.Errors[0].Error())
		}
		return nil, rep, nil, apierror.Invalid("records", msg)
	}
	return out.Bytes(), rep, kept, nil
}

// requestLines decodes built batch input lines for the answer.
func requestLines(built []byte) ([]map[string]any, error) {
	var lines []map[string]any
	dec := json.NewDecoder(bytes.NewReader(built))
	for dec.More() {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	return lines, nil
}

func (d Deps) listConquestOutputs(ctx context.Context, in *conquestOutputListInput) (*conquestOutputListOutput, error) {
	if _, err := d.Batches.Get(ctx, in.BatchID); err != nil {
		return nil, err
	}
	valid := -1
	switch in.Valid {
	case "true":
		valid = 1
	case "false":
		valid = 0
	}
	list, more, err := d.Store.ConquestOutputList(ctx, in.BatchID, valid, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := ConquestOutputList{Object: "list", Data: make([]ConquestOutput, len(list)), HasMore: more}
	for i, o := range list {
		out.Data[i] = ConquestOutput{CustomID: o.CustomID, Line: o.Line, Valid: o.Valid, Reason: o.Reason, Message: o.Message}
	}
	return &conquestOutputListOutput{Body: out}, nil
}
