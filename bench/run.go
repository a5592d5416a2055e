package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Run makes the run cfg describes and returns its report. An error means
// the run could not be made (a bad flag, a cluster that would not start),
// not that an SLO failed: Report.Passed says that.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets := cfg.Targets
	var cluster *localCluster
	if cfg.Spawn > 0 {
		var err error
		if cluster, err = spawnCluster(ctx, &cfg); err != nil {
			return nil, err
		}
		defer cluster.stop()
		targets = cluster.targets(cfg.Scenario)
	}
	// Tenants of this run only, so that what earlier runs used does not
	// count against it.
	run := "bench-" + strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36)
	tenants := make([]string, cfg.Tenants)
	for i := range tenants {
		tenants[i] = run + "-" + strconv.Itoa(i)
	}
	sc, err := newScenario(ctx, &cfg, run, tenants, targets)
	if err != nil {
		return nil, err
	}
	defer sc.close()

	var before costSample
	if cluster != nil {
		if before, err = cluster.costSample(ctx); err != nil {
			return nil, fmt.Errorf("reading the nodes' metrics: %w", err)
		}
	}
	start := time.Now()
	rec := newRecorder(start)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	bg.Go(func() { printProgress(runCtx, cfg.Progress, rec, start) })
	var events []Event
	if cluster != nil {
		bg.Go(func() { events = cluster.runChaos(runCtx, cfg.Chaos, start) })
	}
	if cfg.Workers > 0 {
		closedLoop(runCtx, &cfg, sc, rec, tenants, len(targets))
	} else {
		openLoop(runCtx, &cfg, sc, rec, tenants, len(targets), newWallClock())
	}
	elapsed := time.Since(start)
	cancel()
	bg.Wait()
	var repl *Replication
	var after costSample
	if cluster != nil {
		if after, err = cluster.costSample(ctx); err != nil && cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "the nodes' costs unavailable: %v\n", err)
		}
		if repl, err = cluster.replication(ctx); err != nil && cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "replication figures unavailable: %v\n", err)
		}
	}

	rep := &Report{Scenario: cfg.Scenario, Targets: targets, Mode: "open", TargetRate: cfg.Rate,
		Started: start.UTC().Truncate(time.Second), Duration: elapsed.Seconds(), Events: events, Replication: repl}
	if cfg.Workers > 0 {
		rep.Mode, rep.Workers = "closed", cfg.Workers
	}
	rec.fill(rep)
	if cluster != nil && after.nodes > 0 && len(cfg.Chaos) == 0 {
		rep.Cost = costOf(before, after, rep.Requests)
	}
	impact(rep.Events, rep.Timeline)
	rep.Accuracy = accuracy(rec.tenantRuns(), &cfg)
	rep.Interrupted = ctx.Err() != nil
	rep.SLOs, rep.Passed = evaluate(cfg.SLOs, rep)
	return rep, nil
}

// newScenario sets up cfg's scenario; run names what a run creates.
func newScenario(ctx context.Context, cfg *Config, run string, tenants, targets []string) (scenario, error) {
	switch cfg.Scenario {
	case ScenarioCheckHTTP:
		return newCheckHTTP(cfg, targets), nil
	case ScenarioGateway:
		return setUpGateway(ctx, cfg, run, tenants, targets)
	}
	return newCheckGRPC(cfg, targets)
}

// timerSlack is how late the schedule may send a request and still count
// it from when it was sent.
const timerSlack = 2 * time.Millisecond

// job is one request of an open loop: its place in the schedule.
type job struct {
	due time.Time
	n   int64
}

// clock is what the open loop's schedule runs on: the wall clock in a run,
// a clock the test moves in the tests of the schedule itself.
type clock interface {
	now() time.Time
	// sleepUntil returns at t, or when ctx ends.
	sleepUntil(ctx context.Context, t time.Time)
}

// wallClock sleeps on one timer, reused for every request.
type wallClock struct{ timer *time.Timer }

func newWallClock() *wallClock {
	t := time.NewTimer(0)
	<-t.C
	return &wallClock{timer: t}
}

func (*wallClock) now() time.Time { return time.Now() }

func (c *wallClock) sleepUntil(ctx context.Context, t time.Time) {
	if wait := time.Until(t); wait > 0 {
		c.timer.Reset(wait)
		select {
		case <-ctx.Done():
			c.timer.Stop()
		case <-c.timer.C:
		}
	}
}

// openLoop starts requests on a schedule of cfg.Rate a second whatever
// the answers do: the n-th is due at start + n/rate, and its latency counts
// from then when it has to wait for a free worker, so a slow server cannot
// hide its queue.
func openLoop(ctx context.Context, cfg *Config, sc scenario, rec *recorder, tenants []string, targets int, clk clock) {
	total := int64(cfg.Rate * cfg.Duration.Seconds())
	interval := float64(time.Second) / cfg.Rate
	jobs := make(chan job, cfg.MaxInFlight)
	var wg sync.WaitGroup
	for w := range min(int64(cfg.MaxInFlight), max(total, 1)) {
		pick := tenantPicker(cfg, len(tenants), uint64(w))
		wg.Go(func() {
			for j := range jobs {
				send(ctx, cfg, sc, rec, tenants[pick()], int(j.n%int64(targets)), j.due, clk.now)
			}
		})
	}
	var last time.Time
	for n := int64(0); n < total && ctx.Err() == nil; n++ {
		due := rec.start.Add(time.Duration(float64(n) * interval))
		clk.sleepUntil(ctx, due)
		// Go's sleeps here wake up to about a millisecond late: slack of
		// the generator's own, so a request sent within timerSlack of its
		// time counts from when it was sent. A later one was held up (every
		// worker busy, or a machine too loaded to keep the schedule) and
		// counts from when it was due.
		stamp := due
		if late := clk.now().Sub(due); late > 0 && late <= timerSlack {
			stamp = due.Add(late)
		}
		select {
		case jobs <- job{due: stamp, n: n}:
			last = stamp
		case <-ctx.Done():
		}
	}
	close(jobs)
	rec.noteSent(last) // once: the schedule must not wait on the recorder's lock
	wg.Wait()
}

// closedLoop runs cfg.Workers workers, each sending its next request when
// the last is answered, until the run's time is up.
func closedLoop(ctx context.Context, cfg *Config, sc scenario, rec *recorder, tenants []string, targets int) {
	end := rec.start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		pick := tenantPicker(cfg, len(tenants), uint64(w))
		wg.Go(func() {
			var now time.Time
			for n := w; time.Now().Before(end) && ctx.Err() == nil; n += cfg.Workers {
				now = time.Now()
				send(ctx, cfg, sc, rec, tenants[pick()], n%targets, now, time.Now)
			}
			rec.noteSent(now)
		})
	}
	wg.Wait()
}

// send sends one request due at due and records its answer at now().
func send(ctx context.Context, cfg *Config, sc scenario, rec *recorder, tenant string, target int, due time.Time, now func() time.Time) {
	if ctx.Err() != nil {
		return // the run was cut short; an unsent request is no result
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	o := sc.do(rctx, target, tenant)
	timedOut := rctx.Err() == context.DeadlineExceeded
	cancel()
	switch {
	case ctx.Err() != nil:
		return // cut short by the run's end (Ctrl-C): not the server's failure
	case o.errKind != "" && timedOut:
		o.errKind = "timeout" // whatever the client library called it
	}
	rec.record(tenant, cfg.Hits, due, now(), o)
}

// tenantPicker draws tenant indexes, uniformly or by Zipf's law, from a
// source of the worker's own (neither is safe for concurrent use).
func tenantPicker(cfg *Config, n int, worker uint64) func() int {
	r := rand.New(rand.NewPCG(uint64(n), worker))
	if cfg.Zipf == 0 || n == 1 {
		return func() int { return r.IntN(n) }
	}
	z := rand.NewZipf(r, cfg.Zipf, 1, uint64(n-1))
	return func() int { return int(z.Uint64()) }
}

// printProgress writes one line a second until ctx ends: the rate of the
// last second, and latency, errors and denials so far.
func printProgress(ctx context.Context, w io.Writer, rec *recorder, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			requests, failed, denied, p50, p99 := rec.progress()
			fmt.Fprintf(w, "%5.0fs  %8.0f req/s  so far: p50 %7.2fms  p99 %7.2fms  errors %d  denied %d\n",
				now.Sub(start).Seconds(), float64(requests-last), p50, p99, failed, denied)
			last = requests
		}
	}
}

// accuracy compares each tenant's admitted hits with what a token bucket
// of cfg.Limit per cfg.Period allows it: full at its first request, and
// refilling until its last admission.
func accuracy(runs map[string]tenantRun, cfg *Config) Accuracy {
	out := Accuracy{Tenants: make([]TenantAccuracy, 0, len(runs))}
	for _, name := range slices.Sorted(maps.Keys(runs)) {
		t := runs[name]
		span := max(t.last.Sub(t.first), 0)
		allowed := cfg.Limit + int64(float64(cfg.Limit)*span.Seconds()/cfg.Period.Seconds())
		a := TenantAccuracy{Tenant: name, Admitted: t.admitted, Allowed: allowed}
		if over := a.Admitted - allowed; over > 0 {
			a.Overshoot = float64(over) / float64(allowed) * 100
		}
		if a.Overshoot > out.WorstOvershoot {
			out.WorstOvershoot, out.WorstTenant = a.Overshoot, name
		}
		out.Tenants = append(out.Tenants, a)
	}
	return out
}

// evaluate checks the SLO gates against the report.
func evaluate(slos []SLO, rep *Report) ([]SLOResult, bool) {
	passed := true
	var out []SLOResult
	for _, s := range slos {
		var actual float64
		switch s.Name {
		case "p50":
			actual = rep.Latency.P50
		case "p90":
			actual = rep.Latency.P90
		case "p99":
			actual = rep.Latency.P99
		case "p999":
			actual = rep.Latency.P999
		case "max":
			actual = rep.Latency.Max
		case "error-rate":
			actual = rep.ErrorRate * 100
		case "overshoot":
			actual = rep.Accuracy.WorstOvershoot
		}
		r := SLOResult{Name: s.Name, Target: s.Target, Actual: actual, Unit: s.Unit, Passed: actual <= s.Target}
		if s.Unit == "ms" && rep.Requests == rep.Errors {
			r.Passed = false // no answer at all: no latency meets a gate
		}
		passed = passed && r.Passed
		out = append(out, r)
	}
	return out, passed
}
