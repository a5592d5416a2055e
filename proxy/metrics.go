package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/quota"
)

// metrics are the gateway's, registered in its node's registry. They
// carry no tenant label: the usage ledger has the per-tenant figures.
type metrics struct {
	requests *prometheus.CounterVec   // by endpoint and status
	duration *prometheus.HistogramVec // by endpoint
	upstream prometheus.Histogram     // until the upstream's answer begins
	tokens   *prometheus.CounterVec   // by kind: prompt, completion
	cost     prometheus.Counter
	inFlight prometheus.Gauge
}

// durationBuckets run from 100µs to about 5 minutes: a refusal takes
// microseconds, a long stream minutes.
var durationBuckets = prometheus.ExponentialBuckets(1e-4, 2.5, 17)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_requests_total",
			Help: "Gateway requests answered, by endpoint and HTTP status (499: the client left first).",
		}, []string{"endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_gateway_request_duration_seconds",
			Help:    "Time from a gateway request's arrival to the end of its answer, streams included.",
			Buckets: durationBuckets,
		}, []string{"endpoint"}),
		upstream: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_gateway_upstream_header_seconds",
			Help:    "Time from the call to an upstream until its answer begins.",
			Buckets: durationBuckets,
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_tokens_total",
			Help: "Tokens charged for gateway requests, by kind (prompt or completion).",
		}, []string{"kind"}),
		cost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_gateway_cost_micro_dollars_total",
			Help: "Cost of the gateway requests charged, in micro-dollars, by the providers' prices.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_gateway_requests_in_flight",
			Help: "Gateway requests being served.",
		}),
	}
	// The series alerts take rates of exist from the start, at 0 (a 5xx
	// ratio needs its denominator before the first request).
	for _, rt := range routes {
		m.duration.WithLabelValues(rt.label)
		for _, status := range []string{"200", "429", "500", "502", "503", "504"} {
			m.requests.WithLabelValues(rt.label, status)
		}
	}
	m.tokens.WithLabelValues("prompt")
	m.tokens.WithLabelValues("completion")
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.upstream, m.tokens, m.cost, m.inFlight)
	}
	return m
}

// observe counts one finished request.
func (m *metrics) observe(endpoint string, status int, took time.Duration, u quota.Usage) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(endpoint).Observe(took.Seconds())
	if u.PromptTokens > 0 || u.CompletionTokens > 0 {
		m.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
		m.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
		m.cost.Add(float64(u.CostMicros))
	}
}
