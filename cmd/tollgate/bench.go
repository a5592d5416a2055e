package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/bench"
)

// errSLO is the run's verdict when a gate failed: the lines that say
// which have been printed.
var errSLO = errors.New("SLO violated")

// sloList collects repeated --slo flags.
type sloList []bench.SLO

func (l *sloList) String() string { return fmt.Sprint(len(*l), " gates") }

func (l *sloList) Set(s string) error {
	slo, err := bench.ParseSLO(s)
	if err != nil {
		return err
	}
	*l = append(*l, slo)
	return nil
}

// chaosList collects --chaos flags, each one or more comma-separated
// events.
type chaosList []bench.ChaosEvent

func (l *chaosList) String() string { return fmt.Sprint(len(*l), " events") }

func (l *chaosList) Set(s string) error {
	events, err := bench.ParseChaos(s)
	*l = append(*l, events...)
	return err
}

// runBench runs `tollgate bench`: the load, a progress line a second, the
// table, the reports, and exit status 1 when an SLO gate fails.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := bench.DefaultConfig()
	var slos sloList
	var chaos chaosList
	targets := commaList{}
	fs := flag.NewFlagSet("tollgate bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "check-grpc, check-http or gateway (chat completions)")
	fs.Var(&targets, "targets", "comma-separated node addresses: gRPC for check-grpc, API for check-http, gateway for gateway")
	fs.IntVar(&cfg.Tenants, "tenants", cfg.Tenants, "tenants the load spreads over")
	fs.Float64Var(&cfg.Zipf, "zipf", cfg.Zipf, "skew of the tenants' shares: Zipf's s, > 1 (0: uniform)")
	fs.Int64Var(&cfg.Limit, "limit", cfg.Limit, "each tenant's limit per --period (a token bucket, burst the same)")
	fs.DurationVar(&cfg.Period, "period", cfg.Period, "the period of --limit (1m for the gateway: requests per minute)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "requests a second on an open-loop schedule")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "run a closed loop of N workers instead of the schedule")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the load runs")
	fs.Int64Var(&cfg.Hits, "hits", cfg.Hits, "hits each check asks for (1 for the gateway)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "how long one request may take before it counts as an error")
	fs.Float64Var(&cfg.StreamShare, "stream-share", cfg.StreamShare, "gateway: the share of requests that stream, 0 to 1")
	fs.StringVar(&cfg.Model, "model", cfg.Model, "gateway: the model to ask for")
	fs.StringVar(&cfg.AdminServer, "admin-server", "", "gateway: a node's API address, where the run creates its tenants and keys")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "gateway: the admin token (default $TOLLGATE_ADMIN_TOKEN)")
	fs.StringVar(&cfg.CheckToken, "check-token", "", "check-http, check-grpc: the nodes' check token (default $TOLLGATE_CHECK_TOKEN)")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", cfg.MaxInFlight, "most requests under way at once in the open loop")
	fs.Var(&slos, "slo", "a gate such as p99=2ms, error-rate=0.1% or overshoot=0% (repeatable); a violation exits 1")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	htmlPath := fs.String("html", "", "write the report as a self-contained HTML page to this file")
	fs.IntVar(&cfg.Spawn, "spawn", 0, "start an N-node local cluster of tollgate serve processes for the run (and a mock upstream for the gateway)")
	fs.BoolVar(&cfg.SpawnTLS, "spawn-tls", false, "spawn: run the cluster's peer plane and Raft over mutual TLS (to measure what TLS costs)")
	fs.Func("spawn-flags", "spawn: more flags for every spawned node, space-separated (e.g. \"--replicate=false\", to compare)", func(v string) error {
		cfg.SpawnArgs = append(cfg.SpawnArgs, strings.Fields(v)...)
		return nil
	})
	fs.StringVar(&cfg.SpawnLogs, "spawn-logs", "", "spawn: write each spawned process's whole output to DIR/<name>.log (default: kept only for error messages)")
	fs.Var(&chaos, "chaos", "with --spawn: events such as kill@10s,restart@20s,join@15s,leave@25s (KIND@TIME[:NODE]; repeatable)")
	var compare []int
	fs.Func("compare", "run the same load on fresh local clusters of these sizes, back to back (e.g. 1,3), and print one table: req/s, its ratio to the first, p50/p99/p99.9, the nodes' allocations, bytes and CPU per request", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("%q is not a number of nodes", f)
			}
			compare = append(compare, n)
		}
		return nil
	})
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.CheckToken == "" {
		cfg.CheckToken = getenv("TOLLGATE_CHECK_TOKEN") // read after parsing: help must not print it
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = getenv("TOLLGATE_ADMIN_TOKEN") // read after parsing: help must not print it
	}
	cfg.Targets, cfg.SLOs, cfg.Chaos = targets, slos, chaos
	if !*quiet {
		cfg.Progress = stderr
	}
	if len(compare) > 0 && (cfg.Spawn > 0 || *jsonPath != "" || *htmlPath != "") {
		return errors.New("compare: spawns its own clusters and prints one table; drop --spawn, --json and --html")
	}
	if cfg.Spawn > 0 || len(compare) > 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("spawn: finding the tollgate binary: %w", err)
		}
		cfg.Binary = exe
	}

	if len(compare) > 0 {
		return runCompare(ctx, cfg, compare, stdout)
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	bench.WriteTable(stdout, rep)
	if err := writeReport(*jsonPath, rep, bench.WriteJSON); err != nil {
		return err
	}
	if err := writeReport(*htmlPath, rep, bench.WriteHTML); err != nil {
		return err
	}
	if rep.Interrupted {
		return fmt.Errorf("interrupted after %.1fs: the figures cover that much of the run", rep.Duration)
	}
	if !rep.Passed {
		return errSLO
	}
	return nil
}

// runCompare runs --compare: the load once per cluster size, one table.
func runCompare(ctx context.Context, cfg bench.Config, sizes []int, stdout io.Writer) error {
	reps, err := bench.Compare(ctx, cfg, sizes)
	if len(reps) > 0 {
		bench.WriteCompare(stdout, reps)
	}
	switch {
	case err != nil:
		return err
	case reps[len(reps)-1].Interrupted:
		return errors.New("interrupted: the figures cover part of the runs")
	}
	for _, r := range reps {
		if !r.Passed {
			return errSLO
		}
	}
	return nil
}

// writeReport writes one rendering of the report to path, if one is given.
func writeReport(path string, rep *bench.Report, render func(io.Writer, *bench.Report) error) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := render(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
