// Package bench measures an OpenAI-compatible engine (vLLM, or kiln's
// simulator) for `kiln bench`: a standard synthetic workload over a sweep of
// concurrencies per model, with throughput, TTFT and TPOT per point, the knee
// of the throughput curve, and the same workload run through an in-process
// kiln as a batch. Results are JSON (Results) with an SVG chart beside them;
// Compare sets two runs side by side.
package bench

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Defaults of Options' fields.
const (
	InputTokensDefault  = 256
	OutputTokensDefault = 128
	// RequestsPerSlotDefault sizes a point: RequestsPerSlotDefault requests
	// per unit of concurrency, and at least MinRequestsDefault.
	RequestsPerSlotDefault = 4
	MinRequestsDefault     = 32
	// KneeGainDefault is the throughput gain per doubling of concurrency
	// below which the curve has flattened (see Knee).
	KneeGainDefault       = 0.10
	RequestTimeoutDefault = 10 * time.Minute
)

// ConcurrencyDefault is the default sweep.
var ConcurrencyDefault = []int{1, 2, 4, 8, 16, 32, 64}

// FormatVersion is the version of the results' JSON; Read refuses others.
const FormatVersion = 1

// Options configure a run. The zero value measures nothing: EngineURL and
// Models are needed; every other field documents its default.
type Options struct {
	// EngineURL is the engine's OpenAI-compatible base URL, with /v1.
	EngineURL string
	// APIKey is sent as a bearer token to the engine when set. Default: none.
	APIKey string
	// Models are the models measured, one sweep each.
	Models []string
	// Concurrency is the sweep: requests in flight at each point, ascending.
	// Default: 1, 2, 4, 8, 16, 32, 64.
	Concurrency []int
	// Requests is the number of requests at each point. Default:
	// RequestsPerSlotDefault × the concurrency, at least MinRequestsDefault.
	Requests int
	// InputTokens is the prompt's approximate length in tokens (words, in
	// the standard prompt set). Default: 256.
	InputTokens int
	// OutputTokens is each completion's length: max_tokens, with
	// ignore_eos so that the engine generates all of them. Default: 128.
	OutputTokens int
	// KneeGain is the gain per doubling of concurrency below which the
	// curve has flattened. Default: 0.10.
	KneeGain float64
	// RequestTimeout bounds each request. Default: 10m.
	RequestTimeout time.Duration
	// Kiln runs the workload through an in-process kiln as a batch per
	// model, after the sweeps, when set. Default: none.
	Kiln *KilnOptions
	// Progress, when set, is called after each measured point.
	Progress func(model string, p Point)
}

// WithDefaults returns the options with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if len(o.Concurrency) == 0 {
		o.Concurrency = slices.Clone(ConcurrencyDefault)
	}
	o.InputTokens = cmp.Or(o.InputTokens, InputTokensDefault)
	o.OutputTokens = cmp.Or(o.OutputTokens, OutputTokensDefault)
	o.KneeGain = cmp.Or(o.KneeGain, KneeGainDefault)
	o.RequestTimeout = cmp.Or(o.RequestTimeout, RequestTimeoutDefault)
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.EngineURL == "" {
		errs = append(errs, errors.New("bench: no engine URL"))
	}
	if len(o.Models) == 0 {
		errs = append(errs, errors.New("bench: no models"))
	}
	for i, c := range o.Concurrency {
		if c < 1 {
			errs = append(errs, fmt.Errorf("bench: concurrency must be at least 1, got %d", c))
		}
		if i > 0 && c <= o.Concurrency[i-1] {
			errs = append(errs, fmt.Errorf("bench: the concurrency sweep must ascend, got %v", o.Concurrency))
		}
	}
	if o.Requests < 0 || o.InputTokens < 1 || o.OutputTokens < 1 {
		errs = append(errs, fmt.Errorf("bench: requests, input and output tokens must be positive"))
	}
	if !(o.KneeGain > 0) {
		errs = append(errs, fmt.Errorf("bench: knee gain must be positive, got %v", o.KneeGain))
	}
	return errors.Join(errs...)
}

// requestsAt is the number of requests measured at concurrency c.
func (o Options) requestsAt(c int) int {
	if o.Requests > 0 {
		return o.Requests
	}
	return max(RequestsPerSlotDefault*c, MinRequestsDefault)
}

// Results are one run of kiln bench, as saved in its JSON.
type Results struct {
	Version   int       `json:"version"`
	StartedAt time.Time `json:"started_at"`
	// Engine is the engine's URL, or "sim" for the in-process simulator.
	Engine string `json:"engine"`
	// Sim are the simulator's settings when Engine is "sim".
	Sim      *SimSettings `json:"sim,omitempty"`
	Workload Workload     `json:"workload"`
	// KneeGain is the gain per doubling below which the curve has
	// flattened (see Knee).
	KneeGain float64       `json:"knee_gain"`
	Models   []ModelResult `json:"models"`
}

// SimSettings are the simulator's settings in a run against it.
type SimSettings struct {
	MaxNumSeqs int     `json:"max_num_seqs"`
	TTFTMs     float64 `json:"ttft_ms"`
	TPOTMs     float64 `json:"tpot_ms"`
}

// Workload describes the requests.
type Workload struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	// Requests is the fixed number of requests per point, or 0 for
	// RequestsPerSlotDefault per unit of concurrency.
	Requests int `json:"requests,omitempty"`
}

// ModelResult is one model's sweep.
type ModelResult struct {
	Model  string  `json:"model"`
	Points []Point `json:"points"`
	// Knee is the knee's concurrency (see Knee); Saturated is false when
	// the curve was still rising at the end of the sweep, and Knee is then
	// its last concurrency.
	Knee      int  `json:"knee"`
	Saturated bool `json:"saturated"`
	// Best is the concurrency of the highest output throughput.
	Best int `json:"best_concurrency"`
	// Kiln is the run through kiln, when there was one.
	Kiln *KilnResult `json:"kiln,omitempty"`
}

// Point is one concurrency's measurement.
type Point struct {
	Concurrency int `json:"concurrency"`
	Requests    int `json:"requests"`
	Failed      int `json:"failed"`
	// Seconds is from the first request sent to the last answer received.
	Seconds               float64 `json:"seconds"`
	RequestsPerSecond     float64 `json:"requests_per_second"`
	OutputTokensPerSecond float64 `json:"output_tokens_per_second"`
	// PromptTokens is the mean prompt length the engine reported.
	PromptTokens float64 `json:"prompt_tokens"`
	// TTFT is from sending a request to its first token; TPOT is the mean
	// time between its tokens after the first.
	TTFT Percentiles `json:"ttft_ms"`
	TPOT Percentiles `json:"tpot_ms"`
	// Error is the first failure's message, when requests failed.
	Error string `json:"error,omitempty"`
}

// Percentiles of a latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
}

// KilnResult is the same workload run through kiln as one batch.
type KilnResult struct {
	// Concurrency is the agent's (KILN_AGENT_CONCURRENCY): the model's Best.
	Concurrency int `json:"concurrency"`
	Requests    int `json:"requests"`
	Completed   int `json:"completed"`
	Failed      int `json:"failed"`
	// Seconds is from the upload of the input file to the batch's end.
	Seconds               float64 `json:"seconds"`
	RequestsPerSecond     float64 `json:"requests_per_second"`
	OutputTokensPerSecond float64 `json:"output_tokens_per_second"`
	// Ratio is OutputTokensPerSecond over the direct run's at Best.
	Ratio float64 `json:"ratio"`
}

// point returns the model's point at concurrency c.
func (m ModelResult) point(c int) (Point, bool) {
	for _, p := range m.Points {
		if p.Concurrency == c {
			return p, true
		}
	}
	return Point{}, false
}
