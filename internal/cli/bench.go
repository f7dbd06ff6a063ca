package cli

import (
	"fmt"
	"time"

	"github.com/kilnhq/kiln/internal/bench"
	"github.com/kilnhq/kiln/internal/llmsim"
)

type benchCmd struct {
	Run     benchRunCmd     `cmd:"" default:"withargs" help:"Measure the engine over a concurrency sweep per model, then through kiln (the default)."`
	Compare benchCompareCmd `cmd:"" help:"Print the differences between two runs' results, per model and concurrency."`
}

// benchRunCmd's zero flags take bench.Options' defaults, which the help
// states; TestBenchDefaults checks that they agree.
type benchRunCmd struct {
	EngineURL    string        `name:"engine-url" env:"KILN_LLM_URL" help:"The engine's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (kiln's KILN_LLM_URL)."`
	EngineKey    string        `name:"engine-key" env:"KILN_BENCH_ENGINE_KEY" help:"A bearer token for the engine, if it wants one (vllm serve --api-key)."`
	Model        []string      `name:"model" help:"A model to measure (repeat the flag for more). Default: every model the engine lists."`
	Concurrency  []int         `name:"concurrency" help:"The concurrency sweep, ascending. Default: 1,2,4,8,16,32,64."`
	Requests     int           `name:"requests" help:"Requests at each point. Default: 4 per unit of concurrency, at least 32."`
	InputTokens  int           `name:"input-tokens" help:"Prompt length in tokens, about. Default: 256."`
	OutputTokens int           `name:"output-tokens" help:"Completion length in tokens (max_tokens with ignore_eos). Default: 128."`
	KneeGain     float64       `name:"knee-gain" help:"The knee is the smallest concurrency past which doubling gains less than this in throughput. Default: 0.10."`
	Timeout      time.Duration `name:"request-timeout" help:"Bound on each request. Default: 10m."`
	NoKiln       bool          `name:"no-kiln" help:"Skip the run through kiln."`
	KilnRequests int           `name:"kiln-requests" help:"Requests in kiln's batch per model. Default: 8 per unit of the best concurrency, at least 64."`
	KilnDir      string        `name:"kiln-dir" help:"Keep the in-process kiln's database and files here. Default: a temporary folder, removed."`
	Out          string        `name:"out" type:"path" help:"Save the results as JSON here, and a chart (SVG) beside it, e.g. results.json."`

	Sim           bool          `name:"sim" help:"Measure an in-process simulator (kiln sim) instead of an engine: no GPU needed."`
	SimMaxNumSeqs int           `name:"sim-max-num-seqs" default:"16" help:"The simulator's concurrent sequences (its capacity: the knee)."`
	SimTTFT       time.Duration `name:"sim-ttft" default:"20ms" help:"The simulator's time to first token."`
	SimTPOT       time.Duration `name:"sim-tpot" default:"5ms" help:"The simulator's time per output token."`
	SimModels     []string      `name:"sim-models" help:"The simulator's models. Default: sim-model."`
	KilnLogLevel  string        `name:"log-level" default:"error" enum:"debug,info,warn,error" help:"The in-process kiln's log level (logs go to stderr)."`
}

func (c *benchRunCmd) options(e *env) bench.Options {
	o := bench.Options{
		EngineURL: c.EngineURL, APIKey: c.EngineKey, Models: c.Model, Concurrency: c.Concurrency, Requests: c.Requests,
		InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, KneeGain: c.KneeGain, RequestTimeout: c.Timeout,
		Progress: func(model string, p bench.Point) {
			fmt.Fprintf(e.stderr, "%s: concurrency %d: %.1f tok/s, %.2f req/s, TTFT p50 %.1fms, %d failed\n",
				model, p.Concurrency, p.OutputTokensPerSecond, p.RequestsPerSecond, p.TTFT.P50, p.Failed)
		},
	}
	if !c.NoKiln {
		o.Kiln = &bench.KilnOptions{Requests: c.KilnRequests, Dir: c.KilnDir, Version: Version(), Log: newLogger(e.stderr, c.KilnLogLevel)}
	}
	return o
}

func (c *benchRunCmd) Run(e *env) error {
	o := c.options(e)
	var simSettings *bench.SimSettings
	switch {
	case c.Sim && c.EngineURL != "":
		return fmt.Errorf("--sim measures the simulator: leave out --engine-url (or KILN_LLM_URL)")
	case c.Sim:
		cfg := llmsim.Config{Models: c.SimModels, MaxNumSeqs: c.SimMaxNumSeqs, TTFT: noDelay(c.SimTTFT), TPOT: noDelay(c.SimTPOT),
			OutputTokens: o.WithDefaults().OutputTokens}
		sim, err := bench.StartSim(cfg)
		if err != nil {
			return err
		}
		defer sim.Stop()
		o.EngineURL, simSettings = sim.URL, bench.SimSettingsOf(cfg)
	case c.EngineURL == "":
		return fmt.Errorf("no engine: pass --engine-url http://HOST:PORT/v1 (or set KILN_LLM_URL), or --sim for the simulator")
	}
	if len(o.Models) == 0 {
		models, err := bench.Models(e.ctx, o.EngineURL, o.APIKey)
		if err != nil {
			return err
		}
		o.Models = models
	}
	res, err := bench.Run(e.ctx, o)
	if res != nil {
		if simSettings != nil {
			res.Engine, res.Sim = "sim", simSettings
		}
		if werr := bench.WriteTable(e.stdout, res); werr != nil && err == nil {
			err = werr
		}
		if c.Out != "" {
			svg, serr := bench.Save(res, c.Out)
			if serr != nil && err == nil {
				err = serr
			} else if serr == nil {
				fmt.Fprintf(e.stderr, "saved %s and its chart %s\n", c.Out, svg)
			}
		}
	}
	return err
}

type benchCompareCmd struct {
	A string `arg:"" type:"existingfile" help:"The first run's results (JSON)."`
	B string `arg:"" type:"existingfile" help:"The second run's results (JSON)."`
}

func (c *benchCompareCmd) Run(e *env) error {
	a, err := bench.Load(c.A)
	if err != nil {
		return err
	}
	b, err := bench.Load(c.B)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "A: %s (%s)\nB: %s (%s)\n\n", c.A, a.Engine, c.B, b.Engine)
	return bench.WriteCompare(e.stdout, a, b)
}
