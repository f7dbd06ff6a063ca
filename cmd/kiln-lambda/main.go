// Command kiln-lambda runs kiln's functions as an AWS Lambda function: S3
// notifications of the inbox prefix import objects as files and batches,
// and kiln events relayed to it run the functions subscribed to them (see
// package functions/lambda).
//
// It is configured as kiln serve is, by the KILN_* environment variables
// (KILN_DATABASE_URL, KILN_OBJECT_STORE, KILN_INBOX_PREFIX, ...). It never
// routes the store's events to River jobs: it runs the functions itself,
// while kiln serve runs the jobs it still enqueues (batch validation, webhook
// deliveries). `make lambda` builds it for Lambda's provided.al2023
// runtime: bin/kiln-lambda-amd64.zip and bin/kiln-lambda-arm64.zip, each
// holding the binary as bootstrap (see internal/lambdazip).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/alecthomas/kong"
	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/functions/lambda"
	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

type cli struct {
	config.Config `embed:""`
}

func main() {
	var c cli
	kong.Parse(&c, kong.Name("kiln-lambda"),
		kong.Description("kiln's functions as an AWS Lambda handler, configured by KILN_* variables as kiln serve is."),
		config.KongVars())
	h, closeAll, err := setup(context.Background(), c.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-lambda:", err)
		os.Exit(1)
	}
	awslambda.StartWithOptions(h.Invoke, awslambda.WithEnableSIGTERM(closeAll))
}

// setup opens the store and the object store and builds the handler.
func setup(ctx context.Context, cfg config.Config) (*lambda.Handler, func(), error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	schemas, err := conquest.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("conquest schemas: %w", err)
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return nil, nil, err
	}
	opts := objectstore.Options{PublicURL: cfg.PublicURL}
	if cfg.SigningKey != "" {
		opts.SigningKey = []byte(cfg.SigningKey)
	}
	bucket, err := objectstore.OpenWith(ctx, cfg.ObjectStore, opts)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("object store: %w", err)
	}
	// No st.SetDispatcher: see package functions/lambda.
	if len(cfg.RemoteFunctions) > 0 {
		// This is where remote functions run: invoking Lambda again from
		// here would call this function for ever.
		log.Warn("KILN_REMOTE_FUNCTIONS is ignored in the Lambda handler: it runs every function itself", "remote_functions", cfg.RemoteFunctions)
		cfg.RemoteFunctions = nil
	}
	fns, err := app.NewFunctions(cfg, st, bucket, schemas, log)
	if err != nil {
		_ = bucket.Close()
		st.Close()
		return nil, nil, err
	}
	if cfg.InboxPrefix == "" {
		log.Warn("KILN_INBOX_PREFIX is not set: S3 notifications import nothing")
	}
	closeAll := func() {
		_ = bucket.Close()
		st.Close()
	}
	return &lambda.Handler{Registry: fns.Registry, Inbox: fns.Inbox, Store: st, Log: log}, closeAll, nil
}
