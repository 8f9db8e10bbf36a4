package load

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Point is one point of a line series.
type Point struct {
	X, Y float64
}

// Series is one line of a chart. A NaN Y leaves a gap in the line.
type Series struct {
	Name string
	// Class is the CSS class that colours the line, such as "s1".
	Class  string
	Points []Point
}

// LineChart is a line chart drawn as inline SVG.
type LineChart struct {
	Title          string
	XLabel, YLabel string
	Series         []Series
	// XTick and YTick format axis values.
	XTick, YTick func(float64) string
	// LogX draws the x axis on a log scale; every X must be positive.
	LogX bool
}

// Chart geometry in SVG user units.
const (
	chartWidth   = 900
	chartHeight  = 300
	marginLeft   = 70
	marginRight  = 20
	marginTop    = 30
	marginBottom = 45
)

var escape = template.HTMLEscapeString

// SVG draws the chart. Every text from outside, such as a series name, is
// escaped.
func (c LineChart) SVG() template.HTML {
	xMin, xMax, yMax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if math.IsNaN(p.Y) {
				continue
			}
			xMin, xMax = math.Min(xMin, c.xValue(p.X)), math.Max(xMax, c.xValue(p.X))
			yMax = math.Max(yMax, p.Y)
		}
	}
	var out strings.Builder
	openChart(&out, c.Title)
	if math.IsInf(xMin, 1) {
		out.WriteString(`<text x="450" y="150" text-anchor="middle" class="axis">no data</text></svg>`)
		return template.HTML(out.String())
	}
	if xMax == xMin {
		xMax = xMin + 1
	}
	yTicks := niceTicks(yMax)
	yTop := yTicks[len(yTicks)-1]

	plotW := float64(chartWidth - marginLeft - marginRight)
	plotH := float64(chartHeight - marginTop - marginBottom)
	sx := func(x float64) float64 { return marginLeft + (c.xValue(x)-xMin)/(xMax-xMin)*plotW }
	sy := func(y float64) float64 { return marginTop + plotH - y/yTop*plotH }

	for _, tick := range yTicks {
		y := sy(tick)
		fmt.Fprintf(&out, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, marginLeft, chartWidth-marginRight, y, y)
		fmt.Fprintf(&out, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, marginLeft-6, y+4, escape(c.YTick(tick)))
	}
	for _, tick := range c.xTicks(xMin, xMax) {
		x := sx(tick)
		fmt.Fprintf(&out, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"/>`, x, x, marginTop, marginTop+plotH)
		fmt.Fprintf(&out, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x, marginTop+plotH+16, escape(c.XTick(tick)))
	}
	fmt.Fprintf(&out, `<text class="axis" x="%.1f" y="%d" text-anchor="middle">%s</text>`, marginLeft+plotW/2, chartHeight-6, escape(c.XLabel))
	fmt.Fprintf(&out, `<text class="axis" x="14" y="%.1f" transform="rotate(-90 14 %.1f)" text-anchor="middle">%s</text>`,
		marginTop+plotH/2, marginTop+plotH/2, escape(c.YLabel))

	for i, s := range c.Series {
		for _, run := range splitAtGaps(s.Points) {
			var points strings.Builder
			for _, p := range run {
				fmt.Fprintf(&points, "%.1f,%.1f ", sx(p.X), sy(p.Y))
			}
			fmt.Fprintf(&out, `<polyline class="line %s" points="%s"><title>%s</title></polyline>`,
				escape(s.Class), strings.TrimSpace(points.String()), escape(s.Name))
		}
		legendX := marginLeft + 10 + i*150
		fmt.Fprintf(&out, `<rect class="legend %s" x="%d" y="10" width="14" height="4"/><text class="axis" x="%d" y="16">%s</text>`,
			escape(s.Class), legendX, legendX+18, escape(s.Name))
	}
	out.WriteString(`</svg>`)
	return template.HTML(out.String())
}

func (c LineChart) xValue(x float64) float64 {
	if c.LogX {
		return math.Log10(x)
	}
	return x
}

// xTicks returns tick positions in data units. A log axis gets one tick
// per power of ten.
func (c LineChart) xTicks(xMin, xMax float64) []float64 {
	if c.LogX {
		var ticks []float64
		for e := math.Ceil(xMin); e <= xMax; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		return ticks
	}
	var ticks []float64
	for _, t := range niceTicks(xMax - xMin) {
		ticks = append(ticks, xMin+t)
	}
	return ticks
}

// splitAtGaps splits points into runs without NaN values.
func splitAtGaps(points []Point) [][]Point {
	var runs [][]Point
	var run []Point
	for _, p := range points {
		if math.IsNaN(p.Y) {
			if len(run) > 0 {
				runs = append(runs, run)
			}
			run = nil
			continue
		}
		run = append(run, p)
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs
}

// niceTicks returns ticks from 0 to at least max in steps of 1, 2 or 5
// times a power of ten, about five of them.
func niceTicks(max float64) []float64 {
	if max <= 0 {
		return []float64{0, 1}
	}
	raw := max / 5
	power := math.Pow(10, math.Floor(math.Log10(raw)))
	step := power
	for _, factor := range []float64{1, 2, 5, 10} {
		step = factor * power
		if step >= raw {
			break
		}
	}
	var ticks []float64
	for t := 0.0; t < max+step; t += step {
		ticks = append(ticks, t)
		if t >= max {
			break
		}
	}
	return ticks
}

func openChart(out *strings.Builder, title string) {
	fmt.Fprintf(out, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartWidth, chartHeight, escape(title))
}

// Bar is one bar of a BarChart.
type Bar struct {
	Label string
	// Group is shown before the label, such as an error class.
	Group string
	Value float64
	// Overlay is a second, shorter value drawn over the bar, such as the
	// median over the 99th percentile; zero for none.
	Overlay float64
	// Text is the value as printed at the end of the bar.
	Text string
}

// BarChart is a horizontal bar chart drawn as inline SVG.
type BarChart struct {
	Title string
	Bars  []Bar
	// Class colours the bars; OverlayClass the overlays.
	Class, OverlayClass string
}

// SVG draws the chart.
func (c BarChart) SVG() template.HTML {
	const rowHeight, labelWidth, textWidth = 22, 220, 200
	height := marginTop + rowHeight*max(len(c.Bars), 1) + 10
	maxValue := 0.0
	for _, b := range c.Bars {
		maxValue = math.Max(maxValue, b.Value)
	}

	var out strings.Builder
	fmt.Fprintf(&out, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartWidth, height, escape(c.Title))
	if len(c.Bars) == 0 {
		out.WriteString(`<text x="450" y="40" text-anchor="middle" class="axis">none</text></svg>`)
		return template.HTML(out.String())
	}
	plotW := float64(chartWidth - labelWidth - textWidth)
	for i, b := range c.Bars {
		y := marginTop + i*rowHeight
		label := b.Label
		if b.Group != "" {
			label = b.Group + ": " + b.Label
		}
		width := 0.0
		if maxValue > 0 {
			width = b.Value / maxValue * plotW
		}
		fmt.Fprintf(&out, `<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`, labelWidth-8, y+14, escape(truncate(label, 40)))
		fmt.Fprintf(&out, `<rect class="bar %s" x="%d" y="%d" width="%.1f" height="%d"><title>%s</title></rect>`,
			escape(c.Class), labelWidth, y+3, math.Max(width, 1), rowHeight-6, escape(label+" "+b.Text))
		if b.Overlay > 0 && maxValue > 0 {
			fmt.Fprintf(&out, `<rect class="bar %s" x="%d" y="%d" width="%.1f" height="%d"/>`,
				escape(c.OverlayClass), labelWidth, y+3, math.Max(b.Overlay/maxValue*plotW, 1), rowHeight-6)
		}
		fmt.Fprintf(&out, `<text class="axis" x="%.1f" y="%d">%s</text>`, float64(labelWidth)+math.Max(width, 1)+6, y+14, escape(b.Text))
	}
	out.WriteString(`</svg>`)
	return template.HTML(out.String())
}

// truncate cuts s to n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	runes := []rune(s)
	if len(runes) <= n {
		return s
	}
	return string(runes[:n-1]) + "…"
}
