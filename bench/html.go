package bench

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// htmlTenants is how many tenants the page's accuracy table lists.
const htmlTenants = 20

// WriteHTML writes the Report as one self-contained page: inline style, SVG
// charts drawn here, no script and nothing fetched, so the page can be
// attached to a ticket, archived with the run and opened offline.
func WriteHTML(w io.Writer, r *Report) error {
	// Parsed per call rather than held in a package variable: a page is
	// written once a run, and parsing takes microseconds.
	t, err := template.New("report").Funcs(template.FuncMap{
		"text":   func(s string) template.HTML { return template.HTML(escapeText(s)) },
		"num":    sig3,
		"pct":    func(fraction float64) string { return sig3(fraction*100) + "%" },
		"slo":    sloLine,
		"detail": eventDetail,
	}).Parse(pageHTML)
	if err != nil {
		return fmt.Errorf("bench: parsing the HTML template: %w", err)
	}
	p := htmlPage{
		R:        r,
		Mode:     modeLine(r),
		Errors:   errorsLine(r),
		Accuracy: accuracyLine(r.Accuracy),
		Tenants:  worstTenants(r.Accuracy.Tenants, htmlTenants),
		Latency:  latencyChart(r),
		Dist:     distributionChart(r.Distribution),
		Outcomes: outcomeChart(r),
	}
	if !r.Started.IsZero() {
		p.Started = r.Started.UTC().Format(time.RFC3339)
	}
	if err := t.Execute(w, p); err != nil {
		return fmt.Errorf("bench: writing HTML report: %w", err)
	}
	return nil
}

// htmlPage is what the template needs beyond the Report: lines shared with
// the terminal table, and the charts, already drawn and escaped.
type htmlPage struct {
	R                       *Report
	Started                 string
	Mode, Errors, Accuracy  string
	Tenants                 []TenantAccuracy
	Latency, Dist, Outcomes template.HTML
}

// escapeText makes outside text (tenant and node names, targets, error
// messages) safe as element content in both HTML and the SVG charts, which
// must stay well-formed XML: it drops the control characters XML forbids
// and escapes markup. Targets and error messages usually carry URLs, and
// the page promises none, so a saved report can be checked with grep; the
// colon written as &#58; reads and copies the same.
func escapeText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return strings.ReplaceAll(template.HTMLEscapeString(s), "://", "&#58;//")
}

// runSpan is how many seconds the time charts show: the run, and anything
// recorded past its nominal end.
func runSpan(r *Report) float64 {
	span := r.Duration
	if n := len(r.Timeline); n > 0 {
		span = max(span, float64(r.Timeline[n-1].T+1))
	}
	for _, e := range r.Events {
		if !math.IsNaN(e.At) {
			span = max(span, e.At)
		}
	}
	return span
}

func latencyChart(r *Report) template.HTML {
	p50 := series{name: "p50", color: "#1f77b4"}
	p99 := series{name: "p99", color: "#d62728"}
	for _, s := range r.Timeline {
		// A second's figures describe what completed during it, so they are
		// drawn at its middle, among the events of that second.
		x := float64(s.T) + 0.5
		p50.add(x, s.P50)
		p99.add(x, s.P99)
	}
	return timeChart("Latency over time", "latency (ms)", runSpan(r), []series{p50, p99}, r.Events)
}

func outcomeChart(r *Report) template.HTML {
	req := series{name: "requests", color: "#1f77b4"}
	den := series{name: "denied", color: "#ff7f0e"}
	errs := series{name: "errors", color: "#d62728"}
	for _, s := range r.Timeline {
		x := float64(s.T) + 0.5
		req.add(x, float64(s.Requests))
		den.add(x, float64(s.Denied))
		errs.add(x, float64(s.Errors))
	}
	return timeChart("Outcomes per second", "per second", runSpan(r), []series{req, den, errs}, r.Events)
}

// timeChart draws series over the seconds of the run, with each chaos event
// as a dashed vertical line where it happened.
func timeChart(title, yTitle string, span float64, ss []series, events []Event) template.HTML {
	yHi, n := 0.0, 0
	for _, s := range ss {
		for _, pt := range s.pts {
			yHi = max(yHi, pt.y)
			n++
		}
	}
	xt, xMax := niceTicks(span, 8)
	yt, yMax := niceTicks(yHi, 5)
	p := newPlot(title, xMax, yMax)
	p.axes(xt, yt, "seconds since start", yTitle)
	eventX := func(e Event) (float64, bool) {
		if math.IsNaN(e.At) || math.IsInf(e.At, 0) {
			return 0, false
		}
		return p.x(min(max(e.At, 0), xMax)), true
	}
	for _, e := range events {
		if x, ok := eventX(e); ok {
			p.line(x, padT, x, p.y(0), `stroke="#777" stroke-dasharray="4 3"`)
		}
	}
	if n == 0 {
		p.noData()
	}
	for _, s := range ss {
		if len(s.pts) > 0 {
			p.polyline(s)
		}
	}
	// Event labels go over every line, outlined in white to stay readable,
	// and staggered so events close in time do not overprint.
	for i, e := range events {
		if x, ok := eventX(e); ok {
			p.text(x+3, padT+10+float64(i%3)*12, "start",
				`fill="#555" font-size="10" stroke="#fff" stroke-width="3" paint-order="stroke"`, e.Kind+" "+e.Node)
		}
	}
	p.legend(ss)
	return p.finish()
}

// maxNines bounds the distribution chart's x axis at 99.9999%; a run
// reports no finer percentile that means anything.
const maxNines = 6

// percentileX places a percentile on the HdrHistogram axis, where each
// step of 1 adds a nine: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3. 100 is +Inf.
func percentileX(p float64) float64 {
	if p <= 0 {
		return 0
	}
	return math.Log10(1 / (1 - p/100))
}

// ninesLabel names the percentile at k nines: 0%, 90%, 99%, 99.9%, ...
func ninesLabel(k int) string {
	if k == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*(1-math.Pow(10, -float64(k))), 'f', max(0, k-2), 64) + "%"
}

// distributionChart draws latency by percentile on the HdrHistogram axis,
// which spreads the tail out where a linear axis would crush it.
func distributionChart(dist []Percentile) template.HTML {
	sorted := slices.SortedFunc(slices.Values(dist), func(a, b Percentile) int {
		return cmp.Compare(a.Percentile, b.Percentile)
	})
	s := series{name: "latency", color: "#1f77b4"}
	lastX := 0.0
	for _, d := range sorted {
		x := percentileX(d.Percentile)
		switch {
		case math.IsInf(x, 1):
			// The maximum has no place on this axis; it is drawn at the last
			// finite percentile, as the line's final rise.
			x = lastX
		case x > lastX:
			lastX = x
		}
		s.add(x, d.Latency)
	}
	nines := min(maxNines, max(4, int(math.Ceil(lastX-1e-9))))
	xt := make([]tick, 0, nines+1)
	for k := range nines + 1 {
		xt = append(xt, tick{float64(k), ninesLabel(k)})
	}
	yHi := 0.0
	for i, pt := range s.pts {
		s.pts[i].x = min(pt.x, float64(nines))
		yHi = max(yHi, pt.y)
	}
	yt, yMax := niceTicks(yHi, 5)
	p := newPlot("Latency distribution", float64(nines), yMax)
	p.axes(xt, yt, "percentile", "latency (ms)")
	if len(s.pts) == 0 {
		p.noData()
	} else {
		p.polyline(s)
	}
	return p.finish()
}

// pageHTML is the page. Outside text goes through text (see escapeText);
// the rest through html/template's own escaping.
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tollgate bench: {{text .R.Scenario}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:820px;margin:2em auto;padding:0 1em}
h1{font-size:1.4em}
h2{font-size:1.1em;margin-top:1.8em}
table{border-collapse:collapse;margin:.4em 0}
th,td{padding:2px 10px;text-align:left;border-bottom:1px solid #e3e3e3;vertical-align:top}
.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}
.bad{color:#c62828;font-weight:bold}
svg{display:block;max-width:100%;height:auto;margin:.4em 0}
</style>
</head>
<body>
<h1>Tollgate bench: {{text .R.Scenario}}</h1>
{{- if .R.SLOs}}
<p class="{{if .R.Passed}}ok{{else}}bad{{end}}">{{if .R.Passed}}Every SLO met{{else}}SLO VIOLATED{{end}}</p>
{{- end}}

<h2>Summary</h2>
<table>
<tr><th>Targets</th><td>{{range $i, $t := .R.Targets}}{{if $i}}, {{end}}{{text $t}}{{end}}</td></tr>
<tr><th>Mode</th><td>{{text .Mode}}</td></tr>
{{- if .Started}}
<tr><th>Started</th><td>{{.Started}}</td></tr>
{{- end}}
<tr><th>Duration</th><td>{{num .R.Duration}} s</td></tr>
<tr><th>Requests</th><td>{{.R.Requests}}</td></tr>
<tr><th>Achieved rate</th><td>{{num .R.AchievedRate}} req/s</td></tr>
<tr><th>Allowed</th><td>{{.R.Allowed}}</td></tr>
<tr><th>Denied</th><td>{{.R.Denied}}</td></tr>
<tr><th>Errors</th><td>{{text .Errors}}</td></tr>
<tr><th>Error rate</th><td>{{pct .R.ErrorRate}}</td></tr>
</table>

<h2>Latency (ms)</h2>
<table>
<tr><th class="n">p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">p99.9</th><th class="n">max</th><th class="n">mean</th></tr>
<tr>{{with .R.Latency}}<td class="n">{{num .P50}}</td><td class="n">{{num .P90}}</td><td class="n">{{num .P99}}</td><td class="n">{{num .P999}}</td><td class="n">{{num .Max}}</td><td class="n">{{num .Mean}}</td>{{end}}</tr>
</table>
{{- if .R.SLOs}}

<h2>SLOs</h2>
<ul>
{{- range .R.SLOs}}
<li class="{{if .Passed}}ok{{else}}bad{{end}}">{{text (slo .)}}</li>
{{- end}}
</ul>
{{- end}}

<h2>Latency over time</h2>
{{.Latency}}

<h2>Latency distribution</h2>
{{.Dist}}

<h2>Outcomes per second</h2>
{{.Outcomes}}

<h2>Accuracy</h2>
<p>{{text .Accuracy}}</p>
{{- if .Tenants}}
<table>
<tr><th>Tenant</th><th class="n">Admitted</th><th class="n">Allowed</th><th class="n">Overshoot</th></tr>
{{- range .Tenants}}
<tr><td>{{text .Tenant}}</td><td class="n">{{.Admitted}}</td><td class="n">{{.Allowed}}</td><td class="n{{if gt .Overshoot 0.0}} bad{{end}}">{{num .Overshoot}}%</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .R.Events}}

<h2>Chaos events</h2>
<table>
<tr><th class="n">At (s)</th><th>Kind</th><th>Node</th><th>Detail</th></tr>
{{- range .R.Events}}
<tr><td class="n">{{num .At}}</td><td>{{text .Kind}}</td><td>{{text .Node}}</td><td{{if .Error}} class="bad"{{end}}>{{text (detail .)}}</td></tr>
{{- end}}
</table>
{{- end}}
</body>
</html>
`
