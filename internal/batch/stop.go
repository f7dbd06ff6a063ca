package batch

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// Get is a batch, or a 404.
func (s *Service) Get(ctx context.Context, id string) (store.Batch, error) {
	b, err := s.store.BatchGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !visible(ctx, b.ProjectID)) {
		return store.Batch{}, apierror.NotFound("batch", id)
	}
	return b, err
}

// Cancel stops a batch at a client's request: it is cancelling until its
// running requests stop, then the finalizer, enqueued with the change,
// makes it cancelled. Finished results are kept; the other requests go to
// the error file as batch_cancelled. A batch that is finalizing or ended
// cannot be cancelled (409 batch_not_cancellable); one already stopping
// keeps its first reason.
func (s *Service) Cancel(ctx context.Context, id string) (store.Batch, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return store.Batch{}, err
	}
	b, err := s.store.BatchRequestStop(ctx, id, store.StopCancelled, finalizeJob(id))
	switch {
	case errors.Is(err, store.ErrConflict):
		cur, gerr := s.Get(ctx, id)
		if gerr != nil {
			return store.Batch{}, gerr
		}
		return store.Batch{}, apierror.Conflict("batch_not_cancellable", fmt.Sprintf("Cannot cancel a batch with status '%s'.", cur.Status))
	case errors.Is(err, store.ErrNotFound):
		return store.Batch{}, apierror.NotFound("batch", id)
	}
	return b, err
}

// Expire stops a batch at the end of its completion window, unless it
// ended in time (or is gone): then it reports false. The finalizer commits
// with the stop.
func (s *Service) Expire(ctx context.Context, id string) (bool, error) {
	_, err := s.store.BatchRequestStop(ctx, id, store.StopExpired, finalizeJob(id))
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("expire batch %s: %w", id, err)
	}
	s.log.InfoContext(ctx, "batch expired", "batch", id)
	return true, nil
}

// FinishShard records that every line of a batch's shard, leased by agent,
// has a durable result. The batch's last shard moves it to finalizing, with
// the finalizer enqueued in the same transaction. A lease another agent
// took over is store.ErrConflict.
//
// A shard that is not the last enqueues the batch's compaction (Compact) in
// the same transaction, unless one waits already or the batch is too small
// to fill two pieces (compacts).
func (s *Service) FinishShard(ctx context.Context, batchID string, shard int64, agent string) (store.Batch, error) {
	return s.store.ShardFinish(ctx, batchID, shard, agent, func(b store.Batch, finalizing bool) []store.Job {
		switch {
		case finalizing:
			return []store.Job{finalizeJob(batchID)}
		case b.Status == store.BatchInProgress && b.StopReason == "" && s.compacts(b):
			return []store.Job{compactJob(batchID)}
		}
		return nil
	})
}
