// Package tracing gives kiln OpenTelemetry traces: a tracer provider set up
// from the standard OTEL_* variables (off unless they ask for an exporter),
// and the few helpers that keep one trace per batch, from the request that
// creates it through its jobs and the agents that run it to its finalizer
// and webhook.
//
// A batch's trace context (a W3C traceparent) is stored with the batch;
// whatever works on the batch later, in any process, starts its span as a
// child of it with StartBatch. Jobs continue the trace of the code that
// enqueued them (JobMiddleware). Where tracing is off, every span is a
// no-op and no trace context is stored.
package tracing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope of kiln's own spans.
const Scope = "github.com/kilnhq/kiln"

// Propagator carries trace context in W3C traceparent and tracestate
// headers (and job metadata), as OTEL_PROPAGATORS' default does.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Provider is a tracer provider and how to flush and stop it.
type Provider struct {
	trace.TracerProvider
	// Enabled is false for the no-op provider of a kiln without tracing.
	Enabled bool
	// Shutdown flushes the spans not yet exported and stops the exporter.
	Shutdown func(context.Context) error
}

// Disabled is the provider of a kiln without tracing: every span is a no-op.
func Disabled() Provider {
	return Provider{TracerProvider: noop.NewTracerProvider(), Shutdown: func(context.Context) error { return nil }}
}

// Enabled wraps a provider a test or an embedding program made; a no-op
// provider turns tracing off.
func Enabled(tp trace.TracerProvider) Provider {
	if _, ok := tp.(noop.TracerProvider); ok {
		return Disabled()
	}
	p := Provider{TracerProvider: tp, Enabled: true, Shutdown: func(context.Context) error { return nil }}
	if s, ok := tp.(interface{ Shutdown(context.Context) error }); ok {
		p.Shutdown = s.Shutdown
	}
	return p
}

// FromEnv sets up tracing from the standard OpenTelemetry variables of
// getenv (os.Getenv when nil). Tracing is on when OTEL_TRACES_EXPORTER is
// "otlp", or is unset while OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; it is off otherwise, and when
// OTEL_SDK_DISABLED is true. Spans go by OTLP over HTTP (protocol
// http/protobuf or http/json; grpc is refused), configured by the
// exporter's own OTEL_EXPORTER_OTLP_* variables; OTEL_TRACES_SAMPLER,
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply as usual. The service
// name defaults to "kiln".
func FromEnv(ctx context.Context, getenv func(string) string, version string) (Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return Disabled(), nil
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	if exporter == "" && (getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		exporter = "otlp"
	}
	switch exporter {
	case "", "none":
		return Disabled(), nil
	case "otlp":
	default:
		return Provider{}, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%s: kiln exports traces by otlp only (or none)", exporter)
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if protocol != "" && protocol != "http/protobuf" && protocol != "http/json" {
		return Provider{}, fmt.Errorf("tracing: OTLP protocol %q: kiln sends OTLP over HTTP (http/protobuf, port 4318, or http/json)", protocol)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return Provider{}, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "kiln"), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return Provider{}, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return Provider{TracerProvider: tp, Enabled: true, Shutdown: tp.Shutdown}, nil
}

// BatchID is the attribute naming the batch a span works on.
func BatchID(id string) attribute.KeyValue { return attribute.String("kiln.batch.id", id) }

// Inject is the trace context of ctx's span as a W3C traceparent, to be
// stored with what it started (a batch); "" when ctx has no recording or
// remote span, as where tracing is off.
func Inject(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// Extract is ctx with traceparent as its remote parent span; ctx itself when
// traceparent is empty or invalid.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// StartBatch starts a span of work on a batch whose stored trace context is
// traceparent: the span joins the batch's trace, as a child of the span that
// created the batch, and links to the span of ctx (the job or the agent's
// loop doing the work), whose tracer provider it uses. With no stored trace
// context it is a plain child of ctx's span.
func StartBatch(ctx context.Context, traceparent, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return StartBatchWith(ctx, trace.SpanFromContext(ctx).TracerProvider(), traceparent, name, attrs...)
}

// StartBatchWith is StartBatch with a given tracer provider, for code that
// holds one rather than running under a span (the agent).
func StartBatchWith(ctx context.Context, tp trace.TracerProvider, traceparent, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...)}
	parent := Extract(ctx, traceparent)
	if cur := trace.SpanContextFromContext(ctx); cur.IsValid() && traceparent != "" {
		if remote := trace.SpanContextFromContext(parent); remote.IsValid() && remote.TraceID() != cur.TraceID() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: cur}))
		}
	}
	return tp.Tracer(Scope).Start(parent, name, opts...)
}

// ContinueJobTrace makes a job's work continue the trace of the code that
// enqueued it: the work runs under the enqueuer's span context, read from the
// traceparent that otelriver's trace propagation put in the job's metadata.
// It goes before otelriver's middleware, whose work span then becomes a
// child in that trace rather than the root of a new one, so that a batch's
// jobs (validate, finalize, its events' functions and webhooks) stay in the
// batch's trace.
func ContinueJobTrace() rivertype.Middleware { return &continueTrace{} }

type continueTrace struct{ river.MiddlewareDefaults }

func (*continueTrace) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = Propagator.Extract(ctx, metadataCarrier(job.Metadata))
	}
	return doInner(ctx)
}

// metadataCarrier reads the string fields of a job's metadata, where
// otelriver keeps traceparent and tracestate.
func metadataCarrier(metadata []byte) propagation.MapCarrier {
	carrier := propagation.MapCarrier{}
	var m map[string]any
	if len(metadata) == 0 || json.Unmarshal(metadata, &m) != nil {
		return carrier
	}
	for k, v := range m {
		if s, ok := v.(string); ok {
			carrier[k] = s
		}
	}
	return carrier
}

// JobMiddleware is the River middleware of a process with tracing on:
// jobs continue their enqueuer's trace (see ContinueJobTrace) and otelriver
// traces each insert and work, carrying the trace context in the jobs'
// metadata. Without tracing it is empty: jobs pay nothing.
func (p Provider) JobMiddleware() []rivertype.Middleware {
	if !p.Enabled {
		return nil
	}
	return []rivertype.Middleware{ContinueJobTrace(), otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
		EnableTracePropagation:      true,
		EnableWorkSpanJobKindSuffix: true,
		TracerProvider:              p.TracerProvider,
		MeterProvider:               metricnoop.NewMeterProvider(),
	})}
}

// HTTPHandler traces the requests h serves, continuing a caller's trace
// (traceparent); /metrics and /healthz are left out. Without tracing it is
// h itself.
func (p Provider) HTTPHandler(h http.Handler) http.Handler {
	if !p.Enabled {
		return h
	}
	return otelhttp.NewHandler(h, "kiln",
		otelhttp.WithTracerProvider(p.TracerProvider),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(Propagator),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/metrics" && r.URL.Path != "/healthz" }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
	)
}
