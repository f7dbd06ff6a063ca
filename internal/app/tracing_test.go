package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/tracing"
)

// TestTracingOneTracePerBatch runs kiln serve and a kiln agent as two
// processes would (each with its own exporter) on Postgres, and follows a
// batch: the request that creates it, its validation, the agent's shard and
// chunks, the finalizer and the webhook delivery are one trace, every span's
// parent in it, across both processes.
func TestTracingOneTracePerBatch(t *testing.T) {
	t.Parallel()
	serveSpans, agentSpans := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	serveTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(serveSpans))
	agentTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(agentSpans))
	env := kilntest.Start(t, "postgres", kilntest.Options{NoAgent: true, TracerProvider: serveTP,
		Configure: func(c *config.Config) { c.WebhookAllowPrivate = true; c.ShardSize = 4 }})
	startAgent(t, env, agentTP)

	delivered := make(chan struct{}, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered <- struct{}{}
	}))
	t.Cleanup(recv.Close)
	kilntest.Call(t, env.Base(), env.Key, http.MethodPost, "/v1/webhook_endpoints",
		map[string]any{"url": recv.URL + "/hook", "event_types": []string{"batch.completed"}}, http.StatusOK, nil)

	c := env.Client()
	id := newBatch(t, c, requests(8, 16))
	require.Equal(t, openai.BatchStatusCompleted, kilntest.WaitBatch(t, c, id).Status)
	select {
	case <-delivered:
	case <-time.After(time.Minute):
		t.Fatal("the webhook was not delivered")
	}

	// The delivery's span ends once the receiver has answered.
	var spans []sdktrace.ReadOnlySpan
	var root trace.TraceID
	kilntest.Eventually(t, 30*time.Second, func() bool {
		spans = spans[:0]
		for _, s := range serveSpans.GetSpans() {
			spans = append(spans, s.Snapshot())
		}
		for _, s := range agentSpans.GetSpans() {
			spans = append(spans, s.Snapshot())
		}
		for _, s := range spans {
			if s.Name() == "POST /v1/batches" {
				root = s.SpanContext().TraceID()
			}
		}
		// Spans reach the exporter as they end: a parent (a job's work)
		// can end after its children. The trace is whole when every
		// span's parent is there.
		delivered, ids := false, map[trace.SpanID]bool{}
		for _, s := range spans {
			if s.SpanContext().TraceID() == root {
				ids[s.SpanContext().SpanID()] = true
				delivered = delivered || s.Name() == "webhook.deliver"
			}
		}
		for _, s := range spans {
			if s.SpanContext().TraceID() == root && s.Parent().IsValid() && !ids[s.Parent().SpanID()] {
				return false
			}
		}
		return delivered
	}, "the batch's whole trace, down to the webhook delivery")

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var inTrace []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() == root {
			byID[s.SpanContext().SpanID()] = s
			inTrace = append(inTrace, s)
		}
	}
	names := map[string]int{}
	for _, s := range inTrace {
		names[s.Name()]++
		if s.Name() == "POST /v1/batches" {
			require.False(t, s.Parent().IsValid(), "the request is the trace's root")
			continue
		}
		_, ok := byID[s.Parent().SpanID()]
		require.True(t, ok, "the parent of %s is in the batch's trace", s.Name())
	}
	for _, want := range []string{"POST /v1/batches", "river.work/batch_validate", "batch.validate", "agent.shard", "agent.chunk",
		"river.work/batch_finalize", "batch.finalize", "river.work/function_invoke", "webhook.deliver"} {
		require.Positive(t, names[want], "span %s is in the batch's trace; it has %v", want, names)
	}
	require.Equal(t, 2, names["agent.shard"], "one span per shard (8 requests, shards of 4)")
	t.Logf("the batch's trace: %d spans, %v", len(inTrace), names)

	// The agent's spans came from the agent's process.
	agentNames := map[string]bool{}
	for _, s := range agentSpans.GetSpans() {
		if s.SpanContext.TraceID() == root {
			agentNames[s.Name] = true
		}
	}
	require.True(t, agentNames["agent.shard"] && agentNames["agent.chunk"], "%v", agentNames)

	// Every span that names the batch is in its trace.
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			if kv.Key == "kiln.batch.id" && kv.Value.AsString() == id {
				require.Equal(t, root, s.SpanContext().TraceID(), "span %s of the batch", s.Name())
			}
		}
	}
}

// startAgent runs a kiln agent process beside env's kiln serve, on the same
// database and object store, with its own simulator and tracer provider.
func startAgent(t testing.TB, env *kilntest.Env, tp trace.TracerProvider) *app.App {
	t.Helper()
	cfg := env.App.Cfg
	cfg.MetricsAddr = "127.0.0.1:0"
	ctx := context.Background()
	a, err := app.New(ctx, cfg, app.Options{Agent: true, Version: "test", TracerProvider: tp,
		Sim: &llmsim.Config{Models: app.SimModels, TTFT: time.Millisecond, TPOT: -1}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	return a
}

// TestTracingOff: without a tracer provider nor OTEL_* variables, nothing
// is traced and batches keep no trace context.
func TestTracingOff(t *testing.T) {
	t.Parallel()
	p, err := tracing.FromEnv(t.Context(), func(string) string { return "" }, "test")
	require.NoError(t, err)
	require.False(t, p.Enabled)
	require.Empty(t, p.JobMiddleware())
	h := http.NewServeMux()
	require.Same(t, h, p.HTTPHandler(h), "no wrapper")

	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	require.False(t, env.App.Tracing.Enabled)
	c := env.Client()
	id := newBatch(t, c, requests(2, 16))
	kilntest.WaitBatch(t, c, id)
	b, err := env.App.Store.BatchGet(t.Context(), id)
	require.NoError(t, err)
	require.Empty(t, b.TraceContext)
}

// TestTracingFromEnv: the OTEL_* variables turn tracing on (OTLP over
// HTTP), keep it off, or are refused with a reason.
func TestTracingFromEnv(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, c := range []struct {
		name    string
		getenv  func(string) string
		enabled bool
		err     string
	}{
		{"Unset", env(), false, ""},
		{"Endpoint", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), true, ""},
		{"TracesEndpoint", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"), true, ""},
		{"ExporterOTLP", env("OTEL_TRACES_EXPORTER", "otlp"), true, ""},
		{"ExporterNone", env("OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), false, ""},
		{"SDKDisabled", env("OTEL_SDK_DISABLED", "true", "OTEL_TRACES_EXPORTER", "otlp"), false, ""},
		{"JSON", env("OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), true, ""},
		{"GRPC", env("OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), false, "OTLP over HTTP"},
		{"Zipkin", env("OTEL_TRACES_EXPORTER", "zipkin"), false, "otlp only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := tracing.FromEnv(t.Context(), c.getenv, "test")
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.enabled, p.Enabled)
			require.NoError(t, p.Shutdown(t.Context()))
		})
	}
}

// TestTracingStartBatch: work on a batch joins the batch's stored trace,
// and links to the span that does it.
func TestTracingStartBatch(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	ctx, create := tp.Tracer("test").Start(t.Context(), "create")
	stored := tracing.Inject(ctx)
	create.End()
	require.True(t, strings.HasPrefix(stored, "00-"+create.SpanContext().TraceID().String()), stored)

	job, jobSpan := tp.Tracer("test").Start(t.Context(), "job")
	_, work := tracing.StartBatch(job, stored, "batch.work", tracing.BatchID("batch_x"))
	work.End()
	jobSpan.End()
	got := spans.GetSpans()
	i := slices.IndexFunc(got, func(s tracetest.SpanStub) bool { return s.Name == "batch.work" })
	require.GreaterOrEqual(t, i, 0)
	w := got[i]
	require.Equal(t, create.SpanContext().TraceID(), w.SpanContext.TraceID(), "in the batch's trace")
	require.Equal(t, create.SpanContext().SpanID(), w.Parent.SpanID(), "under the span that created the batch")
	require.Len(t, w.Links, 1)
	require.Equal(t, jobSpan.SpanContext().SpanID(), w.Links[0].SpanContext.SpanID(), "linked to the job's span")
	require.Contains(t, w.Attributes, attribute.String("kiln.batch.id", "batch_x"))

	// Without a stored context, a plain child of the current span.
	_, plain := tracing.StartBatch(job, "", "batch.plain")
	plain.End()
	require.Equal(t, jobSpan.SpanContext().TraceID(), plain.SpanContext().TraceID())
	require.Empty(t, tracing.Inject(t.Context()), "no span, no trace context")
}

// newBatch uploads input and creates a batch of it.
func newBatch(t testing.TB, c openai.Client, input []byte) string {
	t.Helper()
	ctx := context.Background()
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(input), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	return b.ID
}

// BenchmarkTracing measures what tracing costs a batch's throughput: two
// kilns on SQLite and the simulator, one with tracing off and one with it on
// (every span batched to an exporter that drops it, as an OTLP exporter
// batches to a collector), run batches of 2,000 requests in turn. It reports
// each one's requests/s and their ratio, traced/untraced.
func BenchmarkTracing(b *testing.B) {
	const n = 2000
	sim := llmsim.Config{Models: app.SimModels, MaxNumSeqs: 256, TTFT: time.Millisecond, TPOT: -1}
	start := func(tp trace.TracerProvider) openai.Client {
		env := kilntest.Start(b, "sqlite", kilntest.Options{Sim: &sim, TracerProvider: tp, Configure: func(c *config.Config) {
			c.PollInterval = config.PollIntervalDefault
			c.ChunkInterval = config.ChunkIntervalDefault
		}})
		return env.Client()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	off, on := start(nil), start(tp)
	input := requests(n, 16)
	run := func(c openai.Client) time.Duration {
		id, began := submit(b, c, input)
		batch := waitCompleted(b, c, id)
		if batch.RequestCounts.Completed != n {
			b.Fatalf("batch %s: %d of %d completed", id, batch.RequestCounts.Completed, n)
		}
		return time.Since(began)
	}
	run(off) // warm both up: first loads, caches
	run(on)
	var tOff, tOn time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			tOff += run(off)
			tOn += run(on)
		} else {
			tOn += run(on)
			tOff += run(off)
		}
	}
	offRate := float64(n*b.N) / tOff.Seconds()
	onRate := float64(n*b.N) / tOn.Seconds()
	b.ReportMetric(offRate, "req/s-untraced")
	b.ReportMetric(onRate, "req/s-traced")
	b.ReportMetric(onRate/offRate, "traced/untraced")
}
