package batch

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/store"
)

// ModelKnown says whether kiln knows a model, by validation's rule: an
// agent has declared it, or the configuration names it (or accepts any).
func (s *Service) ModelKnown(ctx context.Context, model string) (bool, error) {
	if s.limits.AcceptAnyModel || slices.Contains(s.limits.Models, model) {
		return true, nil
	}
	return s.store.ModelKnown(ctx, model)
}

// CreateGenerated makes a batch of requests kiln writes itself, such as a
// curation judge's, in project: write streams its input file (JSONL, as a
// client would upload it), then the file and the batch are recorded in one
// transaction and the batch is validated and run like any other. p's
// InputFileID is ignored. If anything fails, nothing is left.
func (s *Service) CreateGenerated(ctx context.Context, project string, p CreateParams, filename string, write func(w io.Writer) error) (store.Batch, error) {
	ctx = auth.NewContext(ctx, auth.Principal{ProjectID: project})
	b, jobs, err := s.newBatch(ctx, p)
	if err != nil {
		return store.Batch{}, err
	}
	f := NewFile(PurposeBatch, filename)
	f.ProjectID = project
	s.setExpiry(&f, 0)
	if f.Bytes, err = writeObject(ctx, s.bucket, f.ObjectKey, write); err != nil {
		s.deleteObject(ctx, f.ObjectKey)
		return store.Batch{}, fmt.Errorf("create batch: %w", err)
	}
	b.InputFileID, b.ProjectID = f.ID, project
	if err := s.store.BatchCreateWithInput(ctx, f, b, jobs...); err != nil {
		s.deleteObject(ctx, f.ObjectKey)
		return store.Batch{}, err
	}
	return b, nil
}

// KnownModels lists the models kiln knows, by ID: those agents declared
// and those the configuration names.
func (s *Service) KnownModels(ctx context.Context) ([]string, error) {
	list, err := s.store.ModelList(ctx)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(s.limits.Models)
	for _, m := range list {
		if !slices.Contains(out, m.ID) {
			out = append(out, m.ID)
		}
	}
	slices.Sort(out)
	return out, nil
}
