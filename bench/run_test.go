package bench

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// nopScenario answers at once: the schedule alone is measured.
type nopScenario struct{}

func (nopScenario) do(context.Context, int, string) outcome { return outcome{allowed: true} }
func (nopScenario) close()                                  {}

// fakeClock is a schedule's clock that the test moves: sleeping until a
// time moves it there at once, and notes the time.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	wakeAt []time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleepUntil(_ context.Context, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeAt = append(c.wakeAt, t)
	if t.After(c.t) {
		c.t = t
	}
}

// timedScenario answers at once and notes when, by the clock, each
// request went out.
type timedScenario struct {
	clock *fakeClock
	mu    sync.Mutex
	sent  []time.Time
}

func (s *timedScenario) do(context.Context, int, string) outcome {
	now := s.clock.now()
	s.mu.Lock()
	s.sent = append(s.sent, now)
	s.mu.Unlock()
	return outcome{allowed: true}
}
func (s *timedScenario) close() {}

// The schedule sends the n-th request at start + n/rate, none before its
// time, whatever the machine is doing: the clock is the test's.
func TestTheOpenLoopHoldsItsRate(t *testing.T) {
	t.Parallel()
	cfg := &Config{Rate: 2000, Duration: 2 * time.Second, MaxInFlight: 16}
	cfg.Defaults()
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: start}
	rec := newRecorder(start)
	sc := &timedScenario{clock: clk}
	openLoop(t.Context(), cfg, sc, rec, []string{"a", "b"}, 1, clk)
	if len(sc.sent) != 4000 || len(clk.wakeAt) != 4000 {
		t.Fatalf("%d requests sent on %d waits, want 4000", len(sc.sent), len(clk.wakeAt))
	}
	slices.SortFunc(sc.sent, func(a, b time.Time) int { return a.Compare(b) })
	for i, at := range clk.wakeAt {
		due := start.Add(time.Duration(i) * time.Second / 2000)
		if !at.Equal(due) {
			t.Fatalf("request %d scheduled at +%s, want +%s", i, at.Sub(start), due.Sub(start))
		}
		if sc.sent[i].Before(due) {
			t.Fatalf("the %d-th request went out at +%s, before the %d-th was due (+%s)", i, sc.sent[i].Sub(start), i, due.Sub(start))
		}
	}
}

// stallScenario holds every request until a moment, then answers at once:
// a server that stalls for a while.
type stallScenario struct{ until time.Time }

func (s stallScenario) do(ctx context.Context, _ int, _ string) outcome {
	select {
	case <-time.After(time.Until(s.until)): // the stall itself, not a wait of the test's
	case <-ctx.Done():
	}
	return outcome{allowed: true}
}
func (stallScenario) close() {}

// A server that stalls for 300 ms of a 1 s run at 1000/s delays about 300
// requests by up to 300 ms: the latency must show it, though the few
// workers were all busy and the requests went out late.
//
// Not parallel, like the other tests here that run against the wall clock
// (the closed loop, the progress lines): tests beside them on a small
// machine would disturb the timing they check. Top-level serial tests run
// before the parallel ones, so these run alone in the package.
func TestAStallShowsInTheLatencyOfEveryRequestItDelayed(t *testing.T) {
	cfg := &Config{Rate: 1000, Duration: time.Second, MaxInFlight: 4}
	cfg.Defaults()
	start := time.Now()
	rec := newRecorder(start)
	openLoop(t.Context(), cfg, stallScenario{until: start.Add(300 * time.Millisecond)}, rec, []string{"a"}, 1, newWallClock())
	var rep Report
	rec.fill(&rep)
	if rep.Latency.P90 < 150 || rep.Latency.P50 > 50 {
		t.Fatalf("p50 %.1fms, p90 %.1fms: want the stall in the tail (p90 >= 150ms), not everywhere", rep.Latency.P50, rep.Latency.P90)
	}
}

// Not parallel, like the other tests here that run against the wall clock
// (the closed loop, the progress lines): tests beside them on a small
// machine would disturb the timing they check. Top-level serial tests run
// before the parallel ones, so these run alone in the package.
func TestTheClosedLoopRunsItsWorkersForTheDuration(t *testing.T) {
	cfg := &Config{Workers: 4, Duration: 200 * time.Millisecond}
	cfg.Defaults()
	rec := newRecorder(time.Now())
	closedLoop(t.Context(), cfg, nopScenario{}, rec, []string{"a"}, 2)
	if elapsed := time.Since(rec.start); rec.requests < 4 || elapsed > time.Second {
		t.Fatalf("%d requests in %s", rec.requests, elapsed)
	}
}

func TestPercentilesMatchADirectComputation(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rec := newRecorder(start)
	var lat []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		// A long tail: most answers fast, a few very slow.
		d := time.Duration(r.ExpFloat64()*500) * time.Microsecond
		if r.IntN(1000) == 0 {
			d += 200 * time.Millisecond
		}
		d = max(d, time.Microsecond)
		lat = append(lat, d)
		rec.record("t", 1, start, start.Add(d), outcome{allowed: true})
	}
	slices.Sort(lat)
	// direct is the p-th percentile by rank, and the values one rank
	// either side: percentile definitions differ by a rank in rounding.
	direct := func(p float64) [3]float64 {
		i := int(math.Ceil(p/100*float64(len(lat)))) - 1
		at := func(j int) float64 { return float64(lat[min(max(j, 0), len(lat)-1)].Microseconds()) / 1000 }
		return [3]float64{at(i - 1), at(i), at(i + 1)}
	}
	var rep Report
	rec.fill(&rep)
	for _, c := range []struct {
		name string
		got  float64
		want [3]float64
	}{
		{"p50", rep.Latency.P50, direct(50)}, {"p90", rep.Latency.P90, direct(90)},
		{"p99", rep.Latency.P99, direct(99)}, {"p99.9", rep.Latency.P999, direct(99.9)},
		{"max", rep.Latency.Max, direct(100)},
	} {
		// Three significant digits: within 0.1% of the value at the
		// rank (or one either side), and a microsecond for the rounding of
		// tiny values.
		lo, hi := c.want[0]*0.999-0.001, c.want[2]*1.001+0.001
		if c.got < lo || c.got > hi {
			t.Errorf("%s: histogram %.4fms, direct %.4fms (ranks either side %.4f, %.4f)", c.name, c.got, c.want[1], c.want[0], c.want[2])
		}
	}
}

func TestSLOGatesPassAndFail(t *testing.T) {
	t.Parallel()
	rep := &Report{Requests: 1000, Errors: 2, Latency: Latency{P99: 1.5}, ErrorRate: 0.002}
	parse := func(s string) SLO {
		slo, err := ParseSLO(s)
		if err != nil {
			t.Fatal(err)
		}
		return slo
	}
	if _, ok := evaluate([]SLO{parse("p99=2ms"), parse("error-rate=0.5%"), parse("overshoot=0%")}, rep); !ok {
		t.Fatal("gates that hold failed")
	}
	res, ok := evaluate([]SLO{parse("p99=2ms"), parse("error-rate=0.1%")}, rep)
	if ok || res[0].Passed == false || res[1].Passed || res[1].Actual != 0.2 {
		t.Fatalf("error-rate 0.2%% against 0.1%%: %+v", res)
	}
	for _, bad := range []string{"p99", "p99=fast", "p98=1ms", "error-rate=1", "overshoot=-1%"} {
		if _, err := ParseSLO(bad); err == nil {
			t.Errorf("ParseSLO(%q) accepted", bad)
		}
	}
}

func TestAccuracyComparesAdmittedWithTheBucket(t *testing.T) {
	t.Parallel()
	cfg := &Config{Limit: 100, Period: time.Minute}
	t0 := time.Now()
	span := func(admitted int64, last time.Duration) tenantRun {
		return tenantRun{admitted: admitted, first: t0, last: t0.Add(last)}
	}
	// A full bucket of 100 and 10 more in 6 s.
	acc := accuracy(map[string]tenantRun{"exact": span(110, 6*time.Second), "over": span(121, 6*time.Second), "short": span(101, 0)}, cfg)
	if acc.WorstTenant != "over" || math.Abs(acc.WorstOvershoot-10) > 1e-9 {
		t.Fatalf("worst %q %.2f%%, want over at 10%%", acc.WorstTenant, acc.WorstOvershoot)
	}
	for _, a := range acc.Tenants {
		want := map[string]int64{"exact": 110, "over": 110, "short": 100}[a.Tenant]
		if a.Allowed != want || (a.Tenant == "exact" && a.Overshoot != 0) {
			t.Fatalf("%+v: allowed %d, want %d", a, a.Allowed, want)
		}
	}
}

func TestLatencyGatesNeedAnswers(t *testing.T) {
	t.Parallel()
	rep := &Report{Requests: 10, Errors: 10}
	slo, _ := ParseSLO("p99=2ms")
	if _, ok := evaluate([]SLO{slo}, rep); ok {
		t.Fatal("a p99 gate passed a run in which every request failed")
	}
	start := time.Now()
	rec := newRecorder(start)
	rec.record("t", 1, start, start.Add(time.Microsecond), outcome{errKind: "refused"})
	rec.fill(rep)
	if rep.Latency.P99 != 0 || rep.Errors != 1 {
		t.Fatalf("a failure entered the latency: %+v", rep.Latency)
	}
}

func TestChaosAndConfigAreChecked(t *testing.T) {
	t.Parallel()
	ev, err := ParseChaos("kill@10s, restart@20s:bench-node-2,join@15s")
	if err != nil || len(ev) != 3 || ev[1].Node != "bench-node-2" || ev[2].At != 15*time.Second {
		t.Fatalf("%+v %v", ev, err)
	}
	for _, bad := range []string{"kill", "kill@soon", "explode@1s"} {
		if _, err := ParseChaos(bad); err == nil {
			t.Errorf("ParseChaos(%q) accepted", bad)
		}
	}
	for flag, cfg := range map[string]Config{
		"scenario": {Scenario: "ping", Targets: []string{"x"}},
		"targets":  {},
		"zipf":     {Targets: []string{"x"}, Zipf: 0.5},
		"chaos":    {Targets: []string{"x"}, Chaos: ev},
		"period":   {Scenario: ScenarioGateway, Targets: []string{"x"}, AdminServer: "y", Period: time.Second},
	} {
		cfg.Defaults()
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), flag) {
			t.Errorf("%s: %v", flag, err)
		}
	}
}

func TestZipfSkewsTheTenantsShares(t *testing.T) {
	t.Parallel()
	counts := func(zipf float64) []int {
		cfg := &Config{Zipf: zipf}
		pick := tenantPicker(cfg, 100, 1)
		c := make([]int, 100)
		for range 100_000 {
			c[pick()]++
		}
		return c
	}
	uniform, skewed := counts(0), counts(1.5)
	if uniform[0] > 1500 || uniform[0] < 500 {
		t.Fatalf("uniform: tenant 0 got %d of 100000, want about 1000", uniform[0])
	}
	if skewed[0] < 30_000 || skewed[0] < 10*skewed[50] {
		t.Fatalf("zipf 1.5: tenant 0 got %d, tenant 50 %d; want the first far ahead", skewed[0], skewed[50])
	}
}

// Not parallel, like the other tests here that run against the wall clock
// (the closed loop, the progress lines): tests beside them on a small
// machine would disturb the timing they check. Top-level serial tests run
// before the parallel ones, so these run alone in the package.
func TestARunPrintsProgressEverySecond(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"allowed":true}`)
	}))
	defer api.Close()
	var out strings.Builder // written only by the progress goroutine, read after Run has waited for it
	rep, err := Run(t.Context(), Config{Scenario: ScenarioCheckHTTP, Targets: []string{api.URL}, Rate: 100,
		Duration: 2200 * time.Millisecond, Progress: &out})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "req/s") || !strings.Contains(lines[0], "p99") || !strings.Contains(lines[0], "denied") {
		t.Fatalf("progress: %q", out.String())
	}
	if rep.Requests != 220 || rep.Allowed != 220 {
		t.Fatalf("%d requests, %d allowed", rep.Requests, rep.Allowed)
	}
}
