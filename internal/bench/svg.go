package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartWidth, chartHeight = 760, 440
	plotLeft, plotRight     = 80, 580
	plotTop, plotBottom     = 50, 380
)

// chartColors are the models' line colours, in turn.
var chartColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// WriteSVG draws r's output throughput against concurrency (a log2 axis),
// a line per model with its knee circled, as a standalone SVG document.
func WriteSVG(w io.Writer, r *Results) error {
	var concs []int
	top := 0.0
	for _, m := range r.Models {
		for _, p := range m.Points {
			concs = append(concs, p.Concurrency)
			top = max(top, p.OutputTokensPerSecond)
		}
	}
	slices.Sort(concs)
	concs = slices.Compact(concs)
	top = niceCeil(top)
	lo, hi := 1.0, 2.0
	if len(concs) > 0 {
		lo, hi = float64(concs[0]), float64(concs[len(concs)-1])
	}
	if hi <= lo {
		hi = lo * 2
	}
	x := func(c int) float64 {
		return plotLeft + (math.Log2(float64(c))-math.Log2(lo))/(math.Log2(hi)-math.Log2(lo))*(plotRight-plotLeft)
	}
	y := func(v float64) float64 { return plotBottom - v/top*(plotBottom-plotTop) }

	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, chartHeight, chartWidth, chartHeight)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	title := fmt.Sprintf("Output throughput by concurrency: %s, %d input / %d output tokens", r.Engine, r.Workload.InputTokens, r.Workload.OutputTokens)
	p(`<text x="%d" y="28" font-size="14" font-weight="bold">%s</text>`+"\n", plotLeft, esc(title))
	// Axes, grid and ticks.
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", plotLeft, y(v), plotRight, y(v))
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-6, y(v)+4, esc(fmt.Sprintf("%g", v)))
	}
	for _, c := range concs {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", x(c), plotTop, x(c), plotBottom)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(c), plotBottom+18, c)
	}
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", plotLeft, plotBottom, plotRight, plotBottom)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", plotLeft, plotTop, plotLeft, plotBottom)
	p(`<text x="%d" y="%d" text-anchor="middle">concurrency (requests in flight)</text>`+"\n", (plotLeft+plotRight)/2, plotBottom+40)
	p(`<text x="20" y="%d" text-anchor="middle" transform="rotate(-90 20 %d)">output tokens/s</text>`+"\n", (plotTop+plotBottom)/2, (plotTop+plotBottom)/2)
	// A line per model, its knee circled, and the legend.
	for i, m := range r.Models {
		color := chartColors[i%len(chartColors)]
		var pts []string
		for _, pt := range m.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(pt.Concurrency), y(pt.OutputTokensPerSecond)))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n", color, strings.Join(pts, " "), esc(m.Model))
		for _, pt := range m.Points {
			p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(pt.Concurrency), y(pt.OutputTokensPerSecond), color)
		}
		if k, ok := m.point(m.Knee); ok && m.Saturated {
			p(`<circle cx="%.1f" cy="%.1f" r="8" fill="none" stroke="%s" stroke-width="2"><title>%s</title></circle>`+"\n",
				x(k.Concurrency), y(k.OutputTokensPerSecond), color, esc(fmt.Sprintf("%s: knee at %d", m.Model, m.Knee)))
		}
		ly := plotTop + 10 + i*36
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", plotRight+20, ly, plotRight+40, ly, color)
		p(`<text x="%d" y="%d">%s</text>`+"\n", plotRight+46, ly+4, esc(shorten(m.Model, 20)))
		knee := "no knee"
		if m.Saturated {
			knee = fmt.Sprintf("knee %d", m.Knee)
		}
		if m.Kiln != nil {
			knee += fmt.Sprintf(", kiln %.2f×", m.Kiln.Ratio)
		}
		p(`<text x="%d" y="%d" fill="#555">%s</text>`+"\n", plotRight+46, ly+18, esc(knee))
	}
	p("</svg>\n")
	return bw.Flush()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for the axis.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return "…" + string(r[len(r)-n+1:])
	}
	return s
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
