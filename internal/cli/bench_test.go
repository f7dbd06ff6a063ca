package cli

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/bench"
)

// TestBench: kiln bench --sim measures the simulator, reports its knee,
// runs the workload through kiln, saves JSON and a chart, and kiln bench
// compare sets two runs side by side. Where the knee lands is timing, which
// this busy machine can blur by a step: internal/bench's TestKnee checks
// the rule on fixed figures, and its TestRunSim the knee of longer sweeps.
func TestBench(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "a.json")
	code, stdout, stderr := kiln(t, "bench", "--sim", "--sim-max-num-seqs=4", "--sim-ttft=20ms", "--sim-tpot=3ms",
		"--output-tokens=16", "--input-tokens=32", "--concurrency=1,2,4,8", "--kiln-requests=32", "--out", out)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Regexp(t, `sim-model: (knee at concurrency \d+ \(doubling it gains < 10%\)|no knee: throughput still gains 10%\+ per doubling)`, stdout)
	require.Regexp(t, `sim-model: through kiln \(agent concurrency \d+, 32 requests\): .* tok/s, [0-9.]+× the direct run`, stdout)
	require.Contains(t, stderr, "saved "+out)

	res, err := bench.Load(out)
	require.NoError(t, err)
	require.Equal(t, "sim", res.Engine)
	require.Equal(t, &bench.SimSettings{MaxNumSeqs: 4, TTFTMs: 20, TPOTMs: 3}, res.Sim)
	require.Len(t, res.Models, 1)
	require.Contains(t, []int{1, 2, 4, 8}, res.Models[0].Knee, "a concurrency of the sweep")
	require.NotNil(t, res.Models[0].Kiln)
	require.Equal(t, 32, res.Models[0].Kiln.Completed)

	svg, err := os.ReadFile(filepath.Join(dir, "a.svg"))
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(svg, new(struct{})))

	code, stdout, stderr = kiln(t, "bench", "compare", out, out)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Regexp(t, `(?m)^ +sim-model +4 +[0-9.]+ +[0-9.]+ +\+0\.0%`, stdout)
	require.Regexp(t, `(?m)^sim-model +4 +4 +`, stdout)
}

func TestBenchRefuses(t *testing.T) {
	t.Parallel()
	code, _, stderr := kiln(t, "bench", "--no-kiln", "--engine-url=")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "pass --engine-url")

	code, _, stderr = kiln(t, "bench", "--sim", "--engine-url=http://127.0.0.1:1/v1")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "leave out --engine-url")

	code, _, _ = kiln(t, "bench", "compare", filepath.Join(t.TempDir(), "missing.json"), "b.json")
	require.Equal(t, 2, code)
}

// TestBenchDefaults: the help of kiln bench's flags states bench's defaults.
func TestBenchDefaults(t *testing.T) {
	t.Parallel()
	code, stdout, _ := kiln(t, "bench", "run", "--help")
	require.Equal(t, 0, code)
	help := strings.Join(strings.Fields(stdout), " ")
	o := bench.Options{}.WithDefaults()
	for _, want := range []string{
		"Default: " + joinInts(o.Concurrency) + ".",
		"Default: 256.", "Default: 128.", "Default: 0.10.", "Default: 10m.",
	} {
		require.Contains(t, help, want)
	}
	require.Equal(t, 256, o.InputTokens)
	require.Equal(t, 128, o.OutputTokens)
	require.Equal(t, 0.10, o.KneeGain)
	require.Equal(t, "10m0s", o.RequestTimeout.String())
	require.Contains(t, help, "Default: 4 per unit of concurrency, at least 32.")
	require.Equal(t, 4, bench.RequestsPerSlotDefault)
	require.Equal(t, 32, bench.MinRequestsDefault)
	require.Contains(t, help, "Default: 8 per unit of the best concurrency, at least 64.")
	require.Equal(t, 8, bench.KilnRequestsPerSlotDefault)
	require.Equal(t, 64, bench.KilnMinRequestsDefault)
}

func joinInts(v []int) string {
	var s []string
	for _, n := range v {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}
