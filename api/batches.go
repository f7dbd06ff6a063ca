package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/store"
)

// Batch is OpenAI's Batch object. Optional fields are null until set, as
// OpenAI sends them.
type Batch struct {
	ID               string             `json:"id"`
	Object           string             `json:"object" enum:"batch"`
	Endpoint         string             `json:"endpoint"`
	Model            *string            `json:"model"`
	Errors           *BatchErrors       `json:"errors"`
	InputFileID      string             `json:"input_file_id"`
	CompletionWindow string             `json:"completion_window"`
	Status           string             `json:"status" enum:"validating,failed,in_progress,finalizing,completed,expired,cancelling,cancelled"`
	OutputFileID     *string            `json:"output_file_id"`
	ErrorFileID      *string            `json:"error_file_id"`
	CreatedAt        int64              `json:"created_at"`
	InProgressAt     *int64             `json:"in_progress_at"`
	ExpiresAt        *int64             `json:"expires_at"`
	FinalizingAt     *int64             `json:"finalizing_at"`
	CompletedAt      *int64             `json:"completed_at"`
	FailedAt         *int64             `json:"failed_at"`
	ExpiredAt        *int64             `json:"expired_at"`
	CancellingAt     *int64             `json:"cancelling_at"`
	CancelledAt      *int64             `json:"cancelled_at"`
	RequestCounts    BatchRequestCounts `json:"request_counts"`
	Usage            BatchUsage         `json:"usage"`
	Metadata         map[string]string  `json:"metadata"`
	// Priority is a kiln extension.
	Priority int64 `json:"priority" doc:"kiln extension: the batch's priority among batches of its model."`
	// StatusMessage is a kiln extension.
	StatusMessage *string `json:"status_message" doc:"kiln extension: why a batch in progress is waiting, such as no live agent serving its model."`
	// Conquest is a kiln extension.
	Conquest *BatchConquest `json:"conquest" doc:"kiln extension: the conquest type the requests were built from, and how many outputs match its schema; null for other batches."`
}

// BatchErrors is Batch.errors.
type BatchErrors struct {
	Object string             `json:"object" enum:"list"`
	Data   []store.BatchError `json:"data"`
}

// BatchRequestCounts is Batch.request_counts.
type BatchRequestCounts struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

// BatchUsage is Batch.usage: the batch's tokens so far.
type BatchUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// BatchConquest is Batch.conquest.
type BatchConquest struct {
	Type    string `json:"type"`
	Version int64  `json:"version"`
	// CheckedAt is when the outputs were checked, after the batch ended.
	CheckedAt *int64 `json:"checked_at" doc:"When the outputs were checked against the schema; null until the batch ended and the check ran."`
	Valid     int64  `json:"valid" doc:"Outputs that are JSON matching the output schema."`
	Invalid   int64  `json:"invalid" doc:"Outputs that are not: see GET /v1/batches/{id}/conquest_outputs?valid=false."`
	Error     string `json:"error,omitempty" doc:"Why no output could be checked (an unknown type or version)."`
}

func batchOf(b store.Batch) Batch {
	out := Batch{
		ID: b.ID, Object: "batch", Endpoint: b.Endpoint, InputFileID: b.InputFileID,
		CompletionWindow: b.CompletionWindow, Status: string(b.Status),
		OutputFileID: b.OutputFileID, ErrorFileID: b.ErrorFileID,
		CreatedAt: b.CreatedAt, InProgressAt: b.InProgressAt, ExpiresAt: &b.ExpiresAt,
		FinalizingAt: b.FinalizingAt, CompletedAt: b.CompletedAt, FailedAt: b.FailedAt,
		ExpiredAt: b.ExpiredAt, CancellingAt: b.CancellingAt, CancelledAt: b.CancelledAt,
		RequestCounts: BatchRequestCounts{Total: b.Total, Completed: b.Completed, Failed: b.Failed},
		Metadata:      b.Metadata,
		Priority:      b.Priority,
		Conquest:      conquestOf(b.Conquest),
	}
	if b.Model != "" {
		out.Model = &b.Model
	}
	if len(b.Errors) > 0 {
		out.Errors = &BatchErrors{Object: "list", Data: b.Errors}
	}
	out.Usage.InputTokens = b.InputTokens
	out.Usage.OutputTokens = b.OutputTokens
	out.Usage.InputTokensDetails.CachedTokens = b.CachedTokens
	out.Usage.OutputTokensDetails.ReasoningTokens = b.ReasoningTokens
	out.Usage.TotalTokens = b.InputTokens + b.OutputTokens
	return out
}

type batchCreateInput struct {
	Body struct {
		// Unknown fields are ignored, as OpenAI does, so newer SDKs keep
		// working.
		_                  struct{}          `additionalProperties:"true"`
		InputFileID        string            `json:"input_file_id" minLength:"1" doc:"The ID of an uploaded file with purpose batch."`
		Endpoint           string            `json:"endpoint" enum:"/v1/chat/completions,/v1/completions,/v1/embeddings,/v1/responses" doc:"The endpoint every request of the batch calls."`
		CompletionWindow   string            `json:"completion_window" doc:"24h, as OpenAI. kiln extension: any duration from 1s to 168h, such as 90m."`
		Metadata           map[string]string `json:"metadata,omitempty" doc:"Up to 16 keys of at most 64 characters, values of at most 512."`
		Priority           int64             `json:"priority,omitempty" minimum:"-100" maximum:"100" doc:"kiln extension: higher runs first among batches of one model (default 0). It never forces a model switch; the starvation bound caps any wait."`
		OutputExpiresAfter *ExpiresAfter     `json:"output_expires_after,omitempty" doc:"When the batch's output and error files expire: that many seconds after finalize makes them. Without it, the server's retention for batch_output (KILN_FILE_RETENTION) applies, if any."`
	}
}

type batchOutput struct{ Body Batch }

type batchListInput struct {
	After string `query:"after" doc:"A batch ID: list the batches after it."`
	Limit int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"How many batches to return."`
}

// BatchList is OpenAI's ListBatchesResponse.
type BatchList struct {
	Object  string  `json:"object" enum:"list"`
	Data    []Batch `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

type batchIDInput struct {
	BatchID string `path:"batch_id" doc:"The batch's ID."`
}

type batchListOutput struct{ Body BatchList }

func registerBatches(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "createBatch", Method: http.MethodPost, Path: "/v1/batches",
		Summary: "Create a batch", Tags: []string{"Batch"},
		Description: "Creates a batch from an uploaded JSONL file of requests. It is validated, then run by the GPU agents.",
	}, d.createBatch)

	huma.Register(api, huma.Operation{
		OperationID: "listBatches", Method: http.MethodGet, Path: "/v1/batches",
		Summary: "List batches", Description: "Newest first.", Tags: []string{"Batch"},
	}, d.listBatches)

	huma.Register(api, huma.Operation{
		OperationID: "retrieveBatch", Method: http.MethodGet, Path: "/v1/batches/{batch_id}",
		Summary: "Retrieve a batch", Tags: []string{"Batch"},
	}, d.retrieveBatch)

	huma.Register(api, huma.Operation{
		OperationID: "cancelBatch", Method: http.MethodPost, Path: "/v1/batches/{batch_id}/cancel",
		Summary: "Cancel a batch", Tags: []string{"Batch"},
		Description: "The batch is cancelling until its running requests stop (within seconds), then cancelled. " +
			"Finished results are kept; the other requests go to the error file as batch_cancelled.",
	}, d.cancelBatch)
}

func (d Deps) createBatch(ctx context.Context, in *batchCreateInput) (*batchOutput, error) {
	body := in.Body
	b, err := d.Batches.Create(ctx, batch.CreateParams{InputFileID: body.InputFileID, Endpoint: body.Endpoint,
		CompletionWindow: body.CompletionWindow, Metadata: body.Metadata, Priority: body.Priority,
		OutputExpiresAfter: body.OutputExpiresAfter.policy()})
	if err != nil {
		return nil, err
	}
	return &batchOutput{Body: batchOf(b)}, nil
}

func (d Deps) listBatches(ctx context.Context, in *batchListInput) (*batchListOutput, error) {
	list, more, err := d.Store.BatchList(ctx, auth.Project(ctx), in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := BatchList{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, batchOf, func(b store.Batch) string { return b.ID })
	if err := d.withStatusMessages(ctx, out.Data); err != nil {
		return nil, err
	}
	return &batchListOutput{Body: out}, nil
}

func (d Deps) retrieveBatch(ctx context.Context, in *batchIDInput) (*batchOutput, error) {
	b, err := d.Batches.Get(ctx, in.BatchID)
	if err != nil {
		return nil, err
	}
	out := []Batch{batchOf(b)}
	if err := d.withStatusMessages(ctx, out); err != nil {
		return nil, err
	}
	return &batchOutput{Body: out[0]}, nil
}

func (d Deps) cancelBatch(ctx context.Context, in *batchIDInput) (*batchOutput, error) {
	b, err := d.Batches.Cancel(ctx, in.BatchID)
	if err != nil {
		return nil, err
	}
	return &batchOutput{Body: batchOf(b)}, nil
}

// withStatusMessages explains why batches in progress wait: no live agent
// serves their model.
func (d Deps) withStatusMessages(ctx context.Context, batches []Batch) error {
	waiting := false
	for _, b := range batches {
		waiting = waiting || (b.Status == "in_progress" && b.Model != nil)
	}
	if !waiting {
		return nil
	}
	agents, err := d.Store.AgentList(ctx, time.Now().Add(-agentLiveness).Unix())
	if err != nil {
		return err
	}
	served := servedModels(agents)
	for i, b := range batches {
		if b.Status != "in_progress" || b.Model == nil || served[*b.Model] {
			continue
		}
		msg := fmt.Sprintf("Waiting: no live agent serves model %q. The batch runs when one does, or expires at the end of its window.", *b.Model)
		batches[i].StatusMessage = &msg
	}
	return nil
}

func conquestOf(c store.Conquest) *BatchConquest {
	if c.Type == "" {
		return nil
	}
	return &BatchConquest{Type: c.Type, Version: c.Version, CheckedAt: c.CheckedAt, Valid: c.Valid, Invalid: c.Invalid, Error: c.Error}
}
