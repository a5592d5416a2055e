package cluster

import (
	"cmp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate/tollgate/cluster/gossip"
	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

// metrics are one node's; each node has its own registry so several nodes
// can run in one process.
type metrics struct {
	reservationsRefused prometheus.Counter // reservations refused while the settlements are backed up
	registry            *prometheus.Registry
	allowed             prometheus.Counter
	denied              prometheus.Counter
	latency             prometheus.Histogram

	forwarded      *prometheus.CounterVec // by result: ok, error
	batchSize      prometheus.Histogram
	forwardLatency prometheus.Histogram
	degraded       *prometheus.CounterVec // by policy
	handoffBuckets *prometheus.CounterVec // by direction: sent, received
	handoffBytes   *prometheus.CounterVec
	handoffFailed  prometheus.Counter
	settled        *prometheus.CounterVec // by where: owner, sent, passed_on, unreachable
}

// latencyBuckets run from 1µs to about 1s: local decisions take
// microseconds, forwarded ones a network round trip.
var latencyBuckets = prometheus.ExponentialBuckets(1e-6, 2.5, 16)

func newMetrics(store *limiter.Store) *metrics {
	reg := prometheus.NewRegistry()
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_checks_total",
		Help: "Checks answered by this node, by decision (allowed or denied).",
	}, []string{"decision"})
	m := &metrics{
		registry: reg,
		allowed:  checks.WithLabelValues("allowed"),
		denied:   checks.WithLabelValues("denied"),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_check_duration_seconds",
			Help:    "Time to answer one check on this node, forwarding included.",
			Buckets: latencyBuckets,
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_forwarded_checks_total",
			Help: "Checks this node sent to their tenant's owner, by result (ok or error).",
		}, []string{"result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_forward_batch_size",
			Help:    "Checks per forwarded batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		forwardLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_forward_duration_seconds",
			Help:    "Round trip of one forwarded batch to an owner.",
			Buckets: latencyBuckets,
		}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_degraded_decisions_total",
			Help: "Checks decided by failure policy because the owner could not be reached, by policy.",
		}, []string{"policy"}),
		handoffBuckets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_handoff_buckets_total",
			Help: "Tenant states handed between nodes when ownership moved, by direction (sent or received).",
		}, []string{"direction"}),
		handoffBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_handoff_bytes_total",
			Help: "Encoded size of the tenant states handed over, by direction.",
		}, []string{"direction"}),
		handoffFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_handoff_failures_total",
			Help: "Hand-off messages an owner did not acknowledge (each is sent again, backing off, until the shutdown timeout or the hand-off window ends).",
		}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_settlements_total",
			Help: "Gateway reservations settled, by where: owner (applied here as the owner), sent (to the owner), passed_on (to the node the tenant was handed to), unreachable (the owner never answered; usage recorded here).",
		}, []string{"where"}),
	}
	// Every series an alert may take a rate of exists from the start, at
	// 0: a rate over a series that appears only with its first event
	// stays silent.
	preinit(m.forwarded, "ok", "error")
	preinit(m.degraded, quota.PolicyLocal.String(), quota.PolicyOpen.String(), quota.PolicyClosed.String())
	preinit(m.handoffBuckets, "sent", "received")
	preinit(m.handoffBytes, "sent", "received")
	preinit(m.settled, "owner", "sent", "passed_on", "unreachable")
	reg.MustRegister(
		checks, m.latency, m.forwarded, m.batchSize, m.forwardLatency, m.degraded, m.handoffBuckets, m.handoffBytes, m.handoffFailed, m.settled,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_store_entries",
			Help: "Limit entries (tenant × limit) held in this node's store.",
		}, func() float64 { return float64(store.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_store_evictions_total",
			Help: "Limit entries evicted because the store was full (--max-entries).",
		}, func() float64 { return float64(store.Evictions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_store_leases",
			Help: "Concurrency leases held in this node's store (expired ones until their tenant is next touched or swept).",
		}, func() float64 { return float64(store.Leases()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_store_lease_refusals_total",
			Help: "Checks refused with 503 overloaded because the store held the most concurrency leases it may (--max-leases).",
		}, func() float64 { return float64(store.LeaseRefusals()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// registerBuild exports what the binary is, as a gauge of 1.
func (m *metrics) registerBuild(b Build) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tollgate_build_info",
		Help:        "Always 1; its labels say what this node runs: version, revision, goversion.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion},
	})
	g.Set(1)
	m.registry.MustRegister(g)
}

// preinit creates v's series for each value of its one label.
func preinit(v *prometheus.CounterVec, values ...string) {
	for _, value := range values {
		v.WithLabelValues(value)
	}
}

// registerSettles exports the settlements waiting to be applied.
func (m *metrics) registerSettles(pending func() int) {
	m.reservationsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_reservations_overloaded_total",
		Help: "Gateway reservations refused because this node held the most settlements it may.",
	})
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_settlements_pending",
		Help: "Gateway settlements queued on this node or on their way to the owner.",
	}, func() float64 { return float64(pending()) }), m.reservationsRefused)
}

// registerHandoff exports the tenants sealed here whose hand-off no owner
// has acknowledged yet.
func (m *metrics) registerHandoff(pending func() int) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_handoff_pending_tenants",
		Help: "Tenants handed off by this node that their new owner has not acknowledged yet.",
	}, func() float64 { return float64(pending()) }))
}

// registerMembers exports the member count by state, read when scraped.
func (m *metrics) registerMembers(count func(state string) int) {
	for _, state := range []string{"alive", "suspect", "dead", "left"} {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tollgate_members",
			Help:        "Cluster members this node knows, by state.",
			ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 { return float64(count(state)) }))
	}
}

// counterValue reads counters for /v1/cluster, summed.
func counterValue(cs ...prometheus.Counter) float64 {
	total := 0.0
	for _, c := range cs {
		var pb dto.Metric
		if c.Write(&pb) == nil {
			total += pb.GetCounter().GetValue()
		}
	}
	return total
}

// Overview is this node's view of the cluster, as GET /v1/cluster shows
// it.
type Overview struct {
	Self       string          `json:"self"`
	Members    []gossip.Member `json:"members"` // sorted by name
	Ring       []string        `json:"ring"`
	Forwarding ForwardingStats `json:"forwarding"`
}

// Overview returns this node's view of the members, the ring and its
// forwarding.
func (n *Node) Overview() Overview {
	members := n.Members()
	slices.SortFunc(members, func(a, b gossip.Member) int { return cmp.Compare(a.Name, b.Name) })
	return Overview{Self: n.name, Members: members, Ring: n.currentRing().Nodes(), Forwarding: n.forwardingStats()}
}

// ForwardingStats are this node's forwarding settings and counts since it
// started.
type ForwardingStats struct {
	BatchWindowSeconds float64 `json:"batch_window_seconds"`
	BatchMax           int     `json:"batch_max"`
	TimeoutSeconds     float64 `json:"timeout_seconds"`
	Forwarded          float64 `json:"forwarded"`
	ForwardErrors      float64 `json:"forward_errors"`
	Batches            uint64  `json:"batches"`
	MeanBatchSize      float64 `json:"mean_batch_size"`
	Degraded           float64 `json:"degraded"`
	HandoffSent        float64 `json:"handoff_sent"`
	HandoffReceived    float64 `json:"handoff_received"`
}

func (n *Node) forwardingStats() ForwardingStats {
	m := n.metrics
	var h dto.Metric
	_ = m.batchSize.Write(&h)
	batches := h.GetHistogram().GetSampleCount()
	f := ForwardingStats{
		Forwarded:     counterValue(m.forwarded.WithLabelValues("ok")),
		ForwardErrors: counterValue(m.forwarded.WithLabelValues("error")),
		Batches:       batches,
		Degraded: counterValue(m.degraded.WithLabelValues(quota.PolicyLocal.String()),
			m.degraded.WithLabelValues(quota.PolicyOpen.String()), m.degraded.WithLabelValues(quota.PolicyClosed.String())),
		HandoffSent:     counterValue(m.handoffBuckets.WithLabelValues("sent")),
		HandoffReceived: counterValue(m.handoffBuckets.WithLabelValues("received")),
	}
	if batches > 0 {
		f.MeanBatchSize = h.GetHistogram().GetSampleSum() / float64(batches)
	}
	if n.fwd != nil {
		f.BatchWindowSeconds = n.fwd.Config().BatchWindow.Seconds()
		f.BatchMax = n.fwd.Config().BatchMax
		f.TimeoutSeconds = n.fwd.Config().Timeout.Seconds()
	}
	return f
}

func (m *metrics) observeCheck(allowed bool, d time.Duration) {
	if allowed {
		m.allowed.Inc()
	} else {
		m.denied.Inc()
	}
	m.latency.Observe(d.Seconds())
}

func (m *metrics) observeBatch(size int, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.forwarded.WithLabelValues(result).Add(float64(size))
	m.batchSize.Observe(float64(size))
	m.forwardLatency.Observe(d.Seconds())
}

func (m *metrics) observeHandoff(direction string, buckets, bytes int) {
	m.handoffBuckets.WithLabelValues(direction).Add(float64(buckets))
	m.handoffBytes.WithLabelValues(direction).Add(float64(bytes))
}

// raftMetrics count configuration writes and usage flushes.
type raftMetrics struct {
	writes  *prometheus.CounterVec // by result: ok, refused, no_quorum
	flushes *prometheus.CounterVec // by result: ok, error, refused
}

// registerRaft exports Raft's state, read when scraped, and the write and
// flush counters.
func (m *metrics) registerRaft(isLeader func() bool, applied func() uint64, pending func() int) *raftMetrics {
	rm := &raftMetrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_config_writes_total",
			Help: "Configuration writes through this node, by result (ok, refused by the configuration, no_quorum).",
		}, []string{"result"}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_usage_flushes_total",
			Help: "Usage flushes this node wrote to Raft, by result (ok, error: retried, or refused by the FSM: dropped).",
		}, []string{"result"}),
	}
	preinit(rm.writes, "ok", "refused", "no_quorum")
	preinit(rm.flushes, "ok", "error", "refused")
	m.registry.MustRegister(rm.writes, rm.flushes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_raft_leader",
			Help: "1 if this node leads Raft, else 0.",
		}, func() float64 {
			if isLeader() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_raft_applied_index",
			Help: "The last Raft log index this node's configuration has applied.",
		}, func() float64 { return float64(applied()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_usage_unflushed_tenants",
			Help: "Usage rows (tenant, model, day) admitted here and not yet committed.",
		}, func() float64 { return float64(pending()) }),
	)
	return rm
}
