package batch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/tracing"
)

// Validate streams a new batch's input file once, line by line, and moves
// the batch to in_progress with its shards, which agents then claim, or to
// failed with line-numbered errors. A batch that is no longer validating
// (cancelled or expired while it waited) is left to the finalizer. An
// error is worth retrying: the file could not be read, or the store
// failed.
func (s *Service) Validate(ctx context.Context, id string) error {
	b, err := s.store.BatchGet(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if b.Status != store.BatchValidating || b.StopReason != "" {
		return nil
	}
	ctx, span := tracing.StartBatch(ctx, b.TraceContext, "batch.validate", tracing.BatchID(id))
	defer span.End()
	model := "" // the model of the file's lines, once validation has read them
	fail := func(errs ...store.BatchError) error {
		_, err := s.store.BatchFailWith(ctx, id, model, errs)
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	f, err := s.store.FileGet(ctx, b.InputFileID)
	if errors.Is(err, store.ErrNotFound) {
		return fail(store.BatchError{Code: "file_not_found", Message: fmt.Sprintf("input file %s no longer exists", b.InputFileID), Param: ptr("input_file_id")})
	}
	if err != nil {
		return err
	}
	open := func() (io.ReadCloser, error) { return s.bucket.Get(ctx, f.ObjectKey) }
	sum, problems, err := batchline.Validate(open, batchline.ValidateOpts{
		Endpoint:    b.Endpoint,
		MaxLineSize: s.limits.MaxLineBytes,
		MaxRequests: s.limits.MaxRequests,
		ShardSize:   s.limits.ShardSize,
		Model:       b.Model, // named at creation by an inbox sidecar; "" otherwise
	})
	if err != nil {
		return fmt.Errorf("validate batch %s: %w", id, err)
	}
	model = sum.Model
	if len(problems) > 0 {
		errs := make([]store.BatchError, len(problems))
		for i, p := range problems {
			errs[i] = store.BatchError{Code: p.Code, Message: p.Message}
			if p.Param != "" {
				errs[i].Param = ptr(p.Param)
			}
			if p.Line > 0 {
				errs[i].Line = ptr(p.Line)
			}
		}
		s.log.InfoContext(ctx, "batch failed validation", "batch", id, "problems", len(problems))
		return fail(errs...)
	}
	if p, err := s.checkModel(ctx, sum); err != nil || p != nil {
		if err != nil {
			return err
		}
		s.log.InfoContext(ctx, "batch names an unknown model", "batch", id, "model", sum.Model)
		return fail(*p)
	}
	shards := make([]store.ShardSpan, len(sum.Shards))
	for i, sp := range sum.Shards {
		shards[i] = store.ShardSpan{FirstLine: int64(sp.FirstLine), LastLine: int64(sp.LastLine), Offset: sp.Offset, Requests: int64(sp.Requests)}
	}
	sum.Shards = nil // one copy at a time: 20,000 shards at 10,000,000 requests
	// Requests built from a conquest type name it in their response
	// format: the batch records it, and its outputs are checked once it
	// ends.
	var cq store.Conquest
	if typ, version, ok := conquest.ParseSchemaName(sum.SchemaName); ok {
		cq = store.Conquest{Type: typ, Version: int64(version)}
	}
	limit, err := s.store.RateLimitFor(ctx, b.ProjectID, sum.Model)
	if err != nil {
		return err
	}
	_, err = s.store.BatchStartWith(ctx, id, store.BatchStartParams{Total: int64(sum.Requests), Model: sum.Model, Conquest: cq,
		Shards: shards, InputTokens: sum.InputTokens, MaxEnqueuedTokens: limit.Batch1DayMaxInputTokens})
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	var over *store.TokenLimitError
	if errors.As(err, &over) {
		// As OpenAI: the batch fails, and a later one goes through once
		// earlier batches have ended.
		s.log.InfoContext(ctx, "batch over its project's enqueued-token limit", "batch", id, "limit", over.Limit,
			"enqueued", over.Enqueued, "batch_tokens", over.Batch)
		return fail(store.BatchError{Code: "token_limit_exceeded", Message: fmt.Sprintf(
			"Enqueued token limit reached for %s in project %s. Limit: %d enqueued tokens; %d are enqueued and this batch holds about %d. Please try submitting your batch again later.",
			sum.Model, b.ProjectID, over.Limit, over.Enqueued, over.Batch)})
	}
	if store.IsPermanent(err) {
		// The input passed validation, yet the store refuses what it
		// yields: retrying cannot help, so the batch fails, saying so.
		s.log.ErrorContext(ctx, "the store refused a validated batch's data", "batch", id, "err", err)
		return fail(store.BatchError{Code: "invalid_data", Message: "kiln could not store this batch's shards: the database refused their data"})
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "batch validated", "batch", id, "requests", sum.Requests, "model", sum.Model, "shards", len(shards))
	return nil
}

// CodeModelNotFound is the error of a batch whose model is not in the
// catalogue, as OpenAI's code for a model that does not exist.
const CodeModelNotFound = "model_not_found"

// checkModel fails a batch whose model kiln does not know: no agent has
// declared it and the configuration does not name it. A known model with
// no live agent passes: its batch waits for one.
func (s *Service) checkModel(ctx context.Context, sum batchline.Summary) (*store.BatchError, error) {
	if sum.Model == "" {
		return nil, nil
	}
	known, err := s.ModelKnown(ctx, sum.Model)
	if err != nil || known {
		return nil, err
	}
	line := sum.Shards[0].FirstLine // the first request names the batch's model
	return &store.BatchError{Code: CodeModelNotFound, Param: ptr("body.model"), Line: &line, Message: fmt.Sprintf(
		"The model %q does not exist: no agent has declared it and KILN_MODELS does not name it. GET /v1/models lists the models kiln knows.",
		sum.Model)}, nil
}

func ptr[T any](v T) *T { return &v }
