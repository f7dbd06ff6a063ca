package llmsim

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// statusCanceled labels requests whose client went away before the answer.
const statusCanceled = 0

// metrics are the Prometheus metrics served on /metrics, in a registry of
// the server's own. Besides kiln_sim_* they export vLLM's scheduler gauges
// and token counters under vLLM's names, so whatever reads a vLLM server's
// metrics reads the simulator's.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_sim_requests_total",
			Help: "Inference requests answered, by route and HTTP status (\"canceled\" when the client went away first).",
		}, []string{"route", "code"}),
	}
	gauge := func(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	counter := func(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	running := func() float64 { return float64(s.slots.running.Load()) }
	waiting := func() float64 { return float64(s.slots.waiting.Load()) }
	model := prometheus.Labels{"model_name": s.cfg.Models[0]}
	m.registry.MustRegister(
		m.requests,
		gauge("kiln_sim_requests_in_flight", "Requests holding a generation slot.", nil, running),
		gauge("kiln_sim_requests_queued", "Requests waiting for a generation slot.", nil, waiting),
		gauge("kiln_sim_requests_stalled", "Requests held unanswered by timeout injection.", nil,
			func() float64 { return float64(s.stalled.Load()) }),
		gauge("vllm:num_requests_running", "Number of requests in model execution batches.", model, running),
		gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", model, waiting),
		counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", model,
			func() float64 { return float64(s.promptTokens.Load()) }),
		counter("vllm:generation_tokens_total", "Number of generation tokens processed.", model,
			func() float64 { return float64(s.completionTokens.Load()) }),
	)
	// Pre-create the common series so they read 0 before the first request.
	for _, route := range []string{routeChat, routeCompletion, routeResponses, routeEmbedding} {
		m.requests.WithLabelValues(route, "200")
	}
	return m
}

func (m *metrics) observe(route string, status int) {
	code := "canceled"
	switch status {
	case statusCanceled:
	case http.StatusOK:
		code = "200"
	default:
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(route, code).Inc()
}
