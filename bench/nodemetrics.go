package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Replication is what a spawned cluster's nodes say of copying tenant
// state to successors over the run, summed over the nodes running at its
// end (a node killed by chaos takes its figures along).
type Replication struct {
	// Lag percentiles are upper bounds, in milliseconds: the bound of the
	// bucket of tollgate_replication_lag_seconds a percentile falls in
	// (10.24 s, the last bound, for anything beyond).
	LagP50 float64 `json:"lag_p50_ms"`
	LagP99 float64 `json:"lag_p99_ms"`
	// Rounds counts the rounds that copied changes and landed whole: the
	// lag's samples.
	Rounds   uint64  `json:"rounds"`
	Tenants  float64 `json:"tenants_copied"`
	Failures float64 `json:"failures"`
	Promoted float64 `json:"promoted"`
}

// replication scrapes every running node's /metrics. It returns nil if
// no node has replication on.
func (c *localCluster) replication(ctx context.Context) (*Replication, error) {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	var lag []*dto.Histogram
	out := &Replication{}
	for _, n := range nodes {
		families, err := scrape(ctx, n.addrs["api"])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.name, err)
		}
		for _, m := range families["tollgate_replication_lag_seconds"].GetMetric() {
			lag = append(lag, m.GetHistogram())
		}
		out.Tenants += sumOf(families["tollgate_replicated_tenants_total"])
		out.Failures += sumOf(families["tollgate_replication_failures_total"])
		out.Promoted += sumOf(families["tollgate_replicas_promoted_total"])
	}
	if len(lag) == 0 {
		return nil, nil
	}
	out.Rounds, out.LagP50, out.LagP99 = histogramQuantiles(lag)
	return out, nil
}

func scrape(ctx context.Context, api string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func sumOf(f *dto.MetricFamily) float64 {
	total := 0.0
	for _, m := range f.GetMetric() {
		total += m.GetCounter().GetValue()
	}
	return total
}

// histogramQuantiles merges histograms of the same buckets and returns
// their count and the upper bounds of the buckets holding the 50th and
// 99th percentiles, in milliseconds (past the last bucket, its bound).
func histogramQuantiles(hs []*dto.Histogram) (count uint64, p50, p99 float64) {
	cum := map[float64]uint64{}
	for _, h := range hs {
		count += h.GetSampleCount()
		for _, b := range h.GetBucket() {
			cum[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	if count == 0 {
		return 0, 0, 0
	}
	bounds := make([]float64, 0, len(cum))
	for b := range cum {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	at := func(q float64) float64 {
		rank := uint64(math.Ceil(q * float64(count)))
		for _, b := range bounds {
			if cum[b] >= rank {
				return b * 1000
			}
		}
		return bounds[len(bounds)-1] * 1000
	}
	return count, at(0.50), at(0.99)
}

// NodeCost is what the spawned nodes spent on the run's requests, from
// their Go runtime's and process's counters (summed over the nodes, from
// the load's start to its end), per request the run completed.
type NodeCost struct {
	Nodes int `json:"nodes"`
	// AllocsPerRequest and BytesPerRequest count heap allocations: the
	// work the garbage collector is given per request.
	AllocsPerRequest float64 `json:"allocs_per_request"`
	BytesPerRequest  float64 `json:"bytes_per_request"`
	// CPUPerRequest is the nodes' CPU time per request, in microseconds
	// (on a machine the load generator shares, the figure to compare).
	CPUPerRequest float64 `json:"cpu_us_per_request"`
}

// costSample is the running nodes' counters at one moment.
type costSample struct{ nodes, mallocs, bytes, cpu float64 }

func (c *localCluster) costSample(ctx context.Context) (costSample, error) {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	var s costSample
	for _, n := range nodes {
		families, err := scrape(ctx, n.addrs["api"])
		if err != nil {
			return s, fmt.Errorf("%s: %w", n.name, err)
		}
		s.nodes++
		s.mallocs += sumOf(families["go_memstats_mallocs_total"])
		s.bytes += sumOf(families["go_memstats_alloc_bytes_total"])
		s.cpu += sumOf(families["process_cpu_seconds_total"])
	}
	return s, nil
}

// costOf is the cost between two samples, per request.
func costOf(before, after costSample, requests int64) *NodeCost {
	if requests == 0 {
		return nil
	}
	n := float64(requests)
	return &NodeCost{Nodes: int(after.nodes), AllocsPerRequest: (after.mallocs - before.mallocs) / n,
		BytesPerRequest: (after.bytes - before.bytes) / n, CPUPerRequest: (after.cpu - before.cpu) * 1e6 / n}
}
