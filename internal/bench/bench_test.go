package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/llmsim"
)

// simConfig is a simulator whose capacity is maxNumSeqs: a request holds a
// slot for TTFT + TPOT × OutputTokens (66ms), long beside the client's own
// cost per request, so that throughput is flat past maxNumSeqs.
func simConfig(maxNumSeqs int) llmsim.Config {
	return llmsim.Config{MaxNumSeqs: maxNumSeqs, TTFT: 20 * time.Millisecond, TPOT: 3 * time.Millisecond, OutputTokens: 16}
}

type testBundle struct {
	sim  *Sim
	opts Options
}

func setup(t *testing.T, maxNumSeqs int) *testBundle {
	t.Helper()
	cfg := simConfig(maxNumSeqs)
	sim, err := StartSim(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Stop() })
	return &testBundle{sim: sim, opts: Options{
		EngineURL: sim.URL, Models: []string{llmsim.ModelDefault},
		InputTokens: 32, OutputTokens: cfg.OutputTokens,
	}}
}

// TestRunSim: against a simulator that runs N requests at once, the knee
// lands at N (or a doubling beside it, which a busy machine's timing can
// blur: TestKnee checks the rule itself on fixed figures), throughput
// climbs to it, and past it requests queue.
func TestRunSim(t *testing.T) {
	t.Parallel()
	for _, n := range []int{4, 8} {
		t.Run(fmt.Sprint("max_num_seqs=", n), func(t *testing.T) {
			t.Parallel()
			b := setup(t, n)
			b.opts.Concurrency = []int{1, 2, 4, 8, 16, 32}
			res, err := Run(context.Background(), b.opts)
			require.NoError(t, err)
			require.Len(t, res.Models, 1)
			m := res.Models[0]
			require.Equal(t, llmsim.ModelDefault, m.Model)
			require.Len(t, m.Points, 6)
			require.Contains(t, []int{n / 2, n, 2 * n}, m.Knee, "knee of %+v", m.Points)
			require.True(t, m.Saturated)
			require.GreaterOrEqual(t, m.Best, n)
			require.LessOrEqual(t, b.sim.Server.Stats().PeakInFlight, int64(n))

			first, last := m.Points[0], m.Points[len(m.Points)-1]
			for _, p := range m.Points {
				require.Zero(t, p.Failed, p.Error)
				require.Equal(t, max(RequestsPerSlotDefault*p.Concurrency, MinRequestsDefault), p.Requests)
				require.Positive(t, p.TPOT.P50)
				require.LessOrEqual(t, p.TTFT.P50, p.TTFT.P90)
				require.InDelta(t, p.OutputTokensPerSecond, p.RequestsPerSecond*16, 1e-6*p.OutputTokensPerSecond, "every completion is 16 tokens")
			}
			require.Greater(t, last.TTFT.P50, first.TTFT.P50, "past the knee, requests wait for a slot before their first token")
		})
	}
}

// TestRunKiln: the workload through kiln completes every request, and its
// throughput is compared with the direct run's at the best concurrency.
func TestRunKiln(t *testing.T) {
	t.Parallel()
	b := setup(t, 4)
	b.opts.Concurrency = []int{2, 4, 8}
	b.opts.Kiln = &KilnOptions{Requests: 48, Dir: t.TempDir()}
	res, err := Run(context.Background(), b.opts)
	require.NoError(t, err)
	m := res.Models[0]
	// TestRunSim holds the knee to the simulator's sequences; here the
	// sweep is short, and a noisy point may move it past them, never before.
	require.GreaterOrEqual(t, m.Knee, 4)
	require.NotNil(t, m.Kiln)
	k := m.Kiln
	require.Equal(t, m.Best, k.Concurrency)
	require.Equal(t, 48, k.Requests)
	require.Equal(t, 48, k.Completed)
	require.Zero(t, k.Failed)
	require.InDelta(t, k.OutputTokensPerSecond, k.RequestsPerSecond*16, 1e-6*k.OutputTokensPerSecond)
	best, ok := m.point(m.Best)
	require.True(t, ok)
	require.InDelta(t, k.OutputTokensPerSecond/best.OutputTokensPerSecond, k.Ratio, 1e-9)
	require.Positive(t, k.Ratio)

	path := filepath.Join(t.TempDir(), "results.json")
	_, err = Save(res, path)
	require.NoError(t, err)
	back, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, res, back)
}

func TestRunRefuses(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Options{EngineURL: "http://127.0.0.1:1/v1", Models: []string{"m"}, Concurrency: []int{4, 2}})
	require.ErrorContains(t, err, "must ascend")
	_, err = Run(context.Background(), Options{Models: []string{"m"}})
	require.ErrorContains(t, err, "no engine URL")
}

func TestModels(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	models, err := Models(context.Background(), b.sim.URL, "")
	require.NoError(t, err)
	require.Equal(t, []string{llmsim.ModelDefault}, models)
}

func TestKnee(t *testing.T) {
	t.Parallel()
	curve := func(tps ...float64) []Point {
		var ps []Point
		for i, v := range tps {
			ps = append(ps, Point{Concurrency: 1 << i, OutputTokensPerSecond: v})
		}
		return ps
	}
	for _, tc := range []struct {
		name      string
		points    []Point
		knee      int
		saturated bool
	}{
		{"flat past 8", curve(100, 200, 400, 800, 810, 805, 812), 8, true},
		{"gain of 9 % per doubling is flat", curve(100, 200, 218, 237, 258), 2, true},
		{"still rising", curve(100, 200, 400, 800), 8, false},
		{"a dip is no knee when the curve climbs on", curve(100, 200, 190, 400, 800, 820), 16, true},
		{"a slow step is no knee when the curve climbs on", curve(100, 105, 130), 4, false},
		{"one point", curve(100), 1, false},
		{"none", nil, 0, false},
		{"uneven sweep: 4 to 16 is two doublings", []Point{{Concurrency: 4, OutputTokensPerSecond: 100}, {Concurrency: 16, OutputTokensPerSecond: 115}}, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			knee, saturated := Knee(tc.points, KneeGainDefault)
			require.Equal(t, tc.knee, knee)
			require.Equal(t, tc.saturated, saturated)
		})
	}
	require.Equal(t, 8, Best(curve(100, 200, 400, 800, 800, 790)))
}

func TestPercentiles(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 10; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, Percentiles{P50: 5, P90: 9}, percentiles(ds))
	require.Equal(t, Percentiles{P50: 3, P90: 3}, percentiles([]time.Duration{3 * time.Millisecond}))
	require.Equal(t, Percentiles{}, percentiles(nil))
}

func TestPrompt(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := range 50 {
		p := Prompt(i, 200)
		require.Len(t, strings.Fields(p), 200)
		require.False(t, seen[p])
		seen[p] = true
	}
	require.Equal(t, Prompt(7, 64), Prompt(7, 64), "the prompt set is the same on every run")

	input, err := BatchInput("m", 3, 16, 8)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(input)), "\n")
	require.Len(t, lines, 3)
	var line struct {
		CustomID string   `json:"custom_id"`
		URL      string   `json:"url"`
		Body     chatBody `json:"body"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &line))
	require.Equal(t, "bench-2", line.CustomID)
	require.Equal(t, "/v1/chat/completions", line.URL)
	require.Equal(t, 8, line.Body.MaxTokens)
	require.True(t, line.Body.IgnoreEOS)
	require.False(t, line.Body.Stream)
}

// sampleResults are results with two models, one with a name that XML must
// escape.
func sampleResults() *Results {
	return &Results{
		Version: FormatVersion, StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Engine: "sim",
		Sim:      &SimSettings{MaxNumSeqs: 8, TTFTMs: 20, TPOTMs: 5},
		Workload: Workload{InputTokens: 256, OutputTokens: 128}, KneeGain: 0.1,
		Models: []ModelResult{
			{Model: "a/<b>&c", Knee: 2, Saturated: true, Best: 2, Points: []Point{
				{Concurrency: 1, Requests: 32, OutputTokensPerSecond: 100, TTFT: Percentiles{P50: 20, P90: 25}},
				{Concurrency: 2, Requests: 32, OutputTokensPerSecond: 200, TTFT: Percentiles{P50: 21, P90: 26}},
				{Concurrency: 4, Requests: 32, OutputTokensPerSecond: 201, TTFT: Percentiles{P50: 40, P90: 45}},
			}, Kiln: &KilnResult{Concurrency: 2, Requests: 64, Completed: 64, OutputTokensPerSecond: 180, Ratio: 0.9}},
			{Model: "m2", Knee: 1, Points: []Point{{Concurrency: 1, Requests: 32, OutputTokensPerSecond: 50}}},
		},
	}
}

func TestSaveLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := sampleResults()
	svgPath, err := Save(r, filepath.Join(dir, "out", "results.json"))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "out", "results.svg"), svgPath)
	back, err := Load(filepath.Join(dir, "out", "results.json"))
	require.NoError(t, err)
	require.Equal(t, r, back)

	r.Version = FormatVersion + 1
	_, err = Save(r, filepath.Join(dir, "future.json"))
	require.NoError(t, err)
	_, err = Load(filepath.Join(dir, "future.json"))
	require.ErrorContains(t, err, "format version")
}

// TestSVG: the chart is well-formed XML, an svg with a line per model and a
// circle on each saturated model's knee, its text escaped.
func TestSVG(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, WriteSVG(&buf, sampleResults()))
	dec := xml.NewDecoder(&buf)
	counts := map[string]int{}
	var root string
	var texts strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
				require.Equal(t, "http://www.w3.org/2000/svg", el.Name.Space)
			}
			counts[el.Name.Local]++
		case xml.CharData:
			texts.Write(el)
		}
	}
	require.Equal(t, "svg", root)
	require.Equal(t, 2, counts["polyline"])
	require.Equal(t, 4+1, counts["circle"], "a dot per point and the knee of the saturated model")
	require.Contains(t, texts.String(), "a/<b>&c: knee at 2")

	buf.Reset()
	require.NoError(t, WriteSVG(&buf, &Results{Version: FormatVersion}), "an empty run still draws")
	require.NoError(t, xml.Unmarshal(buf.Bytes(), new(struct{})))
}

func TestCompare(t *testing.T) {
	t.Parallel()
	a, b := sampleResults(), sampleResults()
	b.Models[0].Points[1].OutputTokensPerSecond = 220 // +10 %
	b.Models[0].Points = b.Models[0].Points[:2]       // no concurrency 4
	b.Models[0].Points = append(b.Models[0].Points, Point{Concurrency: 8, OutputTokensPerSecond: 230})
	b.Models = append(b.Models[:1], ModelResult{Model: "m3", Knee: 1, Points: []Point{{Concurrency: 1, OutputTokensPerSecond: 10}}})

	diffs := Compare(a, b)
	var got []string
	for _, d := range diffs {
		got = append(got, fmt.Sprint(d.Model, "@", d.Concurrency))
	}
	require.Equal(t, []string{"a/<b>&c@1", "a/<b>&c@2", "a/<b>&c@4", "a/<b>&c@8", "m2@1", "m3@1"}, got)
	require.InDelta(t, 0, diffs[0].Change(), 1e-9)
	require.InDelta(t, 0.10, diffs[1].Change(), 1e-9)
	require.Nil(t, diffs[2].B)
	require.True(t, math.IsNaN(diffs[2].Change()))
	require.Nil(t, diffs[3].A)
	require.Nil(t, diffs[4].B)
	require.Nil(t, diffs[5].A)

	var out bytes.Buffer
	require.NoError(t, WriteCompare(&out, a, b))
	require.Regexp(t, `a/<b>&c +2 +200\.0 +220\.0 +\+10\.0%`, out.String())
	require.Regexp(t, `(?m)^ +m3 +1 +- +10\.0 +- `, out.String())
	require.Regexp(t, `(?m)^a/<b>&c +2 +2 +0\.90× +0\.90×$`, out.String())
	require.Regexp(t, `(?m)^m3 +- +>1 +- +-$`, out.String())
}

// TestMs: durations print with three significant digits, the thresholds
// judged on the value as printed.
func TestMs(t *testing.T) {
	for v, want := range map[float64]string{1.234: "1.23ms", 9.9996: "10.0ms", 12.34: "12.3ms", 99.96: "100ms", 676.4: "676ms"} {
		require.Equal(t, want, ms(v), "%v", v)
	}
}
