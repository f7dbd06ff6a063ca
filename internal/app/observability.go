package app

import (
	"context"
	"errors"
	"net/http"

	"riverqueue.com/riverui"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/tracing"
)

// RiverUIPrefix is where kiln serve mounts River UI, behind admin auth.
const RiverUIPrefix = "/admin/river"

// setupTracing takes the tracer provider of opts, or sets one up from the
// OTEL_* variables (off unless they name an exporter).
func (a *App) setupTracing(ctx context.Context) error {
	if a.opts.TracerProvider != nil {
		a.Tracing = tracing.Enabled(a.opts.TracerProvider)
		return nil
	}
	var err error
	a.Tracing, err = tracing.FromEnv(ctx, nil, a.opts.Version)
	if err == nil && a.Tracing.Enabled {
		a.Log.Info("tracing on: spans go to the OTLP endpoint of the OTEL_* variables")
	}
	return err
}

// registerStoreMetrics registers what every process reports of its
// database and object store: connections, connection errors and, for a
// folder store, free disk space. bucket is the store as opened, before any
// wrapper.
func (a *App) registerStoreMetrics(bucket objectstore.Bucket) {
	a.Metrics.MustRegister(a.Store.Collector())
	if c := objectstore.DiskCollector(bucket); c != nil {
		a.Metrics.MustRegister(c)
	}
}

// registerServeMetrics registers what kiln serve reports of the whole
// deployment at scrape time: live agents and open batches per model, and
// curation's tasks and outputs.
func (a *App) registerServeMetrics() {
	a.Metrics.MustRegister(newAgentsCollector(a.Store, a.Log), newBatchesCollector(a.Store, a.Log), curation.NewCollector(a.Store, a.Log))
}

// newRiverUI is River UI on the store's queue, served under RiverUIPrefix.
func (a *App) newRiverUI() (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: a.Store.RiverUIEndpoints(),
		Logger:    a.Log.With("component", "riverui"),
		Prefix:    RiverUIPrefix,
	})
	if err != nil {
		return nil, err
	}
	a.riverUI = h
	return h, nil
}

// startRiverUI starts River UI's background queries (job counts), which
// stopRiverUI ends.
func (a *App) startRiverUI(ctx context.Context) error {
	if a.riverUI == nil {
		return nil
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stopRiverUI = stop
	if err := a.riverUI.Start(ctx); err != nil {
		stop()
		return errors.Join(errors.New("river ui"), err)
	}
	return nil
}
