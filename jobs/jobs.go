// Package jobs holds kiln's River job kinds and their workers, one file per
// kind, and Register, the one place where every worker of a process is
// added (the workers of functions and curation live beside their code, and
// are added here too). The lifecycle jobs (validate, finalize, expire, upload expiry, file expiry) are
// thin: they call internal/batch, which owns the rules and enqueues them.
// Agents do not take jobs: they claim a batch's shards under leases (see
// store.ShardClaim). Kinds are stable: never rename one, jobs of the old
// name would never run.
package jobs

import (
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/store"
)

// Queues and how many jobs of each one process runs at once.
const (
	// QueueDefault holds the lifecycle jobs and curation exports.
	QueueDefault = river.QueueDefault
	// QueueDefaultWorkers is how many of them run at once.
	QueueDefaultWorkers = 10
	// QueueEvents holds function invocations, apart from the lifecycle
	// jobs so that a slow function never delays a batch.
	QueueEvents = functions.QueueEvents
	// QueueEventsWorkers is how many of them run at once.
	QueueEventsWorkers = 100
	// QueueWebhooks held webhook deliveries before they were kiln's own
	// queue (functions.Webhooks.Start): what is left there from then
	// completes at once.
	QueueWebhooks = functions.QueueWebhooks
	// QueueWebhooksWorkers is how many of those run at once.
	QueueWebhooksWorkers = 1
)

// Queues are the queues a serving process works, with their sizes.
func Queues() map[string]int {
	return map[string]int{QueueDefault: QueueDefaultWorkers, QueueEvents: QueueEventsWorkers, QueueWebhooks: QueueWebhooksWorkers}
}

// Deps are what the workers need.
type Deps struct {
	Batches *batch.Service
	Store   *store.Store
	Log     *slog.Logger
	// EventRetention is how long events, with their finished invocations
	// and deliveries, are kept; 0 keeps them for good.
	EventRetention time.Duration
	// Functions runs the functions subscribed to events; Webhooks sends
	// their deliveries.
	Functions *functions.Registry
	Webhooks  *functions.Webhooks
	// Exporter writes curation exports.
	Exporter *curation.Exporter
	// SweepMetrics count what the objects sweep removes; nil counts
	// nothing.
	SweepMetrics *SweepMetrics
}

// Register adds every worker of a serving process to workers. A new job
// kind is added here.
func Register(workers *river.Workers, d Deps) {
	river.AddWorker(workers, &BatchValidateWorker{d: d})
	river.AddWorker(workers, &BatchFinalizeWorker{d: d})
	river.AddWorker(workers, &BatchCompactWorker{d: d})
	river.AddWorker(workers, &BatchExpireWorker{d: d})
	river.AddWorker(workers, &UploadExpireWorker{d: d})
	river.AddWorker(workers, &EventsPruneWorker{d: d})
	river.AddWorker(workers, &ObjectsSweepWorker{d: d})
	river.AddWorker(workers, &FilesExpireWorker{d: d})
	river.AddWorker(workers, &functions.InvokeWorker{Registry: d.Functions, Store: d.Store,
		Log: d.Log.With("component", "functions"), Metrics: d.Webhooks.Metrics})
	river.AddWorker(workers, &functions.DeliverWorker{})
	river.AddWorker(workers, &curation.ExportWorker{Exporter: d.Exporter})
}

// Periodic are the jobs that run on a schedule.
func Periodic() []*river.PeriodicJob {
	return []*river.PeriodicJob{EventsPrunePeriodic(), ObjectsSweepPeriodic(), FilesExpirePeriodic()}
}

// stopIfPermanent turns an error the database would give again, however
// often the job ran (store.IsPermanent: bad data, a broken constraint),
// into River's cancellation: the job stops at once, with the error
// recorded on it, instead of retrying to its last attempt.
func stopIfPermanent(err error) error {
	if store.IsPermanent(err) {
		return river.JobCancel(err)
	}
	return err
}
