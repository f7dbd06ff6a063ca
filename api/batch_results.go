package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/batch"
)

// kiln's extensions of the Batch API: live partial results, retries of
// failed lines, and the chain of retries.

// Headers of GET /v1/batches/{batch_id}/results.
const (
	// HeaderNextAfter is the cursor after the answer's lines: the after of
	// the next request.
	HeaderNextAfter = "Kiln-Next-After"
	// HeaderResultsDone is "true" when the batch has ended and the answer
	// reaches the end of its results.
	HeaderResultsDone = "Kiln-Results-Done"
	// HeaderResultLines is how many lines the answer holds, so that a
	// client can tell an answer cut short.
	HeaderResultLines = "Kiln-Result-Lines"
	// HeaderBatchStatus is the batch's status when the answer was made.
	HeaderBatchStatus = "Kiln-Batch-Status"
)

type batchResultsInput struct {
	BatchID string `path:"batch_id" doc:"The batch's ID."`
	After   string `query:"after" doc:"The Kiln-Next-After header of the previous answer; empty starts at the beginning."`
	Limit   int64  `query:"limit" minimum:"0" maximum:"10000000" doc:"The most lines to answer; 0 (the default) answers every line available."`
	Wait    int    `query:"wait" minimum:"0" maximum:"60" doc:"Seconds to wait, when no line is available after the cursor, for one to become durable or the batch to end (long polling). Default: 0."`
}

// BatchRetryRequest is the body of POST /v1/batches/{batch_id}/retry.
type BatchRetryRequest struct {
	Codes            []string          `json:"codes,omitempty" maxItems:"32" doc:"Retry only the error lines matching one of these: an error code of a request that never got an answer (batch_expired, batch_cancelled, request_timeout, request_failed), an HTTP status (429) or class (5xx, 4xx), or the code or type of the answer's error (model_not_found). Default: every error line."`
	CompletionWindow string            `json:"completion_window,omitempty" doc:"The retry's completion window. Default: the batch's."`
	Metadata         map[string]string `json:"metadata,omitempty" doc:"The retry's metadata. Default: the batch's. Either way it gains retry_of, the batch's ID."`
}

type batchRetryInput struct {
	BatchID string `path:"batch_id" doc:"The batch's ID."`
	Body    *BatchRetryRequest
}

// BatchLineage is a batch's chain of retries (kiln extension).
type BatchLineage struct {
	Object string `json:"object" enum:"batch.lineage"`
	// Data are the batches of the chain, the first batch first.
	Data          []Batch            `json:"data" doc:"The chain's batches: the first batch, then each retry of the one before."`
	RequestCounts BatchRequestCounts `json:"request_counts" doc:"Over the chain, each request once, by its newest attempt: total is the first batch's requests, completed those that succeeded in some batch, failed those whose newest attempt failed and that no batch retries."`
}

type batchLineageOutput struct{ Body BatchLineage }

func registerBatchExtensions(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listBatchResults", Method: http.MethodGet, Path: "/v1/batches/{batch_id}/results",
		Summary: "Read a batch's results as they become durable", Tags: []string{"Batches"},
		Description: "kiln extension. Streams the batch's output and error lines (JSONL) that are durable now, after the cursor `after`, " +
			"without waiting for the batch to end. Each answer's `" + HeaderNextAfter + "` header is the next cursor, so a client tailing the " +
			"results sees each line once; `" + HeaderResultsDone + ": true` says the batch has ended and no line follows. Every line served " +
			"is in the batch's final output or error file, byte for byte. While the batch runs, lines come a chunk at a time, in the order the " +
			"chunks became durable: each chunk's output lines, then its error lines. Once it has ended, the lines of requests that never ran " +
			"(batch_expired, batch_cancelled) come last. `" + HeaderResultLines + "` counts the lines; an answer cut short has fewer.",
		Responses: map[string]*huma.Response{
			"200": {Description: "The lines, as JSONL.", Content: map[string]*huma.MediaType{"application/jsonl": {Schema: &huma.Schema{Type: "string"}}}},
		},
	}, d.batchResults)
	huma.Register(api, huma.Operation{
		OperationID: "retryBatch", Method: http.MethodPost, Path: "/v1/batches/{batch_id}/retry",
		Summary: "Retry a batch's failed requests", Tags: []string{"Batches"},
		Description: "kiln extension. Makes a new batch of an ended batch's failed requests (optionally only those whose error matches `codes`), " +
			"copied from its input file, with metadata.retry_of naming the batch. A batch is retried once: retry the retry to go on. " +
			"400 nothing_to_retry when no request failed (or none matches), 409 batch_not_retryable before the batch has ended, " +
			"409 batch_already_retried after a retry.",
	}, d.retryBatch)
	huma.Register(api, huma.Operation{
		OperationID: "retrieveBatchLineage", Method: http.MethodGet, Path: "/v1/batches/{batch_id}/lineage",
		Summary: "A batch's chain of retries", Tags: []string{"Batches"},
		Description: "kiln extension. The chain of retries the batch belongs to, from the first batch to the newest retry, with combined counts.",
	}, d.batchLineage)
}

func (d Deps) batchResults(ctx context.Context, in *batchResultsInput) (*huma.StreamResponse, error) {
	after, err := batch.ParseCursor(in.After)
	if err != nil {
		return nil, err
	}
	r, err := d.Batches.Results(ctx, in.BatchID, after, in.Limit, time.Duration(in.Wait)*time.Second)
	if err != nil {
		return nil, err
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		hctx.SetHeader("Content-Type", "application/jsonl")
		hctx.SetHeader("Cache-Control", "no-store")
		hctx.SetHeader(HeaderNextAfter, r.Next.String())
		hctx.SetHeader(HeaderResultsDone, strconv.FormatBool(r.Done))
		hctx.SetHeader(HeaderResultLines, strconv.FormatInt(r.Lines, 10))
		hctx.SetHeader(HeaderBatchStatus, string(r.Batch.Status))
		if err := r.Write(ctx, hctx.BodyWriter()); err != nil {
			// The status is sent: abort the connection, so that the client
			// sees an error rather than a short answer that looks whole.
			d.Log.WarnContext(ctx, "results cut short", "batch", in.BatchID, "err", err)
			panic(http.ErrAbortHandler)
		}
	}}, nil
}

func (d Deps) retryBatch(ctx context.Context, in *batchRetryInput) (*batchOutput, error) {
	p := batch.RetryParams{}
	if in.Body != nil {
		p = batch.RetryParams{Codes: in.Body.Codes, CompletionWindow: in.Body.CompletionWindow, Metadata: in.Body.Metadata}
	}
	b, err := d.Batches.Retry(ctx, in.BatchID, p)
	if err != nil {
		return nil, err
	}
	return &batchOutput{Body: batchOf(b)}, nil
}

func (d Deps) batchLineage(ctx context.Context, in *batchIDInput) (*batchLineageOutput, error) {
	l, err := d.Batches.Lineage(ctx, in.BatchID)
	if err != nil {
		return nil, err
	}
	out := BatchLineage{Object: "batch.lineage", Data: make([]Batch, len(l.Batches)),
		RequestCounts: BatchRequestCounts{Total: l.Total, Completed: l.Completed, Failed: l.Failed}}
	for i, b := range l.Batches {
		out.Data[i] = batchOf(b)
	}
	return &batchLineageOutput{Body: out}, nil
}
