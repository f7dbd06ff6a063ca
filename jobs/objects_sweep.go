package jobs

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batch"
)

// ObjectsSweepArgs removes the objects that no row needs
// (batch.SweepObjects): what a crash, a storage error or a late presigned
// PUT left behind. It runs every hour, and at start.
type ObjectsSweepArgs struct{}

// Kind is stable; never rename it.
func (ObjectsSweepArgs) Kind() string { return "objects_sweep" }

// ObjectsSweepPeriodic is the hourly sweep, also run at start.
func ObjectsSweepPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) {
			// A failed sweep is tried again a few times; the next hour's
			// sweeps what is left whatever happens.
			return ObjectsSweepArgs{}, &river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
		},
		&river.PeriodicJobOpts{RunOnStart: true, ID: "objects_sweep"})
}

// SweepMetrics count what the objects sweep removes. A nil *SweepMetrics
// counts nothing.
type SweepMetrics struct {
	swept *prometheus.CounterVec
}

// NewSweepMetrics registers the sweep's metrics with reg.
func NewSweepMetrics(reg prometheus.Registerer) *SweepMetrics {
	m := &SweepMetrics{swept: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_objects_swept_total",
		Help: "Objects no row needed, removed by the hourly sweep, by kind: file, upload_part, batch_object or temp.",
	}, []string{"kind"})}
	reg.MustRegister(m.swept)
	return m
}

func (m *SweepMetrics) add(counts map[string]int) {
	if m == nil {
		return
	}
	for _, kind := range batch.SweptKinds {
		m.swept.WithLabelValues(kind).Add(float64(counts[kind])) // 0 too: the series exists from the first sweep
	}
}

// ObjectsSweepWorker sweeps orphan objects.
type ObjectsSweepWorker struct {
	river.WorkerDefaults[ObjectsSweepArgs]
	d Deps
	// olderThan is the sweep's grace; 0 is batch.SweepGrace.
	olderThan time.Duration
}

// Work removes the orphans older than the grace and counts them, those it
// removed before a failure included.
func (w *ObjectsSweepWorker) Work(ctx context.Context, _ *river.Job[ObjectsSweepArgs]) error {
	grace := cmp.Or(w.olderThan, batch.SweepGrace)
	counts, err := w.d.Batches.SweepObjects(ctx, grace)
	w.d.SweepMetrics.add(counts)
	total := 0
	for _, n := range counts {
		total += n
	}
	if total > 0 {
		w.d.Log.InfoContext(ctx, "removed orphan objects", "files", counts[batch.SweptFile], "upload_parts", counts[batch.SweptUploadPart],
			"batch_objects", counts[batch.SweptBatchObject], "temp", counts[batch.SweptTemp], "grace", grace)
	}
	if err != nil {
		return fmt.Errorf("sweep objects: %w", err)
	}
	return nil
}
