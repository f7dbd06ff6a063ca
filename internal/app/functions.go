package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/netguard"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Functions are kiln's functions: the registry, and the webhooks and the
// inbox it holds.
type Functions struct {
	Registry  *functions.Registry
	Webhooks  *functions.Webhooks
	Inbox     *functions.Inbox
	Conquests *functions.Conquests
	Importer  *curation.Importer
}

// NewFunctions builds kiln's functions from cfg. It does not route st's
// events to them (no SetDispatcher): kiln serve does that, while a process
// that runs the functions itself, such as the Lambda handler
// (functions/lambda), must not, or every invocation would also be enqueued
// for kiln serve to run a second time. cfg should have its defaults
// (config.Config.WithDefaults).
func NewFunctions(cfg config.Config, st *store.Store, bucket objectstore.Bucket, schemas *conquest.Registry, log *slog.Logger) (Functions, error) {
	batches := NewBatches(cfg, st, bucket, log)
	log = log.With("component", "functions")
	wh := &functions.Webhooks{
		Store: st, Log: log,
		Client: netguard.NewClient(netguard.Options{AllowPrivate: cfg.WebhookAllowPrivate, Timeout: cfg.WebhookTimeout,
			IdleConnsPerHost: functions.DeliverConcurrency}),
		// Webhooks are bounded by age (24h by default), not attempts.
		Retry: functions.Retry{Base: cfg.RetryBase, Max: cfg.RetryMax, MaxAge: cfg.WebhookMaxAge, MaxAttempts: 100_000},
		Poll:  cfg.PollInterval,
	}
	in := &functions.Inbox{Store: st, Batches: batches, Bucket: bucket, Prefix: cfg.InboxPrefix, Log: log}
	cq := &functions.Conquests{Store: st, Bucket: bucket, Schemas: schemas, Log: log}
	im := &curation.Importer{Store: st, Bucket: bucket, Schemas: schemas, Log: log}
	fns := []functions.Function{wh.Function(), in.Function(), cq.Function(), im.Function()}
	fns, err := remote(cfg, fns, log)
	if err != nil {
		return Functions{}, err
	}
	reg, err := functions.NewRegistry(
		functions.Retry{Base: cfg.RetryBase, Max: cfg.RetryMax, MaxAttempts: cfg.FunctionMaxAttempts, MaxAge: cfg.FunctionMaxAge},
		fns...)
	if err != nil {
		return Functions{}, err
	}
	return Functions{Registry: reg, Webhooks: wh, Inbox: in, Conquests: cq, Importer: im}, nil
}

// remote makes the functions KILN_REMOTE_FUNCTIONS names run as Lambda
// functions, and fails on a name that is no function's.
func remote(cfg config.Config, fns []functions.Function, log *slog.Logger) ([]functions.Function, error) {
	remotes, err := remoteFunctions(context.Background(), cfg)
	if err != nil || len(remotes) == 0 {
		return fns, err
	}
	names := make([]string, len(fns))
	for i, fn := range fns {
		names[i] = fn.Name
		if r, ok := remotes[fn.Name]; ok {
			fns[i] = r.Wrap(fn)
			delete(remotes, fn.Name)
			log.Info("function runs as a Lambda function", "function", fn.Name, "lambda", r.FunctionName)
		}
	}
	for name := range remotes {
		return nil, fmt.Errorf("config: KILN_REMOTE_FUNCTIONS: no function %q (kiln's functions: %s)", name, strings.Join(names, ", "))
	}
	return fns, nil
}

// NewBatches is the lifecycle of batches, files and uploads on st and
// bucket, with cfg's limits.
func NewBatches(cfg config.Config, st *store.Store, bucket objectstore.Bucket, log *slog.Logger) *batch.Service {
	retention, _ := config.ParseFileRetention(cfg.FileRetention) // cfg.Validate checked it
	return batch.New(st, bucket, batch.Limits{
		MaxFileBytes: cfg.MaxFileBytes, MaxPartBytes: cfg.MaxPartBytes, MaxLineBytes: cfg.MaxLineBytes,
		MaxRequests: cfg.MaxRequests, ShardSize: cfg.ShardSize, UploadTTL: cfg.UploadTTL,
		MaxPendingUploads: cfg.MaxPendingUploads, MaxPendingUploadBytes: cfg.MaxPendingUploadBytes,
		WebhookAllowPrivate: cfg.WebhookAllowPrivate, FileRetention: retention,
		Models: cfg.Models, AcceptAnyModel: cfg.AcceptAnyModel,
	}, log.With("component", "batch"))
}
