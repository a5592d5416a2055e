package cluster

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/quota"
)

// throttled counts the checks this node answered with a refusal, by tenant
// and the limit that refused them (tollgate_throttled_total), for the first
// max (tenant, limit) pairs it sees; the rest count as tenant "other",
// limit "other", so that no client can grow the metric without bound.
type throttled struct {
	vec   *prometheus.CounterVec
	max   int
	other prometheus.Counter

	known sync.Map // throttleKey → prometheus.Counter: read on every refusal without a lock
	mu    sync.Mutex
	n     int // pairs in known
}

type throttleKey struct{ tenant, limit string }

func newThrottled(reg *prometheus.Registry, max int) *throttled {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_throttled_total",
		Help: "Checks answered with a refusal here, by tenant and the limit that refused them; past --metrics-tenants pairs, tenant and limit are \"other\".",
	}, []string{"tenant", "limit"})
	reg.MustRegister(vec)
	return &throttled{vec: vec, max: max, other: vec.WithLabelValues("other", "other")}
}

// observe counts resp if it is a refusal.
func (t *throttled) observe(tenant string, resp *quota.CheckResponse) {
	if resp.Allowed {
		return
	}
	limit := "other"
	for _, l := range resp.Limits {
		if !l.Allowed {
			limit = l.Name
			break
		}
	}
	k := throttleKey{tenant, limit}
	if c, ok := t.known.Load(k); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	t.mu.Lock()
	c, ok := t.known.Load(k)
	if !ok && t.n < t.max {
		c = t.vec.WithLabelValues(tenant, limit)
		t.known.Store(k, c)
		t.n++
		ok = true
	}
	t.mu.Unlock()
	if !ok {
		t.other.Inc()
		return
	}
	c.(prometheus.Counter).Inc()
}
