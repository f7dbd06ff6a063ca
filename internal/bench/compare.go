package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
)

// Diff is one model and concurrency in two runs; A or B is nil where that
// run lacks it.
type Diff struct {
	Model       string
	Concurrency int
	A, B        *Point
}

// Change is B's output throughput relative to A's (0.05: 5 % more), NaN
// where one lacks the point or A's is zero.
func (d Diff) Change() float64 {
	if d.A == nil || d.B == nil || d.A.OutputTokensPerSecond == 0 {
		return math.NaN()
	}
	return d.B.OutputTokensPerSecond/d.A.OutputTokensPerSecond - 1
}

// Compare sets two runs side by side: a Diff per model and concurrency in
// either, in A's model order, then B's new models.
func Compare(a, b *Results) []Diff {
	var models []string
	for _, r := range []*Results{a, b} {
		for _, m := range r.Models {
			if !slices.Contains(models, m.Model) {
				models = append(models, m.Model)
			}
		}
	}
	var out []Diff
	for _, model := range models {
		ma, _ := a.model(model)
		mb, _ := b.model(model)
		var concs []int
		for _, p := range append(slices.Clone(ma.Points), mb.Points...) {
			concs = append(concs, p.Concurrency)
		}
		slices.Sort(concs)
		for _, c := range slices.Compact(concs) {
			d := Diff{Model: model, Concurrency: c}
			if p, ok := ma.point(c); ok {
				d.A = &p
			}
			if p, ok := mb.point(c); ok {
				d.B = &p
			}
			out = append(out, d)
		}
	}
	return out
}

func (r *Results) model(name string) (ModelResult, bool) {
	for _, m := range r.Models {
		if m.Model == name {
			return m, true
		}
	}
	return ModelResult{}, false
}

// WriteCompare prints Compare's diffs, then each model's knees and kiln
// ratios in both runs.
func WriteCompare(w io.Writer, a, b *Results) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "MODEL\tCONC\tA TOK/S\tB TOK/S\tCHANGE\tA TTFT P50\tB TTFT P50\tA TPOT P50\tB TPOT P50\t")
	for _, d := range Compare(a, b) {
		tok := func(p *Point) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprintf("%.1f", p.OutputTokensPerSecond)
		}
		lat := func(p *Point, get func(Point) float64) string {
			if p == nil {
				return "-"
			}
			return ms(get(*p))
		}
		change := "-"
		if c := d.Change(); !math.IsNaN(c) {
			change = fmt.Sprintf("%+.1f%%", c*100)
		}
		ttft := func(p Point) float64 { return p.TTFT.P50 }
		tpot := func(p Point) float64 { return p.TPOT.P50 }
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", d.Model, d.Concurrency, tok(d.A), tok(d.B), change,
			lat(d.A, ttft), lat(d.B, ttft), lat(d.A, tpot), lat(d.B, tpot))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tA KNEE\tB KNEE\tA KILN RATIO\tB KILN RATIO")
	seen := map[string]bool{}
	for _, d := range Compare(a, b) {
		if seen[d.Model] {
			continue
		}
		seen[d.Model] = true
		ma, okA := a.model(d.Model)
		mb, okB := b.model(d.Model)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Model, kneeCell(ma, okA), kneeCell(mb, okB), ratioCell(ma, okA), ratioCell(mb, okB))
	}
	return tw.Flush()
}

func kneeCell(m ModelResult, ok bool) string {
	switch {
	case !ok:
		return "-"
	case !m.Saturated:
		return fmt.Sprintf(">%d", m.Knee)
	}
	return fmt.Sprint(m.Knee)
}

func ratioCell(m ModelResult, ok bool) string {
	if !ok || m.Kiln == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f×", m.Kiln.Ratio)
}
