package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Save writes r as JSON to path and its chart as SVG beside it (path with
// .svg for its extension), and returns the chart's path.
func Save(r *Results, path string) (svgPath string, err error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	svgPath = strings.TrimSuffix(path, filepath.Ext(path)) + ".svg"
	f, err := os.Create(svgPath)
	if err != nil {
		return "", err
	}
	if err := WriteSVG(f, r); err != nil {
		f.Close()
		return "", err
	}
	return svgPath, f.Close()
}

// Load reads results that Save wrote.
func Load(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != FormatVersion {
		return nil, fmt.Errorf("%s: results of format version %d; this kiln reads version %d", path, r.Version, FormatVersion)
	}
	return &r, nil
}

// WriteTable prints r: a line per model and concurrency, then each model's
// knee and kiln's ratio.
func WriteTable(w io.Writer, r *Results) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "MODEL\tCONC\tREQ/S\tTOK/S\tTTFT P50\tTTFT P90\tTPOT P50\tTPOT P90\tFAILED\t")
	for _, m := range r.Models {
		for _, p := range m.Points {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.1f\t%s\t%s\t%s\t%s\t%d\t\n", m.Model, p.Concurrency, p.RequestsPerSecond, p.OutputTokensPerSecond,
				ms(p.TTFT.P50), ms(p.TTFT.P90), ms(p.TPOT.P50), ms(p.TPOT.P90), p.Failed)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, m := range r.Models {
		fmt.Fprintf(w, "%s: %s; best throughput at concurrency %d\n", m.Model, kneeText(m, r.KneeGain), m.Best)
		if k := m.Kiln; k != nil {
			fmt.Fprintf(w, "%s: through kiln (agent concurrency %d, %d requests): %.2f req/s, %.1f tok/s, %.2f× the direct run at %d\n",
				m.Model, k.Concurrency, k.Requests, k.RequestsPerSecond, k.OutputTokensPerSecond, k.Ratio, m.Best)
		}
	}
	return nil
}

func kneeText(m ModelResult, gain float64) string {
	if !m.Saturated {
		return fmt.Sprintf("no knee: throughput still gains %.0f%%+ per doubling at concurrency %d (sweep further)", gain*100, m.Knee)
	}
	return fmt.Sprintf("knee at concurrency %d (doubling it gains < %.0f%%)", m.Knee, gain*100)
}

// ms prints milliseconds with a precision that suits their size.
func ms(v float64) string {
	// The thresholds look at the value as printed, so that 9.9996 is
	// 10.0ms, not 10.00ms.
	switch {
	case math.Round(v) >= 100:
		return fmt.Sprintf("%.0fms", v)
	case math.Round(v*10)/10 >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}
