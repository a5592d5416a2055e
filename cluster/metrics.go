package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tollgate/tollgate/limiter"
)

// metrics are one node's; each node has its own registry so several nodes
// can run in one process.
type metrics struct {
	registry *prometheus.Registry
	checks   *prometheus.CounterVec
	allowed  prometheus.Counter
	denied   prometheus.Counter
	latency  prometheus.Histogram
}

func newMetrics(store *limiter.Store) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		registry: reg,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_checks_total",
			Help: "Checks decided by this node, by decision (allowed or denied).",
		}, []string{"decision"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tollgate_check_duration_seconds",
			Help: "Time to decide one check on this node.",
			// 1µs to ~1s: local decisions take microseconds, forwarded
			// ones a network round trip.
			Buckets: prometheus.ExponentialBuckets(1e-6, 2.5, 16),
		}),
	}
	m.allowed = m.checks.WithLabelValues("allowed")
	m.denied = m.checks.WithLabelValues("denied")
	reg.MustRegister(
		m.checks, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_store_entries",
			Help: "Limit entries (tenant × limit) held in this node's store.",
		}, func() float64 { return float64(store.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_store_evictions_total",
			Help: "Limit entries evicted because the store was full (--max-entries).",
		}, func() float64 { return float64(store.Evictions()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) observeCheck(allowed bool, d time.Duration) {
	if allowed {
		m.allowed.Inc()
	} else {
		m.denied.Inc()
	}
	m.latency.Observe(d.Seconds())
}
