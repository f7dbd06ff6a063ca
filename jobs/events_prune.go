package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// EventsPruneArgs removes events older than the retention, with their
// finished invocations and deliveries. It runs every hour.
type EventsPruneArgs struct{}

// Kind is stable; never rename it.
func (EventsPruneArgs) Kind() string { return "events_prune" }

// EventsPrunePeriodic is the hourly prune, also run at start.
func EventsPrunePeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) {
			return EventsPruneArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
		},
		&river.PeriodicJobOpts{RunOnStart: true, ID: "events_prune"})
}

// EventsPruneWorker prunes old events.
type EventsPruneWorker struct {
	river.WorkerDefaults[EventsPruneArgs]
	d Deps
}

// Work deletes what is older than the retention and no longer pending.
func (w *EventsPruneWorker) Work(ctx context.Context, _ *river.Job[EventsPruneArgs]) error {
	if w.d.EventRetention <= 0 {
		return nil
	}
	before := time.Now().Add(-w.d.EventRetention).Unix()
	n, err := w.d.Store.EventsPrune(ctx, before)
	if err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	if n > 0 {
		w.d.Log.InfoContext(ctx, "pruned old events", "events", n, "retention", w.d.EventRetention)
	}
	return nil
}
