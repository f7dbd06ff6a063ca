package gpuagent

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxProjectLabels bounds the values of the project label: the first
// projects seen keep their own, and any further one counts as "other", so
// that a box with many projects cannot blow up the series.
const maxProjectLabels = 50

// projectLabels hands out the project label's values.
type projectLabels struct {
	mu   sync.Mutex
	seen map[string]bool
}

// of is the label of project id.
func (p *projectLabels) of(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen[id] {
		return id
	}
	if len(p.seen) >= maxProjectLabels {
		return "other"
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[id] = true
	return id
}

// Metrics are the agent's Prometheus metrics.
type Metrics struct {
	inFlight       prometheus.Gauge
	answersWaiting prometheus.Gauge
	linesHeld      prometheus.Gauge
	concurrency    prometheus.Gauge
	requests       *prometheus.CounterVec
	tokens         *prometheus.CounterVec
	errors         *prometheus.CounterVec
	projects       projectLabels
	switches       *prometheus.CounterVec
	chunkWrite     prometheus.Histogram
	restarts       prometheus.Counter
}

// NewMetrics makes the agent's metrics and registers them with reg, unless
// reg is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kiln_agent_requests_in_flight",
			Help: "Requests in flight against the engine."}),
		answersWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kiln_agent_answers_waiting",
			Help: "Answers waiting for a place in their shard's next chunk while its write is slow; each holds a request slot, so the engine gets less work."}),
		linesHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kiln_agent_lines_held",
			Help: "Lines between the start of their request and their chunk's commit; at 2 × (concurrency + chunk lines) the agent starts no more until chunks are written."}),
		concurrency: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kiln_agent_concurrency_limit",
			Help: "The adaptive limit on requests in flight."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_agent_requests_total",
			Help: "Requests finished (answered or failed for good), by project; rate() gives requests/s."}, []string{"project"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_agent_tokens_total",
			Help: "Prompt and completion tokens of answered requests, by project; rate() gives tokens/s."}, []string{"project"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_agent_request_errors_total",
			Help: "Requests that went to the error file, by project and HTTP status or error code."}, []string{"project", "code"}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_agent_model_switches_total",
			Help: "Model switches, by the model unloaded and the one loaded."}, []string{"from", "to"}),
		chunkWrite: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kiln_agent_chunk_write_seconds",
			Help: "Time to make a result chunk durable: object put and commit.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "kiln_engine_restarts_total",
			Help: "Restarts of a managed engine (KILN_ENGINE_COMMAND) after its process exited or it stopped answering /health."}),
	}
	if reg != nil {
		reg.MustRegister(m.inFlight, m.answersWaiting, m.linesHeld, m.concurrency, m.requests, m.tokens, m.errors, m.switches, m.chunkWrite, m.restarts)
	}
	return m
}

// engineRestart counts a restart of a dead engine. A nil *Metrics counts
// nothing.
func (m *Metrics) engineRestart() {
	if m != nil {
		m.restarts.Inc()
	}
}
