package bench

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The SVG chart machinery the HTML report draws with: a plot area with
// axes, round-number ticks, polylines and a legend, as markup.

// Chart geometry, in SVG user units; the page scales each SVG to fit.
const (
	chartW = 760
	chartH = 300
	padL   = 64 // y tick labels and the y axis title
	padR   = 32 // half of the last x tick label
	padT   = 30 // the legend
	padB   = 44 // x tick labels and the x axis title
)

// point is a data point, in data units.
type point struct{ x, y float64 }

// series is one line of a chart.
type series struct {
	name, color string
	pts         []point
}

// add keeps only finite points: one NaN would make the whole polyline
// invalid.
func (s *series) add(x, y float64) {
	if !math.IsNaN(x) && !math.IsInf(x, 0) && !math.IsNaN(y) && !math.IsInf(y, 0) {
		s.pts = append(s.pts, point{x, y})
	}
}

// tick is one labelled mark on an axis, at a data value.
type tick struct {
	at    float64
	label string
}

// plot draws one SVG chart whose data window is [0, xMax] × [0, yMax].
type plot struct {
	b          strings.Builder
	xMax, yMax float64
}

// newPlot starts a chart; xMax and yMax must be above 0.
func newPlot(title string, xMax, yMax float64) *plot {
	p := &plot{xMax: xMax, yMax: yMax}
	fmt.Fprintf(&p.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" `+
		`font-family="sans-serif" font-size="11" role="img"><title>%s</title>`,
		chartW, chartH, chartW, chartH, escapeText(title))
	return p
}

func (p *plot) x(v float64) float64 { return padL + v/p.xMax*(chartW-padL-padR) }
func (p *plot) y(v float64) float64 { return chartH - padB - v/p.yMax*(chartH-padT-padB) }

func (p *plot) line(x1, y1, x2, y2 float64, attrs string) {
	fmt.Fprintf(&p.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`, x1, y1, x2, y2, attrs)
}

// text writes s, escaped, at (x, y) in SVG units.
func (p *plot) text(x, y float64, anchor, attrs, s string) {
	fmt.Fprintf(&p.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`, x, y, anchor, attrs, escapeText(s))
}

// axes draws grid lines at the y ticks, marks at the x ticks, both axes and
// their titles.
func (p *plot) axes(xt, yt []tick, xTitle, yTitle string) {
	for _, t := range yt {
		y := p.y(t.at)
		p.line(padL, y, chartW-padR, y, `stroke="#e6e6e6"`)
		p.text(padL-6, y+4, "end", `fill="#444"`, t.label)
	}
	base := p.y(0)
	for _, t := range xt {
		x := p.x(t.at)
		p.line(x, base, x, base+5, `stroke="#333"`)
		p.text(x, base+17, "middle", `fill="#444"`, t.label)
	}
	p.line(padL, padT, padL, base, `stroke="#333"`)
	p.line(padL, base, chartW-padR, base, `stroke="#333"`)
	p.text((padL+chartW-padR)/2, chartH-6, "middle", `fill="#222"`, xTitle)
	// Rotated a quarter turn, so x and y swap and x is negated.
	p.text(-(padT+base)/2, 16, "middle", `fill="#222" transform="rotate(-90)"`, yTitle)
}

// polyline draws a series; a lone point gets a dot, as a one-point line
// draws nothing.
func (p *plot) polyline(s series) {
	coords := make([]string, len(s.pts))
	for i, pt := range s.pts {
		coords[i] = fmt.Sprintf("%.1f,%.1f", p.x(pt.x), p.y(pt.y))
	}
	fmt.Fprintf(&p.b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`,
		s.color, strings.Join(coords, " "))
	if len(s.pts) == 1 {
		fmt.Fprintf(&p.b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, p.x(s.pts[0].x), p.y(s.pts[0].y), s.color)
	}
}

// legend names the series above the top right corner of the plot, laid
// out from the right with room for each name at about 7 units a letter.
func (p *plot) legend(ss []series) {
	x := float64(chartW - padR)
	for _, s := range slices.Backward(ss) {
		x -= float64(34 + 7*len(s.name))
		p.line(x, padT-14, x+18, padT-14, `stroke="`+s.color+`" stroke-width="2"`)
		p.text(x+22, padT-10, "start", `fill="#222"`, s.name)
	}
}

// noData marks an empty chart, so it reads as "nothing measured" rather
// than as a broken page.
func (p *plot) noData() {
	p.text((padL+chartW-padR)/2, (padT+chartH-padB)/2, "middle", `fill="#888" font-size="14"`, "no data")
}

func (p *plot) finish() template.HTML {
	p.b.WriteString("</svg>")
	return template.HTML(p.b.String()) // every text piece went through escapeText
}

// niceTicks divides [0, top] into about n steps of 1, 2 or 5 times a power
// of ten, top being the first step at or above hi, so an axis ends on a
// labelled round number.
func niceTicks(hi float64, n int) ([]tick, float64) {
	if !(hi > 0) || math.IsInf(hi, 1) {
		hi = 1
	}
	raw := hi / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	// The tolerance keeps 0.6/0.2 = 3.0000000000000004 from adding a step.
	steps := max(1, int(math.Ceil(hi/step-1e-9)))
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	ticks := make([]tick, 0, steps+1)
	for i := range steps + 1 {
		v := float64(i) * step
		ticks = append(ticks, tick{v, strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return ticks, float64(steps) * step
}
