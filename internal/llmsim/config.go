package llmsim

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// Defaults of Config's fields.
const (
	ModelDefault        = "sim-model"
	MaxNumSeqsDefault   = 256 // vLLM's --max-num-seqs default
	TTFTDefault         = 20 * time.Millisecond
	TPOTDefault         = 5 * time.Millisecond
	OutputTokensDefault = 50

	// EmbeddingDimensionsDefault is the length of embedding vectors when a
	// request does not ask for dimensions.
	EmbeddingDimensionsDefault = 384
)

// Config configures a simulated vLLM server. The zero value is a usable
// configuration: every field documents its default.
type Config struct {
	// Models are the model names served, as vLLM's --served-model-name: all
	// are names of one simulated model and share its capacity. A request for
	// another model gets vLLM's 404 NotFoundError. Default: ["sim-model"].
	Models []string

	// MaxNumSeqs is how many requests are generated at once, as vLLM's
	// --max-num-seqs; requests beyond it wait in a FIFO queue.
	// Default: 256.
	MaxNumSeqs int

	// TTFT is the time to first token: how long a request holds its slot
	// before its first output token (and all an embedding request holds it).
	// Negative means no delay. Default: 20ms.
	TTFT time.Duration

	// TPOT is the time per output token: a completion holds its slot for
	// TTFT + TPOT × its output tokens. Negative means no delay. Default: 5ms.
	TPOT time.Duration

	// OutputTokens is the length of a completion in tokens, unless the
	// request's max_tokens (or max_completion_tokens) is lower, which ends it
	// with finish_reason "length". Structured output is as long as the JSON
	// it needs. Default: 50.
	OutputTokens int

	// ErrorRate500 is the fraction, 0 to 1, of valid requests answered with
	// an injected 500 InternalServerError instead of a completion. Default: 0.
	ErrorRate500 float64

	// ErrorRate429 is the fraction, 0 to 1, of valid requests answered with
	// an injected 429 RateLimitError and "Retry-After: 1". Default: 0.
	ErrorRate429 float64

	// TimeoutRate is the fraction, 0 to 1, of valid requests that are never
	// answered: the connection is held, without taking a generation slot,
	// until the client gives up. Default: 0.
	TimeoutRate float64

	// CachedShare is the fraction, 0 to 1, of each prompt's tokens reported
	// as read from the prompt cache (rounded down): chat and completions'
	// usage.prompt_tokens_details.cached_tokens, Responses'
	// usage.input_tokens_details.cached_tokens. 0 reports
	// prompt_tokens_details null, as vLLM does without
	// --enable-prompt-tokens-details. Streamed usage leaves it out.
	// Default: 0.
	CachedShare float64

	// ReasoningShare is the fraction, 0 to 1, of each completion's tokens
	// reported as reasoning (rounded down): chat and completions'
	// usage.completion_tokens_details.reasoning_tokens, Responses'
	// usage.output_tokens_details.reasoning_tokens. 0 leaves
	// completion_tokens_details out. Streamed usage leaves it out.
	// Default: 0.
	ReasoningShare float64

	// Seed is mixed into every generated output and into the draws that
	// inject faults: the same Seed gives the same answers and the same fault
	// sequence. Default: 0.
	Seed int64
}

// WithDefaults returns the config with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if len(c.Models) == 0 {
		c.Models = []string{ModelDefault}
	}
	c.MaxNumSeqs = cmp.Or(c.MaxNumSeqs, MaxNumSeqsDefault)
	c.TTFT = cmp.Or(c.TTFT, TTFTDefault)
	c.TPOT = cmp.Or(c.TPOT, TPOTDefault)
	c.OutputTokens = cmp.Or(c.OutputTokens, OutputTokensDefault)
	return c
}

func (c Config) validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, m := range c.Models {
		switch {
		case m == "":
			errs = append(errs, errors.New("invalid Config.Models: a model name is empty"))
		case seen[m]:
			errs = append(errs, fmt.Errorf("invalid Config.Models: %q is listed twice", m))
		}
		seen[m] = true
	}
	if c.MaxNumSeqs < 1 {
		errs = append(errs, fmt.Errorf("invalid Config.MaxNumSeqs: must be at least 1, got %d", c.MaxNumSeqs))
	}
	if c.OutputTokens < 1 {
		errs = append(errs, fmt.Errorf("invalid Config.OutputTokens: must be at least 1, got %d", c.OutputTokens))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"ErrorRate500", c.ErrorRate500}, {"ErrorRate429", c.ErrorRate429}, {"TimeoutRate", c.TimeoutRate},
		{"CachedShare", c.CachedShare}, {"ReasoningShare", c.ReasoningShare}} {
		if !(r.v >= 0 && r.v <= 1) {
			errs = append(errs, fmt.Errorf("invalid Config.%s: must be between 0 and 1, got %v", r.name, r.v))
		}
	}
	if sum := c.ErrorRate500 + c.ErrorRate429 + c.TimeoutRate; sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("invalid Config.ErrorRate500 + ErrorRate429 + TimeoutRate: must be at most 1, got %v", sum))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("llmsim: %w", err)
	}
	return nil
}
