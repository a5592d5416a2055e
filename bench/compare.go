package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Compare runs cfg once per cluster size in sizes, spawning a fresh local
// cluster of that many nodes each time, back to back: the same workload,
// so that the sizes compare within one session of one machine.
func Compare(ctx context.Context, cfg Config, sizes []int) ([]*Report, error) {
	if len(sizes) == 0 {
		return nil, fmt.Errorf("compare: no cluster sizes")
	}
	if len(cfg.Targets) > 0 || len(cfg.Chaos) > 0 {
		return nil, fmt.Errorf("compare: spawns its own clusters; it takes neither targets nor chaos")
	}
	var out []*Report
	for _, n := range sizes {
		if n < 1 {
			return nil, fmt.Errorf("compare: a cluster of %d nodes", n)
		}
		c := cfg
		c.Spawn = n
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "--- %d node(s)\n", n)
		}
		rep, err := Run(ctx, c)
		if err != nil {
			return out, fmt.Errorf("%d node(s): %w", n, err)
		}
		out = append(out, rep)
		if rep.Interrupted {
			break
		}
	}
	return out, nil
}

// WriteCompare writes one line per run of Compare: throughput, its ratio
// to the first run's, latency percentiles, errors and what the nodes spent
// per request.
func WriteCompare(w io.Writer, reps []*Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	row("nodes", "req/s", "× first", "p50 ms", "p99 ms", "p99.9 ms", "errors", "allocs/req", "bytes/req", "cpu µs/req")
	for _, r := range reps {
		allocs, bytes, cpu := "-", "-", "-"
		if c := r.Cost; c != nil {
			allocs, bytes, cpu = sig3(c.AllocsPerRequest), sig3(c.BytesPerRequest), sig3(c.CPUPerRequest)
		}
		ratio := "-"
		if first := reps[0].AchievedRate; first > 0 {
			ratio = fmt.Sprintf("%.2f", r.AchievedRate/first)
		}
		l := r.Latency
		row(strconv.Itoa(len(r.Targets)), strconv.FormatFloat(r.AchievedRate, 'f', 0, 64), ratio, sig3(l.P50), sig3(l.P99), sig3(l.P999),
			strconv.FormatInt(r.Errors, 10), allocs, bytes, cpu)
	}
	tw.Flush()
}
