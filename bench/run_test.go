package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// nopScenario answers at once: the schedule alone is measured.
type nopScenario struct{}

func (nopScenario) do(context.Context, int, string) outcome { return outcome{allowed: true} }
func (nopScenario) close()                                  {}

func TestTheOpenLoopHoldsItsRate(t *testing.T) {
	cfg := &Config{Rate: 2000, Duration: 2 * time.Second}
	cfg.Defaults()
	rec := newRecorder(time.Now())
	openLoop(t.Context(), cfg, nopScenario{}, rec, []string{"a", "b"}, 1)
	elapsed := time.Since(rec.start)
	rate := float64(rec.requests) / elapsed.Seconds()
	if math.Abs(rate-2000)/2000 > 0.02 {
		t.Fatalf("%d requests in %s: %.0f/s, want 2000/s within 2%%", rec.requests, elapsed, rate)
	}
}

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
	rec.fill(&rep, time.Second)
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
	rep := &Report{Latency: Latency{P99: 1.5}, ErrorRate: 0.002, Accuracy: Accuracy{WorstOvershoot: 0}}
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
	cfg := &Config{Limit: 100, Period: time.Minute}
	acc := accuracy(map[string]int64{"exact": 110, "over": 121, "under": 5}, cfg, 6*time.Second)
	// A full bucket of 100 and 10 more in 6 s.
	if acc.WorstTenant != "over" || math.Abs(acc.WorstOvershoot-10) > 1e-9 {
		t.Fatalf("worst %q %.2f%%, want over at 10%%", acc.WorstTenant, acc.WorstOvershoot)
	}
	for _, a := range acc.Tenants {
		if a.Allowed != 110 || (a.Tenant != "over" && a.Overshoot != 0) {
			t.Fatalf("%+v", a)
		}
	}
}

func TestChaosAndConfigAreChecked(t *testing.T) {
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
