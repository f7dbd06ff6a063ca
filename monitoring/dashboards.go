// Package monitoring holds kiln's operations kit: a Prometheus scrape
// configuration and alert rules (prometheus/), and Grafana dashboards
// (grafana/dashboards/), which this package generates as code with the
// Grafana Foundation SDK. `go generate ./monitoring` (or `make monitoring`)
// rewrites the JSON; a test fails when it is stale, and another checks every
// PromQL expression of the dashboards and rules against the metrics a live
// kiln exports.
package monitoring

//go:generate go run ./gen

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DashboardsDir is where the generated dashboards live, from this folder.
const DashboardsDir = "grafana/dashboards"

// datasource is every panel's data source: the dashboard's ${datasource}
// variable, which lists the Prometheus data sources of the Grafana.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// query is one PromQL expression of a panel, with its legend.
type query struct {
	expr, legend string
}

func q(expr, legend string) query { return query{expr, legend} }

// graph is a time series panel.
func graph(title, desc, unit string, stacked bool, qs ...query) cog.Builder[dashboard.Panel] {
	p := timeseries.NewPanelBuilder().Title(title).Description(desc).Unit(unit).Datasource(datasource).Height(8).Span(12).
		FillOpacity(10).Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).
		Placement(common.LegendPlacementBottom))
	if stacked {
		p.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
	}
	for i, x := range qs {
		p.WithTarget(prometheus.NewDataqueryBuilder().RefId(string(rune('A' + i))).Expr(x.expr).LegendFormat(x.legend))
	}
	return p
}

// single is a stat panel of one number.
func single(title, desc, unit, expr string) cog.Builder[dashboard.Panel] {
	return stat.NewPanelBuilder().Title(title).Description(desc).Unit(unit).Datasource(datasource).Height(4).Span(6).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		WithTarget(prometheus.NewDataqueryBuilder().RefId("A").Expr(expr).Instant())
}

// board is one dashboard: its file name, and its rows of panels.
type board struct {
	file, uid, title, desc string
	rows                   []row
}

type row struct {
	title  string
	panels []cog.Builder[dashboard.Panel]
}

// build makes the classic dashboard JSON, which Grafana's file provisioning
// loads in every version; the v2 schema the SDK prefers needs Grafana 12
// with a feature flag.
//
//lint:ignore SA1019 the classic schema is the one provisioning loads everywhere
func (b board) build() (dashboard.Dashboard, error) {
	//lint:ignore SA1019 as above
	d := dashboard.NewDashboardBuilder(b.title).Uid(b.uid).Description(b.desc).Tags([]string{"kiln"}).
		Refresh("30s").Time("now-3h", "now").Timezone(common.TimeZoneBrowser).Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		Link(dashboard.NewDashboardLinkBuilder("kiln").Type(dashboard.DashboardLinkTypeDashboards).Tags([]string{"kiln"}).AsDropdown(true))
	for _, r := range b.rows {
		d.WithRow(dashboard.NewRowBuilder(r.title))
		for _, p := range r.panels {
			d.WithPanel(p)
		}
	}
	return d.Build()
}

// rate is PromQL's rate over Grafana's rate interval.
const rate = "[$__rate_interval]"

// boards are kiln's dashboards.
var boards = []board{
	{
		file: "kiln-queue-agents.json", uid: "kiln-queue-agents", title: "kiln / Queue and agents",
		desc: "Work waiting per model, and the GPU agents that take it.",
		rows: []row{
			{"Queue", []cog.Builder[dashboard.Panel]{
				single("Requests waiting", "Requests in shards no agent has claimed yet.", "short", `sum(kiln_queue_requests)`),
				single("Oldest wait", "How long the longest-waiting shard has waited.", "s", `max(kiln_queue_oldest_seconds)`),
				single("Live agents", "Agents with a heartbeat in the last minute.", "short", `max(count(kiln_agents_live) by (model)) or vector(0)`),
				single("Models without an agent", "Models whose work waits while no live agent serves them.", "short",
					`count(sum by (model) (kiln_queue_requests) > 0 unless on (model) sum by (model) (kiln_agents_live) > 0) or vector(0)`),
				graph("Requests waiting per model", "", "short", true, q(`sum by (model) (kiln_queue_requests)`, "{{model}}")),
				graph("Shards waiting per model", "", "short", true, q(`sum by (model) (kiln_queue_shards)`, "{{model}}")),
				graph("Oldest wait per model", "Past KILN_STARVATION_BOUND an agent switches to the starving model.", "s", false,
					q(`max by (model) (kiln_queue_oldest_seconds)`, "{{model}}")),
				graph("Live agents per model", "", "short", false, q(`sum by (model) (kiln_agents_live)`, "{{model}}")),
			}},
			{"Agents", []cog.Builder[dashboard.Panel]{
				graph("Requests in flight and the adaptive limit", "The limit halves on 429s, 5xx and timeouts, and grows back by one per window (AIMD). Answers waiting for a slow chunk write hold their slots; at 2 × (concurrency + chunk lines) lines held the agent waits for its chunk writes.", "short", false,
					q(`sum by (instance) (kiln_agent_requests_in_flight)`, "in flight {{instance}}"),
					q(`sum by (instance) (kiln_agent_answers_waiting)`, "waiting for a chunk {{instance}}"),
					q(`sum by (instance) (kiln_agent_lines_held)`, "held, not yet durable {{instance}}"),
					q(`sum by (instance) (kiln_agent_concurrency_limit)`, "limit {{instance}}")),
				graph("Model switches", "A switch costs tens of seconds of GPU time.", "short", false,
					q(`sum by (from, to) (increase(kiln_agent_model_switches_total`+rate+`))`, "{{from}} → {{to}}")),
			}},
		},
	},
	{
		file: "kiln-gpu-engine.json", uid: "kiln-gpu-engine", title: "kiln / GPU and engine",
		desc: "The GPU (from nvidia-smi on the agent's host), the engine the agent drives, and how its answers go.",
		rows: []row{
			{"GPU", []cog.Builder[dashboard.Panel]{
				graph("GPU utilisation", "", "percentunit", false, q(`kiln_gpu_utilization_ratio`, "{{instance}} GPU {{gpu}} {{name}}")),
				graph("GPU memory", "", "bytes", false,
					q(`kiln_gpu_memory_used_bytes`, "used {{instance}} GPU {{gpu}}"),
					q(`kiln_gpu_memory_total_bytes`, "total {{instance}} GPU {{gpu}}")),
			}},
			{"Engine", []cog.Builder[dashboard.Panel]{
				single("Engine restarts (1h)", "Restarts of a managed engine after it died or stopped answering /health.", "short",
					`sum(increase(kiln_engine_restarts_total[1h]))`),
				single("Error share (5m)", "Requests that went to the error file, of all finished.", "percentunit",
					`sum(rate(kiln_agent_request_errors_total[5m])) / clamp_min(sum(rate(kiln_agent_requests_total[5m])), 1e-9)`),
				graph("Engine restarts", "", "short", false, q(`sum by (instance) (increase(kiln_engine_restarts_total`+rate+`))`, "{{instance}}")),
				graph("Request errors by code", "HTTP status of the engine, or kiln's code (timeout, invalid_response, …).", "reqps", true,
					q(`sum by (code) (rate(kiln_agent_request_errors_total`+rate+`))`, "{{code}}")),
				graph("Chunk write latency", "Time to make a chunk of results durable: object puts and the commit.", "s", false,
					q(`histogram_quantile(0.5, sum by (le) (rate(kiln_agent_chunk_write_seconds_bucket`+rate+`)))`, "p50"),
					q(`histogram_quantile(0.99, sum by (le) (rate(kiln_agent_chunk_write_seconds_bucket`+rate+`)))`, "p99")),
			}},
		},
	},
	{
		file: "kiln-batches.json", uid: "kiln-batches", title: "kiln / Batches and throughput",
		desc: "Batches by status, what the agents get through, uploads, and the storage under it all.",
		rows: []row{
			{"Throughput", []cog.Builder[dashboard.Panel]{
				single("Requests/s", "", "reqps", `sum(rate(kiln_agent_requests_total[5m]))`),
				single("Tokens/s", "Prompt and completion tokens of answered requests.", "short", `sum(rate(kiln_agent_tokens_total[5m]))`),
				single("Batches open", "Batches not yet ended.", "short", `sum(kiln_batches) or vector(0)`),
				single("Next expiry", "Time left until the earliest end of a completion window among open batches.", "s",
					`min(kiln_batches_next_expiry_seconds{status=~"validating|in_progress"})`),
				graph("Requests/s", "", "reqps", false, q(`sum by (instance) (rate(kiln_agent_requests_total`+rate+`))`, "{{instance}}")),
				graph("Tokens/s", "", "short", false, q(`sum by (instance) (rate(kiln_agent_tokens_total`+rate+`))`, "{{instance}}")),
				graph("Tokens/s by project", "Who uses the GPU.", "short", true, q(`sum by (project) (rate(kiln_agent_tokens_total`+rate+`))`, "{{project}}")),
				graph("Open batches by status", "", "short", true, q(`sum by (status) (kiln_batches)`, "{{status}}")),
				graph("Time to the next expiry per model", "", "s", false,
					q(`min by (model) (kiln_batches_next_expiry_seconds{status=~"validating|in_progress"})`, "{{model}}")),
			}},
			{"Uploads and storage", []cog.Builder[dashboard.Panel]{
				graph("Uploads in progress", "Capped by KILN_MAX_PENDING_UPLOADS and KILN_MAX_PENDING_UPLOAD_BYTES.", "short", false,
					q(`sum(kiln_uploads_pending)`, "uploads")),
				graph("Bytes declared by uploads in progress", "", "bytes", false, q(`sum(kiln_uploads_pending_bytes)`, "bytes")),
				graph("Folder store free space", "The filesystem under KILN_OBJECT_STORE=file://…", "percentunit", false,
					q(`kiln_object_store_free_bytes / kiln_object_store_size_bytes`, "{{instance}}")),
				graph("Orphan objects swept", "Objects no row needed, removed by the hourly sweep.", "short", true,
					q(`sum by (kind) (increase(kiln_objects_swept_total[1h]))`, "{{kind}}")),
				graph("Database connections", "", "short", false,
					q(`sum by (instance, state) (kiln_db_connections)`, "{{state}} {{instance}}"),
					q(`max by (instance) (kiln_db_max_connections)`, "max {{instance}}")),
				graph("Database connection errors", "Failed attempts to reach the database server.", "short", false,
					q(`sum by (instance) (increase(kiln_db_connection_errors_total`+rate+`))`, "{{instance}}")),
			}},
		},
	},
	{
		file: "kiln-functions-webhooks.json", uid: "kiln-functions-webhooks", title: "kiln / Functions and webhooks",
		desc: "Event-driven functions (webhook, inbox import, conquest checks, curation import) and webhook deliveries.",
		rows: []row{
			{"Functions", []cog.Builder[dashboard.Panel]{
				single("Dead letters (24h)", "Function invocations whose retries ran out: GET /v1/function_invocations?status=dead.", "short",
					`sum(increase(kiln_function_invocations_total{outcome="dead"}[24h])) or vector(0)`),
				single("Webhook deliveries failed (24h)", "Deliveries that gave up after KILN_WEBHOOK_MAX_AGE.", "short",
					`sum(increase(kiln_webhook_deliveries_total{outcome="failed"}[24h])) or vector(0)`),
				graph("Function runs by outcome", "", "short", true,
					q(`sum by (function, outcome) (increase(kiln_function_invocations_total`+rate+`))`, "{{function}} {{outcome}}")),
				graph("Webhook attempts by outcome", "", "short", true,
					q(`sum by (outcome) (increase(kiln_webhook_deliveries_total`+rate+`))`, "{{outcome}}")),
				graph("Webhook attempt duration", "Until the receiver's answer or the failure.", "s", false,
					q(`histogram_quantile(0.5, sum by (le) (rate(kiln_webhook_attempt_seconds_bucket`+rate+`)))`, "p50"),
					q(`histogram_quantile(0.95, sum by (le) (rate(kiln_webhook_attempt_seconds_bucket`+rate+`)))`, "p95")),
			}},
		},
	},
	{
		file: "kiln-curation.json", uid: "kiln-curation", title: "kiln / Curation",
		desc: "The curation workbench: tasks by status, and how far review of each model's outputs has come.",
		rows: []row{
			{"Tasks", []cog.Builder[dashboard.Panel]{
				single("Tasks", "", "short", `sum(kiln_curation_tasks) or vector(0)`),
				single("Outputs rated", "", "percentunit", `sum(kiln_curation_outputs_rated) / clamp_min(sum(kiln_curation_outputs), 1)`),
				single("Gold examples", "", "short", `sum(kiln_curation_outputs_gold) or vector(0)`),
				single("Corrected outputs", "", "short", `sum(kiln_curation_outputs_corrected) or vector(0)`),
				graph("Tasks by status", "", "short", true, q(`sum by (status) (kiln_curation_tasks)`, "{{status}}")),
				graph("Tasks by conquest type", "", "short", true, q(`sum by (type) (kiln_curation_tasks)`, "{{type}}")),
			}},
			{"Outputs per model", []cog.Builder[dashboard.Panel]{
				graph("Valid share", "Outputs that pass their conquest type's schema.", "percentunit", false,
					q(`sum by (model) (kiln_curation_outputs_valid) / clamp_min(sum by (model) (kiln_curation_outputs), 1)`, "{{model}}")),
				graph("Rated share", "", "percentunit", false,
					q(`sum by (model) (kiln_curation_outputs_rated) / clamp_min(sum by (model) (kiln_curation_outputs), 1)`, "{{model}}")),
				graph("Gold examples", "", "short", true, q(`sum by (model) (kiln_curation_outputs_gold)`, "{{model}}")),
				graph("Corrected outputs", "", "short", true, q(`sum by (model) (kiln_curation_outputs_corrected)`, "{{model}}")),
			}},
		},
	},
}

// Dashboards are kiln's Grafana dashboards as JSON, by file name.
func Dashboards() (map[string][]byte, error) {
	out := make(map[string][]byte, len(boards))
	for _, b := range boards {
		d, err := b.build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", b.file, err)
		}
		data, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", b.file, err)
		}
		out[b.file] = append(data, '\n')
	}
	return out, nil
}
