package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// WriteJSON writes the Report as indented JSON, the form other tools and
// later comparisons read.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench: writing JSON report: %w", err)
	}
	return nil
}

// tableTenants is how many tenants the terminal table lists; the HTML page
// and the JSON carry more.
const tableTenants = 10

// WriteTable writes the end-of-run summary for a person at a terminal.
// Errors from w are not returned: the JSON and HTML reports are the records,
// this is a courtesy.
func WriteTable(w io.Writer, r *Report) {
	// Each section is flushed on its own so its columns align among
	// themselves and not with the sections around it.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }

	row("scenario", plain(r.Scenario))
	row("targets", plain(strings.Join(r.Targets, ", ")))
	row("mode", modeLine(r))
	if !r.Started.IsZero() {
		row("started", r.Started.UTC().Format(time.RFC3339))
	}
	row("duration", sig3(r.Duration)+"s")
	row("requests", fmt.Sprintf("%d (%s/s achieved)", r.Requests, sig3(r.AchievedRate)))
	row("allowed", strconv.FormatInt(r.Allowed, 10))
	row("denied", strconv.FormatInt(r.Denied, 10))
	row("errors", errorsLine(r))
	row("error rate", sig3(r.ErrorRate*100)+"%")
	tw.Flush()

	l := r.Latency
	fmt.Fprintln(w)
	row("latency ms", "p50", "p90", "p99", "p99.9", "max", "mean")
	row("", sig3(l.P50), sig3(l.P90), sig3(l.P99), sig3(l.P999), sig3(l.Max), sig3(l.Mean))
	tw.Flush()

	fmt.Fprintln(w)
	row("accuracy", accuracyLine(r.Accuracy))
	if ts := worstTenants(r.Accuracy.Tenants, tableTenants); len(ts) > 0 {
		row("", "tenant", "admitted", "allowed", "overshoot")
		for _, t := range ts {
			row("", plain(t.Tenant), strconv.FormatInt(t.Admitted, 10),
				strconv.FormatInt(t.Allowed, 10), sig3(t.Overshoot)+"%")
		}
	}
	tw.Flush()

	if c := r.Cost; c != nil {
		fmt.Fprintln(w)
		row("node cost", "nodes", "allocs/req", "bytes/req", "cpu µs/req")
		row("", strconv.Itoa(c.Nodes), sig3(c.AllocsPerRequest), sig3(c.BytesPerRequest), sig3(c.CPUPerRequest))
		tw.Flush()
	}

	if rp := r.Replication; rp != nil {
		fmt.Fprintln(w)
		row("replication", "lag p50 ms", "lag p99 ms", "rounds", "tenants copied", "failures", "promoted")
		row("", "≤"+sig3(rp.LagP50), "≤"+sig3(rp.LagP99), strconv.FormatUint(rp.Rounds, 10), sig3(rp.Tenants), sig3(rp.Failures), sig3(rp.Promoted))
		tw.Flush()
	}

	if len(r.Events) > 0 {
		fmt.Fprintln(w)
		row("events", "at", "kind", "node", "detail")
		for _, e := range r.Events {
			row("", sig3(e.At)+"s", plain(e.Kind), plain(e.Node), plain(eventDetail(e)))
		}
		tw.Flush()
	}

	if lines := SLOLines(r); len(lines) > 0 {
		fmt.Fprintln(w)
		for _, line := range lines {
			fmt.Fprintln(w, line)
		}
	}
}

// SLOLines describes each SLO of the run on one line, as
// "SLO p99 <= 2ms: 1.42ms ok" or "SLO error-rate <= 0.1%: 0.35% VIOLATED".
func SLOLines(r *Report) []string {
	lines := make([]string, 0, len(r.SLOs))
	for _, s := range r.SLOs {
		lines = append(lines, sloLine(s))
	}
	return lines
}

func sloLine(s SLOResult) string {
	verdict := "ok"
	if !s.Passed {
		verdict = "VIOLATED"
	}
	// The target is printed as configured, the measurement rounded.
	target := strconv.FormatFloat(s.Target, 'f', -1, 64)
	return fmt.Sprintf("SLO %s <= %s%s: %s%s %s",
		plain(s.Name), target, plain(s.Unit), sig3(s.Actual), plain(s.Unit), verdict)
}

// modeLine says how load was offered: a schedule at a rate, or workers.
func modeLine(r *Report) string {
	switch r.Mode {
	case "open":
		return "open loop, target " + sig3(r.TargetRate) + " req/s"
	case "closed":
		return fmt.Sprintf("closed loop, %d workers", r.Workers)
	}
	return plain(r.Mode)
}

// errorsLine is the error total followed by the kinds, most frequent first.
func errorsLine(r *Report) string {
	kinds := make([]string, 0, len(r.ErrorsByKind))
	for k := range r.ErrorsByKind {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		return cmp.Or(cmp.Compare(r.ErrorsByKind[b], r.ErrorsByKind[a]), strings.Compare(a, b))
	})
	line := strconv.FormatInt(r.Errors, 10)
	if len(kinds) == 0 {
		return line
	}
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", plain(k), r.ErrorsByKind[k])
	}
	return line + " (" + strings.Join(parts, ", ") + ")"
}

func accuracyLine(a Accuracy) string {
	if a.WorstTenant == "" || a.WorstOvershoot <= 0 {
		return fmt.Sprintf("no tenant admitted over its limits (%d tenants)", len(a.Tenants))
	}
	return fmt.Sprintf("worst overshoot %s%% (%s)", sig3(a.WorstOvershoot), plain(a.WorstTenant))
}

func eventDetail(e Event) string {
	switch {
	case e.Error == "":
		return e.Detail
	case e.Detail == "":
		return "error: " + e.Error
	}
	return e.Detail + "; error: " + e.Error
}

// worstTenants returns up to n tenants, largest overshoot first, ties by
// name so two runs list them in the same order. ts is not modified.
func worstTenants(ts []TenantAccuracy, n int) []TenantAccuracy {
	sorted := slices.Clone(ts)
	// Over their limits first, then the nearest to them: the busiest
	// tenants say most about accuracy.
	slices.SortFunc(sorted, func(a, b TenantAccuracy) int {
		return cmp.Or(cmp.Compare(b.Overshoot, a.Overshoot), cmp.Compare(b.Admitted, a.Admitted), strings.Compare(a.Tenant, b.Tenant))
	})
	return sorted[:min(n, len(sorted))]
}

// sig3 formats a measurement to about three significant digits, without
// trailing zeros and without switching to exponents for the sizes a run
// produces (1234, 12.3, 1.23, 0.123).
func sig3(v float64) string {
	decimals := 0
	switch a := math.Abs(v); {
	case a == 0 || math.IsNaN(a) || math.IsInf(a, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case a < 1:
		return strconv.FormatFloat(v, 'g', 3, 64)
	case a < 10:
		decimals = 2
	case a < 100:
		decimals = 1
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// plain makes outside text (tenant and node names, error messages) safe
// for a terminal: a tab or newline would break the columns and an escape
// sequence would drive the terminal, so such text is printed quoted.
func plain(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
