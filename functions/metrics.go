package functions

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what functions and webhook deliveries do. A nil *Metrics
// counts nothing.
type Metrics struct {
	invocations *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	attempt     prometheus.Histogram
}

// NewMetrics registers the functions' metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_function_invocations_total",
			Help: "Function runs by function and outcome: succeeded, retry (failed, will run again) or dead (retries exhausted).",
		}, []string{"function", "outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: succeeded, retry (failed, will be sent again) or failed (retries exhausted).",
		}, []string{"outcome"}),
		attempt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kiln_webhook_attempt_seconds",
			Help:    "Duration of one webhook delivery attempt, until the receiver's answer or the failure.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
	}
	reg.MustRegister(m.invocations, m.deliveries, m.attempt)
	return m
}

func (m *Metrics) invocation(function, outcome string) {
	if m != nil {
		m.invocations.WithLabelValues(function, outcome).Inc()
	}
}

func (m *Metrics) delivery(outcome string, seconds float64) {
	if m != nil {
		m.deliveries.WithLabelValues(outcome).Inc()
		m.attempt.Observe(seconds)
	}
}
