package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/monitoring"
)

const rulesFile = "prometheus/rules/kiln.rules.yml"

// synthetic are series Prometheus itself makes for every target, which no
// /metrics page shows.
var synthetic = map[string]bool{"up": true, "scrape_duration_seconds": true}

// TestDashboardsCurrent fails when the committed dashboards differ from
// what the generator makes: run `go generate ./monitoring`.
func TestDashboardsCurrent(t *testing.T) {
	t.Parallel()
	want, err := monitoring.Dashboards()
	require.NoError(t, err)
	entries, err := os.ReadDir(monitoring.DashboardsDir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	require.Equal(t, names, files, "the folder holds the generated dashboards and nothing else; run go generate ./monitoring")
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(monitoring.DashboardsDir, name))
		require.NoError(t, err)
		require.Equal(t, string(data), string(got), "%s is stale: run go generate ./monitoring", name)
	}
	require.Len(t, want, 5, "queue and agents, GPU and engine, batches and throughput, functions and webhooks, curation")
}

// TestRules checks the alert rules with Prometheus's own rule parser (as
// promtool check rules does): valid YAML of the right shape, valid PromQL,
// valid templates; and kiln's habits: a severity, a summary and a
// description on every alert.
func TestRules(t *testing.T) {
	t.Parallel()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "only alerts, no recording rules")
			alerts = append(alerts, r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
		}
	}
	for _, want := range []string{"KilnNoAgentForModel", "KilnBatchesNearExpiry", "KilnWebhookDeadLetters", "KilnEngineRestarts",
		"KilnChunkWritesSlow", "KilnObjectStoreDiskLow", "KilnDatabaseConnectionErrors"} {
		require.Contains(t, alerts, want)
	}

	// A broken rule is refused: the check has teeth.
	_, errs = rulefmt.Parse([]byte("groups:\n- name: x\n  rules:\n  - alert: X\n    expr: sum(rate(x[5m])\n"), false,
		model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.NotEmpty(t, errs)
}

// TestScrapeConfig: the scrape configuration names kiln's two jobs and
// loads the rules beside it.
func TestScrapeConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("prometheus/prometheus.yml")
	require.NoError(t, err)
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(false)
	require.NoError(t, dec.Decode(&cfg))
	require.Len(t, cfg.RuleFiles, 1)
	_, err = os.Stat(filepath.Join("prometheus", cfg.RuleFiles[0]))
	require.NoError(t, err, "the rule file the configuration loads exists")
	jobs := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		require.Equal(t, "/metrics", sc.MetricsPath)
		require.NotEmpty(t, sc.StaticConfigs)
		jobs[sc.JobName] = sc.StaticConfigs[0].Targets[0]
	}
	require.Equal(t, map[string]string{"kiln-serve": "localhost:4080", "kiln-agent": "localhost:9464"}, jobs)
}

// expressions are every PromQL expression of the dashboards and the rules,
// each with where it is.
func expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	boards, err := monitoring.Dashboards()
	require.NoError(t, err)
	for name, data := range boards {
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(data, &d))
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out[tg.Expr] = name + ": " + p.Title
			}
		}
	}
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out[r.Expr] = rulesFile + ": " + r.Alert
		}
	}
	return out
}

// grafanaMacros stand in for Grafana's interval variables, which PromQL
// does not know, with a duration, as Grafana does before it sends a query.
var grafanaMacros = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// metricNames parses expr with Prometheus's parser and returns the metric
// names its selectors read.
func metricNames(t *testing.T, expr, where string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaMacros.Replace(expr))
	require.NoError(t, err, "%s: %s", where, expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		require.NotEmpty(t, name, "%s: a selector without a metric name: %s", where, expr)
		names = append(names, name)
		return nil
	})
	require.NotEmpty(t, names, "%s: %s reads no metric", where, expr)
	return names
}

// TestMetricsExported parses every PromQL expression of the dashboards and
// rules with Prometheus's parser, and scrapes a live kiln until it has seen
// every metric they read, failing with those it never exports. The kiln is
// made to show everything: an agent that answers (and fails) requests and
// switches models, a webhook delivery, a batch that waits for a model no
// agent serves,
// curation tasks, and a stand-in nvidia-smi for the GPU metrics.
func TestMetricsExported(t *testing.T) {
	// No t.Parallel: the stand-in nvidia-smi goes on PATH.
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "nvidia-smi"), []byte("#!/bin/sh\necho '0, NVIDIA Stand-in, 42, 1024, 16384'\n"), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	want := map[string][]string{} // metric name -> where
	exprs := expressions(t)
	require.Greater(t, len(exprs), 40)
	for expr, where := range exprs {
		for _, name := range metricNames(t, expr, where) {
			if !synthetic[name] && !slices.Contains(want[name], where) {
				want[name] = append(want[name], where)
			}
		}
	}

	env := kilntest.Start(t, "sqlite", kilntest.Options{Configure: func(c *config.Config) {
		c.WebhookAllowPrivate = true
		c.Models = []string{"no-agent-model"} // known, so that its batch waits for an agent
	}})
	base := env.Base()
	delivered := make(chan struct{}, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered <- struct{}{}
	}))
	t.Cleanup(recv.Close)
	kilntest.Call(t, base, env.Key, http.MethodPost, "/v1/webhook_endpoints", map[string]any{"url": recv.URL + "/hook"}, http.StatusOK, nil)

	// A batch with failing lines (the engine answers 400), run to the end.
	c := env.Client()
	done := runBatch(t, c, kilntest.ChatLines(6, 3))
	require.Equal(t, "completed", string(kilntest.WaitBatch(t, c, done).Status))
	// A batch for another model: the agent switches models.
	other := runBatch(t, c, chatLinesFor("Qwen/Qwen2.5-3B-Instruct", 2))
	require.Equal(t, "completed", string(kilntest.WaitBatch(t, c, other).Status))
	// A batch for a known model no agent serves: it waits, in progress.
	waiting := runBatch(t, c, chatLinesFor("no-agent-model", 2))
	kilntest.Eventually(t, time.Minute, func() bool {
		b, err := c.Batches.Get(context.Background(), waiting)
		require.NoError(t, err)
		return b.Status == "in_progress"
	}, "the batch for a model without an agent to start")
	// Curation tasks.
	_, adminKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	task, err := json.Marshal(map[string]any{"type": "quil_email", "key": "t-1", "model": "acme/alpha",
		"messages": []map[string]string{{"role": "user", "content": "Write to Jane."}},
		"output":   map[string]any{"subject": "Hello", "body": "Hi Jane", "personalization_points": []string{"Go"}}})
	require.NoError(t, err)
	kilntest.Call(t, base, adminKey, http.MethodPost, "/v1/curation/imports", append(task, '\n'), http.StatusOK, nil)

	var missing []string
	deadline := time.Now().Add(time.Minute)
	for {
		have := scrape(t, base+"/metrics")
		missing = missing[:0]
		for name, where := range want {
			if !have[name] {
				missing = append(missing, fmt.Sprintf("%s (%s)", name, strings.Join(where, "; ")))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-delivered:
		case <-time.After(200 * time.Millisecond):
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "metrics that the dashboards and rules read and kiln does not export")
	requireSeries(t, base+"/metrics", "kiln_agent_requests_total", map[string]string{"project": "proj_default"})
	t.Logf("%d expressions read %d metrics, all exported by a live kiln", len(exprs), len(want))
}

// requireSeries fails unless the /metrics page at url has a series of the
// metric with these labels.
func requireSeries(t *testing.T, url, metric string, labels map[string]string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	mf, ok := families[metric]
	require.True(t, ok, "no %s", metric)
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if match {
			return
		}
	}
	t.Fatalf("no series of %s with %v", metric, labels)
}

// scrape reads a /metrics page and returns the names of the series on it:
// a histogram's _bucket, _sum and _count, a summary's _sum and _count.
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	names := map[string]bool{}
	for name, mf := range families {
		names[name] = true
		switch mf.GetType().String() {
		case "HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

// runBatch uploads lines and creates a batch of them, and returns its ID.
func runBatch(t *testing.T, c openai.Client, lines []byte) string {
	t.Helper()
	ctx := context.Background()
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(lines), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	return b.ID
}

// chatLinesFor are n chat requests for model.
func chatLinesFor(model string, n int) []byte {
	return bytes.ReplaceAll(kilntest.ChatLines(n, 0), []byte(`"sim-model"`), []byte(`"`+model+`"`))
}
