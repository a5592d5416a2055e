package bench

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, to 3
// significant digits.
const (
	minLatencyMicros = 1
	maxLatencyMicros = 5 * 60 * 1_000_000
	sigFigs          = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(minLatencyMicros, maxLatencyMicros, sigFigs)
}

// outcome is how one request ended.
type outcome struct {
	allowed bool
	errKind string // "" unless it failed
}

// recorder gathers a run's results from every worker.
type recorder struct {
	mu      sync.Mutex
	start   time.Time
	all     *hdrhistogram.Histogram
	seconds []*secondStats
	errors  map[string]int64
	// admitted counts each tenant's admitted hits.
	admitted                          map[string]int64
	requests, allowed, denied, failed int64
	// window is the histogram of the progress line's last second.
	window *hdrhistogram.Histogram
}

type secondStats struct {
	hist                     *hdrhistogram.Histogram
	requests, errors, denied int64
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, all: newHistogram(), window: newHistogram(), errors: map[string]int64{}, admitted: map[string]int64{}}
}

// record notes one request that was due at due and ended at end.
func (r *recorder) record(tenant string, hits int64, due, end time.Time, o outcome) {
	micros := max(end.Sub(due).Microseconds(), minLatencyMicros)
	micros = min(micros, maxLatencyMicros)
	sec := max(int(end.Sub(r.start)/time.Second), 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.seconds) <= sec {
		r.seconds = append(r.seconds, &secondStats{hist: newHistogram()})
	}
	s := r.seconds[sec]
	s.requests++
	r.requests++
	_ = s.hist.RecordValue(micros)
	_ = r.all.RecordValue(micros)
	_ = r.window.RecordValue(micros)
	switch {
	case o.errKind != "":
		s.errors++
		r.failed++
		r.errors[o.errKind]++
	case o.allowed:
		r.allowed++
		r.admitted[tenant] += hits
	default:
		s.denied++
		r.denied++
	}
}

// progress returns the figures of the progress line and starts a new
// window.
func (r *recorder) progress() (requests, failed, denied int64, p50, p99 float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p50, p99 = ms(r.window.ValueAtQuantile(50)), ms(r.window.ValueAtQuantile(99))
	r.window.Reset()
	return r.requests, r.failed, r.denied, p50, p99
}

func ms(micros int64) float64 { return float64(micros) / 1000 }

// fill writes the recorded figures into rep.
func (r *recorder) fill(rep *Report, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.Requests, rep.Allowed, rep.Denied, rep.Errors = r.requests, r.allowed, r.denied, r.failed
	rep.ErrorsByKind = maps.Clone(r.errors)
	if elapsed > 0 {
		rep.AchievedRate = float64(r.requests) / elapsed.Seconds()
	}
	if r.requests > 0 {
		rep.ErrorRate = float64(r.failed) / float64(r.requests)
	}
	rep.Latency = summarise(r.all)
	rep.Timeline = make([]Second, len(r.seconds))
	for i, s := range r.seconds {
		rep.Timeline[i] = Second{T: i, Requests: s.requests, Errors: s.errors, Denied: s.denied,
			P50: ms(s.hist.ValueAtQuantile(50)), P99: ms(s.hist.ValueAtQuantile(99))}
	}
	rep.Distribution = distribution(r.all)
}

func summarise(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000,
	}
}

// distributionPoints are the percentiles the distribution chart plots:
// dense towards the tail, where latency problems live.
var distributionPoints = []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}

func distribution(h *hdrhistogram.Histogram) []Percentile {
	if h.TotalCount() == 0 {
		return nil
	}
	out := make([]Percentile, len(distributionPoints))
	for i, p := range distributionPoints {
		v := h.ValueAtQuantile(p)
		if p == 100 {
			v = h.Max()
		}
		out[i] = Percentile{Percentile: p, Latency: ms(v)}
	}
	return out
}

// admittedByTenant returns a copy of the admitted hits, by tenant.
func (r *recorder) admittedByTenant() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.admitted)
}

// sortedTenants orders tenant names for a stable report.
func sortedTenants(m map[string]int64) []string { return slices.Sorted(maps.Keys(m)) }
