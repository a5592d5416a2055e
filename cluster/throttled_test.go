package cluster

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

func refusal(limit string) *quota.CheckResponse {
	return &quota.CheckResponse{Limits: []quota.LimitStatus{
		{Name: "ok", Result: limiter.Result{Allowed: true}},
		{Name: limit},
	}}
}

func TestThrottledCountsRefusalsByTenantUpToItsBound(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	th := newThrottled(reg, 2)
	th.observe("a", refusal("rpm"))
	th.observe("a", refusal("rpm"))
	th.observe("a", &quota.CheckResponse{Allowed: true})
	th.observe("b", refusal("tpm"))
	th.observe("c", refusal("rpm")) // a third pair: over the bound
	th.observe("a", refusal("tpm")) // a new pair too
	for _, c := range []struct {
		tenant, limit string
		want          float64
	}{{"a", "rpm", 2}, {"b", "tpm", 1}, {"other", "other", 2}} {
		if got := testutil.ToFloat64(th.vec.WithLabelValues(c.tenant, c.limit)); got != c.want {
			t.Errorf("tollgate_throttled_total{tenant=%q,limit=%q} = %v, want %v", c.tenant, c.limit, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(th.vec); n != 3 {
		t.Fatalf("%d series, want 3 (two pairs and other)", n)
	}
}

// The series an alert takes a rate of are there, at 0, before their first
// event.
func TestAFreshNodeHasItsAlertSeriesAtZero(t *testing.T) {
	t.Parallel()
	n := NewNode(Config{NodeName: "fresh"})
	families, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, f := range families {
		series[f.GetName()] = len(f.GetMetric())
	}
	for name, want := range map[string]int{
		"tollgate_degraded_decisions_total": 3, "tollgate_forwarded_checks_total": 2, "tollgate_handoff_buckets_total": 2,
		"tollgate_settlements_total": 4, "tollgate_throttled_total": 1, "tollgate_checks_total": 2, "tollgate_build_info": 1,
	} {
		if series[name] != want {
			t.Errorf("%s has %d series on a fresh node, want %d", name, series[name], want)
		}
	}
}

func TestARefusedCheckCountsAsThrottled(t *testing.T) {
	t.Parallel()
	n := NewNode(Config{NodeName: "solo", Clock: limiter.NewManualClock(epochForTests)})
	req := dayLimit("acme", 1)
	for range 3 {
		if _, err := n.Check(t.Context(), &req); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(n.throttled.vec.WithLabelValues("acme", "rpd")); got != 2 {
		t.Fatalf("tollgate_throttled_total{tenant=acme,limit=rpd} = %v after 2 refusals", got)
	}
}

var epochForTests = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
