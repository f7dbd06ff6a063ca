package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/tracing"
)

// CompletionWindowDefault is the completion window of a batch that names
// none (the inbox's): OpenAI's only one.
const CompletionWindowDefault = "24h"

// CreateParams are what a client asks of a new batch.
type CreateParams struct {
	// InputFileID is a file with purpose batch.
	InputFileID string
	// Endpoint is the endpoint every request calls.
	Endpoint string
	// CompletionWindow is 24h, or a kiln duration from 1s to 168h.
	// Default: CompletionWindowDefault.
	CompletionWindow string
	// Metadata is up to 16 keys; webhook_url names the batch's own
	// webhook.
	Metadata map[string]string
	// Priority orders batches of one model, -100 to 100.
	Priority int64
	// Model, when set, is the model every request must name (the inbox's
	// sidecar can ask for it).
	Model string
	// OutputExpiresAfter, when set, is when the batch's output and error
	// files expire, after finalize makes them; nil leaves them to the
	// retention of batch_output.
	OutputExpiresAfter *ExpiresAfter
}

// Create makes a batch of an uploaded file: it checks the request, records
// the batch as validating and enqueues its validation and its expiry, in
// one transaction. The batch is returned as created: the client learns the
// validator's verdict by polling, as with OpenAI.
func (s *Service) Create(ctx context.Context, p CreateParams) (store.Batch, error) {
	b, jobs, err := s.newBatch(ctx, p)
	if err != nil {
		return store.Batch{}, err
	}
	f, err := s.GetFile(ctx, p.InputFileID)
	if e, ok := apierror.As(err); ok && e.Status == http.StatusNotFound {
		return store.Batch{}, apierror.NotFoundParam("input_file_id", "file", p.InputFileID)
	}
	if err != nil {
		return store.Batch{}, err
	}
	if f.Purpose != PurposeBatch {
		return store.Batch{}, apierror.Invalid("input_file_id",
			fmt.Sprintf("File %s has purpose '%s'; a batch's input file must have purpose 'batch'.", f.ID, f.Purpose))
	}
	if err := s.store.BatchCreate(ctx, b, jobs...); err != nil {
		return store.Batch{}, err
	}
	return b, nil
}

// newBatch checks p and builds the batch it asks for, with the jobs that
// must commit with it. It is the one place a batch is made.
func (s *Service) newBatch(ctx context.Context, p CreateParams) (store.Batch, []store.Job, error) {
	p.CompletionWindow = cmp.Or(p.CompletionWindow, CompletionWindowDefault)
	window, err := batchline.ParseWindow(p.CompletionWindow)
	if err != nil {
		return store.Batch{}, nil, apierror.InvalidErr("completion_window", err)
	}
	if err := batchline.CheckMetadata(p.Metadata); err != nil {
		return store.Batch{}, nil, apierror.InvalidErr("metadata", err)
	}
	if err := batchline.CheckEndpoint(p.Endpoint); err != nil {
		return store.Batch{}, nil, apierror.InvalidErr("endpoint", err)
	}
	if err := p.OutputExpiresAfter.check("output_expires_after"); err != nil {
		return store.Batch{}, nil, err
	}
	if target := p.Metadata[MetadataWebhookURL]; target != "" {
		if err := s.checkWebhookURL(ctx, target); err != nil {
			return store.Batch{}, nil, err
		}
	}
	created := s.now()
	b := store.Batch{
		ID:               ids.New(ids.Batch),
		Endpoint:         p.Endpoint,
		Model:            p.Model,
		InputFileID:      p.InputFileID,
		CompletionWindow: p.CompletionWindow,
		Status:           store.BatchValidating,
		Metadata:         p.Metadata,
		Priority:         p.Priority,
		ProjectID:        auth.Project(ctx),
		CreatedAt:        created.Unix(),
		ExpiresAt:        created.Add(window).Unix(),
		// The output's policy waits in the batch for finalize.
		OutputExpiresAfter: p.OutputExpiresAfter.seconds(),
		// Later work on the batch, in any process, continues this trace.
		TraceContext: tracing.Inject(ctx),
	}
	return b, []store.Job{validateJob(b.ID), expireJob(b.ID, created.Add(window))}, nil
}

// Imported is what an object brought in from outside became.
type Imported struct {
	store.InboxObject
	// File is the new file.
	File store.File
	// New is false when the object version was imported before: then
	// InboxObject is the earlier import, and File is not recorded.
	New bool
}

// Import makes the object at key (version etag) a file named filename,
// and a batch when batch is not nil: the object is copied server-side to
// the file's key, and the file, the batch and its jobs are recorded with
// the import in one transaction. An object version imported before is not
// imported again. A request for a batch that breaks a rule fails with an
// *apierror.Error, before anything is written.
func (s *Service) Import(ctx context.Context, key, etag, filename string, batch *CreateParams) (Imported, error) {
	f := NewFile(PurposeBatch, filename)
	f.ProjectID = auth.Project(ctx)
	s.setExpiry(&f, 0)
	var b *store.Batch
	var jobs []store.Job
	if batch != nil {
		p := *batch
		p.InputFileID = f.ID
		nb, js, err := s.newBatch(ctx, p)
		if err != nil {
			return Imported{}, err
		}
		b, jobs = &nb, js
	}
	copied, err := s.bucket.Compose(ctx, f.ObjectKey, []string{key})
	if err != nil {
		return Imported{}, fmt.Errorf("copy %s: %w", key, err)
	}
	f.Bytes = copied.Size
	rec, isNew, err := s.store.InboxImport(ctx, key, etag, f, b, jobs...)
	if err != nil || !isNew {
		// Failed, or imported meanwhile by another run: drop this copy.
		s.deleteObject(ctx, f.ObjectKey)
		return Imported{InboxObject: rec}, err
	}
	return Imported{InboxObject: rec, File: f, New: true}, nil
}

// deleteObject removes an object that nothing records (any more), even
// when ctx has ended; a failure leaves it to be found later, and is logged.
func (s *Service) deleteObject(ctx context.Context, key string) {
	if err := s.bucket.Delete(context.WithoutCancel(ctx), key); err != nil && !errors.Is(err, objectstore.ErrNotExist) {
		s.log.WarnContext(ctx, "an object nothing records remains", "key", key, "err", err)
	}
}
