package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

const evilTenant = `<evil>&"`

// sampleReport is a small run with everything the renderers draw: a
// timeline, a distribution ending at p100, tenants (one with a hostile
// name), two chaos events and two SLOs, one of them failing.
func sampleReport() *Report {
	return &Report{
		Scenario:     "steady-kill",
		Targets:      []string{"http://127.0.0.1:8080", "127.0.0.1:9090"},
		Mode:         "open",
		TargetRate:   1000,
		Started:      time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC),
		Duration:     4,
		Requests:     4000,
		AchievedRate: 998.7,
		Allowed:      3600,
		Denied:       386,
		Errors:       14,
		ErrorsByKind: map[string]int64{"timeout": 4, "refused": 10},
		ErrorRate:    0.0035,
		Latency:      Latency{P50: 0.61, P90: 0.93, P99: 1.42, P999: 7.9, Max: 12.5, Mean: 0.68},
		Timeline: []Second{
			{T: 0, Requests: 1000, Denied: 90, P50: 0.6, P99: 1.3},
			{T: 1, Requests: 1000, Denied: 95, Errors: 12, P50: 0.7, P99: 9.8},
			{T: 2, Requests: 1000, Denied: 100, Errors: 2, P50: 0.6, P99: 1.9},
			{T: 3, Requests: 1000, Denied: 101, P50: 0.6, P99: 1.2},
		},
		Distribution: []Percentile{
			{Percentile: 0, Latency: 0.2}, {Percentile: 50, Latency: 0.61},
			{Percentile: 90, Latency: 0.93}, {Percentile: 99, Latency: 1.42},
			{Percentile: 99.9, Latency: 7.9}, {Percentile: 100, Latency: 12.5},
		},
		Accuracy: Accuracy{
			Tenants: []TenantAccuracy{
				{Tenant: "acme", Admitted: 1000, Allowed: 1000},
				{Tenant: evilTenant, Admitted: 1062, Allowed: 1000, Overshoot: 6.2},
				{Tenant: "globex", Admitted: 1010, Allowed: 1000, Overshoot: 1},
			},
			WorstOvershoot: 6.2,
			WorstTenant:    evilTenant,
		},
		Events: []Event{
			{At: 1.2, Kind: "kill", Node: "node-2", Detail: "SIGKILL"},
			{At: 2.5, Kind: "restart", Node: evilTenant, Error: `dial tcp: Get "http://10.0.0.2:7946/": refused`},
		},
		SLOs: []SLOResult{
			{Name: "p99", Target: 2, Actual: 1.42, Unit: "ms", Passed: true},
			{Name: "error-rate", Target: 0.1, Actual: 0.35, Unit: "%", Passed: false},
		},
	}
}

func TestRenderJSONRoundTrip(t *testing.T) {
	t.Parallel()
	want := sampleReport()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, want); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, buf.Bytes())
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", got, *want)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"latency", "timeline", "accuracy", "slos"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("JSON report has no %q key", k)
		}
	}
	if !bytes.Contains(buf.Bytes(), []byte("\n  \"scenario\"")) {
		t.Errorf("JSON report is not indented:\n%s", buf.Bytes())
	}
}

func TestRenderJSONError(t *testing.T) {
	t.Parallel()
	r := sampleReport()
	r.Latency.P99 = math.NaN() // JSON has no NaN
	if err := WriteJSON(io.Discard, r); err == nil {
		t.Error("WriteJSON of a NaN latency returned no error")
	}
}

// svgs returns each <svg>…</svg> element of a page.
func svgs(t *testing.T, page string) []string {
	t.Helper()
	var out []string
	for rest := page; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			return out
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatalf("unterminated <svg> at %q", rest[i:min(len(rest), i+80)])
		}
		out = append(out, rest[i:i+j+len("</svg>")])
		rest = rest[i+j:]
	}
}

// polylinePoints returns the "x,y" pairs of the first polyline in svg.
func polylinePoints(t *testing.T, svg string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(svg, `<polyline`)
	if ok {
		_, rest, ok = strings.Cut(rest, `points="`)
	}
	if !ok {
		t.Fatalf("no polyline points in\n%s", svg)
	}
	pts, _, _ := strings.Cut(rest, `"`)
	return strings.Fields(pts)
}

// checkXML fails unless doc is well-formed XML on its own.
func checkXML(t *testing.T, doc string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Errorf("SVG is not well-formed XML: %v\n%s", err, doc)
			return
		}
	}
}

// checkSelfContained fails if the page could fetch anything or run script.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, bad := range []string{"<script", "<link", "src=", "<iframe", "<img", "url("} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	rest := strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
	for _, scheme := range []string{"http://", "https://"} {
		if i := strings.Index(strings.ToLower(rest), scheme); i >= 0 {
			t.Errorf("page contains a URL: %q", rest[max(0, i-40):min(len(rest), i+40)])
		}
	}
}

// renderHTML renders r and returns the page and its charts, each checked
// to be well-formed XML.
func renderHTML(t *testing.T, r *Report) (page string, charts []string) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	page = buf.String()
	charts = svgs(t, page)
	for _, c := range charts {
		checkXML(t, c)
	}
	return page, charts
}

func TestRenderHTML(t *testing.T) {
	t.Parallel()
	page, charts := renderHTML(t, sampleReport())
	checkSelfContained(t, page)
	if len(charts) < 2 {
		t.Fatalf("page has %d <svg> elements, want at least 2", len(charts))
	}
	for _, c := range charts {
		if !strings.Contains(c, `xmlns="http://www.w3.org/2000/svg"`) {
			t.Errorf("SVG has no namespace: %.80s", c)
		}
	}
	timeChart := charts[0]
	if !strings.Contains(timeChart, "<polyline") {
		t.Errorf("time chart has no line:\n%s", timeChart)
	}
	if n := strings.Count(timeChart, "stroke-dasharray"); n != 2 {
		t.Errorf("time chart has %d dashed event lines, want 2", n)
	}
	for _, want := range []string{">kill node-2<", ">p50<", ">p99<"} {
		if !strings.Contains(timeChart, want) {
			t.Errorf("time chart lacks %q", want)
		}
	}
	for _, want := range []string{">90%<", ">99%<", ">99.9%<", ">99.99%<"} {
		if !strings.Contains(charts[1], want) {
			t.Errorf("distribution chart lacks the tick %q", want)
		}
	}
	// p100 has no place on the axis: it rises at the last finite point
	// (p99.9 here), not at 0%.
	pts := polylinePoints(t, charts[1])
	if len(pts) != 6 {
		t.Fatalf("distribution has %d points, want 6: %q", len(pts), pts)
	}
	x999, y999, _ := strings.Cut(pts[4], ",")
	x100, y100, _ := strings.Cut(pts[5], ",")
	if x100 != x999 || y100 == y999 {
		t.Errorf("p99.9 at %s, p100 at %s: want p100 straight above", pts[4], pts[5])
	}

	if strings.Contains(page, evilTenant) {
		t.Error("the tenant <evil>&\" appears unescaped")
	}
	if !strings.Contains(page, "&lt;evil&gt;&amp;&#34;") {
		t.Error("the tenant <evil>&\" does not appear escaped")
	}
	for _, want := range []string{"VIOLATED", "steady-kill", "1.42", "6.2%", "SIGKILL"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestRenderHTMLEmpty(t *testing.T) {
	t.Parallel()
	page, charts := renderHTML(t, &Report{})
	checkSelfContained(t, page)
	if len(charts) < 2 {
		t.Fatalf("empty page has %d <svg> elements, want at least 2", len(charts))
	}
	for _, c := range charts {
		if !strings.Contains(c, "no data") {
			t.Errorf("empty chart does not say so:\n%s", c)
		}
	}
}

func TestRenderHTMLSinglePoint(t *testing.T) {
	t.Parallel()
	r := &Report{
		Duration:     1,
		Timeline:     []Second{{T: 0, Requests: 10, P50: 1, P99: 2}},
		Distribution: []Percentile{{Percentile: 100, Latency: 3}},
	}
	_, charts := renderHTML(t, r)
	for _, c := range charts {
		if !strings.Contains(c, "<circle") {
			t.Errorf("a one-point chart has no dot:\n%s", c)
		}
		if strings.Contains(c, "NaN") || strings.Contains(c, "Inf") {
			t.Errorf("chart has a non-finite coordinate:\n%s", c)
		}
	}
}

// TestRenderHTMLControlChars: names are outside input, and a control
// character would make the SVG ill-formed XML.
func TestRenderHTMLControlChars(t *testing.T) {
	t.Parallel()
	r := sampleReport()
	r.Events[0].Node = "node\x01\x00-2\xff"
	renderHTML(t, r) // checks every chart's XML
}

func TestRenderTable(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	WriteTable(&buf, sampleReport())
	out := buf.String()
	for _, want := range []string{
		"p99", "p99.9", "1.42", "steady-kill", "open loop, target 1000 req/s",
		"14 (refused 10, timeout 4)", "0.35%", evilTenant, "6.2%", "kill", "node-2",
		"SLO error-rate <= 0.1%: 0.35% VIOLATED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// The worst tenant leads the tenant list.
	if i, j := strings.Index(out, evilTenant+" "), strings.Index(out, "globex"); i < 0 || j < 0 || i > j {
		t.Errorf("tenants not listed worst first:\n%s", out)
	}
}

func TestRenderTableQuotesControlChars(t *testing.T) {
	t.Parallel()
	r := sampleReport()
	r.Accuracy.Tenants[1].Tenant = "bad\x1b[31m\ttenant"
	var buf bytes.Buffer
	WriteTable(&buf, r)
	if strings.Contains(buf.String(), "\x1b") {
		t.Errorf("a terminal escape reached the table:\n%q", buf.String())
	}
}

func TestSLOLines(t *testing.T) {
	t.Parallel()
	got := SLOLines(sampleReport())
	want := []string{
		"SLO p99 <= 2ms: 1.42ms ok",
		"SLO error-rate <= 0.1%: 0.35% VIOLATED",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SLOLines = %q, want %q", got, want)
	}
	if n := len(SLOLines(&Report{})); n != 0 {
		t.Errorf("SLOLines without SLOs gave %d lines", n)
	}
}

func TestRenderNiceTicks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		hi     float64
		n      int
		top    float64
		labels string
	}{
		{hi: 9.8, n: 5, top: 10, labels: "0 2 4 6 8 10"},
		{hi: 0.55, n: 5, top: 0.6, labels: "0.0 0.2 0.4 0.6"},
		{hi: 0.055, n: 5, top: 0.06, labels: "0.00 0.02 0.04 0.06"},
		{hi: 0.6, n: 3, top: 0.6, labels: "0.0 0.2 0.4 0.6"},
		{hi: 1000, n: 5, top: 1000, labels: "0 200 400 600 800 1000"},
		{hi: 37, n: 8, top: 40, labels: "0 5 10 15 20 25 30 35 40"},
		{hi: 0, n: 5, top: 1, labels: "0.0 0.2 0.4 0.6 0.8 1.0"},
	} {
		ticks, top := niceTicks(tc.hi, tc.n)
		labels := make([]string, len(ticks))
		for i, tk := range ticks {
			labels[i] = tk.label
		}
		if math.Abs(top-tc.top) > 1e-9 || strings.Join(labels, " ") != tc.labels {
			t.Errorf("niceTicks(%v, %d) = %q up to %v, want %q up to %v",
				tc.hi, tc.n, labels, top, tc.labels, tc.top)
		}
	}
}

func TestRenderPercentileAxis(t *testing.T) {
	t.Parallel()
	for p, want := range map[float64]float64{0: 0, 90: 1, 99: 2, 99.9: 3, 99.99: 4} {
		if got := percentileX(p); math.Abs(got-want) > 1e-9 {
			t.Errorf("percentileX(%v) = %v, want %v", p, got, want)
		}
	}
	if !math.IsInf(percentileX(100), 1) {
		t.Error("percentileX(100) is finite")
	}
	for k, want := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"} {
		if got := ninesLabel(k); got != want {
			t.Errorf("ninesLabel(%d) = %q, want %q", k, got, want)
		}
	}
}

func TestRenderSig3(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{
		0: "0", 0.61: "0.61", 0.01234: "0.0123", 1.42: "1.42", 6.2: "6.2", 4: "4",
		12.54: "12.5", 998.7: "999", 12345: "12345", -1.5: "-1.5",
	} {
		if got := sig3(v); got != want {
			t.Errorf("sig3(%v) = %q, want %q", v, got, want)
		}
	}
}
