package gpuagent

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/kilnhq/kiln/internal/store"
)

// backoff is exponential with full jitter: up to 250ms, 500ms, 1s, ...
func backoff(attempt int) time.Duration {
	ceiling := 250 * time.Millisecond << min(attempt, 6)
	return time.Duration(rand.Int64N(int64(ceiling))) + 10*time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry tries fn with backoff for about a minute: long enough to ride out
// a restart of the database or the object store.
func retry(ctx context.Context, fn func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || errors.Is(err, store.ErrConflict) || time.Now().After(deadline) {
			return err
		}
		if sleep(ctx, backoff(min(attempt, 3))) != nil {
			return err
		}
	}
}
