package bench

import (
	"maps"
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

// recorder gathers a run's results from every worker. Latency is that of
// answered requests (admitted or denied); a failure is counted by kind, and
// a fast refusal must not make the latency look good.
type recorder struct {
	mu      sync.Mutex
	start   time.Time
	all     *hdrhistogram.Histogram
	seconds []*secondStats
	errors  map[string]int64
	tenants map[string]*tenantRun
	// sent is when the last request was started: the end of the window
	// the achieved rate is taken over.
	sent                              time.Time
	requests, allowed, denied, failed int64
}

type secondStats struct {
	hist                     *hdrhistogram.Histogram
	requests, errors, denied int64
}

// tenantRun is what one tenant was admitted, and over what span: its
// bucket is full at its first request, and refills until its last
// admission.
type tenantRun struct {
	admitted    int64
	first, last time.Time
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, all: newHistogram(), errors: map[string]int64{}, tenants: map[string]*tenantRun{}}
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
	t := r.tenants[tenant]
	if t == nil {
		t = &tenantRun{first: due}
		r.tenants[tenant] = t
	}
	t.first = minTime(t.first, due)
	if o.errKind != "" {
		s.errors++
		r.failed++
		r.errors[o.errKind]++
		return
	}
	_ = s.hist.RecordValue(micros)
	_ = r.all.RecordValue(micros)
	if o.allowed {
		r.allowed++
		t.admitted += hits
		t.last = maxTime(t.last, end)
	} else {
		s.denied++
		r.denied++
	}
}

// noteSent records that requests were started until t; each loop calls
// it once, at its end, so that sending never waits on the lock.
func (r *recorder) noteSent(t time.Time) {
	r.mu.Lock()
	r.sent = maxTime(r.sent, t)
	r.mu.Unlock()
}

// progress returns the figures of the progress line: counts and latency
// so far.
func (r *recorder) progress() (requests, failed, denied int64, p50, p99 float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.failed, r.denied, ms(r.all.ValueAtQuantile(50)), ms(r.all.ValueAtQuantile(99))
}

func ms(micros int64) float64 { return float64(micros) / 1000 }

// fill writes the recorded figures into rep. The achieved rate is over the
// window in which requests were started, not the wait for the last
// answers.
func (r *recorder) fill(rep *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.Requests, rep.Allowed, rep.Denied, rep.Errors = r.requests, r.allowed, r.denied, r.failed
	rep.ErrorsByKind = maps.Clone(r.errors)
	if window := r.sent.Sub(r.start); window > 0 && r.requests > 1 {
		rep.AchievedRate = float64(r.requests-1) / window.Seconds()
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

// tenantRuns returns a copy of what each tenant was admitted.
func (r *recorder) tenantRuns() map[string]tenantRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]tenantRun, len(r.tenants))
	for name, t := range r.tenants {
		out[name] = *t
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
